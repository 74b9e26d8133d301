"""mipmaker.downsample against tensorstore and the NumPy reference (tests/reference.py)."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mipmaker
from reference import METHODS, output_shape, ref_downsample
from test_reference import (
    DTYPES,
    LITERALS,
    METHOD_DTYPE,
    NAN_CASES,
    SPARSE_EXPECTED,
    SPARSE_IMAGE,
    assert_same_as_oracle,
    image_cases,
    supported,
    ts_downsample,
)

# ---------------------------------------------------------------------------
# Layouts: views whose contents equal a given C-order array
# ---------------------------------------------------------------------------

LAYOUTS = ["C", "F", "step", "offset", "neg", "negstep", "T", "ro"]


def _embedded(x, axis, step, start=0):
    """A view ``big[..., start::step, ...]`` (on `axis`) of a larger array, equal to x."""
    shape = list(x.shape)
    shape[axis] = abs(step) * shape[axis] + start
    big = np.zeros(shape, x.dtype)
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, None, step) if step > 0 else slice(None, None, step)
    view = big[tuple(index)]
    view[...] = x
    return view


def with_layout(x, layout):
    """``x``'s contents in memory layout `layout` (see LAYOUTS)."""
    axis = min(1, x.ndim - 1)
    if layout == "C":
        return np.ascontiguousarray(x)
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "step":  # a[::2]
        return _embedded(x, 0, 2)
    if layout == "offset":  # a[:, 1::3]
        return _embedded(x, axis, 3, start=1)
    if layout == "neg":  # a[::-1]
        return np.ascontiguousarray(x[::-1])[::-1]
    if layout == "negstep":  # a[:, ::-2]
        return _embedded(x, axis, -2)
    if layout == "T":  # axes permuted in memory
        perm = list(range(1, x.ndim)) + [0]
        stored = np.ascontiguousarray(np.transpose(x, perm))
        return np.transpose(stored, np.argsort(perm))
    if layout == "ro":
        y = x.copy()
        y.setflags(write=False)
        return y
    raise AssertionError(layout)


def expects_fortran(image):
    return image.ndim >= 2 and image.flags.f_contiguous and not image.flags.c_contiguous


def checked_downsample(image, factors, **kwargs):
    """mipmaker.downsample plus the checks every call must pass."""
    before = np.array(image, copy=True)
    result = mipmaker.downsample(image, factors, **kwargs)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.asarray(image).dtype
    assert result.shape == output_shape(np.shape(image), factors)
    assert np.asarray(image).tobytes() == before.tobytes(), "input was modified"
    assert not np.shares_memory(result, image)
    if expects_fortran(np.asarray(image)):
        assert result.flags.f_contiguous
    else:
        assert result.flags.c_contiguous
    return result


# ---------------------------------------------------------------------------
# (a) random comparisons
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, dtype_id", METHOD_DTYPE)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_downsample_matches_tensorstore(method, dtype_id, data):
    image, factors = data.draw(image_cases(DTYPES[dtype_id]))
    view = with_layout(image, data.draw(st.sampled_from(LAYOUTS)))
    expected = ts_downsample(image, factors, method)
    actual = checked_downsample(view, factors, method=method)
    acc_eps = float(np.finfo(np.float32).eps) if dtype_id in ("f16", "f32", "c64") else None
    assert_same_as_oracle(actual, expected, image, factors, method, acc_eps)


@pytest.mark.parametrize("method, dtype_id", METHOD_DTYPE)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_downsample_matches_reference(method, dtype_id, data):
    image, factors = data.draw(image_cases(DTYPES[dtype_id], max_dims=5, max_side=6, nan=True))
    sparse = method != "stride" and data.draw(st.booleans())
    view = with_layout(image, data.draw(st.sampled_from(LAYOUTS)))
    expected = ref_downsample(image, factors, method, sparse=sparse)
    actual = checked_downsample(view, factors, method=method, sparse=sparse)
    assert_same_as_oracle(actual, expected, image, factors, method)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_downsample_high_rank(method, data):
    dtype = data.draw(st.sampled_from([np.uint16, np.int64, np.float32]))
    image, factors = data.draw(image_cases(dtype, min_dims=6, max_dims=8, max_side=3))
    sparse = method != "stride" and data.draw(st.booleans())
    view = with_layout(image, data.draw(st.sampled_from(LAYOUTS)))
    actual = checked_downsample(view, factors, method=method, sparse=sparse)
    expected = ref_downsample(image, factors, method, sparse=sparse)
    assert_same_as_oracle(actual, expected, image, factors, method)


SMALL_BLOCKS = [(2, 2, 2), (2, 2, 1), (3, 3, 3), (4, 4, 1), (3, 3, 1), (2, 2, 4), (2, 1, 1),
                (1, 1, 32), (2, 4, 4), (5, 1, 5)]


def small_block_image(factors, dtype_id, layout, seed):
    """Labels 0..3 whose row along memory goes from uniform blocks to noise.

    The row along memory (axis 0 for layout "F", else the last) holds 130
    blocks, two whole SIMD groups of 64 u8 lanes (AVX-512; four of 32 with
    AVX2) and a scalar tail, and ends in a partial block; so do the other
    two axes (2 blocks each).
    """
    rng = np.random.default_rng(seed)
    long_axis = 0 if layout == "F" else 2
    blocks = [130 if d == long_axis else 2 for d in range(3)]
    shape = tuple(f * b + 1 for f, b in zip(factors, blocks))
    coarse = rng.integers(0, 4, [b + 1 for b in blocks])
    blocky = coarse.repeat(factors[0], 0).repeat(factors[1], 1).repeat(factors[2], 2)
    blocky = blocky[: shape[0], : shape[1], : shape[2]]
    ramp = np.linspace(-0.5, 1.5, shape[long_axis])
    noisy = rng.random(shape) < ramp.reshape([-1 if d == long_axis else 1 for d in range(3)])
    image = np.where(noisy, rng.integers(0, 4, shape), blocky)
    if dtype_id == "i64":
        image = (image - 1) * 2**40  # the sign and the high bits matter
    image = image.astype(DTYPES[dtype_id])
    if dtype_id == "f32":
        image[rng.random(shape) < 0.05] = np.nan
    return with_layout(image, layout)


@pytest.mark.parametrize("factors", SMALL_BLOCKS, ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("dtype_id", ["b", "u8", "i16", "u32", "u64", "i64", "f32"])
@pytest.mark.parametrize("layout", ["C", "F", "offset"])
@pytest.mark.parametrize("method", ["mode", "median"])
def test_downsample_blocks_up_to_32(factors, dtype_id, layout, method):
    # Mode and median of blocks of 2..32 values take SIMD paths (pairwise
    # counts, sorting networks) with many blocks per SIMD group. Four labels
    # make ties common; uniform groups take a shortcut.
    view = small_block_image(factors, dtype_id, layout, [sum(factors), len(dtype_id), len(layout), len(method)])
    image = np.ascontiguousarray(view)
    for sparse in (False, True):
        actual = checked_downsample(view, factors, method=method, sparse=sparse)
        expected = ref_downsample(image, factors, method, sparse=sparse)
        assert_same_as_oracle(actual, expected, image, factors, method)


PAIR_BLOCKS = [(2, 2, 1), (2, 2, 2), (2, 1, 1), (2, 4, 2), (2, 3, 1), (2, 2, 3), (2, 4, 4)]


def pair_image(factors, dtype_id, seed):
    """Random values whose row along memory holds 70 whole pairs and a partial block.

    70 pairs make two 32-output u8 steps of pair_rows.h and a tail.
    """
    rng = np.random.default_rng(seed)
    shape = (2 * 70 + 1, 3 * factors[1] + 1, 2 * factors[2] + 1)
    dtype = DTYPES[dtype_id]
    if dtype_id.startswith("f"):
        image = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
        image[rng.random(shape) < 0.05] = -0.0
    else:
        info = np.iinfo(dtype)
        image = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        image[:, :, 0] = info.max  # the largest sums
    return image


def pair_layout(image, layout):
    """`image` in Fortran order ("F"), or a view whose rows are contiguous but not adjacent."""
    if layout == "F":
        return np.asfortranarray(image)
    big = np.zeros((image.shape[0] + 3, image.shape[1] + 1, image.shape[2]), image.dtype, order="F")
    view = big[1:-2, 1:]
    view[...] = image
    return view


@pytest.mark.parametrize("factors", PAIR_BLOCKS, ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("dtype_id", ["u8", "u16", "f32"])
@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_downsample_pair_means_in_registers(factors, dtype_id, layout):
    # Means two voxels wide along memory are finished in registers
    # (pair_rows.h): 1-8 block rows, power-of-two blocks for dense integers,
    # sparse u8 means divided per output; the rest and the row tails take the
    # accumulating path.
    seed = [sum(factors), len(dtype_id), len(layout)]
    dense = pair_image(factors, dtype_id, seed)
    # Sparse: zeros in runs along memory, so that some blocks are empty.
    for sparse, image in ((False, dense), (True, sparse_holes(dense, seed))):
        view = pair_layout(image, layout)
        actual = checked_downsample(view, factors, method="mean", sparse=sparse)
        expected = ref_downsample(image, factors, "mean", sparse=sparse)
        assert_same_as_oracle(actual, expected, image, factors, "mean")
        truncated = mipmaker.downsample_with_averaging(view, factors, sparse=sparse)[0]
        expected = ref_downsample(image, factors, "mean", sparse=sparse, rounding="trunc")
        assert_same_as_oracle(truncated, expected, image, factors, "mean")


@pytest.mark.parametrize("factors", PAIR_BLOCKS[:5], ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("dtype_id", ["i8", "u8", "i16", "u16", "i32", "u32", "u64", "f32"])
@pytest.mark.parametrize("layout", ["F", "Fpad"])
@pytest.mark.parametrize("method", ["min", "max"])
def test_downsample_pair_extrema_in_registers(factors, dtype_id, layout, method):
    # One level of integer min/max up to 32 bits, two voxels wide along
    # memory, is finished in registers (rows first, then each pair);
    # u64 and f32 take the accumulating path.
    image = pair_image(factors, dtype_id, [sum(factors), len(dtype_id), len(layout), len(method)])
    view = pair_layout(image, layout)
    expected = ref_downsample(image, factors, method)
    np.testing.assert_array_equal(checked_downsample(view, factors, method=method), expected)
    compat = getattr(mipmaker, f"downsample_with_{method}_pooling")(view, factors)[0]
    np.testing.assert_array_equal(compat, expected)


def assert_register_means(image, factors, layout):
    """Dense and sparse means of `image` laid out as `layout` against the reference, both roundings."""
    for sparse, data in ((False, image), (True, sparse_holes(image, factors))):
        view = pair_layout(data, layout)
        actual = checked_downsample(view, factors, method="mean", sparse=sparse)
        np.testing.assert_array_equal(actual, ref_downsample(data, factors, "mean", sparse=sparse))
        truncated = mipmaker.downsample_with_averaging(view, factors, sparse=sparse)[0]
        np.testing.assert_array_equal(truncated, ref_downsample(data, factors, "mean", sparse=sparse, rounding="trunc"))


@pytest.mark.parametrize("factors", [(4, 1, 1), (4, 2, 1), (4, 4, 1), (4, 4, 2), (4, 2, 4), (4, 3, 1), (4, 4, 3)],
                         ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("length", [4 * 70 + 3, 4 * 600, 4 * 700], ids=["short", "one-chunk", "chunked"])
@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_downsample_quad_means_in_registers(factors, length, layout):
    # u8 means four voxels wide along memory are finished in registers
    # (quad_rows.h) for 1-8 block rows of a power-of-two block (4x3x1 and
    # 4x4x3 take the accumulating path); 70 outputs make two 32-output steps
    # and a tail; AccumulateKernel's chunks are 512 outputs, but 600 make one
    # (a row a little longer than a chunk), 700 two.
    rng = np.random.default_rng([sum(factors), length, len(layout)])
    image = rng.integers(0, 256, (length, 3 * factors[1] + 1, 2 * factors[2] + 1), dtype=np.uint8)
    image[:, : factors[1], :] = 255  # the largest sums
    assert_register_means(image, factors, layout)


@pytest.mark.parametrize("factors", [(3, 1, 1), (3, 2, 1), (3, 3, 1), (3, 3, 3), (3, 4, 2), (3, 5, 2)],
                         ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("length", [3 * 70 + 2, 3 * 700, 3 * 900], ids=["short", "one-chunk", "chunked"])
@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_downsample_triple_means_in_registers(factors, length, layout):
    # u8 means three voxels wide along memory are finished in registers
    # (triple_rows.h) for 1-9 block rows, every count 3..27 divided by a
    # multiply-high (3x5x2: 10 rows, takes the accumulating path); 70
    # outputs make two 32-output steps and a tail; AccumulateKernel's chunks
    # are 682 outputs, but 700 make one, 900 two.
    rng = np.random.default_rng([sum(factors), length, len(layout), 3])
    image = rng.integers(0, 256, (length, 3 * factors[1] + 1, 2 * factors[2] + 1), dtype=np.uint8)
    image[:, : factors[1], :] = 255  # the largest sums
    image[:, factors[1] : 2 * factors[1], : factors[2]] = rng.integers(0, 2, (length, factors[1], factors[2])) * 255
    assert_register_means(image, factors, layout)


@pytest.mark.parametrize("factors", [(2, 2, 1), (2, 2, 2), (2, 4, 2), (4, 4, 1), (4, 2, 2)],
                         ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("dtype_id, width", [("u8", 2 * 1030 + 1), ("u8", 2 * 1400), ("u8", 4 * 130), ("u16", 2 * 300),
                                             ("i32", 2 * 200)],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_downsample_rows_read_in_turn(factors, dtype_id, width, layout):
    # Block rows less than 4 KiB apart are read one after another through
    # partial results in L1 (pair_rows.h InTurn) for means (dense and u8
    # sparse, both roundings), min and max two voxels wide; blocks four wide
    # read them together. Rows 400 to 2800 elements wide make 4 to 43
    # steps; 2061 is one AccumulateKernel chunk (a row a little longer than
    # 1024 outputs), 2800 two.
    rng = np.random.default_rng([sum(factors), width, len(layout)])
    dtype = DTYPES[dtype_id]
    info = np.iinfo(dtype)
    image = rng.integers(info.min, info.max, (width, 2 * factors[1] + 1, 3 * factors[2]), dtype=dtype, endpoint=True)
    image[:, : factors[1], 0] = info.max  # the largest sums
    methods = ["min", "max"] + (["mean"] if dtype_id != "i32" else [])
    for method in methods:
        sparse_cases = ((False, image), (True, sparse_holes(image, factors))) if dtype_id == "u8" and method == "mean" \
            else ((False, image),)
        for sparse, data in sparse_cases:
            view = pair_layout(data, layout)
            actual = checked_downsample(view, factors, method=method, sparse=sparse)
            np.testing.assert_array_equal(actual, ref_downsample(data, factors, method, sparse=sparse))
            if method == "mean":
                truncated = mipmaker.downsample_with_averaging(view, factors, sparse=sparse)[0]
                expected = ref_downsample(data, factors, "mean", sparse=sparse, rounding="trunc")
                np.testing.assert_array_equal(truncated, expected)


def sparse_holes(image, seed):
    """`image` with zeros in runs of 4 along axis 0, so that some blocks are empty."""
    rng = np.random.default_rng(seed)
    shape = image.shape
    holes = rng.random((shape[0] // 4 + 1,) + shape[1:]).repeat(4, 0)[: shape[0]] < 0.4
    return np.where(holes, image.dtype.type(0), image)


@pytest.mark.parametrize("factors", [(2, 2, 1), (1, 2, 1), (2, 1, 1), (4, 2, 1), (2, 2, 2), (1, 2, 2), (2, 4, 2)],
                         ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("lanes", [32, 64, 96])
@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
def test_downsample_c_order_pairs_in_registers(factors, lanes, odd):
    # C-order u8 means whose last axis is short: with a factor of 1 there it
    # is folded into lanes, and two adjacent lane groups of up to 4 rows
    # finish in registers; with a factor of 2, batches of short rows do
    # (pair_rows.h). Odd extents leave partial blocks to the general path.
    rng = np.random.default_rng([lanes, len(factors), sum(factors), odd])
    shape = (5 + 2 * factors[0], 2 * 37 + odd, lanes)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image[:, :3] = 255  # the largest sums
    for sparse, data in ((False, image), (True, sparse_holes(image, lanes))):
        actual = checked_downsample(data, factors, method="mean", sparse=sparse)
        np.testing.assert_array_equal(actual, ref_downsample(data, factors, "mean", sparse=sparse))
        truncated = mipmaker.downsample_with_averaging(data, factors, sparse=sparse)[0]
        np.testing.assert_array_equal(truncated, ref_downsample(data, factors, "mean", sparse=sparse, rounding="trunc"))


@pytest.mark.parametrize("dtype_id, method", [("u16", "mean"), ("f32", "mean"), ("i8", "min"), ("u32", "max")],
                         ids="-".join)
def test_downsample_c_order_short_rows_in_registers(dtype_id, method):
    # Batches of short C-order rows (64 voxels, factor 2 along them) finish
    # in registers for the other register types too.
    image = pair_image((2, 2, 2), dtype_id, [len(dtype_id), len(method)])
    image = np.ascontiguousarray(np.resize(image, (6, 41, 64)))
    actual = checked_downsample(image, (2, 2, 2), method=method)
    expected = ref_downsample(image, (2, 2, 2), method)
    assert_same_as_oracle(actual, expected, image, (2, 2, 2), method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["r", "r+"])
def test_downsample_memmap(method, mode, tmp_path):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 5, (9, 8, 7)).astype(np.uint16)
    path = tmp_path / "image.dat"
    mm = np.memmap(path, dtype=np.uint16, mode="w+", shape=data.shape)
    mm[...] = data
    mm.flush()
    del mm
    image = np.memmap(path, dtype=np.uint16, mode=mode, shape=data.shape)
    actual = checked_downsample(image, [2, 3, 2], method=method)
    np.testing.assert_array_equal(actual, ref_downsample(data, [2, 3, 2], method))
    np.testing.assert_array_equal(np.fromfile(path, np.uint16).reshape(data.shape), data)


# ---------------------------------------------------------------------------
# (c) output memory order, (d) out=, (e) threads
# ---------------------------------------------------------------------------

ORDER_CASES = [  # id, image, fortran output expected
    ("C3", np.zeros((4, 6, 5), np.uint8), False),
    ("F3", np.zeros((4, 6, 5), np.uint8, order="F"), True),
    ("F2", np.zeros((7, 3), np.float32, order="F"), True),
    ("T2", np.zeros((3, 7), np.float32).T, True),
    ("1d", np.zeros(9, np.int16), False),
    ("perm3", np.zeros((4, 6, 5), np.uint8).transpose(1, 0, 2), False),
    ("neg", np.zeros((4, 6, 5), np.uint8)[::-1], False),
    ("negF", np.zeros((4, 6, 5), np.uint8, order="F")[:, ::-1], False),
    ("step", np.zeros((8, 6, 5), np.uint8)[::2], False),
    ("stepF", np.zeros((8, 6, 5), np.uint8, order="F")[:, ::2], False),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("image, fortran", [pytest.param(*c[1:], id=c[0]) for c in ORDER_CASES])
def test_downsample_output_order_follows_input(image, fortran, method):
    result = mipmaker.downsample(image, [2] * image.ndim, method=method)
    if fortran:
        assert result.flags.f_contiguous and not result.flags.c_contiguous
    else:
        assert result.flags.c_contiguous


@pytest.mark.parametrize("order", "CF")
@pytest.mark.parametrize("method", METHODS)
def test_downsample_out_is_filled_and_returned(method, order):
    image = np.random.default_rng(3).integers(0, 9, (7, 6, 5)).astype(np.int32, order=order)
    expected = ref_downsample(image, [2, 4, 3], method)
    out = np.full(expected.shape, -77, np.int32, order=order)
    result = mipmaker.downsample(image, [2, 4, 3], method=method, out=out)
    assert result is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("out", [
    pytest.param(np.zeros((4, 3, 2), np.int32), id="shape"),
    pytest.param(np.zeros((4, 3), np.int32), id="ndim"),
    pytest.param(np.zeros((4, 2, 2), np.int64), id="dtype"),
    pytest.param(np.zeros((4, 2, 2), np.uint32), id="sign"),
])
def test_downsample_out_wrong_raises(out):
    image = np.zeros((7, 4, 3), np.int32)
    with pytest.raises(ValueError, match="`out`"):
        mipmaker.downsample(image, [2, 2, 2], out=out)


THREAD_CASES = [pytest.param(*c, id="-".join(c))
                for c in [("u8", "C"), ("u64", "F"), ("f32", "C"), ("f64", "F")]]


@pytest.mark.parametrize("dtype_id, order", THREAD_CASES)
@pytest.mark.parametrize("method", METHODS)
def test_downsample_threads_identical_bytes(method, dtype_id, order):
    rng = np.random.default_rng(11)
    dtype = DTYPES[dtype_id]
    image = rng.integers(0, 6, (67, 45, 13)).astype(dtype)
    if image.dtype.kind == "f":
        image = image * rng.random(image.shape).astype(dtype)
        image[rng.random(image.shape) < 0.01] = np.nan
    image = np.asarray(image, order=order)
    for sparse in [False] if method == "stride" else [False, True]:
        results = [checked_downsample(image, [2, 3, 2], method=method, sparse=sparse, threads=t)
                   for t in (1, 2, 3, 7)]
        for other in results[1:]:
            assert other.tobytes(order="A") == results[0].tobytes(order="A")
        expected = ref_downsample(image, [2, 3, 2], method, sparse=sparse)
        assert_same_as_oracle(results[0], expected, image, [2, 3, 2], method)


def test_downsample_threads_env_variable(monkeypatch):
    image = np.random.default_rng(5).random((33, 17, 9))
    single = mipmaker.downsample(image, [2, 2, 2], threads=1)
    for value in ["1", "3"]:
        monkeypatch.setenv("MIPMAKER_NUM_THREADS", value)
        assert mipmaker.downsample(image, [2, 2, 2]).tobytes() == single.tobytes()


# ---------------------------------------------------------------------------
# (f) literal cases
# ---------------------------------------------------------------------------

L53 = 2**53
M64 = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
EXACT64 = [  # id, values (one block), dtype, method, expected
    ("mode-53", [L53 + 1, L53, L53 + 1, L53 + 2], np.uint64, "mode", L53 + 1),
    ("mode-53b", [L53, L53 + 1, L53 + 2, L53 + 3, L53 + 1], np.uint64, "mode", L53 + 1),
    ("mode-max", [M64, M64 - 1, M64, 3], np.uint64, "mode", M64),
    ("mode-tie", [M64, M64 - 1, M64 - 1, M64], np.uint64, "mode", M64 - 1),
    ("min-53", [L53 + 2, L53 + 1, L53 + 3], np.uint64, "min", L53 + 1),
    ("max-53", [L53 + 2, L53 + 1, L53 + 3], np.uint64, "max", L53 + 3),
    ("max-max", [M64 - 1, M64, 0], np.uint64, "max", M64),
    ("median-53", [L53 + 3, L53 + 1, L53 + 2, L53], np.uint64, "median", L53 + 1),
    ("stride-53", [L53 + 1, L53, L53], np.uint64, "stride", L53 + 1),
    ("stride-max", [M64, 0], np.uint64, "stride", M64),
    ("mean-max", [M64, M64, M64], np.uint64, "mean", M64),
    ("mean-max-1", [M64, M64 - 2], np.uint64, "mean", M64 - 1),
    ("mean-half", [M64, M64 - 1], np.uint64, "mean", M64 - 1),  # .5 to even
    ("mean-53", [L53 + 1, L53 + 2], np.uint64, "mean", L53 + 2),
    ("mean-53b", [L53, L53 + 1], np.uint64, "mean", L53),
    ("mean-53c", [L53 + 1, L53 + 1, L53 + 1], np.uint64, "mean", L53 + 1),
    ("i64-min", [I64_MIN, I64_MIN, I64_MIN], np.int64, "mean", I64_MIN),
    ("i64-min+", [I64_MIN, I64_MIN + 1], np.int64, "mean", I64_MIN),
    ("i64-max", [I64_MAX, I64_MAX], np.int64, "mean", I64_MAX),
    ("i64-max-", [I64_MAX, I64_MAX - 1], np.int64, "mean", I64_MAX - 1),
    ("i64-span", [I64_MIN, I64_MAX], np.int64, "mean", 0),
    ("i64-span3", [I64_MIN, I64_MAX, I64_MAX], np.int64, "mean", 3074457345618258602),
    ("i64-mode", [I64_MIN, I64_MAX, I64_MAX, I64_MIN], np.int64, "mode", I64_MIN),
    ("i32-half", [-(2**31), 2**31 - 1], np.int32, "mean", 0),
    ("u32-max", [2**32 - 1] * 3, np.uint32, "mean", 2**32 - 1),
]


@pytest.mark.parametrize("layout", ["C", "neg"])
@pytest.mark.parametrize("values, dtype, method, expected",
                         [pytest.param(*c[1:], id=c[0]) for c in EXACT64])
def test_downsample_64bit_exact(values, dtype, method, expected, layout):
    image = with_layout(np.array(values, dtype), layout)
    assert ref_downsample(image, [len(values)], method)[0] == expected  # the oracle agrees
    result = checked_downsample(image, [len(values)], method=method)
    assert result.tolist() == [expected]
    # The same block inside a 2-D image, as a partial edge block, and with factor 1.
    image2 = np.array([values, values[::-1]], dtype).T
    result = checked_downsample(image2, [len(values) + 1, 2], method=method)
    assert result.shape == (1, 1)
    assert checked_downsample(image2, [1, 1], method=method).tolist() == image2.tolist()


@pytest.mark.parametrize("image, factors, method, expected",
                         [pytest.param(*case[1:], id=case[0]) for case in LITERALS])
def test_downsample_literals(image, factors, method, expected):
    result = checked_downsample(image, factors, method=method)
    np.testing.assert_array_equal(result, np.asarray(expected).astype(image.dtype))


@pytest.mark.parametrize("dtype_id", ["f16", "f32", "f64"])
@pytest.mark.parametrize("block, method, sparse, expected", NAN_CASES)
def test_downsample_nan_and_sparse_rules(block, method, sparse, expected, dtype_id):
    image = np.array(block, DTYPES[dtype_id])
    result = checked_downsample(image, [4], method=method, sparse=sparse)
    np.testing.assert_array_equal(result, np.array([expected], image.dtype))


SPARSE_CASES = [pytest.param(m, d, id=f"{m}-{d}") for m in sorted(SPARSE_EXPECTED)
                for d in ["u8", "i16", "u64", "f32", "c64"] if supported(m, d)]


@pytest.mark.parametrize("method, dtype_id", SPARSE_CASES)
def test_downsample_sparse_literals(method, dtype_id):
    image = SPARSE_IMAGE.astype(DTYPES[dtype_id])
    expected = np.array(SPARSE_EXPECTED[method], image.dtype)
    inexact = image.dtype.kind in "fc"
    if method == "mean" and inexact:
        expected[1, 0] = 5.5  # (9 + 2) / 2 is not rounded for floats
    result = checked_downsample(image, [2, 2], method=method, sparse=True)
    np.testing.assert_array_equal(result, expected)
    dense = checked_downsample(image, [2, 2], method=method)
    mean_05 = 1.25 if inexact else 1  # block (5, 0, 0, 0)
    assert dense[0, 1] == {"mean": mean_05, "mode": 0, "median": 0, "min": 0, "max": 5}[method]


def test_downsample_sparse_keeps_thin_objects():
    image = np.zeros((8, 8), np.uint32)
    image[np.arange(8), np.arange(8)] = 7  # a one-voxel-thick diagonal
    diagonal = np.eye(2, dtype=bool)
    for method in ["mean", "mode", "median", "min", "max"]:
        result = checked_downsample(image, [4, 4], method=method, sparse=True)
        np.testing.assert_array_equal(result, np.where(diagonal, 7, 0), err_msg=method)
    np.testing.assert_array_equal(checked_downsample(image, [4, 4], method="mode"), 0)
    np.testing.assert_array_equal(checked_downsample(image, [4, 4]), np.where(diagonal, 2, 0))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape, factors, expected", [
    ((4, 4, 0), [2, 2, 1], (2, 2, 0)),
    ((0,), [3], (0,)),
    ((0, 5), [3, 2], (0, 3)),
    ((3, 0, 2), [1, 4, 2], (3, 0, 1)),
], ids=["440", "0", "05", "302"])
def test_downsample_empty_extents(shape, factors, expected, method):
    for order in "CF":
        image = np.zeros(shape, np.float32, order=order)
        assert checked_downsample(image, factors, method=method).shape == expected


@pytest.mark.parametrize("method, dtype_id", [
    pytest.param(m, d, id=f"{m}-{d}") for m in METHODS
    for d in ["b", "u8", "i64", "u64", "f16", "f64", "c128"] if supported(m, d)])
def test_downsample_one_voxel(method, dtype_id):
    dtype = DTYPES[dtype_id]
    value = np.array([M64 if dtype_id == "u64" else 1], dtype)[0]
    for shape in [(1,), (1, 1, 1), (1,) * 8]:
        image = np.full(shape, value, dtype)
        for factors in [[1], [2] * len(shape), [5] * len(shape)]:
            result = checked_downsample(image, factors, method=method)
            assert result.shape == shape and result.ravel()[0] == value
    if dtype_id.startswith("f") and method != "stride":
        result = checked_downsample(np.full((1, 1), np.nan, dtype), [2, 2], method=method)
        assert np.isnan(result[0, 0])


def test_downsample_factor_forms():
    image = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    expected = ref_downsample(image, [2, 2, 1], "mean")
    for factors in [[2, 2], (2, 2, 1), [2.0, 2.0], np.array([2, 2]), [np.int64(2), np.uint8(2)],
                    (np.float32(2.0), 2, 1)]:
        np.testing.assert_array_equal(checked_downsample(image, factors), expected)
    for method in METHODS:
        np.testing.assert_array_equal(checked_downsample(image, (), method=method), image)
        np.testing.assert_array_equal(checked_downsample(image, [1, 1, 1], method=method), image)


def test_downsample_accepts_lists():
    result = mipmaker.downsample([[1, 2, 3], [4, 5, 6]], [2, 2])
    np.testing.assert_array_equal(result, ref_downsample(np.array([[1, 2, 3], [4, 5, 6]]),
                                                         [2, 2], "mean"))
    result = mipmaker.downsample([0.5, 1.5, 7.0], [2], method="max")
    np.testing.assert_array_equal(result, [1.5, 7.0])


@pytest.mark.parametrize("method, dtype", [
    pytest.param(m, f">{d[0]}{np.dtype(DTYPES[d]).itemsize}", id=f"{m}-{d}") for m in METHODS
    for d in ["u16", "i64", "f32", "c128"] if supported(m, d)])
def test_downsample_non_native_byte_order(dtype, method):
    native = np.dtype(dtype).newbyteorder("=")
    image = (np.arange(1, 49) * 1001).reshape(4, 3, 4).astype(native)
    expected = ref_downsample(image, [3, 2, 3], method)
    try:
        result = mipmaker.downsample(image.astype(dtype), [3, 2, 3], method=method)
    except TypeError:
        return  # allowed: a TypeError, never a wrong answer
    np.testing.assert_array_equal(result, expected)


# ---------------------------------------------------------------------------
# (g) bad inputs: TypeError / ValueError naming the parameter in backticks
# ---------------------------------------------------------------------------

U8 = np.zeros((4, 4, 4), np.uint8)
C64 = np.zeros((4, 4), np.complex64)
BAD_INPUTS = [  # id, image, factors, keywords, exception, acceptable parameter names
    ("factor-0", U8, [2, 0], {}, ValueError, ["factors"]),
    ("factor-neg", U8, [-1], {}, ValueError, ["factors"]),
    ("factor-2.5", U8, [2.5, 2], {}, ValueError, ["factors"]),
    ("factor-long", U8, [2, 2, 2, 2], {}, ValueError, ["factors"]),
    ("factor-int", U8, 2, {}, TypeError, ["factors"]),
    ("factor-str", U8, "22", {}, (TypeError, ValueError), ["factors"]),
    ("factor-nan", U8, [float("nan")], {}, ValueError, ["factors"]),
    ("method-foo", U8, [2], {"method": "foo"}, ValueError, ["method"]),
    ("stride-sparse", U8, [2], {"method": "stride", "sparse": True}, ValueError,
     ["sparse", "method"]),
    ("c-median", C64, [2], {"method": "median"}, TypeError, ["method", "image"]),
    ("c-min", C64, [2], {"method": "min"}, TypeError, ["method", "image"]),
    ("c-max", C64, [2], {"method": "max"}, TypeError, ["method", "image"]),
    ("object", np.array([1, 2], object), [2], {}, TypeError, ["image"]),
    ("str", np.array(["ab", "cd"]), [2], {}, TypeError, ["image"]),
    ("structured", np.zeros(4, "i4,f4"), [2], {}, TypeError, ["image"]),
    ("void", np.zeros(4, "V4"), [2], {}, TypeError, ["image"]),
    ("datetime", np.zeros(4, "M8[s]"), [2], {}, TypeError, ["image"]),
    ("0d", np.array(5, np.uint8), [], {}, ValueError, ["image"]),
    ("rank9", np.zeros((1,) * 9, np.uint8), [1], {}, ValueError, ["image"]),
    ("threads-0", U8, [2], {"threads": 0}, ValueError, ["threads"]),
    ("threads-neg", U8, [2], {"threads": -1}, ValueError, ["threads"]),
    ("threads-1.5", U8, [2], {"threads": 1.5}, (TypeError, ValueError), ["threads"]),
    ("threads-str", U8, [2], {"threads": "2"}, (TypeError, ValueError), ["threads"]),
]


@pytest.mark.parametrize("image, factors, kwargs, error, names",
                         [pytest.param(*c[1:], id=c[0]) for c in BAD_INPUTS])
def test_downsample_bad_input(image, factors, kwargs, error, names):
    with pytest.raises(error) as info:
        mipmaker.downsample(image, factors, **kwargs)
    message = str(info.value)
    # The name right after a backtick: "`factors`", "`factors[1]`", "`sparse=True`".
    assert any(re.search(rf"`{name}\b", message) for name in names), message
    if image.ndim == 9:
        assert "8" in message


# ---------------------------------------------------------------------------
# No whole-array copy: NumPy reports its allocations to tracemalloc, so any
# conversion, transpose or float temporary of the input would show up here.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["C", "F", "step", "neg", "negstep", "T", "ro"])
@pytest.mark.parametrize("method", METHODS)
def test_downsample_allocates_only_the_output(method, layout):
    import tracemalloc

    rng = np.random.default_rng(5)
    base = rng.integers(0, 50, (64, 96, 48), dtype=np.uint16)  # 576 KiB
    image = with_layout(base, layout)
    mipmaker.downsample(image, (2, 3, 1), method=method, threads=1)  # warm-up
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        out = mipmaker.downsample(image, (2, 3, 1), method=method, threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before <= out.nbytes + 64 * 1024, (peak - before, out.nbytes)


@pytest.mark.parametrize("fn", ["downsample_with_averaging", "downsample_segmentation",
                                "downsample_with_min_pooling", "downsample_with_max_pooling"])
@pytest.mark.parametrize("layout", ["C", "F", "neg"])
def test_compat_allocates_only_the_outputs(fn, layout):
    import tracemalloc

    rng = np.random.default_rng(6)
    image = with_layout(rng.integers(0, 9, (64, 64, 40), dtype=np.uint32), layout)
    run = getattr(mipmaker, fn)
    run(image, (2, 2, 2), num_mips=2)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        mips = run(image, (2, 2, 2), num_mips=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before <= sum(m.nbytes for m in mips) + 64 * 1024
