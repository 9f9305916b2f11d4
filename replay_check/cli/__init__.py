"""The `replay-check` command group. Commands are thin: parse, call the library, print, exit.

Library errors (`ReplayCheckError`) become one line on stderr and their exit code (2 bad input,
3 operational); `click.UsageError` keeps Click's exit code 2. Any other exception is a bug: its
traceback is printed and the exit code is 3, so CI never mistakes a crash for a FAIL verdict (1).
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import traceback

import click

from replay_check import __version__
from replay_check.errors import EXIT_INTERRUPTED, EXIT_OPERATIONAL, ReplayCheckError
from replay_check.process_exit import exit_now


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ReplayCheckError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)  # not Click's "Aborted!" with exit 1, which reads as FAIL
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001  (a bug: keep the traceback, but not exit 1)
            traceback.print_exc()
            click.echo(f"Error: replay-check crashed ({type(exc).__name__}); this is a bug, please report it",
                       err=True)
            ctx.exit(EXIT_OPERATIONAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="replay-check")
def cli() -> None:
    """Replay recorded LeRobot sim episodes in their simulator and see where they diverge.

    \b
    Examples:
      replay-check run                      # the embedded sample episode, no network needed
      replay-check run --repo-id lerobot/aloha_sim_insertion_human --episode 0
      replay-check info --root path/to/dataset
    """


def _register() -> None:
    from replay_check.cli import bisect, info, record, run, stacks, validate, view

    for module in (run, record, info, validate, view, stacks, bisect):
        cli.add_command(module.command)


_register()


def main() -> None:
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints every thread's stack: where a stuck run waits
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        cli(prog_name="replay-check")
    except SystemExit as exc:  # Click's standalone mode always ends so; skip the interpreter's teardown
        exit_now(exc.code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
