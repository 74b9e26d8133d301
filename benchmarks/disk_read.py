"""Cold-cache read bandwidth of a folder of chunk files at several queue depths.

The floor of any disk-to-disk build: e.g. ``python benchmarks/disk_read.py
/tmp/mipmaker-build-bench/image-2048x2048x256/4_4_40`` (a source written by
``benchmarks/build.py``). Drops the page cache before each run (needs root).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def read(path):
    with open(path, "rb", buffering=0) as fh:
        return len(fh.read())


def main(folder, depths=(1, 4, 16, 64)):
    files = [os.path.join(folder, f) for f in os.listdir(folder)]
    for n in depths:
        os.sync()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        except OSError:
            print("warning: cannot drop the page cache (not root); numbers are warm", file=sys.stderr)
        t = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            total = sum(pool.map(read, files))
        dt = time.perf_counter() - t
        print(f"{n:3d} reads in flight: {dt:.2f} s, {total / dt / 1e6:.0f} MB/s ({total / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main(sys.argv[1])
