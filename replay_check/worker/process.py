"""The simulator worker: builds one adapter in a stack's interpreter and answers protocol calls over a pipe.

Started as `python -m replay_check.worker FD` with FD one end of a socket pair. It imports only
replay_check.sims (and through it the family adapter, numpy and the simulator packages); it exits when
the pipe reaches EOF or, on Linux, when the parent dies (PR_SET_PDEATHSIG), so an orphan never lingers.
Requests: ("make", args, kwargs, pool) -> adapter description; ("call", method, args, kwargs) -> result;
("steps", actions, reads) -> [(observation, {read: value}), ...] (several steps per round trip, a read
a method name or (name, *args), see replay_check.stepping; it stops after an unstable step);
("modules",) -> imported module names; ("close",).
Replies: ("ok", value) or ("err", exception).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import sys
import traceback


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def _describe(adapter) -> dict:
    """Public plain-value attributes and method names; properties are left unread (one may be costly:
    the ALOHA adapter builds gym-aloha's task, and its imports, on first access)."""
    attrs, methods = {}, []
    for name in dir(adapter):
        if name.startswith("_") or isinstance(inspect.getattr_static(type(adapter), name, None), property):
            continue
        try:
            value = getattr(adapter, name)
        except Exception:  # noqa: BLE001 - a property that fails is simply not forwarded
            continue
        if callable(value):
            methods.append(name)
        elif isinstance(value, str | int | float | bool | tuple | type(None)) or (
                isinstance(value, dict) and all(isinstance(k, str) for k in value)):
            attrs[name] = value
    return {"attrs": attrs, "methods": methods, "python": sys.version.split()[0]}


def _error(exc: BaseException) -> tuple:
    """An exception as plain text: its class may not exist (or differ) in the main process's packages."""
    kind = type(exc)
    return ("err", (kind.__module__, kind.__qualname__, str(exc), traceback.format_exc(limit=8)))


def _steps(adapter, actions, reads) -> list:
    from replay_check.stepping import take_read  # numpy and sims.base only, which the adapter has loaded

    out = []
    for action in actions:
        observation = adapter.step(action)
        out.append((observation, {read: take_read(adapter, read) for read in reads}))
        if observation.unstable:  # the caller stops here; the steps after it were never asked for
            break
    return out


def serve(fd: int, parent: int) -> None:
    _die_with_parent(parent)
    from multiprocessing.connection import Connection

    from replay_check.worker import wire
    from replay_check.worker.shm import FramePool

    conn = Connection(fd)
    adapter = None
    pool = None
    while True:
        try:
            request = wire.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        kind = request[0]
        try:
            if kind == "make":
                _, args, kwargs, pool_desc = request
                if pool_desc is not None:
                    pool = FramePool.attach(*pool_desc)
                from replay_check.sims import make_adapter

                adapter = make_adapter(*args, **kwargs)
                reply = ("ok", _describe(adapter))
            elif kind == "call":
                _, method, args, kwargs = request
                reply = ("ok", getattr(adapter, method)(*args, **kwargs))
            elif kind == "steps":
                _, actions, reads = request
                reply = ("ok", _steps(adapter, actions, reads))
            elif kind == "modules":
                reply = ("ok", sorted(sys.modules))
            elif kind == "close":
                if adapter is not None:
                    adapter.close()
                conn.send_bytes(wire.dumps(("ok", None)))
                break
            else:
                raise ValueError(f"unknown worker request {kind!r}")
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = _error(exc)
        conn.send_bytes(wire.dumps(reply, pool))
    if pool is not None:
        pool.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    serve(int(argv[0]), int(argv[1]))
    # The adapter is closed and the pool unmapped: exit without the interpreter's teardown of the simulator's
    # modules (~0.1 s the caller would wait for, at the end of every replay with workers).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
