"""Bisecting a package's releases: the first release whose replay outcome differs from the good one's.

Releases come from the configured index (`pip index versions`, which reads pip's own configuration).
Each tried release is the installed stack with that one pin (`--stack "mujoco==X"`), so the resolver may
move its dependents (dm-control, gym-aloha, numpy): the table says what moved against this environment.
An outcome is (verdict status, replayed success). Releases that do not resolve, or resolve but whose
simulator does not start, are skipped and listed; the search then tries the nearest other release.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from replay_check.errors import InputError, StackError

Say = Callable[[str], None]


@dataclass
class Trial:
    """One release tried: what resolved, what moved, and the outcome (or why there is none)."""

    version: str
    state: str  # "tested" | "unresolvable" | "broken"
    outcome: tuple[str, bool | None] | None = None  # (verdict status, replayed success)
    first_divergence: int | None = None
    resolved: dict[str, str] = field(default_factory=dict)
    moved: dict[str, list[str]] = field(default_factory=dict)  # package -> [installed, resolved]
    reason: str | None = None
    seconds: float = 0.0


@dataclass
class BisectResult:
    package: str
    good: str
    bad: str
    releases: list[str]
    trials: list[Trial]
    first_bad: str | None
    conclusion: str
    seconds: float
    episode: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_releases(package: str, good: str, bad: str) -> list[str]:
    """Final releases of `package` from `good` to `bad` inclusive, oldest first, from the configured index."""
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    match = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not match:
        reason = (proc.stderr.strip().splitlines() or ["no versions listed"])[-1]
        raise StackError(f"cannot list the releases of {package} from the package index: {reason}")
    try:
        low, high = Version(good), Version(bad)
    except InvalidVersion as exc:
        raise InputError(f"not a version: {exc}") from None
    if low >= high:
        raise InputError(f"--good {good} must be an older release than --bad {bad}")
    found = []
    for text in match.group(1).split(","):
        try:
            version = Version(text.strip())
        except InvalidVersion:
            continue
        if low <= version <= high and not version.is_prerelease:
            found.append(version)
    names = [str(v) for v in sorted(found)]
    for end in (good, bad):
        if end not in names:
            raise InputError(f"{package} {end} is not a release on the configured index")
    return names


def bisect_releases(request, package: str, good: str, bad: str, *, say: Say | None = None,
                    offline: bool = False) -> BisectResult:
    """Replay `request`'s episode on releases of `package` between `good` and `bad` and find the first change."""
    from replay_check.pipeline import prepare

    start = time.perf_counter()
    say = say or (lambda text: None)
    releases = list_releases(package, good, bad)
    episode, profile, settings = prepare(request)
    say(f"bisect {package}: {len(releases)} releases from {good} to {bad}")
    trials: dict[str, Trial] = {}

    def trial(version: str) -> Trial:
        if version not in trials:
            trials[version] = _try(version, package, episode, profile, settings, offline)
            t = trials[version]
            say(f"  {package} {version}: " + (f"{t.outcome[0]}, success {t.outcome[1]}" if t.outcome else
                                                f"{t.state} ({t.reason})") + f"  [{t.seconds:.1f} s]")
        return trials[version]

    ref, end = trial(good), trial(bad)
    if ref.outcome is None:
        raise StackError(f"the good release {package} {good} cannot be replayed: {ref.reason}")
    first_bad = None
    if end.outcome is None:
        conclusion = f"the bad release {package} {bad} cannot be replayed: {end.reason}"
    elif end.outcome == ref.outcome:
        conclusion = (f"no change: {package} {good} and {bad} give the same outcome "
                      f"({_outcome_text(ref.outcome)})")
    else:
        lo, hi = 0, len(releases) - 1
        while hi - lo > 1:
            probe = _next_probe(releases, lo, hi, trials)
            if probe is None:
                break
            t = trial(releases[probe])
            if t.outcome is None:
                continue
            if t.outcome == ref.outcome:
                lo = probe
            else:
                hi = probe
        untested = [v for v in releases[lo + 1:hi] if trials.get(v) is None or trials[v].outcome is None]
        first_bad = releases[hi]
        conclusion = (f"first release whose outcome differs from {package} {good} ({_outcome_text(ref.outcome)}): "
                      f"{package} {first_bad} ({_outcome_text(trials[first_bad].outcome)})")
        if untested:
            conclusion += f"; untestable releases just before it: {', '.join(untested)}"
    ordered = [trials[v] for v in releases if v in trials]
    meta = {"dataset": episode.meta.name, "folder": episode.meta.report_name, "episode": episode.index,
            "profile": profile.name, "mode": settings.mode}
    return BisectResult(package, good, bad, releases, ordered, first_bad, conclusion,
                        round(time.perf_counter() - start, 1), meta)


def _next_probe(releases: list[str], lo: int, hi: int, trials: dict[str, Trial]) -> int | None:
    """The untried release nearest the middle of (lo, hi), skipping those already found untestable."""
    mid = (lo + hi) // 2
    order = sorted(range(lo + 1, hi), key=lambda i: (abs(i - mid), i))
    for index in order:
        if releases[index] not in trials:
            return index
    return None


def _outcome_text(outcome: tuple[str, bool | None] | None) -> str:
    return "-" if outcome is None else f"{outcome[0]}, success {outcome[1]}"


def _try(version: str, package: str, episode, profile, settings, offline: bool) -> Trial:
    from replay_check.pipeline import STACK_INSTALLED
    from replay_check.replay import replay_episode, sim_spec
    from replay_check.stacks import definitions, resolution_of
    from replay_check.stacks.runner import StackBroken, open_adapter
    from replay_check.stacks.spec import ad_hoc, installed_closure

    start = time.perf_counter()
    spec = ad_hoc([f"{package}=={version}"])
    trial = Trial(version, "tested")
    try:
        resolution = resolution_of(spec, offline=offline)
    except StackError as exc:
        trial.state, trial.reason = "unresolvable", str(exc).split(": ", 1)[-1][:300]
        trial.seconds = round(time.perf_counter() - start, 1)
        return trial
    here = installed_closure(spec.requirements)
    trial.resolved = {k: v for k, v in resolution.versions.items() if k in here or k == package}
    trial.moved = {k: [here[k], v] for k, v in trial.resolved.items() if k in here and here[k] != v and k != package}
    adapter = None
    if all(here.get(name) == version for name, version in resolution.versions.items()):
        spec = definitions()[STACK_INSTALLED]  # the very packages installed here: replay in process, no build
    try:
        adapter, _ = open_adapter(spec, sim_spec(episode, profile), offline=offline)
        result = replay_episode(episode, profile, settings, adapter=adapter)
        trial.outcome = (result.verdict.status, result.summary.get("replayed_success"))
        trial.first_divergence = result.verdict.first_divergence_step
    except StackBroken as exc:
        trial.state, trial.reason = "broken", str(exc).split("(", 1)[-1].rstrip(")")[:300]
    except StackError as exc:
        trial.state, trial.reason = "unresolvable", str(exc)[:300]
    finally:
        if adapter is not None:
            adapter.close()
    trial.seconds = round(time.perf_counter() - start, 1)
    return trial


def markdown(result: BisectResult) -> str:
    """The table of releases tried, as Markdown."""
    lines = [f"# bisect {result.package} {result.good} .. {result.bad}", "",
             f"{result.episode.get('dataset')} episode {result.episode.get('episode')} "
             f"(profile {result.episode.get('profile')}, mode {result.episode.get('mode')}); "
             f"{len(result.releases)} releases in range, {len(result.trials)} tried, {result.seconds:.0f} s", "",
             f"**{result.conclusion}**", "",
             f"| {result.package} | state | verdict | replayed success | first divergence | moved | seconds |",
             "|---|---|---|---|---|---|---|"]
    for t in result.trials:
        moved = ", ".join(f"{k} {a}->{b}" for k, (a, b) in sorted(t.moved.items())) or "-"
        verdict = t.outcome[0] if t.outcome else (t.reason or "-")
        success = "-" if not t.outcome else str(t.outcome[1])
        first = "-" if t.first_divergence is None else str(t.first_divergence)
        lines.append(f"| {t.version} | {t.state} | {verdict} | {success} | {first} | {moved} | {t.seconds:.1f} |")
    skipped = [t.version for t in result.trials if t.state != "tested"]
    if skipped:
        lines += ["", f"Skipped (not resolvable or not runnable): {', '.join(skipped)}"]
    return "\n".join(lines) + "\n"


def write(result: BisectResult, folder: Path) -> Path:
    """bisect.json and bisect.md into `folder` (each written atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("bisect.json", json.dumps(result.to_dict(), indent=2)), ("bisect.md", markdown(result))):
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, folder / name)
    return folder
