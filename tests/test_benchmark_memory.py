"""The vs-viewer benchmark's memory sampling: per-process breakdown by mapping kind, from /proc (Linux only)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/PID/smaps (Linux)")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_vs_viewer.py"


def _bench():
    spec = importlib.util.spec_from_file_location("benchmark_vs_viewer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_mapping_kinds():
    bench = _bench()
    assert bench._kind("") == bench._kind("[heap]") == "anon"
    assert bench._kind("/dev/shm/psm_1a2b (deleted)") == "shm"
    assert bench._kind("/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1") == "libLLVM-15.so"
    assert bench._kind("/x/site-packages/cv2/cv2.abi3.so") == "cv2.abi3.so"
    assert bench._kind("/tmp/data.bin") == "other files"
    assert bench._kind("[stack]") == "[stack]"


def test_tree_breakdown_sums_to_rollup_and_sees_a_child_allocation():
    """A child holding 64 MB of touched anonymous memory: its anon PSS shows it, and kinds sum to its PSS."""
    bench = _bench()
    code = "import sys; b = bytearray(64 << 20); sys.stdout.write('ok\\n'); sys.stdout.flush(); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ok\n"
        rows = bench._tree_breakdown(psutil.Process())
        by_label = {label.split()[-1]: (pss, rss, kinds) for label, pss, rss, kinds in rows}
        assert str(child.pid) in by_label, rows
        pss, rss, kinds = by_label[str(child.pid)]
        assert kinds["anon"] >= 63 and rss >= 64
        assert abs(sum(kinds.values()) - pss) < 2  # smaps and smaps_rollup agree (read a moment apart)
        tree_rss, tree_pss = bench._tree_memory(psutil.Process())
        assert tree_pss >= pss and tree_rss >= rss
    finally:
        child.stdin.close()
        child.wait(timeout=10)
