"""Tests for the tinybrain-compatible API (``mipmaker.downsample_with_*``, ``downsample_segmentation``).

Three kinds of check:

* oracle comparisons with tinybrain 1.7.0, only where tinybrain is correct (even shapes for
  multi-mip averaging, Fortran order and one channel for 2x2x2 mode, exact dtype ranges, ...);
* literal cases for every tie, rounding and partial-block rule tinybrain users rely on;
* one ``test_fixed_7_*`` test per tinybrain bug we fix, with the correct answer worked out by hand
  or by the small independent references below.

Axis convention as in tinybrain: ``img[x, y, z, channel]``. In a 2x2 block a=(x, y), b=(x, y+1),
c=(x+1, y), d=(x+1, y+1) (the numpy sections ``[0::2, 0::2]``, ``[0::2, 1::2]``, ...).
"""
import itertools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mipmaker

try:
    import tinybrain as tb
    from tinybrain.downsample import downsample_with_min_pooling as tb_min_pooling
except ImportError:  # the literal and bug tests still run
    tb = None
needs_tb = pytest.mark.skipif(tb is None, reason="tinybrain 1.7.0 is the oracle")

INTS = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]
FLOATS = [np.float16, np.float32, np.float64]
NAMES = ["downsample_with_averaging", "downsample_segmentation", "downsample_with_striding",
         "downsample_with_min_pooling", "downsample_with_max_pooling"]
FUNCS = [getattr(mipmaker, name, None) for name in NAMES]
FN_IDS = ["avg", "seg", "stride", "min", "max"]
SEEDS = st.integers(0, 2**32 - 1)


def hyp(n):
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def dt_id(dtype):
    dtype = np.dtype(dtype)
    return "bool" if dtype == bool else f"{dtype.kind}{dtype.itemsize * 8}"


def oracle(fn, img, *args, **kwargs):
    """Calls tinybrain on a copy (its countless paths add 1 in place) with its warnings muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(img.copy(order="K"), *args, **kwargs)


def assert_mips(got, want):
    assert isinstance(got, list)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want), start=1):
        assert isinstance(g, np.ndarray), f"mip {k}"
        w = w if isinstance(w, np.ndarray) else np.asarray(w, dtype=g.dtype)  # literals take g's dtype
        assert (g.dtype, g.shape) == (w.dtype, w.shape), f"mip {k}"
        np.testing.assert_array_equal(g, w, err_msg=f"mip {k}")


def assert_layout(img, mips):
    """Fortran-contiguous in (and not C-contiguous), Fortran out; otherwise C out."""
    fortran = img.ndim >= 2 and img.flags.f_contiguous and not img.flags.c_contiguous
    for m in mips:
        assert m.flags.f_contiguous if fortran else m.flags.c_contiguous


def labels(seed, shape, dtype, k=4, extreme=False, order="C"):
    """Labels from a palette of k values (few values -> many ties); extreme uses dtype limits."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    palette = [0, 1, 2, 3]
    if extreme:
        palette = [0, 1, info.max, info.min if info.min < 0 else info.max - 1]
    return np.asarray(np.array(palette, dtype=dtype)[rng.integers(0, k, shape)], order=order)


def values(seed, shape, dtype, sparse=False, order="C", limit=None):
    """Full-range integers (or |v| <= limit); floats are multiples of 1/8 so sums are exact."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == bool:
        img = rng.integers(0, 2, shape).astype(bool)
    elif dtype.kind == "f":
        img = (rng.integers(-1000, 1000, shape) / 8).astype(dtype)
    else:
        info = np.iinfo(dtype)
        lo, hi = info.min, info.max
        if limit is not None:
            lo, hi = max(lo, -limit), min(hi, limit)
        img = rng.integers(lo, hi, shape, dtype=dtype, endpoint=True)
    if sparse:
        img[rng.random(shape) < 0.5] = 0
    return np.asarray(img, order=order)


def _blocks(img, factor):
    factor = tuple(factor) + (1,) * (img.ndim - len(factor))
    oshape = tuple(-(-s // f) for s, f in zip(img.shape, factor))
    for idx in np.ndindex(*oshape):
        yield oshape, idx, img[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factor))].ravel()


def mean_ref(img, factor, sparse=False):
    """Truncated exact mean of the voxels present in each block (Python ints, no overflow)."""
    out = None
    for oshape, idx, blk in _blocks(img, factor):
        out = np.zeros(oshape, img.dtype) if out is None else out
        if sparse:
            blk = blk[blk != 0]
        if blk.size == 0:
            continue
        if img.dtype == bool:
            out[idx] = 2 * int(blk.sum()) > blk.size
        elif img.dtype.kind == "f":
            out[idx] = blk.astype(np.float64).sum() / blk.size
        else:
            total = sum(blk.tolist())
            out[idx] = abs(total) // blk.size * (1 if total >= 0 else -1)
    return out


def mode_ref(img, factor, sparse=False):
    """True mode of each block, ties to the smallest value; sparse ignores zeros unless all zero."""
    out = None
    for oshape, idx, blk in _blocks(img, factor):
        out = np.zeros(oshape, img.dtype) if out is None else out
        if sparse and blk.any():
            blk = blk[blk != 0]
        vals, counts = np.unique(blk, return_counts=True)
        out[idx] = vals[np.argmax(counts)]
    return out


def pool_ref(img, factor, fn):
    out = None
    for oshape, idx, blk in _blocks(img, factor):
        out = np.zeros(oshape, img.dtype) if out is None else out
        out[idx] = fn(blk)
    return out


def countless_if(a, b, c, d):  # tinybrain's 2x2 rule (symmetric in b and c)
    return a if a in (b, c) else b if b == c else d


def stippled(a, b, c, d):  # tinybrain's stippled_countless2d; b is the y neighbour, c the x one
    if a != 0 and a in (b, c):
        return a
    if b != 0 and b == c:
        return b
    return d if d != 0 else (a or b or c)


def count_2x2x2(v, sparse=False):  # tinybrain's counting rule, v in scan order t = x + 2y + 4z
    best, best_count = 0, 0
    for t in range(8):
        if sparse and v[t] == 0:
            continue
        count = sum(u == v[t] for u in v)
        if count > best_count:
            best, best_count = v[t], count
    return best


def block_2x2(a, b, c, d, dtype=np.uint8):
    return np.array([[a, b], [c, d]], dtype)


def block_2x2x2(vals, dtype=np.uint8):
    return np.asfortranarray(np.array(vals, dtype).reshape((2, 2, 2), order="F"))  # [x,y,z]=v[t]


# ---------------------------------------------------------------------------------------------
# Oracle comparisons with tinybrain 1.7.0 (only in its correct domain)

SEG2_SPELLINGS = {2: [(2, 2), [2, 2], (2, 2, 1)], 3: [(2, 2), (2, 2, 1), np.array([2, 2, 1])],
                  4: [(2, 2), (2, 2, 1, 1), (2.0, 2.0, 1.0)]}


@needs_tb
@hyp(150)
@given(seed=SEEDS, dtype=st.sampled_from(INTS), ndim=st.sampled_from([2, 3, 4]),
       shape=st.tuples(st.integers(1, 33), st.integers(1, 33), st.integers(1, 3), st.integers(1, 3)),
       order=st.sampled_from("CF"), num_mips=st.integers(1, 4), sparse=st.booleans(),
       k=st.integers(2, 4), extreme=st.booleans(), spelling=st.integers(0, 2))
def test_segmentation_2x2_matches_tinybrain(seed, dtype, ndim, shape, order, num_mips, sparse, k,
                                             extreme, spelling):
    img = labels(seed, shape[:ndim], dtype, k, extreme, order)
    got = mipmaker.downsample_segmentation(img, SEG2_SPELLINGS[ndim][spelling], sparse=sparse,
                                           num_mips=num_mips)
    # tinybrain strides 2-D sparse input and crashes on sparse (2, 2, 1, 1): call it on 3-D views
    # with (2, 2, 1), where it runs "countless if" (C++) or the numpy stippled countless.
    want = oracle(tb.downsample_segmentation, img[:, :, np.newaxis] if ndim == 2 else img,
                  (2, 2, 1), sparse=sparse, num_mips=num_mips)
    assert_mips(got, [w[:, :, 0] for w in want] if ndim == 2 else want)
    assert_layout(img, got)


@needs_tb
@hyp(150)
@given(seed=SEEDS, dtype=st.sampled_from(INTS), four_d=st.booleans(),
       shape=st.tuples(st.integers(1, 33), st.integers(1, 33), st.integers(1, 17)),
       num_mips=st.integers(1, 4), sparse=st.booleans(), k=st.integers(2, 4), extreme=st.booleans())
def test_segmentation_2x2x2_matches_tinybrain(seed, dtype, four_d, shape, num_mips, sparse, k, extreme):
    shape = shape + (1,) * four_d
    img = labels(seed, shape, dtype, k, extreme, order="F")  # tinybrain is only right on F order
    want = oracle(tb.downsample_segmentation, img, (2, 2, 2), sparse=sparse, num_mips=num_mips)
    factor = (2, 2, 2, 1) if four_d else (2, 2, 2)
    got = mipmaker.downsample_segmentation(img, factor, sparse=sparse, num_mips=num_mips)
    assert_mips(got, want)
    assert_layout(img, got)
    got_c = mipmaker.downsample_segmentation(np.ascontiguousarray(img), factor, sparse=sparse,
                                             num_mips=num_mips)
    assert_mips(got_c, want)


@needs_tb
@hyp(100)
@given(seed=SEEDS, dtype=st.sampled_from([np.uint8, np.uint16, np.int8, np.int16]),
       ndim=st.sampled_from([2, 3, 4]), num_mips=st.integers(1, 4),
       mult=st.tuples(st.integers(1, 2), st.integers(1, 2)), rest=st.tuples(st.integers(1, 3), st.integers(1, 2)),
       sparse=st.booleans(), order=st.sampled_from("CF"))
def test_averaging_2x2_multi_mip_matches_tinybrain(seed, dtype, ndim, num_mips, mult, rest, sparse, order):
    # tinybrain's 16/32-bit accumulators are exact through mip 4 on shapes divisible by 2**num_mips
    shape = (mult[0] * 2**num_mips, mult[1] * 2**num_mips) + rest
    img = values(seed, shape[:ndim], dtype, sparse, order)
    factor = (2, 2, 1, 1)[:max(ndim, 2)]
    want = oracle(tb.downsample_with_averaging, img, factor, num_mips=num_mips, sparse=sparse)
    got = mipmaker.downsample_with_averaging(img, factor, num_mips=num_mips, sparse=sparse)
    assert_mips(got, want)
    assert_layout(img, got)


@needs_tb
@pytest.mark.parametrize("dtype, num_mips, sparse", [
    (np.uint8, 5, False), (np.uint8, 5, True), (np.uint16, 5, False), (np.uint16, 5, True),
    (np.int8, 3, False), (np.int16, 1, False)], ids=["u8", "u8-sparse", "u16", "u16-sparse", "i8", "i16"])
def test_averaging_2x2x2_multi_mip_matches_tinybrain(dtype, num_mips, sparse):
    img = values(1, (32, 32, 32), dtype, sparse, order="F")
    want = oracle(tb.downsample_with_averaging, img, (2, 2, 2), num_mips=num_mips, sparse=sparse)
    assert_mips(mipmaker.downsample_with_averaging(img, (2, 2, 2), num_mips=num_mips, sparse=sparse), want)


@needs_tb
@pytest.mark.parametrize("factor", [(2, 2, 1), (2, 2, 2)], ids=["2x2", "2x2x2"])
@pytest.mark.parametrize("dtype", INTS + [np.float32, np.float64], ids=dt_id)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_averaging_single_mip_matches_tinybrain(factor, dtype, sparse):
    if factor == (2, 2, 2) and (np.dtype(dtype) in (np.int32, np.int64)
                                or sparse and np.dtype(dtype) not in (np.uint8, np.uint16)):
        pytest.skip("tinybrain: TypeError for i32/i64, ValueError for sparse outside u8/u16")
    for seed, shape in enumerate([(8, 6, 4), (2, 2, 2), (16, 10, 6, 2)]):
        img = values(seed, shape, dtype, sparse, order="CF"[seed % 2], limit=2**40)  # no 64-bit sum overflow
        want = oracle(tb.downsample_with_averaging, img, factor, sparse=sparse)
        assert_mips(mipmaker.downsample_with_averaging(img, factor, sparse=sparse), want)


@needs_tb
@pytest.mark.parametrize("factor", [(3, 3, 1), (4, 4, 1), (3, 2), (2, 3, 1), (3, 3, 3), (4, 4, 2)],
                         ids=["331", "441", "32", "231", "333", "442"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=dt_id)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_averaging_numpy_path_matches_tinybrain(factor, dtype, sparse):
    # tinybrain sums in float32 here, which is exact for u8/u16 and a single mip, odd shapes included
    for seed, (shape, order) in enumerate([((11, 9, 5), "C"), ((12, 12, 4), "F"), ((5, 7, 3), "F")]):
        img = values(seed, shape, dtype, sparse, order)
        want = oracle(tb.downsample_with_averaging, img, factor, sparse=sparse)
        got = mipmaker.downsample_with_averaging(img, factor, sparse=sparse)
        assert_mips(got, want)
        assert_layout(img, got)


POOL_FACTORS = [(2, 2), (2, 2, 1), (2, 2, 2), (3, 3, 1), (2, 1, 2), (1, 3), (4, 2)]


@needs_tb
@hyp(100)
@given(seed=SEEDS, dtype=st.sampled_from(INTS + [np.float32, np.float64]),
       factor=st.sampled_from(POOL_FACTORS), num_mips=st.integers(1, 3),
       mult=st.tuples(*[st.integers(1, 2)] * 3), order=st.sampled_from("CF"), use_max=st.booleans())
def test_min_max_pooling_matches_tinybrain_on_divisible_shapes(seed, dtype, factor, num_mips, mult,
                                                               order, use_max):
    f = factor + (1,) * (3 - len(factor))
    shape = tuple(m * fi**num_mips if fi > 1 else m + 1 for m, fi in zip(mult, f))
    img = values(seed, shape, dtype, order=order)
    name = "downsample_with_max_pooling" if use_max else "downsample_with_min_pooling"
    want = oracle(tb.downsample_with_max_pooling if use_max else tb_min_pooling, img, factor, num_mips=num_mips)
    got = getattr(mipmaker, name)(img, factor, num_mips=num_mips)
    assert_mips(got, want)
    assert_layout(img, got)


@needs_tb
@hyp(100)
@given(seed=SEEDS, shape=st.lists(st.integers(1, 20), min_size=1, max_size=4),
       factor=st.lists(st.integers(1, 4), min_size=1, max_size=4), num_mips=st.integers(1, 3),
       order=st.sampled_from("CF"))
def test_striding_matches_tinybrain_and_returns_views(seed, shape, factor, num_mips, order):
    factor = factor[:len(shape)]
    if all(f == 1 for f in factor):
        factor[0] = 2  # tinybrain returns [] for all-ones factors; tested separately
    img = values(seed, tuple(shape), np.int32, order=order)
    want = oracle(tb.downsample_with_striding, img, factor, num_mips=num_mips)
    got = mipmaker.downsample_with_striding(img, factor, num_mips=num_mips)
    assert_mips(got, want)
    assert all(np.shares_memory(m, img) for m in got)


# ---------------------------------------------------------------------------------------------
# Other behaviour decided by us, against the independent references above

OTHER_SEG_FACTORS = [(4, 4, 1), (3, 3, 1), (1, 2, 2), (2, 1, 2), (3, 2, 1), (4, 4, 4), (2, 2, 4),
                     (2, 1), (1, 3), (4, 4), (3, 3, 3)]


@hyp(60)
@given(seed=SEEDS, dtype=st.sampled_from(INTS), factor=st.sampled_from(OTHER_SEG_FACTORS),
       shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 9)),
       num_mips=st.integers(1, 3), sparse=st.booleans(), k=st.integers(2, 4), extreme=st.booleans(),
       order=st.sampled_from("CF"))
def test_segmentation_other_factors_are_true_mode_per_mip(seed, dtype, factor, shape, num_mips,
                                                          sparse, k, extreme, order):
    img = labels(seed, shape[:max(len(factor), 2)], dtype, k, extreme, order)
    got = mipmaker.downsample_segmentation(img, factor, sparse=sparse, num_mips=num_mips)
    want, prev = [], img
    for _ in range(num_mips):  # recursive, as in tinybrain: mip k from mip k-1
        prev = mode_ref(prev, factor, sparse)
        want.append(prev)
    assert_mips(got, want)
    assert_layout(img, got)


@hyp(100)
@given(seed=SEEDS, dtype=st.sampled_from(INTS + FLOATS + [np.bool_]),
       factor=st.sampled_from([(2, 2), (2, 2, 1), (2, 2, 2), (3, 3, 1), (3, 2), (1, 2, 3), (2, 1)]),
       shape=st.tuples(st.integers(1, 11), st.integers(1, 11), st.integers(1, 7)),
       num_mips=st.integers(1, 3), sparse=st.booleans(), order=st.sampled_from("CF"))
def test_averaging_every_mip_is_the_exact_truncated_block_mean(seed, dtype, factor, shape, num_mips,
                                                               sparse, order):
    img = values(seed, shape[:max(len(factor), 2)], dtype, sparse, order)
    got = mipmaker.downsample_with_averaging(img, factor, num_mips=num_mips, sparse=sparse)
    f = np.array(factor)
    assert_mips(got, [mean_ref(img, tuple(f**k), sparse) for k in range(1, num_mips + 1)])
    assert_layout(img, got)


@hyp(60)
@given(seed=SEEDS, dtype=st.sampled_from(INTS + FLOATS), factor=st.sampled_from(POOL_FACTORS),
       shape=st.tuples(st.integers(1, 13), st.integers(1, 13), st.integers(1, 5)),
       num_mips=st.integers(1, 3), nan=st.booleans())
def test_min_max_pooling_ragged_shapes_and_nan(seed, dtype, factor, shape, num_mips, nan):
    img = values(seed, shape[:max(len(factor), 2)], dtype, order="F")
    if nan and img.dtype.kind == "f":
        img[np.random.default_rng(seed).random(img.shape) < 0.6] = np.nan
    for name, fn in [("downsample_with_min_pooling", np.nanmin), ("downsample_with_max_pooling", np.nanmax)]:
        want, prev = [], img
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks -> NaN
            for _ in range(num_mips):
                prev = pool_ref(prev, factor, fn)
                want.append(prev)
        assert_mips(getattr(mipmaker, name)(img, factor, num_mips=num_mips), want)


def test_striding_all_ones_factor_gives_views_of_the_input():
    img = np.arange(24).reshape(2, 3, 4)
    got = mipmaker.downsample_with_striding(img, (1, 1, 1), num_mips=3)
    assert_mips(got, [img] * 3)
    assert all(np.shares_memory(m, img) for m in got)


@pytest.mark.parametrize("fn", FUNCS, ids=FN_IDS)
def test_num_mips_zero_returns_empty_list(fn):
    assert fn(np.ones((4, 4), np.uint8), (2, 2), num_mips=0) == []


# ---------------------------------------------------------------------------------------------
# Literal tie, rounding and partial-block rules (behavior notes sections 2.1-2.7)

@pytest.mark.parametrize("abcd, want", [
    ((1, 2, 3, 4), 4), ((1, 1, 2, 2), 1), ((1, 2, 1, 2), 1), ((1, 2, 2, 1), 2), ((1, 2, 3, 3), 3),
    ((1, 2, 3, 2), 2), ((1, 2, 3, 1), 1), ((2, 1, 1, 1), 1)], ids=lambda v: "".join(map(str, v)) if isinstance(v, tuple) else None)
@pytest.mark.parametrize("order", "CF")
def test_segmentation_2x2_tie_table(abcd, want, order):
    img = np.asarray(block_2x2(*abcd), order=order)
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2)), [[[want]]])
    assert_mips(mipmaker.downsample_segmentation(img.T.copy(order=order), (2, 2)), [[[want]]])  # b <-> c


@pytest.mark.parametrize("vals, want, want_sparse", [
    ("12345678", 1, 1), ("11112222", 1, 1), ("12121212", 1, 1), ("21121221", 2, 2), ("11223344", 1, 1),
    ("43214321", 4, 4), ("12121233", 1, 1), ("33121212", 1, 1), ("56781122", 1, 1), ("00001234", 0, 1),
    ("00000043", 0, 4), ("00000000", 0, 0), ("00100000", 0, 1)], ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("order", "CF")
def test_segmentation_2x2x2_tie_list(vals, want, want_sparse, order):
    img = np.asarray(block_2x2x2([int(c) for c in vals]), order=order)
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 2)), [[[[want]]]])
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 2), sparse=True), [[[[want_sparse]]]])


def test_segmentation_2x2x2_suite_cases():
    img = np.asfortranarray(np.array([[[1, 1], [2, 1]], [[1, 1], [1, 1]]], np.uint8))
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 2)), [[[[1]]]])
    img = np.asfortranarray(np.array([[[0, 0], [2, 0]], [[0, 0], [0, 0]]], np.uint8))
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 2), sparse=True), [[[[2]]]])


STIPPLED = [([[1, 2], [3, 4]], 4), ([[0, 2], [3, 4]], 4), ([[1, 2], [3, 0]], 1), ([[0, 0], [3, 4]], 4),
            ([[0, 2], [3, 0]], 2), ([[1, 0], [0, 0]], 1), ([[0, 2], [0, 0]], 2), ([[0, 0], [3, 0]], 3),
            ([[0, 0], [0, 0]], 0), ([[0, 2], [2, 4]], 2), ([[0, 2], [3, 2]], 2), ([[0, 2], [3, 3]], 3),
            ([[1, 1], [0, 4]], 1), ([[1, 2], [1, 0]], 1), ([[1, 0], [3, 1]], 1)]


@pytest.mark.parametrize("lit, want", STIPPLED, ids=[str(i) for i in range(len(STIPPLED))])
def test_segmentation_sparse_2x2_stippled_cases(lit, want):
    img = np.array(lit, np.uint8)  # [[a, b], [c, d]]: b = img[0, 1] is the y neighbour
    assert_mips(mipmaker.downsample_segmentation(img[:, :, np.newaxis], (2, 2, 1), sparse=True), [[[[want]]]])
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2), sparse=True), [[[want]]])


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("order", "CF")
def test_segmentation_2x2_every_block_of_five_labels(sparse, order):
    blocks = np.array(list(itertools.product(range(5), repeat=4)), np.uint16)  # rows: a, b, c, d
    img = np.zeros((2 * len(blocks), 2, 1), np.uint16)
    img[0::2, 0, 0], img[0::2, 1, 0], img[1::2, 0, 0], img[1::2, 1, 0] = blocks.T
    rule = stippled if sparse else countless_if
    want = np.array([rule(*map(int, blk)) for blk in blocks], np.uint16).reshape(-1, 1, 1)
    got = mipmaker.downsample_segmentation(np.asarray(img, order=order), (2, 2, 1), sparse=sparse)
    assert_mips(got, [want])


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("order", "CF")
def test_segmentation_2x2x2_every_block_of_three_labels(sparse, order):
    blocks = np.array(list(itertools.product(range(3), repeat=8)), np.int8)  # rows: v[t], t = x+2y+4z
    img = blocks.reshape(-1, 2, 2, 2).transpose(0, 3, 2, 1).reshape(-1, 2, 2)  # [2*i + x, y, z]
    want = np.array([count_2x2x2(blk.tolist(), sparse) for blk in blocks], np.int8).reshape(-1, 1, 1)
    got = mipmaker.downsample_segmentation(np.asarray(img, order=order), (2, 2, 2), sparse=sparse)
    assert_mips(got, [want])


def test_partial_blocks_averaging():
    x = np.arange(1, 21, dtype=np.uint8).reshape(5, 4)
    assert_mips(mipmaker.downsample_with_averaging(x, (2, 2), num_mips=2), [[[3, 5], [11, 13], [17, 19]], [[8], [18]]])
    y = np.arange(1, 21, dtype=np.uint8).reshape(4, 5)
    assert_mips(mipmaker.downsample_with_averaging(y, (2, 2), num_mips=2), [[[4, 6, 7], [14, 16, 17]], [[10, 12]]])
    z = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)
    want = np.array([[[6, 8], [11, 12]], [[20, 21], [24, 26]]], np.uint8)
    assert_mips(mipmaker.downsample_with_averaging(z, (2, 2, 2)), [want])
    f = np.arange(49.0).reshape(7, 7)
    assert_mips(mipmaker.downsample_with_averaging(f, (3, 3)), [[[8.0, 11, 13], [29, 32, 34], [43, 46, 48]]])


def test_multi_mip_partial_blocks_average_exactly():
    img = np.zeros((7, 4), np.float32)
    img[6] = 12  # mip 2's second block holds 12 voxels, 4 of them 12: mean 4 (tinybrain: 6)
    got = mipmaker.downsample_with_averaging(img, (2, 2), num_mips=2)
    assert_mips(got, [np.array([[0, 0], [0, 0], [0, 0], [12, 12]], np.float32), np.array([[0], [4]], np.float32)])


def test_partial_blocks_segmentation():
    x = np.arange(1, 10, dtype=np.uint8).reshape(3, 3)
    assert_mips(mipmaker.downsample_segmentation(x, (2, 2)), [[[5, 3], [7, 9]]])
    y = np.arange(1, 26, dtype=np.uint8).reshape(5, 5)
    assert_mips(mipmaker.downsample_segmentation(y, (2, 2)), [[[7, 9, 5], [17, 19, 15], [21, 23, 25]]])
    for face, want in [((5, 0, 0, 6), 0), ((5, 0, 6, 6), 6)]:  # x = 2 face in (y, z) order 00, 10, 01, 11
        img = np.ones((3, 2, 2), np.uint8)
        img[2] = np.array(face, np.uint8).reshape((2, 2), order="F")
        got = mipmaker.downsample_segmentation(np.asfortranarray(img), (2, 2, 2))
        assert_mips(got, [np.array([1, want], np.uint8).reshape(2, 1, 1)])


@pytest.mark.parametrize("img, factor, want", [
    (block_2x2(1, 2, 2, 2), (2, 2), 1),
    (block_2x2(-1, -2, -2, -2, np.int8), (2, 2), -1),
    (block_2x2(-1, -2, -2, -2, np.int32), (2, 2), -1),
    (block_2x2(-1, -2, 0, 0, np.int16), (2, 2), 0),
    (block_2x2(-3, -3, 0, 0, np.int64), (2, 2), -1),
    (block_2x2(3, 3, 0, 0, np.uint16), (2, 2), 1),
    (block_2x2x2([2, 2, 2, 2, 2, 2, 2, 1]), (2, 2, 2), 1)], ids=["u8", "i8", "i32", "i16", "i64", "u16", "u8-2x2x2"])
def test_averaging_truncates(img, factor, want):
    got = mipmaker.downsample_with_averaging(img, factor)
    assert_mips(got, [np.full((1,) * img.ndim, want, img.dtype)])


@pytest.mark.parametrize("img, want", [
    (block_2x2(0, 4, 0, 0), 4), (block_2x2(0, 4, 5, 0), 4), (block_2x2(0, 0, 0, 0), 0),
    (block_2x2(0, 3, 0, -3, np.int8), 0), (block_2x2(0, -3, -4, 0, np.int8), -3),
    (block_2x2x2([7, 2, 2, 1, 1, 2, 2, 1]), 2), (block_2x2x2([1, 2, 2, 1, 1, 2, 2, 0]), 1)],
    ids=["one", "two", "zero", "i8-cancel", "i8-neg", "2x2x2-18/8", "2x2x2-11/7"])
def test_sparse_averaging_is_mean_of_nonzero(img, want):
    assert_mips(mipmaker.downsample_with_averaging(img, (2,) * img.ndim, sparse=True),
                [np.full((1,) * img.ndim, want, img.dtype)])


def test_sparse_averaging_suite_cases():
    assert_mips(mipmaker.downsample_with_averaging(block_2x2(0, 4, 0, 0), (2, 2)), [[[1]]])  # dense
    img = np.zeros((4, 4), np.uint8)
    img[0, 0] = 200
    assert_mips(mipmaker.downsample_with_averaging(img, (2, 2), num_mips=2, sparse=True), [[[200, 0], [0, 0]], [[200]]])
    img = np.asfortranarray(np.array([[[1, 0, 1], [0, 0, 1]], [[0, 0, 1], [0, 0, 1]]], np.uint8))
    assert_mips(mipmaker.downsample_with_averaging(img, (2, 2, 2), sparse=True), [[[[1, 1]]]])


# ---------------------------------------------------------------------------------------------
# tinybrain 1.7.0 bugs (behavior notes section 7): mipmaker gives the correct answer

def test_fixed_7_1_odd_single_mip_average():
    x = np.arange(1, 10, dtype=np.uint8).reshape(3, 3)
    assert_mips(mipmaker.downsample_with_averaging(x, (2, 2)), [[[3, 4], [7, 9]]])
    assert_mips(mipmaker.downsample_with_averaging(x.astype(np.float32), (2, 2)),
                [np.array([[3, 4.5], [7.5, 9]], np.float32)])
    x = np.arange(1, 7, dtype=np.uint8)
    assert_mips(mipmaker.downsample_with_averaging(x.reshape(3, 2), (2, 2)), [[[2], [5]]])
    assert_mips(mipmaker.downsample_with_averaging(x.reshape(2, 3), (2, 2)), [[[3, 4]]])
    x = np.asfortranarray(np.arange(1, 10, dtype=np.uint8).reshape(3, 3))
    assert_mips(mipmaker.downsample_with_averaging(x, (2, 2), sparse=True), [[[3, 4], [7, 9]]])


def test_fixed_7_2_sparse_past_mip_4():
    img = np.full((64, 64, 1), 100, np.uint8)
    img[::2] = 0
    got = mipmaker.downsample_with_averaging(np.asfortranarray(img), (2, 2, 1), num_mips=6, sparse=True)
    assert [m.shape[:2] for m in got] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert all(np.all(m == 100) for m in got)


def test_fixed_7_3_sparse_odd_sizes_do_not_double():
    a = np.zeros((5, 4), np.uint8)
    a[4, 0] = 200
    assert_mips(mipmaker.downsample_with_averaging(a, (2, 2), num_mips=2, sparse=True),
                [[[0, 0], [0, 0], [200, 0]], [[0], [200]]])
    got = mipmaker.downsample_with_averaging(np.full((5, 5), 100, np.uint8), (2, 2), num_mips=2, sparse=True)
    assert_mips(got, [np.full((3, 3), 100, np.uint8), np.full((2, 2), 100, np.uint8)])
    got = mipmaker.downsample_with_averaging(np.full((5, 5, 5), 100, np.uint8, order="F"), (2, 2, 2), sparse=True)
    assert_mips(got, [np.full((3, 3, 3), 100, np.uint8)])


@pytest.mark.parametrize("fn, fill", [("downsample_with_max_pooling", 100), ("downsample_with_min_pooling", -100)],
                         ids=["max", "min"])
def test_fixed_7_4_min_max_ragged(fn, fill):
    fn = getattr(mipmaker, fn)
    a = np.zeros((3, 3), np.int8)
    a[1, 1] = fill
    assert_mips(fn(a, (2, 2)), [[[fill, 0], [0, 0]]])
    b = np.arange(25, dtype=np.int16).reshape(5, 5) * np.sign(fill)
    pick = np.max if fill > 0 else np.min
    assert_mips(fn(b, (2, 2)), [pool_ref(b, (2, 2), pick)])
    got = fn(np.arange(64.0).reshape(8, 8) * np.sign(fill), (2, 2), num_mips=4)
    assert [m.shape for m in got] == [(4, 4), (2, 2), (1, 1), (1, 1)]
    assert got[3][0, 0] == fill / 100 * 63


def test_fixed_7_5_c_order_and_multichannel_2x2x2_mode():
    x = np.zeros((4, 2, 2), np.uint8)
    x[:2], x[2:] = 1, 2
    want = [np.array([1, 2], np.uint8).reshape(2, 1, 1)]
    for img in (np.ascontiguousarray(x), np.asfortranarray(x), np.asfortranarray(np.tile(x, (1, 1, 2)))[:, :, ::2]):
        assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 2)), want)
    rng = np.random.default_rng(7)
    for _ in range(3):  # tinybrain corrupts its heap and segfaults on this
        img = np.asfortranarray(rng.integers(0, 3, (64, 64, 64, 4)).astype(np.uint8))
        for sparse in (False, True):
            got = mipmaker.downsample_segmentation(img, (2, 2, 2, 1), sparse=sparse, num_mips=2)
            assert [m.shape for m in got] == [(32, 32, 32, 4), (16, 16, 16, 4)]
            for c in range(4):
                single = mipmaker.downsample_segmentation(np.asfortranarray(img[..., c]), (2, 2, 2),
                                                          sparse=sparse, num_mips=2)
                assert_mips([m[..., c] for m in got], single)
    img5 = rng.integers(0, 3, (4, 4, 4, 2, 3)).astype(np.uint16)
    got = mipmaker.downsample_segmentation(img5, (2, 2, 2, 1, 1))
    assert got[0].shape == (2, 2, 2, 2, 3)
    for c, t in itertools.product(range(2), range(3)):
        assert_mips([got[0][..., c, t]], mipmaker.downsample_segmentation(img5[..., c, t], (2, 2, 2)))


def test_fixed_7_6_segmentation_dispatch():
    z = np.zeros((4, 4, 1), np.uint8)
    z[3, 3] = 9
    assert_mips(mipmaker.downsample_segmentation(z, (4, 4, 1), sparse=True), [[[[9]]]])
    a = np.zeros((2, 2), np.uint8)
    a[1, 1] = 5
    assert_mips(mipmaker.downsample_segmentation(a, (2, 2), sparse=True), [[[5]]])  # stippled, not strided
    for sparse in (False, True):
        assert mipmaker.downsample_segmentation(np.zeros((4, 4, 2), np.uint8), (2, 2), sparse=sparse)[0].shape == (2, 2, 2)
        assert mipmaker.downsample_segmentation(np.zeros((8, 8, 4), np.uint8), (4, 4), sparse=sparse)[0].shape == (2, 2, 4)


def test_fixed_7_7_averaging_dtypes_and_shapes():
    img = values(3, (8, 8, 8), np.int16, order="F")
    got = mipmaker.downsample_with_averaging(img, (2, 2, 2), num_mips=3)
    assert_mips(got, [mean_ref(img, (2**k,) * 3) for k in (1, 2, 3)])
    for dtype in (np.uint64, np.int64):
        info = np.iinfo(dtype)
        for fill in (info.max, info.min):
            for factor in ((2, 2, 1), (2, 2, 2), (3, 3, 1)):
                got = mipmaker.downsample_with_averaging(np.full((4, 4, 2), fill, dtype, order="F"), factor, num_mips=2)
                assert all(m.dtype == dtype and np.all(m == fill) for m in got)
    m = np.iinfo(np.uint64).max
    assert_mips(mipmaker.downsample_with_averaging(block_2x2(m, m, m, m - 1, np.uint64), (2, 2)), [[[m - 1]]])
    for fill in (16777217, 2**32 - 1):
        got = mipmaker.downsample_with_averaging(np.full((4, 4), fill, np.uint32), (2, 2), num_mips=2)
        assert_mips(got, [np.full((2, 2), fill, np.uint32), np.full((1, 1), fill, np.uint32)])
    assert_mips(mipmaker.downsample_with_averaging(np.full((3, 3), 1e10 + 1), (3, 3)), [[[1e10 + 1]]])
    assert_mips(mipmaker.downsample_with_averaging(np.full((4, 4), 1e10 + 1), (2, 2), num_mips=2)[1:], [[[1e10 + 1]]])
    f16 = np.arange(16, dtype=np.float16).reshape(4, 4)
    assert_mips(mipmaker.downsample_with_averaging(f16, (2, 2)), [np.array([[2.5, 4.5], [10.5, 12.5]], np.float16)])
    b = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], bool)  # majority, ties to False
    assert_mips(mipmaker.downsample_with_averaging(b, (2, 2)), [[[True, False]]])
    for fn in FUNCS:
        got = fn(np.zeros((4, 4, 0), np.uint8), (2, 2, 1))
        assert [(m.shape, m.dtype) for m in got] == [((2, 2, 0), np.uint8)]


@pytest.mark.parametrize("fn", FUNCS, ids=FN_IDS)
@pytest.mark.parametrize("factor", [(2, 2, 1), (2, 2, 2), (4, 4, 1), (3, 3, 1)], ids=["221", "222", "441", "331"])
@pytest.mark.parametrize("order", "CF")
def test_fixed_7_8_input_not_mutated_and_read_only(fn, factor, order):
    img = labels(8, (8, 9, 4), np.uint64, extreme=True, order=order)
    img.flags.writeable = False
    before = img.copy()
    a = fn(img, factor, num_mips=2)
    b = fn(img.copy(order=order), factor, num_mips=2)
    assert_mips(a, b)
    np.testing.assert_array_equal(img, before)
    if fn is mipmaker.downsample_segmentation:
        assert_mips(fn(img, factor, sparse=True, num_mips=2), fn(img.copy(), factor, sparse=True, num_mips=2))


@pytest.mark.parametrize("dtype, hot", [(np.uint64, 2**64 - 1), (np.int64, -1), (np.int8, -1), (np.int32, -1)],
                         ids=["u64", "i64", "i8", "i32"])
def test_fixed_7_9_extreme_labels_in_4x4(dtype, hot):
    sub = [np.array([[hot, hot], [k, k + 1]], dtype) for k in (1, 3, 5, 7)]
    img = np.block([sub[:2], sub[2:]])[:, :, np.newaxis]
    assert_mips(mipmaker.downsample_segmentation(img, (4, 4, 1)), [np.full((1, 1, 1), hot, dtype)])
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 1)), [np.full((2, 2, 1), hot, dtype)])


def test_fixed_7_10_min_pooling_exported():
    import mipmaker as tinybrain

    for name in NAMES:
        assert callable(getattr(tinybrain, name)), name
    img = np.array([[3, 1], [2, 4]], np.uint8)
    assert_mips(tinybrain.downsample_with_min_pooling(img, (2, 2)), [[[1]]])
    assert_mips(tinybrain.downsample_with_max_pooling(img, (2, 2)), [[[4]]])


# ---------------------------------------------------------------------------------------------
# Call patterns of tinybrain users (igneous, chunkflow) and the signature

@pytest.mark.parametrize("fn", FUNCS, ids=FN_IDS)
@pytest.mark.parametrize("factors", [[(2, 2, 1)], [(2, 2, 2)]], ids=["221", "222"])
def test_igneous_call_pattern(fn, factors):
    image = np.asfortranarray(labels(9, (64, 48, 16, 2), np.uint8))  # (x, y, z, channel)
    mips = fn(image, factors[0], num_mips=3)
    f = np.array(factors[0])
    assert [m.shape[:3] for m in mips] == [tuple(-(-np.array(image.shape[:3]) // f**k)) for k in (1, 2, 3)]
    assert all(m.shape[3] == 2 and m.dtype == np.uint8 for m in mips)
    while mips:
        assert mips.pop(0).ndim == 4
    if fn in (mipmaker.downsample_with_averaging, mipmaker.downsample_segmentation):
        sparse_mips = fn(image, factors[0], num_mips=2, sparse=True)
        assert [m.shape for m in sparse_mips] == [m.shape for m in fn(image, factors[0], num_mips=2)]


def test_positional_arguments_follow_tinybrain():
    img = labels(10, (8, 8, 2), np.uint8, k=2)
    assert_mips(mipmaker.downsample_segmentation(img, (2, 2, 1), True, 2),
                mipmaker.downsample_segmentation(img, (2, 2, 1), sparse=True, num_mips=2))
    assert_mips(mipmaker.downsample_with_averaging(img, (2, 2, 1), 2, True),
                mipmaker.downsample_with_averaging(img, (2, 2, 1), num_mips=2, sparse=True))
    for fn in FUNCS[2:]:
        assert_mips(fn(img, (2, 2, 1), 2), fn(img, (2, 2, 1), num_mips=2))
    for fn in FUNCS:  # numpy integers, as computed by callers, are fine
        assert_mips(fn(img, (2, 2, 1), num_mips=np.int64(2)), fn(img, (2, 2, 1), num_mips=2))
    with pytest.raises(TypeError):
        mipmaker.downsample_with_averaging(img, (2, 2, 1), 1, False, 2)  # threads is keyword-only


@pytest.mark.parametrize("fn", FUNCS, ids=FN_IDS)
def test_threads_do_not_change_results(fn):
    img = np.asfortranarray(labels(11, (130, 66, 9, 2), np.uint16))
    want = fn(img, (2, 2, 1), num_mips=3, threads=1)
    for threads in (None, 2, 7):
        assert_mips(fn(img, (2, 2, 1), num_mips=3, threads=threads), want)


# ---------------------------------------------------------------------------------------------
# Bad inputs: TypeError / ValueError naming the parameter

IMG = np.zeros((4, 4), np.uint8)
BAD = [
    (dict(factor=2), TypeError, "`factor`"),
    (dict(factor=(2.5, 2)), ValueError, "`factor`"),
    (dict(factor=(0, 2)), ValueError, "`factor`"),
    (dict(factor=(-1, 2)), ValueError, "`factor`"),
    (dict(factor=(2, 2, 2)), ValueError, "`factor`"),
    (dict(num_mips=-1), ValueError, "`num_mips`"),
    (dict(num_mips=1.5), (TypeError, ValueError), "`num_mips`"),
    (dict(num_mips="2"), TypeError, "`num_mips`"),
    (dict(threads=0), ValueError, "`threads`"),
    (dict(threads=-2), ValueError, "`threads`"),
    (dict(threads=1.5), (TypeError, ValueError), "`threads`"),
    (dict(img=np.zeros((4, 4), object)), TypeError, "`(img|array|image)`"),
    (dict(img=np.zeros((4, 4), "U1")), TypeError, "`(img|array|image)`"),
    (dict(img=np.array(3, np.uint8)), ValueError, "`(img|array|image)`"),
    (dict(img=np.zeros((1,) * 9, np.uint8)), ValueError, "8"),
]
BAD_IDS = ["int", "2.5", "zero", "neg", "extra", "mips-neg", "mips-1.5", "mips-str", "thr-0", "thr-neg",
           "thr-1.5", "object", "str", "0d", "rank9"]


@pytest.mark.parametrize("fn", FUNCS, ids=FN_IDS)
@pytest.mark.parametrize("bad, exc, match", BAD, ids=BAD_IDS)
def test_bad_inputs_raise_naming_the_parameter(fn, bad, exc, match):
    kwargs = dict(img=IMG, factor=(2, 2), num_mips=1)
    kwargs.update(bad)
    img, factor = kwargs.pop("img"), kwargs.pop("factor")
    with pytest.raises(exc, match=match):
        fn(img, factor, **kwargs)


def test_lists_and_integral_float_factors_are_accepted():
    img = labels(12, (6, 6), np.int64)
    want = mipmaker.downsample_with_averaging(img, (2, 2))
    for factor in ([2, 2], np.array([2, 2]), (2.0, 2.0), (2, 2, 1), np.array([2.0, 2.0, 1.0]), (2,)):
        got = mipmaker.downsample_with_averaging(img, factor)
        assert_mips(got, want if len(factor) != 1 else mipmaker.downsample_with_averaging(img, (2, 1)))
    assert_mips(mipmaker.downsample_with_averaging(img.tolist(), (2, 2)), want)
