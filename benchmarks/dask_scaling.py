"""Scaling of `mipmaker build` on dask.distributed: 1 and 2 workers beside the local executor.

One job: a 512 MiB uint8 ``.npy`` (1024x1024x512, random) to 4 levels of
(2, 2, 1), mean, OME-Zarr without compression (the default shards), on local
disk. Every run makes the same plan (``--memory``, ``--workers`` fixed) into a
new destination:

- local: ``build(...)``, the local thread executor (boxes on threads);
- dask N: ``build(..., client=...)`` on a `LocalCluster` of N single-threaded
  worker processes on loopback (`mipmaker._dask.LOCAL_CLUSTER`, what
  ``--dask-local N`` starts). The clusters are started (and their workers
  import mipmaker) before the clock; that start-up is reported apart.

The source is read once beforehand (warm page cache for every run); each
build syncs its boxes to disk before marking them done, and the clock stops
after a final sync. Throughput is megavoxels of level 0 per second; the
speedup is against dask with 1 worker. Before measuring, the script waits
(up to ``--wait`` minutes) for the 1-minute load average to drop below
``--max-load`` and records the load in the report.

Usage::

    python benchmarks/dask_scaling.py            # writes the dask section of docs/benchmarks.md
    python benchmarks/dask_scaling.py --quick    # 1/4 of the volume, no docs update
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _bench_util import cpu_model, replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHAPE = (1024, 1024, 512)  # x, y, z: 512 MiB of uint8
BUILD = dict(levels=4, factor=(2, 2, 1), compression="none", method="mean", progress=False)


def make_source(path, shape):
    """A random uint8 volume (x, y, z) written slab by slab; kept for later runs."""
    from numpy.lib.format import open_memmap

    if path.exists() and np.load(path, mmap_mode="r").shape == shape:
        return
    rng = np.random.default_rng(0)
    arr = open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    for z in range(0, shape[2], 32):
        arr[:, :, z:z + 32] = rng.integers(0, 256, (shape[0], shape[1], min(32, shape[2] - z)), dtype=np.uint8)
    arr.flush()
    del arr


def warm(path):
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def load():
    return os.getloadavg()[0]


def wait_for_quiet(max_load, minutes):
    for _ in range(max(1, minutes)):
        if load() <= max_load:
            return True
        print(f"load {load():.2f} > {max_load}; waiting 60 s", flush=True)
        time.sleep(60)
    return load() <= max_load


def _import_mipmaker():
    import mipmaker.build  # noqa: F401


def timed_build(src, dest, client, memory, workers):
    from mipmaker.build import build

    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.perf_counter()
    state = build(src, dest, memory=memory, workers=workers, client=client, **BUILD)
    os.sync()
    seconds = time.perf_counter() - t0
    shutil.rmtree(dest, ignore_errors=True)
    return seconds, state


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/mipmaker-dask-bench", help="where volumes are written")
    ap.add_argument("--quick", action="store_true", help="a quarter of the volume (z / 4); no docs update")
    ap.add_argument("--memory", default="2GiB", help="memory budget of the plan (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="boxes in flight the plan is sized for (default: 2)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row (the best is reported)")
    ap.add_argument("--max-load", type=float, default=1.5, help="wait while the 1-min load is above this")
    ap.add_argument("--wait", type=int, default=5, help="minutes to wait for that at most")
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args(argv)

    import distributed

    from mipmaker._dask import LOCAL_CLUSTER

    shape = SHAPE if not args.quick else (SHAPE[0], SHAPE[1], SHAPE[2] // 4)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"image-{'x'.join(map(str, shape))}.npy"
    make_source(src, shape)
    warm(src)
    dest = work / "out.ome.zarr"
    quiet = wait_for_quiet(args.max_load, args.wait)
    load_start = load()

    # Both clusters are up (idle) for the whole run, and the rows take turns in
    # every round, so a change in the machine's load hits them alike.
    executors = {None: (None, None, None)}
    try:
        for n in (1, 2):
            t0 = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=n, **LOCAL_CLUSTER)
            client = distributed.Client(cluster)
            client.run(_import_mipmaker)  # workers' imports belong to the start-up, not to the build
            executors[n] = (cluster, client, time.perf_counter() - t0)
        times = {n: [] for n in executors}
        plan = None
        for _ in range(args.repeat):
            for n, (_, client, _) in executors.items():
                seconds, state = timed_build(src, dest, client, args.memory, args.workers)
                times[n].append(seconds)
                plan = state.plan
    finally:
        for cluster, client, _ in executors.values():
            if client is not None:
                client.close()
                cluster.close()
    load_end = load()
    rows = []
    for n, (_, _, startup) in executors.items():
        best = min(times[n])
        label = "local executor (threads)" if n is None else f"dask, {n} worker{'s' if n > 1 else ''}"
        rows.append((label, n, best, startup, times[n]))
        print(f"{label:26s} best {best:6.2f} s of {', '.join(f'{t:.2f}' for t in times[n])}"
              + (f"; cluster start {startup:.1f} s" if startup is not None else ""), flush=True)

    voxels = int(np.prod(shape))
    base = next(r[2] for r in rows if r[1] == 1)
    lines = [
        "| executor | workers | seconds | MVx/s | speedup vs 1 worker | cluster start |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, n, best, startup, _ in rows:
        lines.append(
            f"| {label} | {n if n is not None else args.workers} | {best:.2f} | {voxels / best / 1e6:.0f} | "
            f"{base / best:.2f} | {'-' if startup is None else f'{startup:.1f} s'} |"
        )
    p = plan.passes[0]
    lines += [
        "",
        f"{'x'.join(map(str, shape))} uint8 ({voxels / 2**20:.0f} MiB) to 4 levels of 2,2,1, mean, OME-Zarr "
        f"(compression none, default shards), {plan.tasks} box{'es' if plan.tasks > 1 else ''} of "
        f"{','.join(map(str, p.box))} "
        f"({len(plan.passes)} pass{'es' if len(plan.passes) > 1 else ''}; `--memory {args.memory} --workers "
        f"{args.workers}` for every row). Best of {args.repeat} rounds, the rows taking turns in each; warm page "
        f"cache, synced. Dask workers are "
        f"single-threaded processes on loopback (`--dask-local N`); the local executor runs {args.workers} boxes "
        f"on threads. CPU: {cpu_model()}, {os.cpu_count()} cores. Load average (1 min) {load_start:.2f} at the start, "
        f"{load_end:.2f} at the end{'' if quiet else ' (other jobs were running: the numbers are noisy)'}. "
        "Command: `python benchmarks/dask_scaling.py`.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.quick:
        update_docs(Path(args.output), table)


def update_docs(path, table):
    replace_section(path, "dask", "## Distributed builds: dask scaling (`benchmarks/dask_scaling.py`)\n\n"
                    f"See [distributed.md](distributed.md).\n\n{table}")


if __name__ == "__main__":
    sys.exit(main())
