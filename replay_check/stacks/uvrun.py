"""Calling uv: the user's pip index/proxy configuration translated to uv options, and uv's errors to one line.

uv reads UV_* variables but not pip.conf, so a machine configured for pip (extra indexes, find-links,
a proxy, a CA bundle) would resolve differently under uv. pip's own view of its configuration
(`pip config list`, environment variables included) is read once and turned into uv flags; pip
searches every index for the best version, hence `--index-strategy unsafe-best-match` when several are set.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from replay_check.errors import StackError

_UV_INDEX_VARS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NO_INDEX")


def uv_bin() -> str:
    """The uv executable shipped by the `uv` package."""
    try:
        import uv
    except ImportError as exc:  # pragma: no cover - uv is a core dependency
        raise StackError("the 'uv' package is not installed (pip install uv)") from exc
    return uv.find_uv_bin()


@functools.lru_cache(maxsize=1)
def pip_config() -> dict[str, str]:
    """pip's effective settings (key -> value; environment variables win over files, later files over earlier)."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_pip_config(out)


def parse_pip_config(text: str) -> dict[str, str]:
    """Parse `pip config list` lines ("global.find-links='/opt/wheels'", ":env:.timeout='60'")."""
    found: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^([^.=]*)\.([A-Za-z0-9_-]+)='(.*)'$", line.strip())
        if not match:
            continue
        section, key, value = match.groups()
        if section == ":env:":
            env[key] = value
        elif section in ("global", "install", "download"):
            found[key] = value
    found.update(env)
    return found


@dataclass(frozen=True)
class IndexOptions:
    """uv command-line flags and extra environment for the configured package indexes and proxy."""

    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    offline: bool = False

    def describe(self) -> str:
        return " ".join(self.args) or "uv defaults"


def index_options(offline: bool = False, config: dict[str, str] | None = None) -> IndexOptions:
    """uv options equivalent to pip's configuration (skipped when the user configured uv's indexes directly)."""
    offline = offline or os.environ.get("UV_OFFLINE", "").lower() in ("1", "true", "yes")
    args: list[str] = []
    env: dict[str, str] = {}
    if not any(os.environ.get(v) for v in _UV_INDEX_VARS):
        config = pip_config() if config is None else config
        if config.get("index-url"):
            args += ["--index-url", config["index-url"]]
        extras = config.get("extra-index-url", "").split()
        for url in extras:
            args += ["--extra-index-url", url]
        for link in config.get("find-links", "").split():
            args += ["--find-links", link]
        if config.get("no-index", "").lower() in ("1", "true", "yes"):
            args.append("--no-index")
        for host in config.get("trusted-host", "").split():
            args += ["--allow-insecure-host", host]
        if extras or config.get("find-links"):
            args += ["--index-strategy", "unsafe-best-match"]
        if config.get("proxy"):
            for var in ("HTTPS_PROXY", "HTTP_PROXY"):
                if not os.environ.get(var) and not os.environ.get(var.lower()):
                    env[var] = config["proxy"]
        if config.get("cert") and not os.environ.get("SSL_CERT_FILE"):
            env["SSL_CERT_FILE"] = config["cert"]
    if offline:
        args.append("--offline")
    return IndexOptions(tuple(args), tuple(sorted(env.items())), offline)


def run_uv(args: list[str], index: IndexOptions | None, *, what: str, input_text: str | None = None,
           stream: bool = False) -> str:
    """Run `uv ARGS` (with the index options where they apply) and return stdout; failures are StackError."""
    command = [uv_bin(), *args, *(index.args if index else ())]
    env = {**os.environ, **dict(index.env if index else ()), "UV_NO_PROGRESS": "0" if stream else "1"}
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    proc = subprocess.run(command, input=input_text, text=True, env=env,
                          stdout=subprocess.PIPE, stderr=None if stream else subprocess.PIPE)
    if proc.returncode != 0:
        raise StackError(f"{what}: {uv_reason(proc.stderr or '')}")
    return proc.stdout


def uv_reason(stderr: str) -> str:
    """The one line of uv's error output that says why (its 'cause:' sentence, else its first error line)."""
    text = " ".join(line.strip() for line in stderr.splitlines() if not line.strip().startswith("hint:"))
    for marker in ("cause:", "Caused by:", "error:"):
        if marker in text:
            reason = text.split(marker, 1)[1].strip()
            reason = re.split(r"\s+(?:hint|help):", reason)[0]
            return re.sub(r"\s+", " ", reason)[:400]
    return re.sub(r"\s+", " ", text.strip())[:400] or "uv failed without a message"
