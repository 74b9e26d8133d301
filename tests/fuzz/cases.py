"""Fuzz cases: a hypothesis strategy for case specs, and the arrays they describe.

A spec is a plain JSON-able dict (shape, dtype, value palette and seed,
memory layout, operation and its arguments), so that a failing or crashing
case can be printed, stored and replayed exactly (``run.py --replay``).
Hypothesis draws and shrinks the spec; the array contents come from a NumPy
generator seeded by the spec, which keeps drawing cheap.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

DTYPES = {
    "b": "bool", "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
    "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
    "f16": "float16", "f32": "float32", "f64": "float64",
    "c64": "complex64", "c128": "complex128",
}
METHODS = ("mean", "mode", "median", "min", "max", "stride")
OPS = ("downsample", "pyramid", "averaging", "segmentation", "striding", "min_pooling",
       "max_pooling")
PALETTES = ("small", "edge", "wide", "special")
# Bounds the reference's per-voxel Python loop, so a case takes milliseconds.
MAX_VOXELS = 2048
HUGE_FACTORS = (2**40, 2**62)


# ---------------------------------------------------------------------------
# Strategy
# ---------------------------------------------------------------------------


def _rare(draw, one_in):
    """True about once in `one_in` draws; shrinks to False."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


@st.composite
def shapes(draw):
    ndim = draw(st.integers(1, 5))
    # Extents 1..9, with 0 now and then (shrinks to 1, the simplest volume).
    shape = [draw(st.integers(0, 19).map(lambda e: 1 + e % 9 if e else 1)) for _ in range(ndim)]
    for axis in range(ndim):
        if _rare(draw, 25):
            shape[axis] = 0
    if _rare(draw, 8):
        shape[draw(st.integers(0, ndim - 1))] = draw(st.integers(10, 64))
    while math.prod(shape) > MAX_VOXELS:
        biggest = int(np.argmax(shape))
        shape[biggest] = (shape[biggest] + 1) // 2
    return shape


@st.composite
def layouts(draw, ndim, allow_foreign=True):
    """How the array sits in memory: storage order, steps, offsets, flags."""
    kind = "view"
    if allow_foreign and _rare(draw, 12):
        kind = draw(st.sampled_from(["broadcast", "unaligned"]))
    perm = list(range(ndim))
    order = draw(st.integers(0, 3))  # C, F, or a random storage order of the axes
    if order == 1:
        perm.reverse()
    elif order == 2:
        perm = draw(st.permutations(perm))
    steps = [draw(st.sampled_from([1, 1, 1, 2, 3, -1, -2])) for _ in range(ndim)]
    offsets = [draw(st.integers(0, 1)) for _ in range(ndim)]
    return {
        "kind": kind,
        "perm": perm,
        "steps": steps,
        "offsets": offsets,
        "readonly": draw(st.booleans()),
        "byteswap": allow_foreign and _rare(draw, 15),
        "byte_offset": draw(st.sampled_from([1, 2, 4, 8])) if kind == "unaligned" else 0,
    }


@st.composite
def factor_lists(draw, shape, op):
    """One factor per axis, 1..extent+3 (so often beyond the extent), rarely 2**40+.

    Sometimes shorter (missing axes are 1) or, for tinybrain functions, with
    extra trailing ones; rarely invalid (an extra entry that is not 1).
    """
    if op == "segmentation" and len(shape) >= 2 and draw(st.booleans()):
        rule = [2, 2, 2] if len(shape) >= 3 and draw(st.booleans()) else [2, 2]
        return rule + [1] * (len(shape) - len(rule))
    factors = []
    for n in shape:
        if _rare(draw, 20):
            factors.append(draw(st.sampled_from(HUGE_FACTORS)))
        else:
            factors.append(draw(st.integers(1, n + 3)))
    tail = draw(st.integers(0, 9))
    if tail == 1 and len(factors) > 1:
        factors = factors[:draw(st.integers(1, len(factors) - 1))]
    elif tail == 2:
        factors += [1] * draw(st.integers(1, 2))
    elif tail == 3 and _rare(draw, 4):
        factors += [2]
    return factors


@st.composite
def specs(draw, ops=OPS):
    shape = draw(shapes())
    op = draw(st.sampled_from(ops))
    dtype = draw(st.sampled_from(list(DTYPES)))
    spec = {
        "op": op,
        "shape": shape,
        "dtype": dtype,
        "palette": draw(st.sampled_from(PALETTES)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "layout": draw(layouts(len(shape))),
        "factors": draw(factor_lists(shape, op)),
        "threads": draw(st.integers(1, 3)),
        # The portable build as well as the best one for this CPU (when they differ).
        "isa": draw(st.sampled_from(["best", "scalar"])),
    }
    if op in ("downsample", "pyramid"):
        spec["method"] = draw(st.sampled_from(METHODS))
    if op in ("downsample", "pyramid", "averaging", "segmentation"):
        spec["sparse"] = draw(st.booleans())
    if op == "downsample" and _rare(draw, 4):
        spec["out_layout"] = draw(layouts(len(shape), allow_foreign=False))
    if op != "downsample":
        spec["levels"] = draw(st.integers(0, 4))
    if op == "pyramid":
        spec["exact"] = draw(st.booleans())
    return spec


# ---------------------------------------------------------------------------
# Arrays from a spec
# ---------------------------------------------------------------------------


def _float_values(rng, dtype, palette, size):
    finfo = np.finfo(dtype)
    if palette == "small":
        return rng.choice([-3.0, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0], size)
    if palette == "edge":
        # Large values of one sign only: cancelling huge terms would make a
        # float mean depend on the summation order, which is not a bug.
        return rng.choice([0.0, -0.0, 1.0, -1.0, float(finfo.smallest_subnormal),
                           -float(finfo.smallest_subnormal), float(finfo.max),
                           float(finfo.max) / 2, float(finfo.eps)], size)
    if palette == "wide":
        exponent = rng.integers(-3, 4 if finfo.bits <= 16 else 12, size)
        return rng.standard_normal(size) * 10.0 ** exponent
    return rng.choice([0.0, 0.0, -0.0, 1.0, 2.0, np.nan, np.inf, -np.inf], size)


def values(spec):
    """The logical contents of the case's image, a C-order native array."""
    dtype = np.dtype(DTYPES[spec["dtype"]])
    shape = tuple(spec["shape"])
    size = math.prod(shape)
    rng = np.random.default_rng(spec["seed"])
    palette = spec["palette"]
    if dtype.kind == "b":
        p = {"small": 0.5, "edge": 0.9, "wide": 0.5, "special": 0.1}[palette]
        return (rng.random(size) < p).reshape(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        if palette == "small":
            return rng.integers(max(lo, -3), min(hi, 3), shape, dtype=dtype, endpoint=True)
        if palette == "wide":
            return rng.integers(lo, hi, shape, dtype=dtype, endpoint=True)
        if palette == "edge":
            choices = sorted({lo, lo + 1, 0, 1, hi - 1, hi})
        else:  # mostly background, a few labels, as in sparse segmentations
            choices = [0, 0, 0, 0, 1, 2, hi]
        return rng.choice(np.array(choices, dtype=dtype), shape)
    part = np.dtype(dtype.char.lower()) if dtype.kind == "c" else dtype  # F -> f, D -> d
    flat = np.empty(size, np.complex128 if dtype.kind == "c" else np.float64)
    flat.real = _float_values(rng, part, palette, size)
    if dtype.kind == "c":
        flat.imag = _float_values(rng, part, palette, size)  # not 1j * x: 0 * inf is NaN
    with np.errstate(over="ignore", invalid="ignore"):
        return flat.astype(dtype).reshape(shape)


def _backed(x, layout, dtype=None):
    """A view of a larger backing array equal to `x`: (view, backing, project).

    ``project(a)`` applies the same indexing to any array shaped like the
    backing (a mask, or a copy), so callers can tell the bytes of the view
    from the bytes around it.
    """
    ndim = x.ndim
    perm, steps, offsets = layout["perm"], layout["steps"], layout["offsets"]
    storage_shape = [abs(steps[a]) * x.shape[a] + offsets[a] + 1 for a in perm]
    dtype = x.dtype if dtype is None else dtype
    backing = np.empty(storage_shape, dtype)
    # Random bytes around the view: a write outside it cannot go unnoticed.
    raw = backing.reshape(-1).view(np.uint8)
    raw[...] = np.random.default_rng(len(raw)).integers(0, 256, raw.size, dtype=np.uint8)

    def project(a):
        logical = np.transpose(a, np.argsort(perm))
        index = tuple(slice(o, o + abs(s) * n, abs(s)) for o, s, n in zip(offsets, steps, x.shape))
        flips = tuple(slice(None, None, -1 if s < 0 else 1) for s in steps)
        return logical[index][flips]

    view = project(backing)
    assert view.shape == x.shape and view.ndim == ndim
    with np.errstate(over="ignore", invalid="ignore"):
        view[...] = x
    return view, backing, project


def image(spec):
    """(image, backing, project, logical): the input array as the case lays it out.

    `logical` is a native C-order copy of what `image` holds; `backing` the
    memory that must come back unchanged.
    """
    x = values(spec)
    layout = spec["layout"]
    if layout["kind"] == "broadcast":
        # Zero strides: every index along the first non-empty axis reads one voxel.
        axis = next((a for a, n in enumerate(x.shape) if n > 1), 0)
        x = np.ascontiguousarray(np.broadcast_to(x.take([0], axis=axis) if x.size else x, x.shape))
        base = x.take([0], axis=axis).copy() if x.size else x.copy()
        view = np.broadcast_to(base, x.shape)
        return view, base, None, x
    if layout["kind"] == "unaligned":
        # A few bytes past an aligned address: legal for NumPy (as from
        # np.frombuffer with an offset), undefined behaviour for C++ pointers.
        order = "F" if layout["perm"] == list(range(x.ndim))[::-1] else "C"
        offset = layout["byte_offset"]
        buf = np.zeros(x.nbytes + offset, np.uint8)
        view = np.ndarray(x.shape, x.dtype, buffer=buf, offset=offset, order=order)
        view[...] = x
        if layout["readonly"]:
            view.setflags(write=False)
        return view, buf, None, x
    dtype = x.dtype.newbyteorder(">" if x.dtype.isnative and np.little_endian else "<") \
        if layout["byteswap"] else x.dtype
    view, backing, project = _backed(x, layout, dtype)
    if layout["readonly"]:
        view.setflags(write=False)
    return view, backing, project, x


def out_buffer(spec, shape, dtype):
    """A writeable `out=` array of `shape`, laid out as ``spec["out_layout"]``."""
    return _backed(np.zeros(shape, dtype), spec["out_layout"])
