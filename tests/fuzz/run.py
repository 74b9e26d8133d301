"""The long fuzz run: ``python tests/fuzz/run.py --minutes 30`` (or ``python -m tests.fuzz``).

Cases run in batches, each batch a child process with its own hypothesis
seed, so that a crash (segfault, abort, sanitizer report) ends one batch,
is counted and recorded, and the run goes on. The child writes each case's
spec before running it; after a crash that file names the culprit. A
failing case is shrunk by hypothesis before it is reported. Failures and
crashes are appended to ``--log`` as JSON lines; replay one with
``--replay '<spec as JSON>'``. Exit status: 0 when nothing failed or crashed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(_HERE)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)  # `fuzz` and `reference` as top-level modules


def _child(seed, examples, progress_path, result_path):
    """Run one batch in this process; write a JSON summary to `result_path`."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    from fuzz.cases import specs
    from fuzz.check import run_case

    counts = collections.Counter()
    failing = {}

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(spec=specs())
    def batch(spec):
        with open(progress_path, "w") as f:  # survives a crash in the next call
            json.dump({"tried": sum(counts.values()), "spec": spec}, f)
        counts[spec["op"]] += 1
        try:
            run_case(spec)
        except BaseException as error:
            failing.update(spec=spec, error=f"{type(error).__name__}: {error}")
            raise

    summary = {"failure": None}
    try:
        batch()
    except BaseException:
        summary["failure"] = failing or {"error": traceback.format_exc()}
    summary["counts"] = dict(counts)
    with open(result_path, "w") as f:
        json.dump(summary, f)


def _run_batch(seed, examples, timeout, workdir):
    """One child process: (counts by op, failure dict or None, crash dict or None)."""
    progress = os.path.join(workdir, "progress.json")
    result = os.path.join(workdir, "result.json")
    for path in (progress, result):
        if os.path.exists(path):
            os.remove(path)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--seed", str(seed),
           "--batch", str(examples), "--progress", progress, "--result", result]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as expired:
        returncode = "timeout"
        output = "".join((part or b"").decode(errors="replace") for part in (expired.stdout, expired.stderr))
    if returncode == 0 and os.path.exists(result):
        with open(result) as f:
            summary = json.load(f)
        return collections.Counter(summary["counts"]), summary["failure"], None
    # The child died: count the cases it started, blame the last one.
    last = {}
    if os.path.exists(progress):
        with open(progress) as f:
            last = json.load(f)
    crash = {"seed": seed, "returncode": returncode, "spec": last.get("spec"), "output": output[-4000:]}
    return collections.Counter({"(crashed batch)": last.get("tried", 0) + 1}), None, crash


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to run (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="first batch's seed (default: time)")
    parser.add_argument("--batch", type=int, default=500, help="cases per child process")
    parser.add_argument("--batch-timeout", type=float, default=600.0, help="seconds before a batch is a hang")
    parser.add_argument("--log", default="fuzz-failures.jsonl", help="where failures and crashes go")
    parser.add_argument("--replay", help="run one spec (JSON) in this process and print the outcome")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        _child(args.seed, args.batch, args.progress, args.result)
        return 0
    if args.replay:
        from fuzz.check import run_case

        run_case(json.loads(args.replay))
        print("replay: passed")
        return 0

    seed = args.seed if args.seed is not None else int(time.time())
    deadline = time.monotonic() + 60 * args.minutes
    start = time.monotonic()
    tried = collections.Counter()
    batches = failures = crashes = 0
    import mipmaker
    from mipmaker import _core

    print(f"fuzz: mipmaker {mipmaker.__version__}, kernels {_core.isa()}, {args.minutes:g} min, "
          f"first seed {seed}, {args.batch} cases per batch", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        while time.monotonic() < deadline:
            counts, failure, crash = _run_batch(seed + batches, args.batch, args.batch_timeout, workdir)
            batches += 1
            tried += counts
            for kind, record in (("failure", failure), ("crash", crash)):
                if record:
                    failures += kind == "failure"
                    crashes += kind == "crash"
                    record = {"kind": kind, "seed": seed + batches - 1, **record}
                    with open(args.log, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    detail = str(record.get("error", record.get("returncode")))[:2000]
                    print(f"fuzz: {kind} in batch seed {record['seed']}: "
                          f"{json.dumps(record.get('spec'))}\n  {detail}", flush=True)
            elapsed = time.monotonic() - start
            print(f"fuzz: {elapsed / 60:5.1f} min, {sum(tried.values())} cases, {batches} batches, "
                  f"{failures} failures, {crashes} crashes", flush=True)
    elapsed = time.monotonic() - start
    print(f"fuzz: done in {elapsed / 60:.1f} min: {sum(tried.values())} cases tried in {batches} batches "
          f"({sum(tried.values()) / max(elapsed, 1e-9):.0f}/s), {failures} failures, {crashes} crashes")
    print("fuzz: cases by operation: " + ", ".join(f"{op} {n}" for op, n in sorted(tried.items())))
    return 1 if failures or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
