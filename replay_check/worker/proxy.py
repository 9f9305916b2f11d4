"""The proxy adapter: the adapter protocol forwarded to a worker process, generically.

Any public method the worker's adapter has is callable here by the same name, so refinements of the
protocol need no change in this module. A worker that dies mid-call raises WorkerError (an `error`
verdict, not a bad-input exit); exceptions raised by the adapter itself are re-raised here unchanged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from replay_check.errors import WorkerError
from replay_check.worker import wire
from replay_check.worker.shm import FramePool

DEFAULT_SLOTS = 4
STEP_BATCH = 8  # steps per message when stepping ahead (replay_check.stepping)


class RemoteError(RuntimeError):
    """An exception raised in the worker whose class is not one of replay-check's or Python's own."""

    def __init__(self, type_name: str, message: str, traceback_text: str = ""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.traceback_text = traceback_text


def _rebuild(module: str, qualname: str, message: str, traceback_text: str) -> BaseException:
    """The worker's exception as the same class when that class is replay-check's or a builtin."""
    if module in ("builtins", "replay_check.errors"):
        import importlib

        cls = getattr(importlib.import_module(module), qualname, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                exc = cls(message)
                exc.traceback_text = traceback_text
                return exc
            except Exception:  # noqa: BLE001 - a constructor with other arguments
                pass
    return RemoteError(f"{module}.{qualname}", message, traceback_text)


class ProxyAdapter:
    """An adapter living in a worker process started with `python` (a stack's interpreter)."""

    def __init__(self, python: str | Path, *make_args: Any, stack: str = "installed", slot_bytes: int | None = None,
                 isolated: bool = True, slots: int = DEFAULT_SLOTS, environment: dict[str, str] | None = None,
                 **make_kwargs: Any):
        """`environment`: variables for the worker unless this process's environment sets them already."""
        self.stack = stack
        self.python = str(python)  # what a sibling worker on the same stack is started with
        self.isolated = isolated
        self._closed = False
        self._pending = 0  # requests submitted and not yet collected
        self._pool = FramePool.create(slot_bytes, slots) if slot_bytes else None
        if self._pool is not None:
            wire.register_pool(self._pool)
        parent_end, child_end = socket.socketpair()
        self._stderr = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - lives as long as the worker
        env = dict(os.environ)
        if isolated:  # a stack runs its own copy of replay_check and nothing from this environment's paths
            env.pop("PYTHONPATH", None)
            env["PYTHONNOUSERSITE"] = "1"
        env.setdefault("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
        for name, value in (environment or {}).items():
            env.setdefault(name, value)
        try:
            self._proc = subprocess.Popen(
                [str(python), "-m", "replay_check.worker", str(child_end.fileno()), str(os.getpid())],
                pass_fds=[child_end.fileno()], stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                env=env, cwd=tempfile.gettempdir())
        except OSError as exc:
            self._cleanup()
            raise WorkerError(f"stack {stack}: cannot start the simulator worker {python}: {exc}") from None
        finally:
            child_end.close()
        self._conn = Connection(os.dup(parent_end.fileno()))
        parent_end.close()
        try:
            info = self._request(("make", make_args, make_kwargs, self._pool.describe() if self._pool else None),
                                 "make_adapter")
        except BaseException:
            self.close()
            raise
        if self._pool is not None:
            self._pool.unlink()  # the worker has mapped it: no name left to leak
        self._attrs: dict[str, Any] = info["attrs"]
        self._methods = frozenset(info["methods"])
        self.worker_python = info["python"]

    # -- forwarding ---------------------------------------------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        attrs = self.__dict__.get("_attrs", {})
        if name in attrs:
            return attrs[name]
        if name in self.__dict__.get("_methods", ()):
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        raise AttributeError(f"the {self.stack} adapter has no attribute {name!r}")

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._pending:
            raise RuntimeError(f"{self._pending} submitted call(s) not collected before calling {method}")
        return self._request(("call", method, args, kwargs), method)

    def submit(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a call without waiting; `collect` returns the replies in submission order (pipelining).

        The caller bounds how many are outstanding: each frame a reply carries holds a pool slot until
        it is collected, and the worker raises PoolFull when all are held.
        """
        self._send(("call", method, args, kwargs), method)
        self._pending += 1

    def collect(self, what: str = "call") -> Any:
        """The reply to the oldest submitted call (its exception re-raised here)."""
        if not self._pending:
            raise RuntimeError("collect() without a submitted call")
        self._pending -= 1
        return self._receive(what)

    def step_through(self, actions, reads: tuple[str, ...] = (), *, ahead: int = 0) -> Iterator[tuple[Any, dict]]:
        """`replay_check.stepping.step_through` over the pipe: up to STEP_BATCH steps (and their reads) per
        message, and up to `ahead` steps requested before the caller asks for them, so the worker steps
        while this process compares. With `ahead` 0 one step is requested at a time (one round trip each).
        """
        if self._pending:
            raise RuntimeError(f"{self._pending} submitted call(s) not collected before step_through")
        actions = list(actions)
        batch = max(1, min(STEP_BATCH, ahead // 2))  # at least two messages in flight when stepping ahead
        limit = max(1, ahead // batch)  # messages in flight
        in_flight: deque[int] = deque()
        sent = 0
        try:
            while sent < len(actions) or in_flight:
                while sent < len(actions) and len(in_flight) < limit:
                    chunk = actions[sent:sent + batch]
                    self._send(("steps", chunk, tuple(reads)), "step")
                    self._pending += 1
                    in_flight.append(len(chunk))
                    sent += len(chunk)
                in_flight.popleft()
                done = self.collect("step")
                yield from done
                if done and done[-1][0].unstable:
                    return  # the worker stopped there; the caller stops too
        finally:
            while in_flight and not self._closed:  # steps taken ahead that the caller did not want (stopped early)
                in_flight.popleft()
                with contextlib.suppress(Exception):
                    self.collect("step")

    def modules(self) -> list[str]:
        """Every module imported in the worker (to check it imports only what it should)."""
        return self._request(("modules",), "modules")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _request(self, message: tuple, what: str) -> Any:
        self._send(message, what)
        return self._receive(what)

    def _send(self, message: tuple, what: str) -> None:
        if self._closed:
            raise WorkerError(f"stack {self.stack}: the simulator worker is closed")
        try:
            self._conn.send_bytes(wire.dumps(message))
        except OSError:
            raise self._crashed(what) from None

    def _receive(self, what: str) -> Any:
        try:
            status, value = wire.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            raise self._crashed(what) from None
        if status == "err":
            raise _rebuild(*value)
        return value

    def _crashed(self, what: str) -> WorkerError:
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        tail = f": {lines[-1].strip()}" if lines else ""
        self._closed = True
        self._cleanup()
        return WorkerError(f"stack {self.stack}: simulator worker died ({how}) during {what}{tail}")

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the adapter in the worker and stop the process (killed if it does not exit in 5 s)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send_bytes(wire.dumps(("close",)))
            for _ in range(self._pending + 1):  # uncollected replies first (reading them frees their slots)
                with contextlib.suppress(Exception):
                    wire.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            pass
        self._pending = 0
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        conn = self.__dict__.get("_conn")
        if conn is not None:
            conn.close()
        if self._pool is not None:
            wire.unregister_pool(self._pool)
            self._pool.close()
            self._pool = None
        self._stderr.close() if "_stderr" in self.__dict__ else None

    def __enter__(self) -> ProxyAdapter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort when a caller forgets close()
        if not self.__dict__.get("_closed", True) and sys is not None:
            with contextlib.suppress(Exception):
                self.close()
