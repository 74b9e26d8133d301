"""End-to-end pyramid builds from disk to disk: mipmaker build beside igneous.

Two jobs on the same Neuroglancer precomputed volumes on local disk (raw,
uncompressed, 128x128x64 chunks), each tool in its own child process, the
page cache dropped before each run (when run as root) and the data synced to
disk before the clock stops:

- image: a uint8 volume (1 GiB) to 4 levels of (2, 2, 1), mean;
- labels: a uint64 segmentation (2 GiB; the real 512^3 connectomics labels
  tiled, else a synthetic Voronoi partition) to 3 levels of (2, 2, 2), mode.

igneous (``igneous-pipeline``, ``create_downsampling_tasks`` on a
``LocalTaskQueue`` with one process per core) adds the levels to the source
layer, as it always does; so does the "mipmaker" row (``mipmaker build SRC
SRC``), and "mipmaker-copy" writes a new precomputed pyramid whose level 0 is
a copy of the source. mipmaker runs with a memory budget several times
smaller than the volume. Throughput is megavoxels of level 0 per second.

Usage::

    python benchmarks/build.py                 # both jobs, writes docs/benchmarks.md's build section
    python benchmarks/build.py --quick         # 1/4 of the volume, no docs update
    python benchmarks/build.py --jobs image --tools mipmaker
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

from _bench_util import cpu_model, replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LABELS = ROOT.parent / "shared" / "data" / "connectomics.npy.ckl.gz"
CHUNK = (128, 128, 64)
JOBS = {
    # name: (shape x,y,z at full size, dtype, factor, levels, resolution, layer type)
    "image": ((2048, 2048, 256), "uint8", (2, 2, 1), 4, (4, 4, 40), "image"),
    "labels": ((1024, 1024, 256), "uint64", (2, 2, 2), 3, (8, 8, 8), "segmentation"),
}


def make_source(path, shape, dtype, resolution, layer_type):
    """Write a raw precomputed volume (once; reused by later runs)."""
    import tensorstore as ts

    if (path / "info").exists() and (path / ".complete").exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    info = {
        "@type": "neuroglancer_multiscale_volume", "type": layer_type, "data_type": dtype, "num_channels": 1,
        "scales": [{"key": "_".join(map(str, resolution)), "size": list(shape), "voxel_offset": [0, 0, 0],
                    "resolution": list(resolution), "chunk_sizes": [list(CHUNK)], "encoding": "raw"}],
    }
    (path / "info").write_text(json.dumps(info))
    store = ts.open({"driver": "neuroglancer_precomputed", "kvstore": f"file://{path}/", "scale_index": 0}).result()
    rng = np.random.default_rng(0)
    if layer_type == "image":
        for z in range(0, shape[2], CHUNK[2]):
            slab = rng.integers(0, 256, (shape[0], shape[1], min(CHUNK[2], shape[2] - z), 1), dtype=np.uint8)
            store[:, :, z:z + slab.shape[2]].write(slab).result()
    else:
        block = _label_block()
        n = block.shape
        for i, x in enumerate(range(0, shape[0], n[0])):
            for j, y in enumerate(range(0, shape[1], n[1])):
                for k, z in enumerate(range(0, shape[2], n[2])):
                    part = block[: shape[0] - x, : shape[1] - y, : shape[2] - z]
                    # Each tile gets its own labels, as a larger segmentation would.
                    tile = np.where(part > 0, part + np.uint64(((i * 7 + j) * 5 + k) << 40), 0)
                    store[x:x + part.shape[0], y:y + part.shape[1], z:z + part.shape[2]].write(tile[..., None]).result()
    (path / ".complete").write_text("")


def _label_block():
    if LABELS.exists():
        import gzip

        import crackle

        with gzip.open(LABELS, "rb") as f:
            return np.asarray(crackle.decompress(f.read())).astype(np.uint64)
    sys.path.insert(0, str(ROOT / "src"))
    from mipmaker.demo import synthetic_volume

    return synthetic_volume((256, 256, 256), (24, 24, 24))[1]


def reset_igneous(path):
    """Drop the levels an earlier igneous run added to the source layer."""
    info = json.loads((path / "info").read_text())
    for scale in info["scales"][1:]:
        shutil.rmtree(path / scale["key"], ignore_errors=True)
    info["scales"] = info["scales"][:1]
    (path / "info").write_text(json.dumps(info))
    shutil.rmtree(path / "provenance", ignore_errors=True)
    shutil.rmtree(path / ".mipmaker", ignore_errors=True)


def child(job, tool, src, dest, workers, memory):
    """One timed run (in its own process): build, then sync. Imports are not timed
    (igneous takes seconds to import, mipmaker a third of one)."""
    _, dtype, factor, levels, _, _ = JOBS[job]
    if tool in ("mipmaker", "mipmaker-copy"):
        import mipmaker.build

        # "mipmaker" adds the levels to the source layer, as igneous does;
        # "mipmaker-copy" writes a new layer, level 0 included.
        t0 = time.perf_counter()
        mipmaker.build.build(src, src if tool == "mipmaker" else dest, format="precomputed", factor=factor,
                             levels=levels, chunk=CHUNK, shard=None, encoding="raw", memory=memory,
                             workers=workers or None, progress=False)
    elif tool == "igneous":
        import igneous.task_creation as tc
        from taskqueue import LocalTaskQueue

        t0 = time.perf_counter()
        tasks = tc.create_downsampling_tasks(f"file://{src}", mip=0, num_mips=levels, factor=factor,
                                             chunk_size=CHUNK, encoding="raw", compress=False)
        tq = LocalTaskQueue(parallel=workers, progress=False)
        tq.insert(tasks)
        tq.execute(progress=False)
    else:
        raise ValueError(tool)
    os.sync()
    seconds = time.perf_counter() - t0
    import resource

    # VmHWM is this process's own peak (ru_maxrss would carry the parent's over
    # fork and exec); igneous's worker processes report through RUSAGE_CHILDREN.
    hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    rss = max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"seconds": seconds, "rss": rss * 1024}))


def drop_caches():
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run(job, tool, src, dest, workers, memory):
    cold = drop_caches()
    cmd = [sys.executable, __file__, "--child", job, tool, str(src), str(dest), str(workers), str(memory)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {job} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "cold": cold}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/mipmaker-build-bench", help="where volumes are written")
    ap.add_argument("--jobs", default="image,labels")
    ap.add_argument("--tools", default="mipmaker,igneous,mipmaker-copy")
    ap.add_argument("--quick", action="store_true", help="a quarter of the volume (z / 4); no docs update")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="igneous processes (default: one per core)")
    ap.add_argument("--mipmaker-workers", type=int, default=None, help="mipmaker boxes at once (default: its own, two per core)")
    ap.add_argument("--memory", default=None, help="mipmaker's budget (default: a quarter of the volume)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool (the best is reported)")
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        job, tool, src, dest, workers, memory = args.child
        return child(job, tool, src, dest, int(workers), memory)
    work = Path(args.workdir)
    rows = []
    for job in args.jobs.split(","):
        shape, dtype, factor, levels, res, layer_type = JOBS[job]
        if args.quick:
            shape = (shape[0], shape[1], shape[2] // 4)
        src = work / f"{job}-{'x'.join(map(str, shape))}"
        make_source(src, shape, dtype, res, layer_type)
        voxels = int(np.prod(shape))
        size = voxels * np.dtype(dtype).itemsize
        result = {}
        for tool in args.tools.split(","):
            best = None
            for _ in range(args.repeat):
                dest = work / f"{job}-out-{tool}"
                shutil.rmtree(dest, ignore_errors=True)
                if tool in ("igneous", "mipmaker"):
                    reset_igneous(src)
                workers = args.workers if tool == "igneous" else (args.mipmaker_workers or 0)
                memory = args.memory or str(size // 4)
                r = run(job, tool, src, dest, workers, memory)
                if best is None or r["seconds"] < best["seconds"]:
                    best = r
            result[tool] = best
            print(f"{job:6s} {tool:9s} {best['seconds']:7.2f} s {voxels / best['seconds'] / 1e6:8.1f} MVx/s "
                  f"peak RSS {best['rss'] / 2**20:7.0f} MiB ({'cold' if best['cold'] else 'warm'} cache)", flush=True)
        reset_igneous(src)
        rows.append((job, shape, dtype, factor, levels, size, voxels, result))
    table = format_table(rows, args)
    print(table)
    if not args.quick and args.jobs == "image,labels" and args.tools == "mipmaker,igneous,mipmaker-copy":
        update_docs(Path(args.output), table)


def format_table(rows, args):
    lines = [
        "| job | volume | tool | seconds | MVx/s | x igneous | peak RSS |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for job, shape, dtype, factor, levels, size, voxels, result in rows:
        ig = result.get("igneous")
        for tool, r in result.items():
            ratio = f"{ig['seconds'] / r['seconds']:.2f}" if ig else "-"
            lines.append(
                f"| {job}: {levels} levels of {','.join(map(str, factor))} | {'x'.join(map(str, shape))} {dtype} "
                f"({size / 2**30:.2f} GiB) | {tool} | {r['seconds']:.2f} | {voxels / r['seconds'] / 1e6:.0f} | "
                f"{ratio} | {r['rss'] / 2**20:.0f} MiB |"
            )
    cold = all(r["cold"] for row in rows for r in row[-1].values())
    lines.append("")
    lines.append(
        f"{'Cold' if cold else 'Warm'} page cache, raw precomputed in and out, synced; igneous: {args.workers} processes, mipmaker: "
        f"{args.mipmaker_workers or 'default (two per core)'} boxes at once; "
        f"mipmaker memory budget {args.memory or 'a quarter of the volume'}; CPU: {cpu_model()}; "
        + (f"best of {args.repeat} consecutive runs per tool; " if args.repeat > 1 else "")
        + f"command: `python benchmarks/build.py{f' --repeat {args.repeat}' if args.repeat > 1 else ''}`. "
        "Imports are not timed (igneous takes about 2.5 s to import, mipmaker 0.3 s). "
        "The disk's cold-read floor, `python benchmarks/disk_read.py FOLDER`, bounds every row: reading the "
        "inputs alone takes at least about 0.7 s (image) and 1.2-1.4 s (labels), varying from run to run."
    )
    return "\n".join(lines)


def update_docs(path, table):
    replace_section(path, "build", f"## End-to-end builds (`benchmarks/build.py`)\n\n{table}")


if __name__ == "__main__":
    sys.exit(main())
