"""Each kernel build (scalar, AVX2, AVX-512) on the same arrays, one thread.

mipmaker compiles its kernels once per instruction set and picks the best
the CPU has at import time (``MIPMAKER_ISA`` or ``_core.force_isa`` choose
another). This script forces every build the CPU can run in turn, on
compare.py's random F-order 2048x2048x64 inputs, and puts the table into the
``isa`` section of docs/benchmarks.md: megavoxels of input per second (the
best over the rounds of the median of the timed calls; the builds alternate
within each round, so a slow spell of a shared host hits them alike) and the
speed-up of the default build over AVX2 and over scalar.

Usage: python benchmarks/isa.py [--rounds N] [--quick] [--output PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import _bench_util as util
import mipmaker as mm
from mipmaker import _core

HERE = Path(__file__).resolve().parent

# (name, dtype, lo, hi, factors, method): the compute-bound rows of compare.py
# (small-block mode and median) and a few memory-bound ones for contrast.
CASES = [
    ("median u8 2x2x2", np.uint8, 0, 256, (2, 2, 2), "median"),
    ("median u64 2x2x2", np.uint64, 1000, 1255, (2, 2, 2), "median"),
    ("mode u64 2x2x2", np.uint64, 1000, 1255, (2, 2, 2), "mode"),
    ("mode u64 4x4x1", np.uint64, 1000, 1255, (4, 4, 1), "mode"),
    ("mode u64 3x3x3", np.uint64, 1000, 1255, (3, 3, 3), "mode"),
    ("mode u32 4x4x1", np.uint32, 1000, 1255, (4, 4, 1), "mode"),
    ("mean u8 2x2x1", np.uint8, 0, 256, (2, 2, 1), "mean"),
    ("mean u8 2x2x2", np.uint8, 0, 256, (2, 2, 2), "mean"),
    ("max u8 2x2x1", np.uint8, 0, 256, (2, 2, 1), "max"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="passes over all cases and builds (default 3)")
    p.add_argument("--runs", type=int, default=5, help="timed calls per measurement (default 5)")
    p.add_argument("--quick", action="store_true", help="1024x1024x32 arrays, 1 round")
    p.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks.md",
                   help="markdown file whose isa section is replaced (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.runs < 1:
        p.error(f"`--rounds` and `--runs` must be at least 1, got {args.rounds} and {args.runs}")
    rounds = 1 if args.quick else args.rounds
    shape = (1024, 1024, 32) if args.quick else (2048, 2048, 64)
    default = _core.isa()
    isas = _core.available_isas()
    best = {}
    try:
        for r in range(rounds):
            for name, dtype, lo, hi, factors, method in CASES:
                shp = tuple(s - s % f for s, f in zip(shape, factors))
                a = util.random_volume(shp, dtype, "F", lo, hi)
                for isa in isas:
                    assert _core.force_isa(isa)
                    t, _ = util.median_time(lambda: mm.downsample(a, factors, method=method, threads=1),
                                            args.runs, 0.25, 20.0)
                    mvx = a.size / t / 1e6
                    best[name, isa] = max(best.get((name, isa), 0.0), mvx)
                    print(f"round {r + 1}/{rounds} {name:18s} {isa:7s} {mvx:9.0f} MVx/s", flush=True)
                del a
    finally:
        _core.force_isa(default)
    cols = [f"{isa} MVx/s" for isa in isas]
    others = [other for other in ("avx2", "scalar") if other in isas and other != default]
    ratios = [f"{default} / {other}" for other in others]
    lines = ["| case (F order, 1 thread) | " + " | ".join(cols + ratios) + " |",
             "|:---" + "|---:" * (len(cols) + len(ratios)) + "|"]
    for name, *_ in CASES:
        cells = [f"{best[name, isa]:.0f}" for isa in isas]
        cells += [f"{best[name, default] / best[name, other]:.2f}" for other in others]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    cmd = "python benchmarks/isa.py" + (" --quick" if args.quick else f" --rounds {rounds}")
    body = (
        "## Kernel builds per instruction set (`benchmarks/isa.py`)\n\n"
        f"{table}\n\n"
        f"`mipmaker.downsample` on random F-order {'x'.join(map(str, shape))} arrays (u8 0..255, labels "
        f"1000..1254), one level, with each kernel build forced in turn; the default on this CPU is "
        f"`{default}`. MVx/s: best over {rounds} round(s) of the median of {args.runs} or more timed calls. "
        f"CPU: {util.cpu_model()}; command: `{cmd}`."
    )
    util.replace_section(args.output, "isa", body)


if __name__ == "__main__":
    main()
