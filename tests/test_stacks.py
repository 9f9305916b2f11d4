"""Stacks: definitions, pip-config translation, uv resolution errors, the atomic cache and the CLI.

One real stack (aloha-2023, from the package index) is built per session in a temporary cache
(`built_aloha_2023` in conftest); uv's own cache makes that a few seconds after the first time.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from replay_check import stacks
from replay_check.cli import cli
from replay_check.errors import StackError
from replay_check.stacks import cache, spec, uvrun


def test_bundled_definitions():
    names = stacks.definitions()
    assert {"installed", "aloha-2023", "lerobot-current", "pusht-pymunk6.2"} <= set(names)
    aloha = names["aloha-2023"]
    assert "mujoco==2.3.7" in aloha.requirements and aloha.families == ("aloha",)
    assert names["installed"].installed and not aloha.installed


def test_ad_hoc_pin_is_the_installed_stack_with_an_override():
    adhoc = stacks.resolve_name("mujoco==3.3.0")
    assert adhoc.requirements[-1] == "mujoco==3.3.0"
    assert "gym-aloha" in adhoc.requirements
    prefs = dict(p.split("==") for p in adhoc.preferences)
    assert "mujoco" not in prefs and prefs["dm-control"]  # dependents may move; the installed one is preferred


def test_recorded_and_unknown_names():
    assert stacks.resolve_name("recorded", recorded="aloha-2023").name == "aloha-2023"
    with pytest.raises(StackError, match="names no recording stack"):
        stacks.resolve_name("recorded", recorded=None)
    with pytest.raises(StackError, match="unknown stack 'nosuch'"):
        stacks.resolve_name("nosuch")


def test_pip_config_becomes_uv_options(monkeypatch):
    for var in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
                "UV_OFFLINE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    config = uvrun.parse_pip_config(
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'\n"
        "global.find-links='/opt/wheels'\nglobal.proxy='http://proxy:3128'\n"
        "global.cert='/etc/ca.pem'\n:env:.find-links='/env/wheels'\nglobal.timeout='60'\n")
    options = uvrun.index_options(config=config)
    args = list(options.args)
    assert args.count("--extra-index-url") == 2 and "file:///opt/b/simple" in args
    assert args[args.index("--find-links") + 1] == "/env/wheels"  # PIP_FIND_LINKS beats the file
    assert args[args.index("--index-strategy") + 1] == "unsafe-best-match"  # pip looks at every index
    assert dict(options.env) == {"HTTPS_PROXY": "http://proxy:3128", "HTTP_PROXY": "http://proxy:3128",
                                 "SSL_CERT_FILE": "/etc/ca.pem"}
    monkeypatch.setenv("UV_INDEX_URL", "https://mirror/simple")  # uv configured directly: left alone
    monkeypatch.setenv("UV_OFFLINE", "1")
    assert uvrun.index_options(config=config).args == ("--offline",)


def test_uv_reason_is_one_line():
    stderr = ("error: No solution found when resolving dependencies\n  cause: Because mujoco==9.9 has no\n"
              "      versions, we can conclude...\n\nhint: something\n")
    assert uvrun.uv_reason(stderr) == "Because mujoco==9.9 has no versions, we can conclude..."


@pytest.mark.slow
def test_unresolvable_pin_names_the_pin(tmp_path):
    with pytest.raises(StackError) as info:
        stacks.resolution_of(stacks.resolve_name("mujoco==0.0.1"), root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "mujoco==0.0.1" in message and "do not resolve" in message


@pytest.mark.slow
def test_no_wheel_for_the_interpreter_names_pin_and_python(tmp_path):
    result = CliRunner().invoke(cli, ["stacks", "build", "aloha-2023", "--python", "3.12"],
                                env={"REPLAY_CHECK_CACHE_DIR": str(tmp_path)})
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "mujoco==2.3.7 has no wheel for CPython 3.12" in line


@pytest.mark.slow
def test_offline_with_an_unbuilt_stack_is_one_line(tmp_path):
    env = {"REPLAY_CHECK_CACHE_DIR": str(tmp_path / "rc"), "UV_CACHE_DIR": str(tmp_path / "uv")}  # empty caches
    result = CliRunner().invoke(cli, ["stacks", "build", "aloha-2023", "--offline"], env=env)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "aloha-2023 is not built" in line and "offline" in line
    assert not list((tmp_path / "rc").glob("stacks/envs/*"))


def test_stack_env_differs_from_installed_and_is_reused(built_aloha_2023):
    root, built = built_aloha_2023
    assert built.versions["mujoco"] == "2.3.7" and built.versions["numpy"].startswith("1.")
    marker = json.loads((built.path / cache.MARKER).read_text())
    assert marker["pins"] == list(built.pins)
    before = os.stat(built.path / cache.MARKER).st_mtime_ns
    again = stacks.build(stacks.resolve_name("aloha-2023"), root=root)
    assert again.path == built.path and os.stat(built.path / cache.MARKER).st_mtime_ns == before  # not rebuilt
    assert stacks.find_built(stacks.resolve_name("aloha-2023"), root=root).path == built.path
    rows = {row.name: row for row in stacks.list_stacks(root)}
    assert rows["aloha-2023"].status == "built" and rows["lerobot-current"].status == "not built"


def test_stale_project_code_is_replaced(built_aloha_2023):
    _, built = built_aloha_2023
    target = built.site_packages / "replay_check"
    (target / cache.SOURCE_MARKER).write_text("stale")
    (target / "errors.py").write_text("raise ImportError('stale copy')\n")
    cache.install_sources(built)
    _, identity = cache.source_identity()
    assert (target / cache.SOURCE_MARKER).read_text() == identity
    assert "stale copy" not in (target / "errors.py").read_text()


def test_half_built_entry_is_rebuilt_not_used(built_aloha_2023):
    root, built = built_aloha_2023
    (built.path / cache.MARKER).unlink()  # as if the build died before its last write
    with pytest.raises(StackError, match="not built"):
        stacks.find_built(stacks.resolve_name("aloha-2023"), root=root)
    rebuilt = stacks.build(stacks.resolve_name("aloha-2023"), root=root)
    assert rebuilt.path == built.path and cache.read_marker(built.path) is not None


def test_cli_list_path_remove(tmp_path, built_aloha_2023):
    root, built = built_aloha_2023
    env = {"REPLAY_CHECK_CACHE_DIR": str(root)}
    runner = CliRunner()
    listing = runner.invoke(cli, ["stacks", "list"], env=env)
    assert listing.exit_code == 0 and "aloha-2023" in listing.output and "mujoco 2.3.7" in listing.output
    path = runner.invoke(cli, ["stacks", "path", "aloha-2023"], env=env)
    assert path.exit_code == 0 and path.output.strip() == str(built.path)
    missing = runner.invoke(cli, ["stacks", "path", "lerobot-current"], env={"REPLAY_CHECK_CACHE_DIR": str(tmp_path)})
    assert missing.exit_code == 2 and "not built" in missing.output
    empty = runner.invoke(cli, ["stacks", "remove", "lerobot-current"], env=env)
    assert empty.exit_code == 0 and "removed 0" in empty.output


def test_package_name_normalises():
    assert spec.package_name("dm_control>=1.0") == "dm-control"
    assert spec.package_name("Gym.Aloha==0.1.1") == "gym-aloha"
