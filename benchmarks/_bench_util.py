"""Helpers for the benchmark scripts: inputs, bandwidth, peak memory, chart, report sections.

Kept apart so that compare.py reads as the list of cases and the report.
"""

from __future__ import annotations

import gzip
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = REPO.parent / "shared" / "data" / "connectomics.npy.ckl.gz"


# --------------------------------------------------------------------- inputs
def random_volume(shape, dtype, order, lo, hi, seed=0):
    """Uniform random values in [lo, hi), generated slab by slab along z.

    The values do not depend on `order`, and the peak memory of the
    generation is the array plus one slab (so a child process's baseline
    is the input itself).
    """
    dtype = np.dtype(dtype)
    out = np.empty(shape, dtype, order=order)
    rng = np.random.default_rng(seed)
    step = max(1, (1 << 24) // max(1, int(np.prod(shape[:2]))))
    for z in range(0, shape[2], step):
        sub = (*shape[:2], min(step, shape[2] - z))
        if dtype.kind == "f":
            out[:, :, z : z + sub[2]] = rng.random(sub, dtype=dtype) * (hi - lo) + lo
        else:
            out[:, :, z : z + sub[2]] = rng.integers(lo, hi, sub, dtype=dtype)
    return out


def voronoi_labels(n, cells=16, seed=0):
    """An n^3 uint32 Fortran-order 3D Voronoi partition with cells^3 labels.

    One seed per cell of a cells^3 grid, jittered within the cell. A voxel
    takes the label of the nearest of the 8 seeds around it (the cells whose
    centres bracket it on each axis), which is the exact Voronoi cell except
    for rare voxels near strongly jittered seeds. Computed one layer of
    cell-sized blocks at a time with broadcasting: ~3 s for 512^3.
    """
    g = -(-n // cells)
    rng = np.random.default_rng(seed)
    idx = np.indices((cells,) * 3).transpose(1, 2, 3, 0)  # idx[cx, cy, cz] = (cx, cy, cz)
    pos = np.rint((idx + 0.5) * g + rng.uniform(-0.4 * g, 0.4 * g, idx.shape)).astype(np.int64)
    lab = rng.permutation(cells**3).astype(np.uint32).reshape((cells,) * 3) * 7 + 1000  # sparse, large ids
    nb, h = cells + 1, g // 2
    # key = squared distance * 8 + candidate number: one running minimum finds the nearest
    dt = np.uint16 if (3 * (1.4 * g + 1) ** 2) * 8 + 7 < 65535 else np.uint32
    out = np.empty((n, n, n), np.uint32, order="F")
    k = np.arange(nb)
    coord = k[:, None] * g - h + np.arange(g)[None, :]  # (nb, g): coordinate of block k, offset i
    ranges = [(max(0, kk * g - h), min(n, kk * g + g - h)) for kk in range(nb)]
    for kz, (z0, z1) in enumerate(ranges):
        for ky, (y0, y1) in enumerate(ranges):  # one row of blocks (all x) at a time: stays in cache
            if z0 >= z1 or y0 >= y1:
                continue
            best = np.full((nb, g, y1 - y0, z1 - z0), np.iinfo(dt).max, dt)
            tmp = np.empty_like(best)
            labs = np.empty((8, nb), np.uint32)
            for j, (a, b, c) in enumerate(np.ndindex(2, 2, 2)):
                cx = np.clip(k - 1 + a, 0, cells - 1)
                cy, cz = min(max(ky - 1 + b, 0), cells - 1), min(max(kz - 1 + c, 0), cells - 1)
                s = pos[cx, cy, cz]  # (nb, 3): the seed of candidate j for each x block
                labs[j] = lab[cx, cy, cz]
                dx = (coord - s[:, 0, None]) ** 2  # (nb, g)
                dy = (np.arange(y0, y1)[None, :] - s[:, 1, None]) ** 2
                dz = (np.arange(z0, z1)[None, :] - s[:, 2, None]) ** 2
                dxy = ((dx[:, :, None] + dy[:, None, :]) * 8 + j).astype(dt)[..., None]
                np.add(dxy, (dz * 8).astype(dt)[:, None, None, :], out=tmp)
                np.minimum(best, tmp, out=best)
            np.bitwise_and(best, 7, out=best)
            res = labs[best, k[:, None, None, None]]
            out[:, y0:y1, z0:z1] = res.reshape(nb * g, y1 - y0, z1 - z0)[h : h + n]
    return out


def load_labels(path, side=None):
    """(labels as uint64, description). `side` crops each axis (quick mode).

    path None: the shared connectomics volume, or a synthetic Voronoi
    partition when the file or crackle-codec is missing. An explicit path
    (.npy, .ckl, .ckl.gz) must load.
    """
    explicit = path is not None
    p = Path(path) if explicit else DEFAULT_LABELS
    try:
        if p.suffix == ".npy":
            arr = np.load(p)
        else:
            import crackle

            raw = p.read_bytes()
            arr = crackle.decompress(gzip.decompress(raw) if p.suffix == ".gz" else raw)
        desc = f"`{p.name}`"
    except Exception as exc:  # missing file or codec
        if explicit:
            raise
        n = side or 512
        arr, desc = voronoi_labels(n), f"synthetic Voronoi partition ({16**3} labels; {type(exc).__name__}: {exc})"
    src = f"{'x'.join(map(str, arr.shape))} {arr.dtype} {'F' if arr.flags.f_contiguous else 'C'}-order"
    if side is not None and any(s > side for s in arr.shape[:3]):
        arr = arr[:side, :side, :side]
        arr = np.asfortranarray(arr) if arr.flags.f_contiguous or not arr.flags.c_contiguous else np.ascontiguousarray(arr)
        src += f", cropped to {'x'.join(map(str, arr.shape))}"
    if arr.dtype != np.uint64:
        src += " widened to uint64"
        arr = arr.astype(np.uint64, order="K")
    return arr, f"{desc} ({src})"


# ----------------------------------------------------------------- bandwidth
def bandwidth(nbytes, threads, reps=3):
    """Best read (NumPy reductions) and first-touch write bandwidth, bytes/s.

    Returns {"R1", "W1", "RN", "WN"}: 1 thread, and `threads` threads
    (chunks in a thread pool; NumPy releases the GIL in both).
    """
    pool = ThreadPoolExecutor(threads)
    a = np.empty(nbytes, np.uint8)
    a.fill(1)
    reducers = [lambda x: x.max(), lambda x: x.view(np.uint64).max(), lambda x: np.bitwise_or.reduce(x.view(np.uint64))]

    def best(fn):
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return nbytes / min(ts)

    r1 = max(best(lambda f=f: f(a)) for f in reducers)
    chunks = [c for c in np.array_split(a, threads * 8) if c.size % 8 == 0] if threads > 1 else [a]
    rn = max(best(lambda f=f: list(pool.map(f, chunks))) for f in reducers) if len(chunks) == threads * 8 else r1
    del a, chunks

    def fresh_fill(n_threads):
        b = np.empty(nbytes, np.uint8)
        if n_threads == 1:
            b.fill(1)
        else:
            list(pool.map(lambda c: c.fill(1), np.array_split(b, n_threads * 8)))

    w1 = best(lambda: fresh_fill(1))
    wn = best(lambda: fresh_fill(threads)) if threads > 1 else w1
    pool.shutdown()
    return {"R1": r1, "W1": w1, "RN": max(r1, rn), "WN": max(w1, wn)}


def bound_mvx(itemsize, written_per_voxel, read_bw, write_bw):
    """Megavoxels/s of input when reading it once and writing the outputs once."""
    return 1e-6 / (itemsize / read_bw + written_per_voxel / write_bw)


# -------------------------------------------------------------- peak memory
def _status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak():
    """Reset this process's peak RSS to its current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status("VmHWM") is not None
    except OSError:
        return False


def peak_rss():
    """Peak resident bytes of this process (VmHWM, else ru_maxrss)."""
    hwm = _status("VmHWM") if os.path.exists("/proc/self/status") else None
    if hwm is None:
        import resource

        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)
    return hwm


# ---------------------------------------------------------------- machine
def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_time(fn, runs, min_total=0.0, max_total=float("inf")):
    """(median seconds of timed calls after one warm-up, bytes of the outputs).

    `runs` timed calls, raised (up to 10x) until they add up to `min_total`
    seconds for fast calls, lowered (down to 1) to fit `max_total` for slow
    ones; the warm-up call's time decides.
    """
    t = time.perf_counter()
    first = fn()
    warm = time.perf_counter() - t
    first = [first] if isinstance(first, np.ndarray) else first
    out_bytes = sum(x.nbytes for x in first)
    del first
    n = runs
    if warm * n < min_total:
        n = min(10 * runs, int(np.ceil(min_total / max(warm, 1e-9))))
    if warm * n > max_total:
        n = max(1, int(max_total / warm))
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        r = fn()
        ts.append(time.perf_counter() - t)
        del r
    return statistics.median(ts), out_bytes


# ------------------------------------------------------------------- chart
def bar_chart(path, labels, series, title, xlabel):
    """Horizontal log-scale bar chart. series: [(name, colour, [value or None])]."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _bar_chart_pillow(path, labels, series, title, xlabel)
    n, k = len(labels), len(series)
    fig, ax = plt.subplots(figsize=(10, 0.32 * n * k + 1.5))
    for j, (name, colour, vals) in enumerate(series):
        ys = [i * (k + 0.6) + j for i in range(n)]
        rgb = tuple(c / 255 for c in colour)  # matplotlib takes 0..1 (3.11 rejects 0..255)
        ax.barh(ys, [(v or 1) - 1 for v in vals], left=1, color=rgb, label=name, height=0.9)
    ax.set_yticks([i * (k + 0.6) + (k - 1) / 2 for i in range(n)], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _bar_chart_pillow(path, labels, series, title, xlabel):
    from PIL import Image, ImageDraw, ImageFont

    def font(size):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            return ImageFont.load_default()

    f, fs = font(13), font(16)
    k, bar, gap = len(series), 11, 8
    left, right, top = 330, 40, 60
    plot_w, width = 620, 330 + 620 + 40
    height = top + len(labels) * (k * bar + gap) + 60
    vals = [v for _, _, vs in series for v in vs if v]
    lo = 10 ** np.floor(np.log10(min(vals + [0.5])))
    hi = 10 ** np.ceil(np.log10(max(vals + [2.0])))
    x = lambda v: left + plot_w * (np.log10(v) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((left, 12), title, fill="black", font=fs)
    bottom = height - 50
    dec = lo
    while dec <= hi * 1.0001:
        for m in range(1, 10):
            v = dec * m
            if lo <= v <= hi:
                d.line([(x(v), top - 4), (x(v), bottom)], fill=(200, 200, 200) if m == 1 else (235, 235, 235))
        d.text((x(dec) - 10, bottom + 4), f"{dec:g}", fill="black", font=f)
        dec *= 10
    d.text((left + plot_w // 2 - 60, bottom + 24), xlabel, fill="black", font=f)
    for i, lab in enumerate(labels):
        y0 = top + i * (k * bar + gap)
        d.text((8, y0 + (k * bar) / 2 - 8), lab[:48], fill="black", font=f)
        for j, (_, colour, vs) in enumerate(series):
            if vs[i]:
                x0, x1 = sorted((x(1), x(vs[i])))  # bars grow from 1 (log scale)
                d.rectangle([x0, y0 + j * bar, max(x0 + 1, x1), y0 + (j + 1) * bar - 2], fill=colour)
    d.line([(x(1), top - 4), (x(1), bottom)], fill="black", width=2)
    for j, (name, colour, _) in enumerate(series):
        d.rectangle([width - 260, 12 + 18 * j, width - 248, 24 + 18 * j], fill=colour)
        d.text((width - 242, 10 + 18 * j), name, fill="black", font=f)
    img.save(path)


def replace_section(path, name, body):
    """Put `body` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in `path` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{body}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
