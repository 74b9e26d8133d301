"""Kill `mipmaker build` at random moments and check every resumed build is byte-identical.

Each trial starts the CLI on the same source, sends SIGKILL after a random
delay (sometimes more than once: the resumed run is killed again), reruns it to
completion and compares every file of the destination with a clean build.

Usage::

    python benchmarks/kill_trials.py --trials 20
    python benchmarks/kill_trials.py --trials 3 --format precomputed
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--format", default="ome-zarr", choices=("ome-zarr", "ome-zarr-0.4", "precomputed"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mipmaker-kill-"))
    try:
        vol = np.random.default_rng(args.seed).integers(1, 2**40, (192, 160, 48), dtype=np.uint64)
        vol[::3] = vol[1::3][: len(vol[::3])]  # some ties for the mode
        np.save(work / "v.npy", vol)
        opts = ["--factor", "2,2,2", "--levels", "3", "--chunk", "16,16,8", "--memory", "40MB", "--workers", "2",
                "--format", args.format, "--quiet"]
        cmd = [sys.executable, "-m", "mipmaker", "build", str(work / "v.npy")]
        t0 = time.perf_counter()
        subprocess.run(cmd + [str(work / "clean")] + opts, check=True)
        seconds = time.perf_counter() - t0
        clean = tree(work / "clean")
        identical = killed_mid = 0
        for trial in range(args.trials):
            dest = work / f"t{trial}"
            kills = 0
            for _ in range(rng.choice((1, 1, 2, 3))):
                proc = subprocess.Popen(cmd + [str(dest)] + opts, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.0, 1.1) * seconds)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait()
            done = subprocess.run(cmd + [str(dest)] + opts, capture_output=True, text=True)
            same = done.returncode == 0 and tree(dest) == clean
            identical += same
            killed_mid += kills > 0
            print(f"trial {trial + 1:2d}: {kills} kill(s), rerun rc {done.returncode}, "
                  f"{'identical' if same else 'DIFFERENT'} ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''})",
                  flush=True)
            shutil.rmtree(dest)
        print(f"\n{identical}/{args.trials} identical to a clean build ({killed_mid} trials killed mid-build; "
              f"clean build {seconds:.2f} s, {args.format})")
        return 0 if identical == args.trials else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
