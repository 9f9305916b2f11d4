"""Cost of the content fingerprint that keys report reuse (replay_check.fingerprint).

Usage: python scripts/benchmark_fingerprint.py DATASET_ROOT [EPISODE]
Prints the time to read one episode's rows, to fingerprint it (rows + its mp4 segment packets),
and, for comparison, to sha256 the whole mp4 files it uses.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from replay_check.dataset import open_dataset
from replay_check.fingerprint import episode_fingerprint


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    root = Path(sys.argv[1])
    index = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    dataset = open_dataset(root=root)
    episode = dataset.episode(index)
    videos = sorted({source.path for source in episode.cameras.values() if hasattr(source, "path")})
    size = sum(p.stat().st_size for p in videos)
    read = _best(lambda: dataset.episode(index))
    fingerprint = _best(lambda: episode_fingerprint(dataset.episode(index)))
    whole = _best(lambda: [hashlib.sha256(p.read_bytes()).hexdigest() for p in videos])
    print(f"dataset {root} episode {index}: {episode.length} steps, {len(dataset.episode_indices)} episodes, "
          f"{len(videos)} mp4 file(s) of {size / 1e6:.1f} MB in all")
    print(f"read the episode's rows:            {read * 1e3:8.1f} ms")
    print(f"read + fingerprint (rows + segment): {fingerprint * 1e3:8.1f} ms")
    print(f"sha256 of the whole mp4 file(s):     {whole * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
