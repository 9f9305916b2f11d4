"""One flat exception tree: the CLI maps these to a one-line message and an exit code.

Exit codes: 0 pass/warn, 1 FAIL verdict, 2 bad input (`ReplayCheckError` and its input subclasses:
the user can fix it), 3 an operational failure that is nobody's input (`OperationalError`: an
estimator that finds nothing, a crashed worker; and any unexpected exception, which keeps its
traceback because it is a bug), 130 interrupted.
"""

from __future__ import annotations

EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_OPERATIONAL = 3
EXIT_INTERRUPTED = 130


class ReplayCheckError(Exception):
    """Base class: a problem the user can act on, with a one-line message."""

    exit_code = EXIT_BAD_INPUT


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


class OutputError(ReplayCheckError):
    """An output path (report folder, recording, video, dataset folder) cannot be written."""


class ConfigError(ReplayCheckError):
    """A settings or thresholds file has unknown keys or wrong types."""


class ViewerError(ReplayCheckError):
    """The Rerun viewer could not be spawned or served (no display, port taken)."""


class StackError(ReplayCheckError):
    """A physics stack cannot be resolved, built or found (unknown name, bad pin, no wheel, offline)."""


class OperationalError(ReplayCheckError):
    """The tool could not finish although the input is valid (exit 3, not FAIL and not bad input)."""

    exit_code = EXIT_OPERATIONAL


class WorkerError(OperationalError):
    """The simulator worker process of a stack crashed or stopped answering (an `error`, not bad input)."""




class HubUnavailableError(HubError, OperationalError):
    """The Hugging Face Hub did not answer, or a download was cut, and the cache cannot stand in (exit 3)."""


class EstimationError(OperationalError):
    """The initial state could not be recovered (e.g. an object was not found in frame 0)."""
