"""The reference oracle (reference.py) against tensorstore and tinybrain 1.7.0.

Also holds the shared hypothesis strategies (``image_cases``, ``factor_lists``) that
test_downsample.py and test_pyramid.py import; this module must not import
mipmaker, so that it runs before the package exists.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import (
    METHODS,
    ref_downsample,
    ref_pyramid,
    ref_tb_mode_2x2,
    ref_tb_mode_2x2x2,
)

DTYPES = {
    "b": np.bool_, "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64,
    "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "f16": np.float16, "f32": np.float32, "f64": np.float64,
    "c64": np.complex64, "c128": np.complex128,
}
INT_IDS = ["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"]
COMPLEX_METHODS = ("mean", "mode", "stride")


def supported(method, dtype_id):
    return not dtype_id.startswith("c") or method in COMPLEX_METHODS


METHOD_DTYPE = [
    pytest.param(m, d, id=f"{m}-{d}") for m in METHODS for d in DTYPES if supported(m, d)
]

# ---------------------------------------------------------------------------
# Strategies (shared with test_downsample.py and test_pyramid.py)
# ---------------------------------------------------------------------------


def _no_signed_zero(x):
    return x + 0.0  # -0.0 + 0.0 == +0.0; leaves every other value unchanged


def element_strategy(dtype, palette, nan):
    """Values for one array: a small palette (many ties, many zeros) or the full range."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if palette == "small":
            return st.integers(max(info.min, -3), 3)
        if palette == "edge":  # extremes of the type, where exactness is at stake
            return st.sampled_from(sorted({int(info.min), int(info.min) + 1, 0, 1,
                                           int(info.max) - 1, int(info.max)}))
        return st.integers(int(info.min), int(info.max))
    real_width = dtype.itemsize * (8 if dtype.kind == "f" else 4)  # bits per real part
    if palette in ("small", "edge"):
        real = st.sampled_from([-3.0, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0])
    else:
        bound = {16: 2.0**15, 32: 2.0**100, 64: 2.0**600}[real_width]
        real = st.floats(-bound, bound, width=real_width, allow_nan=False,
                         allow_infinity=False).map(_no_signed_zero)
    if nan:
        real = st.one_of(real, st.sampled_from([np.nan, np.inf, -np.inf, -0.0]))
    if dtype.kind == "c":
        return st.builds(complex, real, real)
    return real


@st.composite
def image_cases(draw, dtype, min_dims=1, max_dims=4, max_side=9, nan=False, min_side=1):
    """(image, factors): an array of `dtype` and a factor list (maybe shorter than ndim)."""
    dtype = np.dtype(dtype)
    palette = draw(st.sampled_from(["small", "edge", "full"]))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                                  min_side=min_side, max_side=max_side))
    image = draw(hnp.arrays(dtype, shape, elements=element_strategy(dtype, palette, nan)))
    factors = draw(factor_lists(len(shape)))
    return image, factors


def factor_lists(ndim, max_factor=5):
    """1..ndim entries, each 1..max_factor, sometimes larger than any extent."""
    factor = st.one_of(st.integers(1, max_factor), st.integers(1, 12))
    return st.integers(1, ndim).flatmap(lambda n: st.lists(factor, min_size=n, max_size=n))


def full_factors(ndim, factors):
    return list(factors) + [1] * (ndim - len(factors))


# ---------------------------------------------------------------------------
# tensorstore oracle
# ---------------------------------------------------------------------------


def ts_downsample(image, factors, method):
    ts = pytest.importorskip("tensorstore")
    factors = full_factors(image.ndim, factors)
    return ts.downsample(ts.array(image), factors, method).read().result()


def assert_same_as_oracle(actual, expected, image, factors, method, acc_eps=None):
    """Exact equality, except float/complex means: rounding of float sums.

    ``acc_eps``: machine epsilon of the oracle's float accumulator (tensorstore adds
    float16/float32 in float32), None for float64.
    """
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    if method == "mean" and image.dtype.kind == "c":
        # Compare parts separately: allclose demands exact equality of a whole
        # complex entry as soon as one of its parts is infinite.
        for part in ("real", "imag"):
            assert_same_as_oracle(getattr(actual, part), getattr(expected, part),
                                  np.abs(image), factors, method, acc_eps)
        return
    if method == "mean" and image.dtype.kind in "fc":
        count = int(np.prod(full_factors(image.ndim, factors)))
        finite = np.abs(image[np.isfinite(image)])
        scale = float(finite.max()) if finite.size else 0.0
        eps = max(acc_eps or 0.0, np.finfo(np.float64).eps)
        np.testing.assert_allclose(
            actual, expected, equal_nan=True,
            rtol=2 * float(np.finfo(image.dtype).eps) + 1e-15, atol=4 * count * eps * scale)
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("method, dtype_id", METHOD_DTYPE)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_reference_matches_tensorstore(method, dtype_id, data):
    image, factors = data.draw(image_cases(DTYPES[dtype_id]))
    expected = ts_downsample(image, factors, method)
    actual = ref_downsample(image, factors, method)
    acc_eps = float(np.finfo(np.float32).eps) if dtype_id in ("f16", "f32", "c64") else None
    assert_same_as_oracle(actual, expected, image, factors, method, acc_eps)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "recursive"])
@pytest.mark.parametrize("method", ["mean", "mode", "median", "stride"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_ref_pyramid_matches_tensorstore(method, exact, data):
    image, factors = data.draw(image_cases(np.uint16, max_dims=3))
    num_levels = data.draw(st.integers(0, 3))
    levels = ref_pyramid(image, factors, num_levels, method, exact=exact)
    assert len(levels) == num_levels
    previous = image
    for k, level in enumerate(levels, start=1):
        if exact:
            expected = ts_downsample(image, [f**k for f in factors], method)
        else:
            expected = ts_downsample(previous, factors, method)
        np.testing.assert_array_equal(level, expected)
        previous = level


# "Verified on tensorstore" in design.md, plus rounding and 64-bit extremes.
M64 = 2**64 - 1
LITERALS = [
    ("u8-6/4", np.array([[3, 3], [0, 0]], np.uint8), [2, 2], "mean", [[2]]),
    ("u8-10/4", np.array([[5, 5], [0, 0]], np.uint8), [2, 2], "mean", [[2]]),
    ("i8-1.5", np.array([-1, -2], np.int8), [2], "mean", [-2]),
    ("i8-2.5", np.array([-2, -3], np.int8), [2], "mean", [-2]),
    ("i8+2.5", np.array([2, 3], np.int8), [2], "mean", [2]),
    ("mode-5335", np.array([5, 3, 3, 5], np.int32), [4], "mode", [3]),
    ("median-4312", np.array([4, 3, 1, 2], np.int32), [4], "median", [2]),
    ("mean-3x3", np.arange(1, 10).reshape(3, 3), [2, 2], "mean", [[3, 4], [8, 9]]),
    ("u64-max", np.array([M64, M64 - 1], np.uint64), [2], "mean", [M64 - 1]),
    ("u64-max-odd", np.array([M64, M64, M64 - 1], np.uint64), [3], "mean", [M64]),
    ("i64-min", np.array([-2**63, -2**63 + 1], np.int64), [2], "mean", [-2**63]),
    ("i64-span", np.array([-2**63, 2**63 - 1], np.int64), [2], "mean", [0]),
    ("i64-max", np.array([2**63 - 1, 2**63 - 2], np.int64), [2], "mean", [2**63 - 2]),
    ("bool-tie", np.array([True, False]), [2], "mean", [False]),
    ("bool-maj", np.array([True, True, False]), [3], "mean", [True]),
    ("bool-mode", np.array([True, False]), [2], "mode", [False]),
    ("c64-mode", np.array([2 + 0j, 1 + 5j], np.complex64), [2], "mode", [1 + 5j]),
    ("c64-mode-im", np.array([1 + 2j, 1 + 1j], np.complex64), [2], "mode", [1 + 1j]),
    ("u64-mode", np.array([2**53 + 1, 2**53, 2**53 + 1, 5], np.uint64), [4], "mode",
     [2**53 + 1]),
    ("empty", np.zeros((4, 4, 0), np.uint8), [2, 2, 1], "mean", np.zeros((2, 2, 0))),
]


@pytest.mark.parametrize("image, factors, method, expected",
                         [pytest.param(*case[1:], id=case[0]) for case in LITERALS])
def test_reference_literals(image, factors, method, expected):
    expected = np.asarray(expected).astype(image.dtype)
    np.testing.assert_array_equal(ref_downsample(image, factors, method), expected)
    np.testing.assert_array_equal(ts_downsample(image, factors, method), expected)


def test_reference_trunc_rounding():
    u8 = np.array([[1, 2], [2, 2]], np.uint8)
    i8 = np.array([[-1, -2], [-2, -2]], np.int8)
    assert ref_downsample(u8, [2, 2], "mean", rounding="trunc")[0, 0] == 1  # 7/4
    assert ref_downsample(u8, [2, 2], "mean")[0, 0] == 2
    assert ref_downsample(i8, [2, 2], "mean", rounding="trunc")[0, 0] == -1  # -1.75
    assert ref_downsample(i8, [2, 2], "mean")[0, 0] == -2
    big = np.array([M64, M64 - 1], np.uint64)
    assert ref_downsample(big, [2], "mean", rounding="trunc")[0] == M64 - 1


NAN = np.nan
NAN_CASES = [  # block, method, sparse, expected
    ([NAN, 1.0, 2.0, 3.0], "mean", False, NAN),
    ([NAN, 1.0, 2.0, 3.0], "min", False, 1.0),
    ([NAN, 1.0, 2.0, 3.0], "max", False, 3.0),
    ([NAN, 1.0, 2.0, 3.0], "median", False, 2.0),  # lower median of 1, 2, 3
    ([NAN, NAN, 2.0, 1.0], "median", False, 1.0),
    ([NAN, NAN, 5.0, 7.0], "mode", False, 5.0),  # NaNs are not a value
    ([NAN, NAN, NAN, NAN], "min", False, NAN),
    ([NAN, NAN, NAN, NAN], "mode", False, NAN),
    ([0.0, -0.0, NAN, 0.0], "max", True, NAN),  # zeros dropped, then all NaN
    ([0.0, -0.0, 0.0, 0.0], "max", True, 0.0),
    ([0.0, -0.0, 0.0, 0.0], "mean", True, 0.0),
    ([0.0, 4.0, NAN, 0.0], "mean", True, NAN),
    ([0.0, 4.0, 2.0, 0.0], "mean", True, 3.0),
    ([0.0, 4.0, NAN, 0.0], "min", True, 4.0),
    ([0.0, 0.0, 0.0, 7.0], "median", True, 7.0),
    ([0.0, 0.0, 0.0, 7.0], "mode", True, 7.0),
    ([0.0, -1.0, 0.0, 7.0], "min", True, -1.0),
    ([0.0, 0.0, -1.0, 2.0], "max", True, 2.0),
]


@pytest.mark.parametrize("dtype_id", ["f16", "f32", "f64"])
@pytest.mark.parametrize("block, method, sparse, expected", NAN_CASES)
def test_reference_nan_and_sparse_rules(block, method, sparse, expected, dtype_id):
    image = np.array(block, DTYPES[dtype_id])
    result = ref_downsample(image, [4], method, sparse=sparse)
    assert result.dtype == image.dtype
    np.testing.assert_array_equal(result, np.array([expected], image.dtype))


SPARSE_IMAGE = np.array([[0, 0, 5, 0], [0, 0, 0, 0], [0, 9, 9, 3], [2, 0, 0, 3]], np.uint8)
# 2x2 blocks: all zero; (5); (9, 2) -> 5.5 rounds to 6, mode tie to 2; (9, 3, 3).
SPARSE_EXPECTED = {"mean": [[0, 5], [6, 5]], "mode": [[0, 5], [2, 3]],
                   "median": [[0, 5], [2, 3]], "min": [[0, 5], [2, 3]],
                   "max": [[0, 5], [9, 9]]}


@pytest.mark.parametrize("method", sorted(SPARSE_EXPECTED))
def test_reference_sparse_ints(method):
    result = ref_downsample(SPARSE_IMAGE, [2, 2], method, sparse=True)
    np.testing.assert_array_equal(result, SPARSE_EXPECTED[method])


def test_reference_rejects():
    with pytest.raises(ValueError):
        ref_downsample(np.zeros(4), [2], "stride", sparse=True)
    with pytest.raises(TypeError):
        ref_downsample(np.zeros(4, np.complex64), [2], "median")
    with pytest.raises(ValueError):
        ref_downsample(np.zeros(4), [2, 2], "mean")


# ---------------------------------------------------------------------------
# tinybrain 1.7.0 segmentation rules (Fortran-order, single channel)
# ---------------------------------------------------------------------------

TB_DTYPES = ["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64"]


def _bitwise_equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    u = np.dtype(f"u{a.dtype.itemsize}")
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(u), np.ascontiguousarray(b).view(u))


def _tb_labels(dtype, shape_dims):
    palette = st.sampled_from([0, 1, 2, 3]) if np.dtype(dtype).kind != "f" else \
        st.sampled_from([0.0, -0.0, 1.0, 2.0, np.nan])
    shapes = hnp.array_shapes(min_dims=shape_dims, max_dims=shape_dims, min_side=1, max_side=7)
    return shapes.flatmap(lambda s: hnp.arrays(dtype, s, elements=palette))


# tinybrain strides floats for sparse 2x2 (no stippled rule to compare with).
TB_2X2_CASES = [pytest.param(d, sparse, id=f"{d}-{'sparse' if sparse else 'dense'}")
                for sparse in (False, True) for d in TB_DTYPES
                if not (sparse and d.startswith("f"))]


@pytest.mark.parametrize("dtype_id, sparse", TB_2X2_CASES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_tb_mode_2x2_matches_tinybrain(dtype_id, sparse, data):
    tinybrain = pytest.importorskip("tinybrain")
    image = data.draw(_tb_labels(DTYPES[dtype_id], 3))
    order = data.draw(st.sampled_from("CF")) if not sparse else "F"
    image = np.asarray(image, order=order)
    got = tinybrain.downsample_segmentation(image.copy(order="K"), (2, 2, 1), sparse=sparse)[0]
    _bitwise_equal(ref_tb_mode_2x2(image, sparse), got)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype_id", TB_DTYPES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_tb_mode_2x2x2_matches_tinybrain(dtype_id, sparse, data):
    tinybrain = pytest.importorskip("tinybrain")
    image = np.asfortranarray(data.draw(_tb_labels(DTYPES[dtype_id], 3)))
    got = tinybrain.downsample_segmentation(image.copy(order="F"), (2, 2, 2), sparse=sparse)[0]
    _bitwise_equal(ref_tb_mode_2x2x2(image, sparse), got)


# tinybrain-behavior.md §2.5-2.7: (a, b, c, d) = (x,y), (x+1,y), (x,y+1), (x+1,y+1).
TB_2X2 = [((1, 2, 3, 4), 4), ((1, 1, 2, 2), 1), ((1, 2, 1, 2), 1), ((1, 2, 2, 1), 2),
          ((1, 2, 3, 3), 3), ((1, 2, 3, 2), 2), ((1, 2, 3, 1), 1), ((2, 1, 1, 1), 1)]
# Stippled literals are written [[a, b], [c, d]] in C order as in the tinybrain suite.
TB_STIPPLED = [([[1, 2], [3, 4]], 4), ([[0, 2], [3, 4]], 4), ([[1, 2], [3, 0]], 1),
               ([[0, 0], [3, 4]], 4), ([[0, 2], [3, 0]], 2), ([[1, 0], [0, 0]], 1),
               ([[0, 2], [0, 0]], 2), ([[0, 0], [3, 0]], 3), ([[0, 0], [0, 0]], 0),
               ([[0, 2], [2, 4]], 2), ([[0, 2], [3, 2]], 2), ([[0, 2], [3, 3]], 3),
               ([[1, 1], [0, 4]], 1), ([[1, 2], [1, 0]], 1), ([[1, 0], [3, 1]], 1)]
TB_2X2X2 = [((1, 2, 3, 4, 5, 6, 7, 8), False, 1), ((1, 1, 1, 1, 2, 2, 2, 2), False, 1),
            ((2, 1, 1, 2, 1, 2, 2, 1), False, 2), ((1, 1, 2, 2, 3, 3, 4, 4), False, 1),
            ((4, 3, 2, 1, 4, 3, 2, 1), False, 4), ((3, 3, 1, 2, 1, 2, 1, 2), False, 1),
            ((5, 6, 7, 8, 1, 1, 2, 2), False, 1), ((0, 0, 0, 0, 1, 2, 3, 4), False, 0),
            ((0, 0, 0, 0, 1, 2, 3, 4), True, 1), ((0, 0, 0, 0, 0, 0, 4, 3), True, 4),
            ((0,) * 8, True, 0)]


@pytest.mark.parametrize("block, expected", TB_2X2)
def test_tb_mode_2x2_literals(block, expected):
    a, b, c, d = block
    image = np.array([[a, c], [b, d]], np.uint8)  # image[x, y]
    assert ref_tb_mode_2x2(image, False)[0, 0] == expected


@pytest.mark.parametrize("block, expected", TB_STIPPLED)
def test_tb_mode_2x2_stippled_literals(block, expected):
    assert ref_tb_mode_2x2(np.array(block, np.uint8), True)[0, 0] == expected


@pytest.mark.parametrize("block, sparse, expected", TB_2X2X2)
def test_tb_mode_2x2x2_literals(block, sparse, expected):
    image = np.array(block, np.uint64).reshape(2, 2, 2, order="F")  # t = x + 2y + 4z
    assert ref_tb_mode_2x2x2(image, sparse)[0, 0, 0] == expected


def test_tb_mode_edges_clamp():
    # 3x3 arange by 2x2 (tinybrain §2.1): the odd edge repeats the edge voxel.
    image = np.arange(1, 10, dtype=np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(ref_tb_mode_2x2(image, False), [[5, 3], [7, 9]])
    # 3x2x2 whose x=2 face is (5,0,0,6) gives 0, (5,0,6,6) gives 6 (tinybrain §2.1).
    for face, expected in [((5, 0, 0, 6), 0), ((5, 0, 6, 6), 6)]:
        image = np.zeros((3, 2, 2), np.uint8)
        image[2] = np.array(face).reshape(2, 2, order="F")
        assert ref_tb_mode_2x2x2(image, False)[1, 0, 0] == expected
