"""`replay-check stacks list | build | remove | path`: the physics stacks replays can run on."""

from __future__ import annotations

import click

from replay_check import stacks


@click.group("stacks")
def command() -> None:
    """Physics stacks: pinned simulator package sets, built with uv into the user's cache.

    \b
    Examples:
      replay-check stacks list
      replay-check stacks build aloha-2023
      replay-check stacks build "mujoco==3.3.0"
      replay-check stacks path aloha-2023
    """


def _progress(text: str) -> None:
    click.echo(text, err=True)


@command.command("list")
def list_command() -> None:
    """Bundled stacks and built ad-hoc stacks, with their build state."""
    for row in stacks.list_stacks():
        key = {p.split("==")[0]: p.split("==")[1] for p in row.pins}
        brief = ", ".join(f"{n} {key[n]}" for n in ("mujoco", "dm-control", "gym-aloha", "gym-pusht", "pymunk",
                                                      "numpy") if n in key)
        click.echo(f"{row.name:<18} {row.status:<16} {row.description}")
        if brief:
            click.echo(f"{'':<18} {brief}  ({row.path})")


@command.command("build")
@click.argument("name")
@click.option("--python", "python", default=None, metavar="X.Y", help="Target Python version [default: this one].")
@click.option("--offline", is_flag=True, help="Use only uv's cache (also: UV_OFFLINE=1).")
@click.option("--refresh", is_flag=True, help="Resolve again instead of reusing the remembered pins.")
@click.option("--no-smoke", is_flag=True, help="Skip the smoke test (import, build each family's task, one step).")
def build_command(name: str, python: str | None, offline: bool, refresh: bool, no_smoke: bool) -> None:
    """Resolve and build stack NAME (a bundled name or pins like "mujoco==3.3.0"), then smoke-test it."""
    spec = stacks.resolve_name(name)
    built = stacks.build(spec, python=python, offline=offline, refresh=refresh, progress=_progress)
    if not no_smoke:
        from replay_check.stacks.smoke import smoke_test

        for family, problem in smoke_test(built, spec.families).items():
            click.echo(f"smoke test {family}: {problem or 'ok'}", err=True)
    click.echo(str(built.path))


@command.command("remove")
@click.argument("name")
def remove_command(name: str) -> None:
    """Delete every built environment of stack NAME."""
    removed = stacks.remove(name)
    click.echo(f"removed {len(removed)} environment(s) of {name}")


@command.command("path")
@click.argument("name")
def path_command(name: str) -> None:
    """Print where stack NAME is built (exit 2 when it is not)."""
    click.echo(str(stacks.find_built(stacks.resolve_name(name)).path))
