"""Child processes that a test interrupts with SIGINT."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """preexec_fn: SIGINT back to its default in the child before it starts.

    A shell that starts a job in the background (`cmd &`, as a CI runner may) makes it ignore SIGINT and every child
    inherits that; Python then installs no KeyboardInterrupt handler and a test's Ctrl-C would go unnoticed.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
