"""The headline command end to end through huggingface_hub's real client, against tests/hub_server.py.

A v3.0 dataset shaped like lerobot/aloha_sim_insertion_human (robot_type aloha, 14-d state/action,
one 480x640 top camera, no environment_state, episodes sharing one data parquet and one mp4) is
recorded once per module by `record` and served as that repo id. Every command runs as its own
process with HF_ENDPOINT pointing at the server and HF_HOME in a temporary folder, exactly as a
user would run it. Requests and bytes are counted by the server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hub_server import HubServer, Repo

REPO = "lerobot/aloha_sim_insertion_human"
VIDEO = "videos/observation.images.top/chunk-000/file-000.mp4"
DATA = "data/chunk-000/file-000.parquet"
METADATA = ("meta/info.json", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet")
STEPS = 10

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """main: 2 episodes in shared files; branch v1: main with another info.json; lerobot/no_video: no mp4."""
    from replay_check.record import record_dataset

    base = tmp_path_factory.mktemp("hub")
    main = base / "main"
    record_dataset("aloha-insertion", 2, main, seed=0, env_state=False, progress=False, steps=STEPS)
    (main / "README.md").write_text("# aloha_sim_insertion_human (test copy)\n")
    v1 = base / "v1"  # a branch whose info.json differs (what the client must fetch from that branch)
    shutil.copytree(main, v1)
    info = json.loads((v1 / "meta" / "info.json").read_text())
    (v1 / "meta" / "info.json").write_text(json.dumps({**info, "robot_type": "aloha-v1-branch"}))
    broken = base / "no_video"
    shutil.copytree(main, broken)
    (broken / VIDEO).unlink()
    repos = {REPO: Repo({"main": main, "v1": v1}), "lerobot/no_video": Repo({"main": broken})}
    with HubServer(repos) as hub:
        yield hub, main


def replay_check(endpoint: str, home: Path, *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    env.pop("HF_HUB_OFFLINE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "replay_check", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def run_args(report_dir: Path, *extra: str) -> list[str]:
    return ["run", "--repo-id", REPO, "--episode", "0", "--mode", "state", "--no-rerun", "--no-plots",
            "--report-dir", str(report_dir), "-q", *extra]


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def fetched(hub: HubServer) -> dict[str, int]:
    """Files whose bytes were sent (path in repo -> bytes), from GET /resolve requests."""
    out: dict[str, int] = {}
    for r in hub.requests:
        if r.method == "GET" and "/resolve/" in r.path:
            path = r.path.split("/resolve/", 1)[1].split("/", 1)[1]
            out[path] = out.get(path, 0) + r.body_bytes
    return out


def test_headline_run_fetches_metadata_and_that_episodes_files_then_works_offline(served, tmp_path):
    hub, main = served
    hub.reset_log()
    proc = replay_check(hub.endpoint, tmp_path / "hf", *run_args(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout
    files = fetched(hub)
    assert sorted(files) == sorted([*METADATA, DATA, VIDEO])  # not meta/stats.json, not README.md
    assert all(files[p] == (main / p).stat().st_size for p in files)  # each sent once, whole
    heads = [r for r in hub.requests if r.method == "HEAD"]
    trees = [r for r in hub.requests if "/tree/" in r.path]
    print(f"\nheadline run: {len(hub.requests)} requests ({len(heads)} HEAD, {len(files)} file GETs, "
          f"{len(trees)} tree listing), {sum(files.values())} bytes of files "
          f"({sum(r.body_bytes for r in trees)} bytes of listing)")
    assert len(trees) == 1 and len(heads) == len(files) + 1  # one HEAD per file plus the reachability probe
    report = json.loads(next((tmp_path / "reports").rglob("report.json")).read_text())
    assert report["dataset"]["repo_id"] == REPO and report["dataset"]["commit"] == hub.repos[REPO].commits["main"]
    assert report["dataset"]["id"] == f"hub:{REPO}"

    hub.reset_log()
    again = replay_check(hub.endpoint, tmp_path / "hf", *run_args(tmp_path / "reports2"), offline=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert hub.requests == []  # everything from the cache
    assert again.stdout.splitlines()[:-1] == proc.stdout.splitlines()[:-1]  # same outcome (report path differs)


def test_revision_branch_and_commit(served, tmp_path):
    hub, _ = served
    hub.reset_log()
    info = replay_check(hub.endpoint, tmp_path / "hf", "info", "--repo-id", REPO, "--revision", "v1", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["robot_type"] == "aloha-v1-branch"  # the branch's own content, not main's
    assert all("/resolve/v1/" in r.path or "/tree/v1/" in r.path for r in hub.requests)
    commit = hub.repos[REPO].commits["main"]
    proc = replay_check(hub.endpoint, tmp_path / "hf", *run_args(tmp_path / "reports", "--revision", commit))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(next((tmp_path / "reports").rglob("report.json")).read_text())
    assert report["dataset"]["revision"] == commit and report["dataset"]["commit"] == commit


def test_connection_cut_mid_file_is_one_line_and_the_next_run_succeeds(served, tmp_path):
    hub, main = served
    hub.drop[VIDEO] = 4096  # every attempt (the client resumes a few times) is cut after 4 kB
    try:
        proc = replay_check(hub.endpoint, tmp_path / "hf", *run_args(tmp_path / "reports"))
    finally:
        hub.drop.clear()
    line = one_error_line(proc)
    assert proc.returncode == 3, proc.stderr  # the network, not the input and not a FAIL verdict
    assert VIDEO in line and f"{REPO}@main" in line, line
    assert not list((tmp_path / "reports").rglob("report.json"))
    proc = replay_check(hub.endpoint, tmp_path / "hf", *run_args(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cached = list((tmp_path / "hf").rglob("snapshots/*/" + VIDEO))
    assert len(cached) == 1 and cached[0].read_bytes() == (main / VIDEO).read_bytes()  # no corrupt cache entry


def test_missing_file_names_repo_revision_and_file(served, tmp_path):
    hub, _ = served
    proc = replay_check(hub.endpoint, tmp_path / "hf", "run", "--repo-id", "lerobot/no_video", "--mode", "state",
                        "--no-rerun", "--report-dir", str(tmp_path / "reports"), "-q")
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert "lerobot/no_video@main" in line and VIDEO in line and "no such file in the repository" in line, line


def test_unreachable_hub_fails_fast(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    proc = replay_check(f"http://127.0.0.1:{port}", tmp_path / "hf", *run_args(tmp_path / "reports"))
    elapsed = time.monotonic() - start
    line = one_error_line(proc)
    assert proc.returncode == 3 and f"127.0.0.1:{port} is unreachable" in line, line
    assert elapsed < 5.0 + 3.0, elapsed  # < 5 s of waiting, plus the interpreter's start-up on a loaded machine


def test_validate_through_the_real_client_and_resume_from_the_cache(served, tmp_path):
    hub, _ = served
    args = ["validate", "--repo-id", REPO, "--episodes", "1", "--mode", "state", "--workers", "1", "--no-plots",
            "--report-dir", str(tmp_path / "reports"), "-q"]
    proc = replay_check(hub.endpoint, tmp_path / "hf", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 pass" in proc.stdout
    hub.reset_log()
    again = replay_check(hub.endpoint, tmp_path / "hf", *args, offline=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(1 reused from earlier runs)" in again.stdout and hub.requests == []
