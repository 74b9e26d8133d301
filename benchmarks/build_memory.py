"""Bounded memory: build pyramids of volumes 8x larger than the budget and check them.

For each job a ``.npy`` volume is written, ``mipmaker build`` runs in a child
process with ``--memory`` (its peak resident memory is read from the kernel),
and every level on disk is compared with ``mipmaker.pyramid(volume, ...,
exact=True)`` computed in memory (levels of a second pass with the recursive
pyramid from their base level, as the build's metadata records).

Usage::

    python benchmarks/build_memory.py                 # 4 GiB uint8 mean, 4 GiB uint64 mode, --memory 512MB
    python benchmarks/build_memory.py --gib 1 --memory 128MB
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The CLI in a child process, then its peak resident memory. VmHWM belongs to
# the process's own address space (getrusage's ru_maxrss would carry over the
# parent's peak through fork and exec).
CHILD = (
    "import sys, mipmaker.cli as c; rc = c.main(sys.argv[1:]);"
    "print([int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0]);"
    "sys.exit(rc)"
)


def make_volume(path, shape, dtype):
    """A volume written slab by slab (x, y, z C-order .npy), never whole in memory."""
    rng = np.random.default_rng(0)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    for x in range(0, shape[0], 64):
        n = min(64, shape[0] - x)
        if dtype == np.uint8:
            arr[x:x + n] = rng.integers(0, 256, (n,) + shape[1:], dtype=np.uint8)
        else:
            # Blocky labels above 2**53, so mode has real ties and runs to find.
            ids = rng.integers(1, 2**62, (-(-n // 4), -(-shape[1] // 8), -(-shape[2] // 4)), dtype=np.uint64)
            block = ids.repeat(4, 0).repeat(8, 1).repeat(4, 2)[:n, : shape[1], : shape[2]]
            noise = rng.random(block.shape) < 0.2
            arr[x:x + n] = np.where(noise, rng.integers(1, 2**62, block.shape, dtype=np.uint64), block)
    arr.flush()
    del arr


def check(src, dest, method, factor, levels):
    """Compare every level with the in-memory pyramid; return (levels checked, all equal)."""
    import tensorstore as ts

    import mipmaker

    vol = np.load(src)
    meta = json.loads((Path(dest) / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    made = {int(lv["path"]): lv for lv in meta["metadata"]["levels"]}
    exact = mipmaker.pyramid(vol, factor, levels, method=method, exact=True)
    ok = True
    cache = {0: vol}
    for k in range(1, levels + 1):
        if made[k]["recursive"]:
            base = made[k]["from_level"]
            ref = mipmaker.pyramid(cache[base], factor, k - base, method=method, exact=True)[-1]
        else:
            ref = exact[k - 1]
        cache[k] = ref
        got = ts.open({"driver": "zarr3", "kvstore": f"file://{dest}/{k}/"}).result().read().result()
        equal = bool(np.array_equal(got.transpose(2, 1, 0), ref))
        ok &= equal
        print(f"  level {k} {ref.shape}: {'equal' if equal else 'DIFFERENT'} "
              f"({'recursive from level %d' % made[k]['from_level'] if made[k]['recursive'] else 'exact'})")
    got0 = ts.open({"driver": "zarr3", "kvstore": f"file://{dest}/0/"}).result().read().result()
    ok &= bool(np.array_equal(got0.transpose(2, 1, 0), vol))
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/mipmaker-memory-bench")
    ap.add_argument("--gib", type=float, default=4.0, help="volume size (default: %(default)s)")
    ap.add_argument("--memory", default="512MB")
    ap.add_argument("--jobs", default="image,labels")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for job in args.jobs.split(","):
        dtype, method, factor, levels = {
            "image": (np.uint8, "mean", (2, 2, 1), 4), "labels": (np.uint64, "mode", (2, 2, 2), 3)}[job]
        voxels = int(args.gib * 2**30) // np.dtype(dtype).itemsize
        z = 256 if job == "image" else 512
        side = int(round((voxels / z) ** 0.5 / 128)) * 128
        shape = (side, side, z)
        src = work / f"{job}.npy"
        if not src.exists() or np.load(src, mmap_mode="r").shape != shape:
            print(f"writing {src} {shape} {np.dtype(dtype).name}", flush=True)
            make_volume(src, shape, dtype)
        dest = work / f"{job}.ome.zarr"
        shutil.rmtree(dest, ignore_errors=True)
        cmd = [sys.executable, "-c", CHILD, "build", str(src), str(dest), "--factor", ",".join(map(str, factor)),
               "--levels", str(levels), "--method", method, "--memory", args.memory, "--compression", "none", "--quiet"]
        print(" ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - t0
        rss = int(done.stdout.strip().splitlines()[-1])
        size = np.prod(shape) * np.dtype(dtype).itemsize
        plan = subprocess.run([sys.executable, "-m", "mipmaker"] + cmd[3:-1] + ["--dry-run"], capture_output=True,
                              text=True, check=False)
        passes = [ln for ln in plan.stderr.splitlines() + plan.stdout.splitlines() if ln.startswith("pass ")]
        print(f"  {seconds:.1f} s, peak RSS {rss / 2**20:.0f} MiB for a {size / 2**30:.2f} GiB volume", flush=True)
        ok = check(src, dest, method, factor, levels)
        rows.append((job, shape, np.dtype(dtype).name, method, factor, levels, size, seconds, rss, ok, len(passes)))
    print("\n| job | volume | --memory | passes | seconds | peak RSS | levels equal in-memory pyramid |")
    print("|---|---|---|---:|---:|---:|---|")
    for job, shape, dt, method, factor, levels, size, seconds, rss, ok, npass in rows:
        print(f"| {job}: {levels} levels of {','.join(map(str, factor))} {method} | {'x'.join(map(str, shape))} {dt} "
              f"({size / 2**30:.2f} GiB) | {args.memory} | {npass} | {seconds:.1f} | {rss / 2**20:.0f} MiB | "
              f"{'yes' if ok else 'NO'} |")
    return 0 if all(r[-2] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
