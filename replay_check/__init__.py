"""replay-check: re-simulate recorded LeRobot episodes and measure where they diverge."""

from replay_check import _gl  # noqa: F401  (chooses an offscreen GL backend before MuJoCo loads)

__version__ = "0.1.0"
