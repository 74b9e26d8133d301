"""What one core reaches against compare.py's bound with no mipmaker in the way.

Builds `stream_floor.cpp` with the system C++ compiler (g++ or $CXX, AVX2),
runs it and puts its table into the ``stream-floor`` section of
docs/benchmarks.md: a kernel reading 256 MiB as one sequential stream and
writing 1/k of it to fresh memory, and u8 2x2x1 means over 2048-wide rows
read together or in turn, each against n/R + (n/k)/W measured alongside.

Usage: python benchmarks/stream_floor.py [--rounds N] [--output PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _bench_util as util

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15, help="best of this many interleaved rounds (default 15)")
    p.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks.md",
                   help="markdown file whose stream-floor section is replaced (default docs/benchmarks.md)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"`--rounds` must be at least 1, got {args.rounds}")
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        sys.exit("stream_floor.py needs a C++ compiler (g++, or set CXX)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "stream_floor"
        subprocess.run([cxx, "-O2", "-mavx2", str(HERE / "stream_floor.cpp"), "-o", str(exe)], check=True)
        table = subprocess.run([str(exe), str(args.rounds)], check=True, capture_output=True, text=True).stdout
    print(table)
    body = (
        "## What one core reaches without mipmaker (`benchmarks/stream_floor.py`)\n\n"
        f"{table.strip()}\n\n"
        "Single stream: reads 256 MiB in order, each output vector the max of k input vectors, written to "
        "fresh memory; bound as in compare.py (R: the best read-only max over the input; W: memset of a "
        "fresh mapping, page zeroing included). The u8 2x2x1 rows read two rows 2048 bytes apart (a "
        "Fortran-order 2048-wide volume's block), both at every step or one after the other. "
        f"CPU: {util.cpu_model()}; "
        f"command: `python benchmarks/stream_floor.py --rounds {args.rounds}`."
    )
    util.replace_section(args.output, "stream-floor", body)


if __name__ == "__main__":
    main()
