"""The offscreen GL backend is chosen before MuJoCo loads, and an explicit choice wins."""

from __future__ import annotations

import subprocess
import sys

from replay_check._gl import choose_gl_backend


def test_headless_without_a_choice_selects_egl():
    env: dict[str, str] = {}
    assert choose_gl_backend(env) == "egl"
    assert env == {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}


def test_an_explicit_choice_or_a_display_is_left_alone():
    assert choose_gl_backend({"MUJOCO_GL": "osmesa"}) == "osmesa"
    env = {"DISPLAY": ":0"}
    assert choose_gl_backend(env) is None and "MUJOCO_GL" not in env


def test_rendering_works_with_mujoco_gl_unset():
    code = "import replay_check, os; from replay_check.sims.aloha import AlohaAdapter; " \
           "a = AlohaAdapter('transfer_cube', {'top': (48, 64)}); print(os.environ['MUJOCO_GL'], a.render('top').shape)"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["egl", "(48,", "64,", "3)"]
