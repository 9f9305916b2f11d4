"""Pick an offscreen OpenGL backend before MuJoCo is imported.

MuJoCo fails to create a context when no display exists and MUJOCO_GL is unset; EGL works on CPU
through Mesa llvmpipe, so it is the safe default on headless machines. An explicit choice wins.
"""

from __future__ import annotations

import os


def choose_gl_backend(environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """Set MUJOCO_GL (and PYOPENGL_PLATFORM) to egl when nothing is configured and there is no display."""
    if environ.get("MUJOCO_GL"):
        return environ["MUJOCO_GL"]
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    environ["MUJOCO_GL"] = "egl"
    environ.setdefault("PYOPENGL_PLATFORM", "egl")
    return "egl"


choose_gl_backend()
