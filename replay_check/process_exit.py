"""Ending the `replay-check` process without the interpreter's teardown.

After a command has written its outputs, CPython's finalization frees every module and object one by one
(mujoco, dm_control, gym, rerun, matplotlib, pyarrow, cv2: ~0.3 s on a 400-step ALOHA run), memory the
operating system reclaims at once anyway. `exit_now` runs what a normal exit promises (the atexit
handlers: rerun's flush, multiprocessing's and logging's clean-up, weakref finalizers; then flushing
stdout and stderr) and ends the process with os._exit. While a non-daemon thread still runs, a normal
exit is taken instead, which waits for it.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

EXIT_FLUSH_FAILED = 120  # what CPython returns when it cannot flush stdout at exit


def exit_code(code: object) -> int:
    """The status sys.exit(code) would give: None 0, an int itself, anything else 1 (printed to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: object) -> None:
    """Exit with sys.exit's status for `code`, running the atexit handlers but not the teardown."""
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's own exit path; absent elsewhere
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if run_exitfuncs is None or others:
        sys.exit(code)
    status = exit_code(code)
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or a closed stream
            status = status or EXIT_FLUSH_FAILED
    os._exit(status)
