"""Developer sessions: `nox` runs tests and lint; nightly and lerobot_compat are opt-in (`nox -s nightly`)."""

from __future__ import annotations

import datetime
import shutil
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; arguments after `--` go to pytest."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def fast(session: nox.Session) -> None:
    """The suite without tests marked slow (worker processes, full renders, estimators); `--` args go to pytest."""
    session.install(".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check the code with ruff (configured in pyproject.toml)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "replay_check", "tests", "scripts", "noxfile.py")


@nox.session(default=False)
def nightly(session: nox.Session) -> None:
    """Validate the datasets in nightly.toml into reports/nightly/<date>/ (`-- --offline`: recorded stand-ins)."""
    session.install(".")
    out = ROOT / "reports" / "nightly" / datetime.date.today().isoformat()
    session.run("python", "-m", "replay_check.nightly", "--config", str(ROOT / "nightly.toml"), "--out", str(out),
                *session.posargs)


@nox.session(default=False)
def lerobot_compat(session: nox.Session) -> None:
    """Record a small dataset, then check that lerobot's LeRobotDataset reads it as our reader does."""
    session.install(".")
    data = Path(tempfile.mkdtemp(prefix="lerobot_compat_"))
    for env, steps in (("pusht", "40"), ("aloha-transfer-cube", "60")):
        _record(session, env, data / env.replace("-", "_"), steps)
    # lerobot comes last: it may pin other versions of shared dependencies; the check script needs only
    # lerobot, av, numpy and pyarrow, and replay-check is not used after recording.
    session.install("lerobot")
    for dataset in sorted(data.iterdir()):
        session.run("python", str(ROOT / "scripts" / "check_lerobot_compat.py"), str(dataset), *session.posargs)


def _record(session: nox.Session, env: str, out: Path, steps: str) -> None:
    """Two short scripted episodes of `env` written by `replay-check record`."""
    session.run("replay-check", "record", "--env", env, "--episodes", "2", "--steps", steps, "--out", str(out),
                "--quiet")


@nox.session(default=False)
def browser(session: nox.Session) -> None:
    """Open a fresh recording in Rerun's web viewer in headless Chromium; screenshots kept in its report folder.

    `-- path/to/recording.rrd` checks that recording instead of replaying the embedded sample.
    """
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
        session.error("chromium not found; install it with `sudo apt-get install -y chromium` (Debian/Ubuntu)")
    session.install(".")
    if session.posargs:
        rrd = Path(session.posargs[0]).resolve()
        out = rrd.parent / "screenshots"
    else:
        reports = ROOT / "reports" / "browser" / datetime.date.today().isoformat()
        session.run("replay-check", "run", "--report-dir", str(reports), "--quiet", success_codes=[0, 1])
        rrd = max(reports.glob("*/episode_*/recording.rrd"), key=lambda p: p.stat().st_mtime)
        out = rrd.parent / "screenshots"
    session.run("python", str(ROOT / "scripts" / "browser_check.py"), str(rrd), "--out", str(out))


@nox.session(default=False)
def vs_viewer(session: nox.Session) -> None:
    """Time `replay-check run` against `lerobot-dataset-viz --save 1` on one episode (whole processes, alternating).

    lerobot 0.4 (the writer of the v3.0 format we read) brings torch and pins an older rerun-sdk, so it is installed in
    a venv of its own; its torchcodec needs a system FFmpeg (`apt-get install -y ffmpeg`). Neither enters
    replay-check's own install. Arguments after `--` go to scripts/benchmark_vs_viewer.py (e.g. `--root DATASET`).
    The render floor (scripts/render_floor.py: every frame rendered, nothing else) runs as a third side.
    """
    if not shutil.which("ffmpeg"):
        session.error("ffmpeg not found: lerobot's torchcodec needs it (`sudo apt-get install -y ffmpeg`)")
    session.install(".", "psutil>=5.9,<8")
    # lerobot pins an older rerun-sdk than ours: it gets a venv of its own next to the session's (uv comes with us).
    viewer_env = Path(session.virtualenv.location).with_name("vs_viewer-lerobot")
    if not (viewer_env / "bin" / "lerobot-dataset-viz").exists():
        python = Path(session.virtualenv.location) / "bin" / "python"
        session.run("python", "-m", "uv", "venv", "--quiet", "--python", str(python), str(viewer_env))
        session.run("python", "-m", "uv", "pip", "install", "--quiet", "--python", str(viewer_env / "bin" / "python"),
                    "lerobot>=0.4.4,<0.5")
    session.run("python", str(ROOT / "scripts" / "benchmark_vs_viewer.py"), "--floor", "--viewer",
                str(viewer_env / "bin" / "lerobot-dataset-viz"), *session.posargs, env={"MUJOCO_GL": "egl"})
