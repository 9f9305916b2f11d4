"""Where a dataset's files come from: a local folder, or the Hugging Face Hub one file at a time.

The Hub side downloads through huggingface_hub's cache, so a file fetched once is reused (also
offline) and an episode costs only its own data parquet and videos, not the whole repository.

huggingface_hub retries a failed connection five times with back-off (~25 s) before it gives up or
falls back to its cache. So the first call asks once, without retries and with a short timeout,
whether the Hub answers at all; when it does not, every file comes from the cache (as with
HF_HUB_OFFLINE=1) and a missing one fails at once, naming the endpoint.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Protocol

from replay_check.errors import DatasetError, HubError, HubUnavailableError


def hf_hub_download(*args, **kwargs) -> str:
    """huggingface_hub.hf_hub_download, imported on first use (tests monkeypatch this name)."""
    from huggingface_hub import hf_hub_download as download
    from huggingface_hub.utils import logging as hub_logging

    # Its retry warnings would precede our one-line error; failures are reported by the caller.
    hub_logging.set_verbosity_error()
    return download(*args, **kwargs)


def list_repo_tree(repo_id: str, path_in_repo: str, revision: str | None) -> list[str]:
    """Paths of the files under `path_in_repo` in a dataset repository (a network call)."""
    from huggingface_hub import HfApi

    entries = HfApi().list_repo_tree(
        repo_id, path_in_repo, recursive=True, revision=revision, repo_type="dataset"
    )
    return [e.path for e in entries if getattr(e, "size", None) is not None]


# Seconds the reachability probe waits for the Hub (huggingface_hub's own default is 10 s, with retries).
PROBE_TIMEOUT_S = 3.0


def hub_endpoint() -> str:
    """The Hub endpoint huggingface_hub talks to (HF_ENDPOINT, read at its import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_answers(repo_id: str, relpath: str, revision: str | None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hub answers a HEAD for the file at all (any HTTP status counts), asked once, no retries."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(repo_id, relpath, repo_type="dataset", revision=revision)
    try:
        get_hf_file_metadata(url, timeout=timeout)
    except HfHubHTTPError:
        return True  # it answered (404, 401, ...): the real call reports that
    except Exception:  # noqa: BLE001  (connection refused, timeout, DNS, proxy: no answer)
        return False
    return True


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it once, at import)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


class DatasetFiles(Protocol):
    """Relative dataset paths (as in info.json templates) -> local files."""

    label: str

    def path(self, relpath: str) -> Path:
        """A local path holding `relpath`; DatasetError (HubError) when it cannot be had."""

    def exists(self, relpath: str) -> bool:
        """Whether `relpath` is part of the dataset (may fetch it)."""

    def list(self, folder: str, suffix: str) -> list[str]:
        """Sorted relative paths of the files under `folder` ending with `suffix`."""

    @property
    def root(self) -> Path:
        """The local folder the dataset's files live in (for a Hub dataset, its cache snapshot)."""


class LocalFiles:
    """A dataset folder on disk."""

    def __init__(self, root: str | Path):
        self._root = Path(root).expanduser()
        self.label = str(self._root)

    @property
    def root(self) -> Path:
        return self._root

    def path(self, relpath: str) -> Path:
        path = self._root / relpath
        if not path.is_file():
            raise DatasetError(f"dataset {self._root} lacks {relpath} (no file {path})")
        return path

    def exists(self, relpath: str) -> bool:
        return (self._root / relpath).is_file()

    def list(self, folder: str, suffix: str) -> list[str]:
        base = self._root / folder
        found = (p.relative_to(self._root).as_posix() for p in base.rglob(f"*{suffix}") if p.is_file())
        return sorted(found)


class HubFiles:
    """A dataset repository on the Hub; every file is fetched through the local cache when first asked for."""

    def __init__(self, repo_id: str, revision: str | None = None):
        self.repo_id = repo_id
        self.revision = revision
        self.label = f"{repo_id}@{revision or 'main'}"
        self._paths: dict[str, Path] = {}
        self._snapshot: Path | None = None
        self._unreachable: bool | None = None  # decided by the first probe

    def _cache_only(self, relpath: str) -> bool:
        """True when offline, or when the Hub did not answer the probe (made once, on the first file)."""
        if hub_offline():
            return True
        if self._unreachable is None:
            self._unreachable = not hub_answers(self.repo_id, relpath, self.revision)
        return self._unreachable

    @property
    def commit(self) -> str | None:
        """The commit the revision resolved to (the cache snapshot folder's name), once a file was fetched."""
        return self._snapshot.name if self._snapshot is not None else None

    @property
    def root(self) -> Path:
        if self._snapshot is None:
            self.path("meta/info.json")
        assert self._snapshot is not None
        return self._snapshot

    def path(self, relpath: str) -> Path:
        if relpath not in self._paths:
            self._paths[relpath] = self._download(relpath)
        return self._paths[relpath]

    def exists(self, relpath: str) -> bool:
        try:
            self.path(relpath)
        except _NotOnHub:
            return False
        return True

    def list(self, folder: str, suffix: str) -> list[str]:
        """Ask the Hub for the listing; offline or unreachable, list what the cache snapshot holds."""
        if not self._cache_only(folder):
            try:
                return sorted(
                    p for p in list_repo_tree(self.repo_id, folder, self.revision) if p.endswith(suffix)
                )
            except Exception as exc:  # noqa: BLE001  (a failed listing falls back to the cache)
                reason, missing = _reason(exc)
                if missing:
                    raise _NotOnHub(
                        f"cannot list {folder} of dataset {self.label} on the Hugging Face Hub ({reason})"
                    ) from exc
        return LocalFiles(self.root).list(folder, suffix)

    def _download(self, relpath: str) -> Path:
        try:
            local = Path(
                hf_hub_download(
                    self.repo_id,
                    relpath,
                    repo_type="dataset",
                    revision=self.revision,
                    local_files_only=self._cache_only(relpath),
                )
            )
        except Exception as exc:  # noqa: BLE001  (huggingface_hub raises many types; all become one line)
            reason, missing = _reason(exc, unreachable=bool(self._unreachable))
            kind = _NotOnHub if missing else HubError if _is_user_side(exc) else HubUnavailableError
            raise kind(
                f"cannot fetch {relpath} of dataset {self.label} from the Hugging Face Hub ({reason})"
            ) from None
        if self._snapshot is None:
            self._snapshot = _snapshot_dir(local, relpath)
        return local


class _NotOnHub(HubError):
    """The Hub answered: this file, revision or repository does not exist."""


def _snapshot_dir(local: Path, relpath: str) -> Path:
    """The cache snapshot folder: `local` minus the relative path's parts."""
    depth = len(PurePosixPath(relpath).parts)
    return local.parents[depth - 1]


def _is_user_side(exc: Exception) -> bool:
    """Failures the user can fix (gated, no permission, offline by choice) versus the network's."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return True
    return isinstance(exc, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled) and hub_offline()


def _reason(exc: Exception, unreachable: bool = False) -> tuple[str, bool]:
    """A short reason for a failed Hub call, and whether it means 'does not exist'."""
    from huggingface_hub import errors

    if isinstance(exc, errors.RevisionNotFoundError):
        return "no such revision", True
    if isinstance(exc, errors.GatedRepoError):
        return "the dataset is gated: accept its terms and log in", False
    if isinstance(exc, errors.RepositoryNotFoundError):
        return "no such dataset, or it is private", True
    if isinstance(exc, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        if hub_offline():
            return "offline: HF_HUB_OFFLINE is set and the file is not in the cache", False
        return f"the Hub at {hub_endpoint()} is unreachable and the file is not in the cache", False
    if isinstance(exc, errors.EntryNotFoundError | errors.RemoteEntryNotFoundError):
        return "no such file in the repository", True
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return "the download was cut short; run again to fetch it", False
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}", False
