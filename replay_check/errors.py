"""One flat exception tree: the CLI maps these to a one-line message and an exit code.

`ReplayCheckError` subclasses are the user's problem (bad input, missing files: exit 2);
anything else escaping the library is a bug and keeps its traceback.
"""

from __future__ import annotations


class ReplayCheckError(Exception):
    """Base class: a problem the user can act on, with a one-line message."""

    exit_code = 2


class DatasetError(ReplayCheckError):
    """The dataset is missing, malformed, or does not hold what was asked for."""


class HubError(DatasetError):
    """A file could not be fetched from the Hugging Face Hub (offline, unreachable, not found)."""


class VideoError(DatasetError):
    """A video file is missing, unreadable, or shorter than the episode it should hold."""


class ProfileError(ReplayCheckError):
    """No environment profile fits the dataset, or a profile file is invalid."""


class InputError(ReplayCheckError):
    """The episode cannot be replayed as given (wrong widths, NaN actions, too short, unmapped camera)."""


class EstimationError(ReplayCheckError):
    """The initial state could not be recovered (e.g. an object was not found in frame 0)."""


class ConfigError(ReplayCheckError):
    """A settings or thresholds file has unknown keys or wrong types."""


class ViewerError(ReplayCheckError):
    """The Rerun viewer could not be spawned or served (no display, port taken)."""


class StackError(ReplayCheckError):
    """A physics stack cannot be resolved, built or found (unknown name, bad pin, no wheel, offline)."""


class WorkerError(ReplayCheckError):
    """The simulator worker process of a stack crashed or stopped answering (an `error`, not bad input)."""

    exit_code = 1
