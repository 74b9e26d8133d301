"""mipmaker vs tinybrain 1.7.0, side by side in one process on the same arrays.

    python benchmarks/compare.py             # full run, writes docs/benchmarks.md and .png
    python benchmarks/compare.py --quick     # smaller arrays, 3 runs, prints only (< 2 min)

For each case: megavoxels of input per second (median of --runs runs after a
warm-up; the best such median over --rounds passes over all cases) for
mipmaker with threads=1 and with all usable cores, and for tinybrain
(single-threaded); the ratio mipmaker/tinybrain; the fraction of the
memory-bandwidth bound (read the input once at R, write the outputs once at
W, both measured at the start of each round, the best kept); and the peak
resident memory of one call, measured in a child process and reported
relative to the input's size.
tinybrain is optional: without it only mipmaker's columns are printed.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_util as util  # noqa: E402

import mipmaker as mm  # noqa: E402

try:
    import tinybrain as tb
    import tinybrain.downsample as tbd
except ImportError:  # tinybrain is optional
    tb = tbd = None

NTHREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

NOTES = {
    "stride": "mipmaker: `mipmaker.pyramid(..., method=\"stride\")`, which copies every level into a new array; "
    "tinybrain's `downsample_with_striding` returns views of the input (no pass over the data at all).",
    "view": "Both libraries' `downsample_with_striding`, which return views: this times Python overhead only "
    "(no bound, since nothing is read or written).",
    "corder": "tinybrain 1.7.0's 2x2x2 mode reads C-order input as if it were Fortran-order: fast but wrong labels.",
    "tbstride": "tinybrain strides (returns views) for segmentation factors that are not powers of two; "
    "mipmaker computes the true mode.",
    "pyramid": "Ratio against tinybrain's recursive `downsample_segmentation(labels, (2,2,2), num_mips=4)`, which "
    "takes the mode of modes (not exact past mip 1; tinybrain has no exact mode). mipmaker computes the exact "
    "mode of every 2^k block from the full-resolution labels.",
    "median": "tinybrain has no median pooling.",
}


@dataclass
class Case:
    section: str
    name: str
    op: str  # avg mode min max stride view median pyramid
    data: tuple  # ("rand", dtype, order, lo, hi) or ("labels",)
    factor: tuple
    mips: int = 1
    sparse: bool = False
    notes: tuple = ()


def base_shape(args):
    """Random inputs' shape and the labels' cube side (None: whole file)."""
    if not args.quick:
        return (2048, 2048, 64), None
    return ((512, 512, 32), 128) if args.mem_child else ((1024, 1024, 32), 256)


def build_cases(args):
    cases = []
    size = "x".join(map(str, base_shape(args)[0]))

    def add(section, op, data, factor, mips=1, sparse=False, notes=(), label=None):
        what = label or f"{np.dtype(data[1]).name.replace('uint', 'u').replace('float', 'f')} {data[2]}"
        opname = {"avg": "mean", "pyramid": "pyramid mode exact", "view": "stride (views)"}.get(op, op)
        name = f"{opname} {what} {'x'.join(map(str, factor))} x{mips}{' sparse' if sparse else ''}"
        cases.append(Case(section, name, op, data, tuple(factor), mips, sparse, tuple(notes)))

    u8, u64 = ("rand", "uint8", "F", 0, 256), ("rand", "uint64", "F", 1000, 1255)
    for order in "FC":
        sec = f"tinybrain README table, random {size}, {order}-order"
        for op, data in (("avg", u8), ("mode", u64)):
            data = (*data[:2], order, *data[3:])
            for f in ((2, 2, 1), (2, 2, 2)):
                for sparse in (False, True):
                    for mips in (1, 2):
                        add(sec, op, data, f, mips, sparse, ("corder",) if order + op == "Cmode" and f[2] == 2 else ())
    sec = "other dtypes, F-order"
    for op, data in (("avg", ("rand", "uint16", "F", 0, 65536)), ("avg", ("rand", "float32", "F", 0, 255)),
                     ("mode", ("rand", "uint32", "F", 1000, 1255))):
        for f, mips in (((2, 2, 1), 1), ((2, 2, 1), 2), ((2, 2, 2), 1)):
            add(sec, op, data, f, mips)
    sec = "other factors, F-order (shapes cropped to multiples of factor^mips)"
    for op, data in (("avg", u8), ("mode", u64)):
        for f, mips in (((4, 4, 1), 1), ((3, 3, 3), 1), ((2, 2, 1), 5)):
            add(sec, op, data, f, mips, notes=("tbstride",) if op == "mode" and f[0] == 3 else ())
    sec = "min, max, stride, u8 F-order"
    add(sec, "min", u8, (2, 2, 1))
    add(sec, "max", u8, (2, 2, 1))
    add(sec, "max", u8, (2, 2, 2), 2)
    add(sec, "stride", u8, (2, 2, 1), 2, notes=("stride",))
    add(sec, "view", u8, (2, 2, 1), 2, notes=("view",))
    sec = "segmentation labels (real, see Labels above)"
    for f in ((2, 2, 1), (2, 2, 2)):
        for sparse in (False, True):
            add(sec, "mode", ("labels",), f, 1, sparse, label="labels")
    sec = "modern API"
    add(sec, "median", u8, (2, 2, 2), notes=("median",))
    add(sec, "pyramid", ("labels",), (2, 2, 2), 4, notes=("pyramid",), label="labels")
    return cases


# --------------------------------------------------------------------- inputs
_cache = {}


def get_input(case, args):
    """The case's input array; the last one is cached (one large array alive at a time)."""
    if case.data[0] == "labels":
        key = ("labels",)
    else:
        base = base_shape(args)[0]
        shape = tuple(s - s % (f**case.mips) for s, f in zip(base, case.factor))
        key = (*case.data, shape)
    if key not in _cache:
        _cache.clear()
        gc.collect()
        if key[0] == "labels":
            _cache[key], util.LABELS_DESC = util.load_labels(args.labels, base_shape(args)[1])
        else:
            _, dtype, order, lo, hi, shape = key
            _cache[key] = util.random_volume(shape, dtype, order, lo, hi)
    return _cache[key]


# ------------------------------------------------------------------ the calls
def call_mm(c, a, threads):
    f, m, s = c.factor, c.mips, c.sparse
    if c.op == "avg":
        return mm.downsample_with_averaging(a, f, m, s, threads=threads)
    if c.op == "mode":
        return mm.downsample_segmentation(a, f, s, m, threads=threads)
    if c.op in ("min", "max"):
        return getattr(mm, f"downsample_with_{c.op}_pooling")(a, f, m, threads=threads)
    if c.op == "stride":
        return mm.pyramid(a, f, m, method="stride", threads=threads)
    if c.op == "view":
        return mm.downsample_with_striding(a, f, m, threads=threads)
    if c.op == "median":
        return mm.downsample(a, f, method="median", threads=threads)
    if c.op == "pyramid":
        return mm.pyramid(a, f, m, method="mode", exact=True, threads=threads)
    raise ValueError(c.op)


def call_tb(c, a):
    f, m, s = c.factor, c.mips, c.sparse
    if c.op == "avg":
        return tb.downsample_with_averaging(a, f, m, s)
    if c.op in ("mode", "pyramid"):
        return tb.downsample_segmentation(a, f, s, m)
    if c.op in ("min", "max"):
        return getattr(tbd, f"downsample_with_{c.op}_pooling")(a, f, m)
    if c.op in ("stride", "view"):
        return tb.downsample_with_striding(a, f, m)
    return None  # no equivalent


def has_tb(c):
    return tb is not None and c.op != "median"


# --------------------------------------------------------------------- timing
def run_case(c, args):
    a = get_input(c, args)
    row = {"case": c, "vox": a.size, "itemsize": a.itemsize, "errors": {}, "written": None}
    cols = [("mm1", lambda: call_mm(c, a, 1)), ("mmN", lambda: call_mm(c, a, NTHREADS))]
    if has_tb(c):
        cols.append(("tb", lambda: call_tb(c, a)))
    for col, fn in cols:
        try:
            t, nbytes = util.median_time(fn, args.runs, *((0.1, 1.5) if args.quick else (0.25, float("inf"))))
            row[col] = a.size / t / 1e6
            if row["written"] is None:
                row["written"] = nbytes  # mipmaker's outputs when it ran
        except Exception as exc:  # report, keep going
            row[col] = "error"
            row["errors"][col] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        gc.collect()
    return row


def merge_rounds(best, row):
    """Keeps each column's fastest round; an error in any round is reported."""
    for col in ("mm1", "mmN", "tb"):
        a, b = best.get(col), row.get(col)
        if isinstance(a, float) and isinstance(b, float):
            best[col] = max(a, b)
        elif b == "error":
            best[col] = "error"
            best["errors"][col] = row["errors"][col]
    if best["written"] is None:
        best["written"] = row["written"]
    return best


def add_bounds(row, bw):
    if row["written"] is not None and row["case"].op != "view":
        wpv = row["written"] / row["vox"]
        row["bound1"] = util.bound_mvx(row["itemsize"], wpv, bw["R1"], bw["W1"])
        row["boundN"] = util.bound_mvx(row["itemsize"], wpv, bw["RN"], bw["WN"])


# --------------------------------------------------------------------- memory
def mem_child(lib, args):
    """Child process: for each case name on stdin, print the peak extra RSS / input bytes."""
    by_name = {c.name: c for c in build_cases(args)}
    for name in sys.stdin.read().split("\n"):
        if not name:
            continue
        c = by_name[name]
        a = get_input(c, args)
        call = (lambda x: call_mm(c, x, NTHREADS)) if lib == "mm" else (lambda x: call_tb(c, x))
        try:  # first-call costs (lazy imports, thread pool) on a small crop: not the case's
            call(a[:96, :96, :48].copy(order="K"))
        except Exception:
            pass
        gc.collect()
        resettable = util.reset_peak()
        base = util._status("VmRSS") if resettable else util.peak_rss()
        try:
            r = call(a)
            extra = (util.peak_rss() - base) / a.nbytes
            del r
            msg = {"case": name, "mem": extra}
        except Exception as exc:
            msg = {"case": name, "mem": "error", "why": f"{type(exc).__name__}"}
        print(json.dumps(msg), flush=True)
        if not resettable:
            return  # peak cannot be reset: one case per process


def measure_memory(lib, cases, args):
    """{case name: peak extra RSS / input bytes or 'error'/'crash'} via child processes."""
    passthrough = (["--quick"] if args.quick else []) + (["--labels", args.labels] if args.labels else [])
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")  # freed big blocks go back to the OS at once
    todo, out = [c.name for c in cases], {}
    while todo:
        proc = subprocess.Popen([sys.executable, __file__, "--_mem-child", lib, *passthrough], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env)
        proc.stdin.write("\n".join(todo))
        proc.stdin.close()
        for line in proc.stdout:
            msg = json.loads(line)
            out[msg["case"]] = msg["mem"]
            v = msg["mem"]
            log(f"  memory {lib:2s} {msg['case']}: {v if isinstance(v, str) else format(v, '.2f') + 'x'}")
        rc = proc.wait()
        rest = [n for n in todo if n not in out]
        if rest and (rc != 0 or len(rest) == len(todo)):
            out[rest[0]] = "crash" if rc != 0 else "error"
            rest = rest[1:]
        todo = rest
    return out


# --------------------------------------------------------------------- report
def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fmt_mvx(v):
    if not isinstance(v, float):
        return v or "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def fmt_ratio(x):
    return f"{x:.2f}" if x >= 0.1 else f"{x:.1g}"


def table(rows, with_tb, with_mem):
    n = NTHREADS
    head = ["case", "mipmaker 1T", f"mipmaker {n}T"]
    if with_tb:
        head += ["tinybrain", "ratio 1T", f"ratio {n}T"]
    head += ["bound 1T", "% bound 1T", f"% bound {n}T"]
    if with_mem:
        head += ["mem mipmaker"] + (["mem tinybrain"] if with_tb else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    section, marks = None, {}
    for r in rows:
        c = r["case"]
        if c.section != section:
            section = c.section
            lines.append(f"| **{section}** |" + " |" * (len(head) - 1))
        refs = "".join(f"<sup>{marks.setdefault(k, len(marks) + 1)}</sup>" for k in c.notes)
        for col, why in r["errors"].items():
            refs += f"<sup>{marks.setdefault(('err', c.name, col, why), len(marks) + 1)}</sup>"
        cells = [c.name + refs, fmt_mvx(r.get("mm1")), fmt_mvx(r.get("mmN"))]
        if with_tb:
            tbv = r.get("tb")
            cells.append(fmt_mvx(tbv) if has_tb(c) else "n/a")
            for col in ("mm1", "mmN"):
                ok = isinstance(tbv, float) and isinstance(r.get(col), float)
                cells.append(f"{fmt_ratio(r[col] / tbv)}{'†' if c.op == 'pyramid' else ''}" if ok else "-")
        b1, bn = r.get("bound1"), r.get("boundN")
        cells.append(fmt_mvx(b1) if b1 else "-")
        for col, b in (("mm1", b1), ("mmN", bn)):
            cells.append(f"{100 * r[col] / b:.0f}%" if b and isinstance(r.get(col), float) else "-")
        if with_mem:
            for lib in ("mm", "tb") if with_tb else ("mm",):
                v = r.get("mem_" + lib)
                cells.append(f"{v:.2f}x" if isinstance(v, float) else v or ("n/a" if lib == "tb" else "-"))
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    for key, num in marks.items():
        if isinstance(key, tuple):
            who = {"mm1": "mipmaker threads=1", "mmN": f"mipmaker threads={NTHREADS}", "tb": "tinybrain"}[key[2]]
            notes.append(f"{num}. {who} raised {key[3]}")
        elif with_tb or key in ("stride", "view", "median"):
            notes.append(f"{num}. {NOTES[key]}")
    return "\n".join(lines), notes


def report(rows, args, bw, elapsed):
    with_tb, with_mem = tb is not None, not args.no_memory
    tab, notes = table(rows, with_tb, with_mem)
    gb = lambda x: f"{x / 1e9:.1f} GB/s"
    size = "x".join(map(str, base_shape(args)[0]))
    runs_rule = ("more, up to 10x, while they add up to less than 0.1 s; fewer, at least 1, to keep a column "
                 "under 1.5 s" if args.quick else "more, up to 10x, while they add up to less than 0.25 s")
    rounds = ("the best such median of each column over "
              f"{args.rounds} rounds (each round measures the bandwidth, then every case in order), "
              if args.rounds > 1 else "")
    cmd = shlex.join(["python", "benchmarks/compare.py", *sys.argv[1:]])
    versions = f"numpy {np.__version__}, mipmaker {mm.__version__}, " + (
        f"tinybrain {_dist_version('tinybrain')}" if tb else "tinybrain not installed")
    head = [
        "# mipmaker vs tinybrain: throughput, bandwidth bound, memory",
        "",
        f"Generated by `{cmd}` on {datetime.date.today()} in {elapsed / 60:.1f} min.",
        "",
        f"- Machine: {util.cpu_model()}, {NTHREADS} usable cores, Python {sys.version.split()[0]}.",
        f"- Versions: {versions}; mipmaker kernels: the `{mm._core.isa()}` build "
        f"(this CPU runs {', '.join(mm._core.available_isas())}; see the isa section below).",
        f"- Bandwidth (measured at the start of each round; the best of the rounds): "
        f"read R = {gb(bw['R1'])} (best NumPy reduction, 1 thread), "
        f"{gb(bw['RN'])} ({NTHREADS} threads); fresh-allocation write W = {gb(bw['W1'])} (1 thread), "
        f"{gb(bw['WN'])} ({NTHREADS} threads).",
        f"- Random inputs: {size} (cropped to multiples of factor^mips), values as tinybrain's perf.py: "
        "u8 0..255, u16 0..65535, f32 [0,255), u32/u64 labels 1000..1254.",
        f"- Labels: {getattr(util, 'LABELS_DESC', 'not used')}.",
        "",
        f"Columns: megavoxels of input per second, median of {args.runs} timed calls after a warm-up call "
        f"({runs_rule}), {rounds}in one process on the same arrays; "
        f"mipmaker with `threads=1` and `threads={NTHREADS}`, tinybrain (single-threaded). "
        "Ratio = mipmaker / tinybrain. Bound = MVx/s if the input is read once at R and every returned level is "
        "written once at W (bytes read per input voxel / R + bytes written per input voxel / W); "
        f"% bound {NTHREADS}T uses the {NTHREADS}-thread R and W. Outputs small enough to be recycled from "
        "the allocator's heap skip the first-touch cost that W includes, so they can beat the bound (> 100%). "
        + ("Mem = peak resident memory added by one call (outputs included; mipmaker with all threads), "
           "measured in a child process after creating the input, relative to the input's size"
           + (" (with --quick, on 512x512x32 arrays and 128^3 labels)." if args.quick else ".")
           if with_mem else ""),
        "",
        "",
    ]
    text = "\n".join(head) + tab + "\n\n" + "\n".join(notes) + "\n"
    print(text)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        png = out.with_suffix(".png")
        labels, r1, rn = [], [], []
        for r in rows:
            if with_tb and isinstance(r.get("tb"), float) and not {"stride", "tbstride"} & set(r["case"].notes):
                labels.append(r["case"].name)
                r1.append(r["mm1"] / r["tb"] if isinstance(r.get("mm1"), float) else None)
                rn.append(r["mmN"] / r["tb"] if isinstance(r.get("mmN"), float) else None)
        if labels:
            util.bar_chart(png, labels, [("threads=1", (52, 101, 164), r1), (f"threads={NTHREADS}", (230, 145, 56), rn)],
                           "mipmaker / tinybrain 1.7.0 throughput", "ratio (log scale; > 1: mipmaker faster)")
            text += (f"\n![mipmaker / tinybrain throughput ratios]({png.name})\n\nThe chart leaves out the rows "
                     "where tinybrain returns views instead of computing (stride copy, 3x3x3 mode).\n")
        out.write_text(text + _kept_sections(out))
        log(f"wrote {out}" + (f" and {png}" if labels else ""))


def _kept_sections(path):
    """The other benchmarks' sections (``<!-- name:start -->`` .. ``<!-- name:end -->``) already in `path`."""
    import re

    if not path.exists():
        return ""
    blocks = re.finditer(r"<!-- (\w+):start -->.*?<!-- \1:end -->", path.read_text(), flags=re.S)
    return "".join("\n" + m.group(0) + "\n" for m in blocks)


def _dist_version(name):
    """The installed distribution's version (tinybrain's __version__ attribute is stale: 1.4.1)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1024x1024x32 arrays, 256^3 labels, 3 runs")
    p.add_argument("--labels", metavar="PATH", help="segmentation (.npy, .ckl or .ckl.gz); default: "
                   "../shared/data/connectomics.npy.ckl.gz, else a synthetic Voronoi partition")
    p.add_argument("--runs", type=int, help="timed runs per column (default 5, --quick 3)")
    p.add_argument("--rounds", type=int, help="passes over all cases, keeping each column's fastest median "
                   "(default 3, --quick 1): a slow spell of a shared host then costs one round of a row, not the row")
    p.add_argument("--only", metavar="SUBSTRING", help="only the cases whose name or section contains this")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--output", metavar="PATH", help="markdown report (the chart goes next to it as .png); "
                   "default docs/benchmarks.md, with --quick none")
    p.add_argument("--_mem-child", dest="mem_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mem_child:
        return mem_child(args.mem_child, args)
    args.runs = args.runs or (3 if args.quick else 5)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.rounds < 1 or args.runs < 1:
        p.error(f"--runs and --rounds must be at least 1, got {args.runs} and {args.rounds}")
    if args.output is None and not args.quick:
        args.output = str(util.REPO / "docs" / "benchmarks.md")
    cases = build_cases(args)
    if args.only:
        cases = [c for c in cases if args.only.lower() in (c.name + " " + c.section).lower()]
    if not cases:
        p.error(f"no case matches --only {args.only!r}")
    t0 = time.perf_counter()
    rows, bws = None, []
    for rnd in range(1, args.rounds + 1):
        log(f"round {rnd}/{args.rounds}: measuring bandwidth ({NTHREADS} threads) ...")
        bws.append(util.bandwidth((256 if args.quick else 1024) << 20, NTHREADS, reps=3))
        this = []
        for i, c in enumerate(cases, 1):
            t = time.perf_counter()
            this.append(run_case(c, args))
            r = this[-1]
            log(f"[{rnd}:{i}/{len(cases)}] {c.name}: mipmaker {fmt_mvx(r.get('mm1'))} / {fmt_mvx(r.get('mmN'))}, "
                f"tinybrain {fmt_mvx(r.get('tb')) if has_tb(c) else 'n/a'} MVx/s ({time.perf_counter() - t:.1f} s)")
        rows = this if rows is None else [merge_rounds(b, r) for b, r in zip(rows, this)]
    # The fastest round's bandwidths: the highest bounds, so the lowest % bound.
    bw = {k: max(b[k] for b in bws) for k in bws[0]}
    for r in rows:
        add_bounds(r, bw)
    _cache.clear()
    gc.collect()
    if not args.no_memory:
        for lib in ("mm", "tb") if tb is not None else ("mm",):
            sub = [c for c in cases if lib == "mm" or has_tb(c)]
            mem = measure_memory(lib, sub, args)
            for r in rows:
                if r["case"].name in mem:
                    r["mem_" + lib] = mem[r["case"].name]
    report(rows, args, bw, time.perf_counter() - t0)


if __name__ == "__main__":
    sys.exit(main())
