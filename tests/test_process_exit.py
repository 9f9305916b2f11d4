"""exit_now: sys.exit's status, atexit handlers and flushed output, but no interpreter teardown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from replay_check.process_exit import EXIT_FLUSH_FAILED, exit_code

PRELUDE = """
import atexit, sys, threading, time
from replay_check.process_exit import exit_now
atexit.register(lambda: print("atexit ran", flush=True))
class Noisy:
    def __del__(self):
        print("finalized", flush=True)
keep = Noisy()  # a module global: its __del__ runs only in the interpreter's teardown
"""


def run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as by default
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("a message", 1)])
def test_exit_code_is_what_sys_exit_would_give(code, status, capsys):
    assert exit_code(code) == status
    assert capsys.readouterr().err == ("a message\n" if isinstance(code, str) else "")


def test_output_and_atexit_handlers_survive_but_teardown_is_skipped():
    proc = run("""
        sys.stdout.write("x" * 300_000 + "\\n")  # more than a pipe holds: still buffered when exit_now runs
        exit_now(3)
    """)
    assert proc.returncode == 3
    lines = proc.stdout.splitlines()
    assert lines[0] == "x" * 300_000 and "atexit ran" in lines and "finalized" not in lines


def test_a_running_non_daemon_thread_gets_a_normal_exit_that_waits_for_it():
    proc = run("""
        threading.Thread(target=lambda: (time.sleep(0.3), print("thread done", flush=True))).start()
        exit_now(4)
    """)
    assert proc.returncode == 4
    assert proc.stdout.splitlines()[:2] == ["thread done", "atexit ran"] and "finalized" in proc.stdout


@pytest.mark.parametrize("exit_call", ["exit_now", "sys.exit"])
def test_a_closed_stdout_gives_cpython_s_flush_failure_status(exit_call):
    proc = run(f"""
        import os
        sys.stdout.write("unflushed")
        os.close(1)
        {exit_call}(0)
    """)
    assert proc.returncode == EXIT_FLUSH_FAILED


def test_the_command_line_keeps_its_exit_codes():
    version = subprocess.run([sys.executable, "-m", "replay_check", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and "replay-check" in version.stdout
    bad = subprocess.run([sys.executable, "-m", "replay_check", "run", "--no-such-option"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr
