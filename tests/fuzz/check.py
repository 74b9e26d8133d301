"""Run one fuzz case against mipmaker and the NumPy reference (tests/reference.py).

`run_case(spec)` returns normally when mipmaker agrees with the reference
and keeps its promises, and raises AssertionError (with the spec) when it
does not: same values (float means within the rounding of a float sum), same
shape and dtype, output order following the input, the same error type where
the call is invalid, bit-identical results for any thread count, the input
and the memory around it unchanged, and nothing written outside `out=`.
"""

from __future__ import annotations

import math

import numpy as np

import mipmaker
from mipmaker import _core
from reference import (
    normalize_factors,
    ref_downsample,
    ref_pyramid,
    ref_tb_mode_2x2,
    ref_tb_mode_2x2x2,
)

from . import cases

TINYBRAIN_OPS = ("averaging", "segmentation", "striding", "min_pooling", "max_pooling")


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------


def assert_same(got, want, image, factors, method, rounds=1):
    """Exact equality, except float/complex means: a float sum's rounding.

    `rounds` is how many times a level's mean was rounded to the input type
    (non-exact pyramids round once per level).
    """
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if method != "mean" or image.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, want)
        return
    if image.dtype.kind == "c":
        # Part by part: allclose wants a whole complex entry exact once a part is inf.
        for part in ("real", "imag"):
            assert_same(getattr(got, part), getattr(want, part), getattr(image, part),
                        factors, method, rounds)
        return
    count = math.prod(min(f, max(n, 1)) for f, n in zip(factors, image.shape))
    finite = np.abs(image[np.isfinite(image)])
    scale = float(finite.max()) if finite.size else 0.0
    eps = float(np.finfo(image.dtype).eps)
    np.testing.assert_allclose(
        got, want, equal_nan=True, rtol=2 * rounds * eps + 1e-15,
        atol=4 * count * (scale * (np.finfo(np.float64).eps + (rounds - 1) * eps)))  # no overflow


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def _check_order(result, image):
    fortran = image.ndim > 1 and image.flags.f_contiguous and not image.flags.c_contiguous
    assert (result.flags.f_contiguous if fortran else result.flags.c_contiguous), (
        "output order does not follow the input", image.strides, result.strides)


def _tb_rule(x, rule, sparse):
    """tinybrain's 2x2 / 2x2x2 rule via the reference, for any dtype.

    The rules only compare voxels for equality (and, sparse, with all-zero
    bits), so bool and complex voxels are renamed to integer ids first.
    """
    fn = ref_tb_mode_2x2 if rule == 2 else ref_tb_mode_2x2x2
    if x.dtype.kind in "iuf":
        return fn(x, sparse)
    rows = np.ascontiguousarray(x).view(np.uint8).reshape(-1, x.itemsize)
    if rows.shape[0] == 0:
        return fn(np.zeros(x.shape, np.uint64), sparse).astype(x.dtype)
    table, ids = np.unique(rows, axis=0, return_inverse=True)
    ids = ids.reshape(-1) + 1
    ids[~rows.any(axis=1)] = 0  # all-zero bits stay 0: the sparse background
    table = np.concatenate([np.zeros((1, x.itemsize), np.uint8), table])
    got = fn(ids.astype(np.uint64).reshape(x.shape), sparse)
    return np.ascontiguousarray(table[got.astype(np.intp)]).view(x.dtype).reshape(got.shape)


# ---------------------------------------------------------------------------
# The operations: mipmaker's call and the reference's answer
# ---------------------------------------------------------------------------


def _call(spec, img, factors, threads, out=None):
    op, levels = spec["op"], spec.get("levels")
    if op == "downsample":
        return mipmaker.downsample(img, factors, method=spec["method"], sparse=spec["sparse"],
                                   out=out, threads=threads)
    if op == "pyramid":
        return mipmaker.pyramid(img, factors, levels, method=spec["method"], sparse=spec["sparse"],
                                exact=spec["exact"], threads=threads)
    if op == "averaging":
        return mipmaker.downsample_with_averaging(img, factor=factors, num_mips=levels,
                                                  sparse=spec["sparse"], threads=threads)
    if op == "segmentation":
        return mipmaker.downsample_segmentation(img, factor=factors, sparse=spec["sparse"],
                                                num_mips=levels, threads=threads)
    if op == "striding":
        return mipmaker.downsample_with_striding(img, factor=factors, num_mips=levels,
                                                 threads=threads)
    pool = mipmaker.downsample_with_min_pooling if op == "min_pooling" else \
        mipmaker.downsample_with_max_pooling
    return pool(img, factor=factors, num_mips=levels, threads=threads)


def _tinybrain_factors(factors, ndim):
    """tinybrain functions allow extra trailing entries of 1."""
    if len(factors) > ndim and all(f == 1 for f in factors[ndim:]):
        return factors[:ndim]
    return factors


def _reference(spec, x):
    """[(level, effective factors, rounds)] the call should give, or raise its error."""
    op, levels, factors = spec["op"], spec.get("levels"), spec["factors"]
    if op in TINYBRAIN_OPS:
        factors = _tinybrain_factors(factors, x.ndim)
    f = normalize_factors(x.ndim, factors)
    powers = [[fi**k for fi in f] for k in range(1, (levels or 0) + 1)]
    if op == "downsample":
        return [(ref_downsample(x, f, spec["method"], spec["sparse"]), f, 1)]
    if op == "pyramid":
        method, exact = spec["method"], spec["exact"]
        want = ref_pyramid(x, f, levels, method, spec["sparse"], exact=exact)
        return [(w, p, 1 if exact else k) for k, (w, p) in enumerate(zip(want, powers), 1)]
    if op == "averaging":
        rounding = "half_even" if x.dtype == bool else "trunc"
        want = ref_pyramid(x, f, levels, "mean", spec["sparse"], exact=True, rounding=rounding)
        return list(zip(want, powers, [1] * levels))
    if op in ("min_pooling", "max_pooling"):
        want = ref_pyramid(x, f, levels, op[:3], exact=True)
        return list(zip(want, powers, [1] * levels))
    out, source = [], x
    for p in powers:
        if op == "striding":
            source = source[tuple(slice(None, None, fi) for fi in f)]
        elif len(f) >= 2 and f[:2] == (2, 2) and all(fi == 1 for fi in f[2:]):
            source = _tb_rule(source, 2, spec["sparse"])
        elif len(f) >= 3 and f[:3] == (2, 2, 2) and all(fi == 1 for fi in f[3:]):
            source = _tb_rule(source, 3, spec["sparse"])
        else:
            source = ref_downsample(source, f, "mode", spec["sparse"])
        out.append((source, p, 1))
    return out


def _expected_error(spec, img, x):
    """The exception type the call must raise, or None (then the reference's levels)."""
    # In the order mipmaker checks: image, factors, method; then the reference
    # decides (it does not check arguments of calls that return no level).
    op, factors = spec["op"], spec["factors"]
    if not img.dtype.isnative:
        return TypeError, None
    align = min(img.itemsize, 8)  # the kernels' element types (complex64 as 8-byte bits)
    if img.size and (not img.flags.aligned or img.ctypes.data % align):
        return ValueError, None
    if len(factors) > x.ndim and (op not in TINYBRAIN_OPS or any(f != 1 for f in factors[x.ndim:])):
        return ValueError, None
    method = {"min_pooling": "min", "max_pooling": "max"}.get(op, spec.get("method"))
    if method == "stride" and spec["sparse"]:
        return ValueError, None
    if method in ("median", "min", "max") and x.dtype.kind == "c":
        return TypeError, None
    try:
        return None, _reference(spec, x)
    except (TypeError, ValueError) as error:
        return type(error), None


# ---------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------


def run_case(spec):
    """Check one spec (see cases.specs); AssertionError says what went wrong."""
    previous = _core.isa()
    if spec.get("isa", "best") != "best":
        assert _core.force_isa(spec["isa"]), spec["isa"]
    try:
        _run_case(spec)
    except AssertionError as error:
        raise AssertionError(f"{error}\nspec: {spec}") from None
    finally:
        _core.force_isa(previous)


def _run_case(spec):
    img, backing, project, x = cases.image(spec)
    before = backing.copy()
    error, want = _expected_error(spec, img, x)
    out = out_backing = out_before = out_mask = None
    if "out_layout" in spec and want is not None:
        out, out_backing, out_project = cases.out_buffer(spec, want[0][0].shape, x.dtype)
        out_before = out_backing.copy()
        out_mask = np.zeros(out_backing.shape, bool)
        out_project(out_mask)[...] = True
    threads = spec["threads"]
    try:
        got = _call(spec, img, spec["factors"], threads, out)
    except (TypeError, ValueError, MemoryError) as raised:
        assert error is not None and isinstance(raised, error), (
            f"raised {type(raised).__name__}: {raised}; expected "
            f"{error.__name__ if error else 'a result'}")
        got = None
    assert _bits(backing) == _bits(before), "the input (or memory around it) was modified"
    if got is None:
        return
    assert error is None, f"expected {error.__name__}, got a result"
    if spec["op"] == "downsample":
        assert out is None or got is out, "`out=` was not returned"
        got = [got]
    assert isinstance(got, list) and len(got) == len(want), (type(got), len(want))
    for level, (w, f, rounds) in zip(got, want):
        assert isinstance(level, np.ndarray)
        method = spec.get("method") or {"averaging": "mean", "segmentation": "mode"}.get(spec["op"])
        assert_same(level, w, x, f, method, rounds)
        if spec["op"] == "striding":
            assert level.size == 0 or np.may_share_memory(level, img), "striding must return views"
        elif out is None:
            assert not np.may_share_memory(level, backing), "output shares memory with the input"
            _check_order(level, img)
    if out is not None:
        assert _bits(out_backing[~out_mask]) == _bits(out_before[~out_mask]), "wrote outside `out`"
    if threads != 1 and spec["op"] != "striding":
        again = _call(spec, img, spec["factors"], 1)
        again = again if isinstance(again, list) else [again]
        for a, b in zip(got, again):
            assert _bits(a) == _bits(b), f"threads={threads} and threads=1 differ"
