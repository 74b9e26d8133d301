"""mipmaker.pyramid: exact levels, recursive levels, and argument checks."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mipmaker
from reference import METHODS, output_shape, ref_downsample, ref_pyramid
from test_downsample import LAYOUTS, expects_fortran, pair_image, pair_layout, sparse_holes, with_layout
from test_reference import (
    DTYPES,
    METHOD_DTYPE,
    assert_same_as_oracle,
    image_cases,
    ts_downsample,
)


def checked_pyramid(image, factors, num_levels, **kwargs):
    """mipmaker.pyramid plus the checks every call must pass."""
    before = np.array(image, copy=True)
    levels = mipmaker.pyramid(image, factors, num_levels, **kwargs)
    assert isinstance(levels, list) and len(levels) == num_levels
    assert np.asarray(image).tobytes() == before.tobytes(), "input was modified"
    shape = np.shape(image)
    full = list(factors) + [1] * (len(shape) - len(factors))
    for k, level in enumerate(levels, start=1):
        assert isinstance(level, np.ndarray)
        assert level.dtype == before.dtype
        assert level.shape == output_shape(shape, [f**k for f in full])
        assert not np.shares_memory(level, image)
        if expects_fortran(np.asarray(image)):
            assert level.flags.f_contiguous
        else:
            assert level.flags.c_contiguous
    return levels


def assert_same_level(level, direct, image, factors, method):
    """Identical bytes, except float means (summation order may differ) and float min/max.

    A float block's minimum or maximum can be -0.0 or +0.0 when it holds both
    (they compare equal); which one comes out depends on the order in which
    the pyramid and the direct call meet them, so those compare as values
    (NaN equal to NaN).
    """
    if method == "mean" and level.dtype.kind in "fc":
        assert_same_as_oracle(level, direct, image, factors, method)
    elif method in ("min", "max") and level.dtype.kind == "f":
        np.testing.assert_array_equal(level, direct)
    else:
        assert level.tobytes() == direct.tobytes()


def pyramid_draw(data, dtype, nan=False):
    image, factors = data.draw(image_cases(dtype, max_dims=4, max_side=8, nan=nan))
    factors = [min(f, 4) for f in factors]  # keep f**k blocks meaningful for a few levels
    num_levels = data.draw(st.integers(0, 4))
    layout = data.draw(st.sampled_from(LAYOUTS))
    return image, factors, num_levels, with_layout(image, layout)


@pytest.mark.parametrize("method, dtype_id", METHOD_DTYPE)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_pyramid_exact_is_downsample_of_power(method, dtype_id, data):
    image, factors, num_levels, view = pyramid_draw(data, DTYPES[dtype_id], nan=True)
    sparse = method != "stride" and data.draw(st.booleans())
    levels = checked_pyramid(view, factors, num_levels, method=method, sparse=sparse)
    expected = ref_pyramid(image, factors, num_levels, method, sparse=sparse, exact=True)
    for k, (level, want) in enumerate(zip(levels, expected), start=1):
        direct = mipmaker.downsample(view, [f**k for f in factors], method=method, sparse=sparse)
        assert_same_level(level, direct, image, [f**k for f in factors], method)
        assert_same_as_oracle(level, want, image, [f**k for f in factors], method)


@pytest.mark.parametrize("method, dtype_id", METHOD_DTYPE)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_pyramid_recursive_is_repeated_downsample(method, dtype_id, data):
    _, factors, num_levels, view = pyramid_draw(data, DTYPES[dtype_id], nan=True)
    sparse = method != "stride" and data.draw(st.booleans())
    levels = checked_pyramid(view, factors, num_levels, method=method, sparse=sparse,
                             exact=False)
    previous = view
    for level in levels:
        step = mipmaker.downsample(previous, factors, method=method, sparse=sparse)
        assert_same_level(level, step, previous, factors, method)
        # The oracle reduces the level mipmaker made below, not its own chain:
        # float cancellation (1 + 4e180 - 4e180) may differ one level down, and
        # the next level's tolerance is set by that level's values.
        want = ref_pyramid(np.asarray(previous), factors, 1, method, sparse=sparse, exact=False)[0]
        assert_same_as_oracle(level, want, previous, factors, method)
        previous = level


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_pyramid_matches_tensorstore(method, data):
    dtype = data.draw(st.sampled_from([np.uint8, np.int16, np.uint64, np.float32]))
    image, factors, num_levels, view = pyramid_draw(data, dtype)
    levels = checked_pyramid(view, factors, num_levels, method=method)
    for k, level in enumerate(levels, start=1):
        powered = [f**k for f in factors]
        acc_eps = float(np.finfo(np.float32).eps) if dtype == np.float32 else None
        assert_same_as_oracle(level, ts_downsample(image, powered, method),
                              image, powered, method, acc_eps)


@pytest.mark.parametrize("method", ["min", "max", "stride"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_pyramid_exact_equals_recursive_for_selection(method, data):
    image, factors, num_levels, view = pyramid_draw(data, np.int32)
    exact = checked_pyramid(view, factors, num_levels, method=method)
    recursive = checked_pyramid(view, factors, num_levels, method=method, exact=False)
    for a, b in zip(exact, recursive):
        np.testing.assert_array_equal(a, b)


def test_pyramid_mode_is_exact_at_every_level():
    # tinybrain issue #4: 2x2 sub-blocks (1,1,2,3) (1,1,2,4) (5,5,2,2) (6,6,2,2).
    # Level 1 modes are 1, 1, 2, 2 so a recursive level 2 says 1 (tie to the
    # smallest); the true mode of the 16 voxels is 2 (six copies).
    blocks = [[1, 1, 2, 3], [1, 1, 2, 4], [5, 5, 2, 2], [6, 6, 2, 2]]
    image = np.zeros((4, 4), np.uint64)
    for b, (i, j) in zip(blocks, [(0, 0), (0, 2), (2, 0), (2, 2)]):
        image[i:i + 2, j:j + 2] = np.array(b).reshape(2, 2)
    image += 2**60  # labels far above 2**53
    exact = checked_pyramid(image, [2, 2], 2, method="mode")
    recursive = checked_pyramid(image, [2, 2], 2, method="mode", exact=False)
    np.testing.assert_array_equal(exact[0], np.array([[1, 1], [2, 2]], np.uint64) + 2**60)
    np.testing.assert_array_equal(recursive[0], exact[0])
    assert exact[1][0, 0] == 2 + 2**60
    assert recursive[1][0, 0] == 1 + 2**60


def test_pyramid_mean_does_not_drift():
    # Level 1: (1, 2) -> 1.5 -> 2 and (3, 4) -> 3.5 -> 4 (half to even). Level 2:
    # the exact mean of (1, 2, 3, 4) is 2.5 -> 2; recursion gives mean(2, 4) = 3.
    image = np.array([1, 2, 3, 4], np.uint8)
    exact = checked_pyramid(image, [2], 2, method="mean")
    recursive = checked_pyramid(image, [2], 2, method="mean", exact=False)
    assert exact[0].tolist() == recursive[0].tolist() == [2, 4]
    assert exact[1].tolist() == [2]
    assert recursive[1].tolist() == [3]
    # Many levels of a uint8 ramp: exact levels equal a single direct downsample.
    ramp = (np.arange(4096) % 251).astype(np.uint8).reshape(64, 64)
    for k, level in enumerate(checked_pyramid(ramp, [2, 2], 6), start=1):
        np.testing.assert_array_equal(level, ref_downsample(ramp, [2**k, 2**k], "mean"))


PYRAMID_PAIRS = [  # factors, levels, shape: rows of 70 pairs and a partial block, or long rows cut into chunks
    ((2, 2, 1), 2, None),
    ((2, 2, 2), 2, None),
    ((2, 1, 1), 3, None),
    ((2, 2, 1), 5, None),
    ((2, 3, 1), 2, None),
    ((2, 2, 1), 3, (4100, 5, 3)),
]


@pytest.mark.parametrize("factors, num_levels, shape", PYRAMID_PAIRS,
                         ids=["x".join(map(str, f)) + f"-L{n}" + ("-long" if s else "") for f, n, s in PYRAMID_PAIRS])
@pytest.mark.parametrize("method, dtype_id", [("mean", "u8"), ("mean", "u16"), ("mean", "f32"), ("min", "i8"),
                                              ("max", "u16"), ("max", "i32")], ids="-".join)
@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_pyramid_level_one_pairs_in_registers(factors, num_levels, shape, method, dtype_id, layout):
    # Level 1 of a fused pyramid, two voxels wide along memory, is finished
    # in registers (pair_rows.h), which also hand its sums, counts or extrema
    # to level 2, stored by the first block row and added by the others.
    image = pair_image(factors, dtype_id, [num_levels, len(dtype_id), len(layout), len(method)])
    if shape is not None:
        image = np.resize(image, shape)
    cases = [(False, image)]
    if method == "mean" and dtype_id == "u8":
        cases.append((True, sparse_holes(image, num_levels)))
    for sparse, data in cases:
        levels = checked_pyramid(pair_layout(data, layout), factors, num_levels, method=method, sparse=sparse)
        for k, level in enumerate(levels, start=1):
            power = [f**k for f in factors]
            expected = ref_downsample(data, power, method, sparse=sparse)
            if method == "mean":
                assert_same_as_oracle(level, expected, data, power, method)
            else:
                np.testing.assert_array_equal(level, expected)


@pytest.mark.parametrize("factors", [(2, 2, 1), (2, 2, 2), (2, 4, 2)], ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("method, dtype_id", [("mean", "u8"), ("mean", "u16"), ("min", "u8"), ("max", "i32")],
                         ids="-".join)
@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_pyramid_level_one_rows_read_in_turn(factors, method, dtype_id, layout):
    # Level 1's block rows less than 4 KiB apart are read one after another
    # (pair_rows.h InTurn) and still hand level 2 its sums, counts or
    # extrema; u8 rows of 2101 voxels make two pieces of 1024 outputs.
    width = {"u8": 2 * 1050 + 1, "u16": 2 * 300, "i32": 2 * 200}[dtype_id]
    rng = np.random.default_rng([sum(factors), width, len(layout), len(method)])
    info = np.iinfo(DTYPES[dtype_id])
    image = rng.integers(info.min, info.max, (width, 4 * factors[1] + 1, 4 * factors[2]), dtype=DTYPES[dtype_id],
                         endpoint=True)
    image[:, : factors[1], 0] = info.max  # the largest sums
    cases = [(False, image)] + ([(True, sparse_holes(image, 3))] if method == "mean" and dtype_id == "u8" else [])
    for sparse, data in cases:
        levels = checked_pyramid(pair_layout(data, layout), factors, 2, method=method, sparse=sparse)
        for k, level in enumerate(levels, start=1):
            expected = ref_downsample(data, [f**k for f in factors], method, sparse=sparse)
            np.testing.assert_array_equal(level, expected)


@pytest.mark.parametrize("factors, num_levels", [((2, 2, 1), 2), ((2, 2, 1), 3), ((2, 2, 1), 5), ((2, 1, 1), 2),
                                                 ((2, 2, 2), 2), ((2, 2, 2), 3), ((2, 1, 2), 2)],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else f"L{v}")
@pytest.mark.parametrize("width", [4 * 40 + 3, 4 * 300 + 2, 4 * 1030 + 1], ids=["one-step", "in-turn", "far-rows"])
@pytest.mark.parametrize("layout", ["F", "Fpad"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_pyramid_two_levels_in_registers(factors, num_levels, width, layout, sparse):
    # u8 means two voxels wide: levels 1 and 2 finish together in registers
    # (two_levels.h) and hand level 3 their sums (u16, or u32 for 5 levels).
    # 40 level-2 outputs make one step and a tail (16 block rows decline:
    # too few steps to read in turn); 300 are read in turn; rows 4121 wide
    # are a page apart, read together (16 block rows decline). The odd
    # heights leave edge blocks whose counts are not powers of two. Sparse
    # pyramids carry sums and counts (packed, see two_levels.h): empty runs
    # and scattered zeros give every count.
    rng = np.random.default_rng([sum(factors), num_levels, width, len(layout), sparse])
    depth = 4 * factors[2] + 1 if factors[2] > 1 else 3
    image = rng.integers(0, 256, (width, 4 * 3 + 1, depth), dtype=np.uint8)
    image[:, :4, 0] = 255  # the largest sums
    if sparse:
        image = sparse_holes(image, width)
        image[rng.random(image.shape) < 0.3] = 0
    view = pair_layout(image, layout)
    levels = checked_pyramid(view, factors, num_levels, method="mean", sparse=sparse)
    compat = mipmaker.downsample_with_averaging(view, factors, num_mips=num_levels, sparse=sparse)
    for k, (level, truncated) in enumerate(zip(levels, compat), start=1):
        block = [f**k for f in factors]
        np.testing.assert_array_equal(level, ref_downsample(image, block, "mean", sparse=sparse), err_msg=f"level {k}")
        np.testing.assert_array_equal(truncated, ref_downsample(image, block, "mean", sparse=sparse, rounding="trunc"),
                                      err_msg=f"level {k} (truncated)")


@pytest.mark.parametrize("layout", ["F", "Fpad"])
def test_pyramid_two_levels_sparse_every_count_and_sum(layout):
    # Every (count, sum) a sparse 4x4 block of u8 can hold: count 0..16 and
    # sum count..255 * count, one per level-2 block, so level 2's 16-entry
    # reciprocal table (two_levels.h) is checked exhaustively in both
    # roundings. The nonzero voxels sit at random places in their block.
    cases = [(c, s) for c in range(17) for s in range(c, 255 * c + 1)]
    count, total = np.array(cases).T
    nx = 1024
    ny = -(-len(cases) // nx)
    count = np.resize(count, nx * ny)
    total = np.resize(total, nx * ny)
    rank = np.random.default_rng(7).random((nx * ny, 16)).argsort(1).argsort(1)  # a random order in each block
    base, extra = np.divmod(total, np.maximum(count, 1))
    value = np.where(rank < count[:, None], base[:, None] + (rank < extra[:, None]), 0).astype(np.uint8)
    # value[b, 4 * i + j] is voxel (i, j) of block b = bx + nx * by.
    image = value.reshape(ny, nx, 4, 4).transpose(1, 2, 0, 3).reshape(4 * nx, 4 * ny, 1)
    view = pair_layout(image, layout)
    for rounding, levels in (("half_even", checked_pyramid(view, (2, 2, 1), 2, method="mean", sparse=True)),
                             ("trunc", mipmaker.downsample_with_averaging(view, (2, 2, 1), num_mips=2, sparse=True))):
        for k, level in enumerate(levels, start=1):
            expected = ref_downsample(image, [2**k, 2**k, 1], "mean", sparse=True, rounding=rounding)
            np.testing.assert_array_equal(level, expected, err_msg=f"level {k} ({rounding})")


@pytest.mark.parametrize("factors, num_levels", [((2, 2, 1), 2), ((2, 2, 1), 3), ((1, 2, 1), 2), ((2, 2, 2), 2),
                                                 ((2, 2, 2), 3)],
                         ids=["2x2x1-L2", "2x2x1-L3", "1x2x1-L2", "2x2x2-L2", "2x2x2-L3"])
@pytest.mark.parametrize("lanes", [32, 64])
def test_pyramid_c_order_lane_pairs_in_registers(factors, num_levels, lanes):
    # C-order u8 means with a short last axis: level 1's adjacent lane groups
    # (or short rows) finish in registers and hand their sums and counts to
    # level 2 lane by lane; pyramids of more than one level sum all of level
    # 1's rows of a pass in registers in one call as well, dense or sparse
    # (ShortRowPyramid::RegisterLevelOne).
    rng = np.random.default_rng([lanes, num_levels, sum(factors)])
    image = rng.integers(0, 256, (9, 2 * 40 + 1, lanes), dtype=np.uint8)
    image[:, :5] = 255
    holes = rng.random(image.shape) < 0.4
    for sparse, data in ((False, image), (True, np.where(holes, np.uint8(0), image))):
        levels = checked_pyramid(data, factors, num_levels, method="mean", sparse=sparse)
        for k, level in enumerate(levels, start=1):
            np.testing.assert_array_equal(level, ref_downsample(data, [f**k for f in factors], "mean", sparse=sparse))


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "recursive"])
@pytest.mark.parametrize("method", METHODS)
def test_pyramid_num_levels(method, exact):
    image = np.arange(5 * 7, dtype=np.int32).reshape(5, 7)
    assert checked_pyramid(image, [2, 2], 0, method=method, exact=exact) == []
    levels = checked_pyramid(image, [2, 3], 5, method=method, exact=exact)
    assert [lvl.shape for lvl in levels] == [(3, 3), (2, 1), (1, 1), (1, 1), (1, 1)]
    # Levels past one voxel keep reducing the same whole-image block.
    assert levels[3].tolist() == levels[4].tolist()


@pytest.mark.parametrize("method", METHODS)
def test_pyramid_fortran_and_threads(method):
    rng = np.random.default_rng(2)
    image = np.asfortranarray(rng.integers(0, 4, (45, 31, 9)).astype(np.uint16))
    runs = [checked_pyramid(image, [2, 2, 1], 3, method=method, threads=t) for t in (1, 3)]
    for a, b in zip(*runs):
        assert a.tobytes(order="A") == b.tobytes(order="A")
    for k, level in enumerate(runs[0], start=1):
        np.testing.assert_array_equal(level, ref_downsample(image, [2**k, 2**k, 1], method))


def test_pyramid_accepts_lists_and_float_factors():
    levels = mipmaker.pyramid([[1, 2, 3, 4], [5, 6, 7, 8]], [2.0, 2.0], 2, method="max")
    assert [lvl.tolist() for lvl in levels] == [[[6, 8]], [[8]]]


U8 = np.zeros((4, 4, 4), np.uint8)
BAD_INPUTS = [  # id, image, factors, num_levels, keywords, exception, parameter names
    ("levels-neg", U8, [2], -1, {}, ValueError, ["num_levels"]),
    ("levels-1.5", U8, [2], 1.5, {}, (TypeError, ValueError), ["num_levels"]),
    ("factor-0", U8, [0], 2, {}, ValueError, ["factors"]),
    ("factor-2.5", U8, [2.5], 2, {}, ValueError, ["factors"]),
    ("factor-long", U8, [2, 2, 2, 2], 2, {}, ValueError, ["factors"]),
    ("factor-int", U8, 2, 2, {}, TypeError, ["factors"]),
    ("method-foo", U8, [2], 2, {"method": "foo"}, ValueError, ["method"]),
    ("stride-sparse", U8, [2], 2, {"method": "stride", "sparse": True}, ValueError,
     ["sparse", "method"]),
    ("c-median", np.zeros(4, np.complex128), [2], 1, {"method": "median"}, TypeError,
     ["method", "image"]),
    ("object", np.array([1, 2], object), [2], 1, {}, TypeError, ["image"]),
    ("0d", np.array(5.0), [], 1, {}, ValueError, ["image"]),
    ("rank9", np.zeros((1,) * 9), [1], 1, {}, ValueError, ["image"]),
    ("threads-0", U8, [2], 1, {"threads": 0}, ValueError, ["threads"]),
]


@pytest.mark.parametrize("image, factors, num_levels, kwargs, error, names",
                         [pytest.param(*c[1:], id=c[0]) for c in BAD_INPUTS])
def test_pyramid_bad_input(image, factors, num_levels, kwargs, error, names):
    with pytest.raises(error) as info:
        mipmaker.pyramid(image, factors, num_levels, **kwargs)
    message = str(info.value)
    # The name right after a backtick: "`factors`", "`factors[1]`", "`sparse=True`".
    assert any(re.search(rf"`{name}\b", message) for name in names), message


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64])
def test_pyramid_mode_of_blocky_then_noisy_labels(dtype, sparse):
    # The exact mode counts few labels per block in vector passes and falls
    # back to sorting and merging, run by run, where the labels are noise:
    # a volume of blocky labels with random ones in the middle switches to
    # merging and back, and every level still equals a direct downsample.
    rng = np.random.default_rng(7)
    shape = (64, 48, 64)
    blocky = rng.integers(0, 5, (13, 10, 13)).repeat(5, 0).repeat(5, 1).repeat(5, 2)[:64, :48, :64]
    middle = (np.arange(64) >= 16) & (np.arange(64) < 40)
    image = np.where(middle[:, None, None], rng.integers(0, 250, shape), blocky).astype(dtype)
    levels = checked_pyramid(image, (2, 2, 2), 3, method="mode", sparse=sparse)
    for k, level in enumerate(levels, start=1):
        direct = mipmaker.downsample(image, [2**k] * 3, method="mode", sparse=sparse)
        np.testing.assert_array_equal(level, direct)


@pytest.mark.parametrize("num_levels", [2, 3])
@pytest.mark.parametrize("layout", ["C", "F", "Fpad"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [np.uint64, np.int64, np.uint32, np.int32])
def test_pyramid_mode_of_four_cubes_in_registers(dtype, sparse, layout, num_levels):
    # 2x2x2 modes of 64- and 32-bit labels take levels 1 and 2 of whole 4x4x4
    # blocks in registers (histogram_cube.h), one pass per distinct label;
    # past 16 labels a block is sorted instead. Each 4x4x4 block draws from
    # its own palette of 1..40 labels (zero and negatives included, so
    # sparse blocks empty out and signed ties go to the most negative),
    # which gives every pass count, both sides of the limit and many ties;
    # edge blocks (shape not a multiple of 4) take the general path. 64-bit
    # labels sharing a high half in a block are counted on their low halves:
    # blocks get a high half of their own (0, 5, top bit or negative) or one
    # per voxel, and low halves about 2^31 and 2^32 - 1 (which order as
    # unsigned even in signed labels).
    rng = np.random.default_rng([num_levels, len(layout), sparse, np.dtype(dtype).itemsize])
    shape = (4 * 5 + 1, 4 * 3 + 2, 4 * 9 + 3)
    blocks = tuple(-(-s // 4) for s in shape)
    sizes = rng.choice([1, 2, 3, 5, 16, 17, 40], blocks)
    picks = (rng.random(blocks + (4, 4, 4)) * sizes[..., None, None, None]).astype(np.int64)
    picks = picks.transpose(0, 3, 1, 4, 2, 5).reshape([4 * b for b in blocks])[:shape[0], :shape[1], :shape[2]]
    signed = np.dtype(dtype).kind == "i"
    palette = rng.permutation(np.arange(-8 if signed else 0, 60)).astype(dtype)
    palette[rng.random(palette.size) < 0.1] = 0
    wide = np.dtype(dtype).itemsize == 8
    if wide:
        palette[rng.choice(palette.size, 4, replace=False)] = np.array([2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1],
                                                                       np.int64).astype(dtype)
    image = palette[picks]
    if wide:
        highs = rng.choice(np.array([0, 5, -3 if signed else 2**31 + 3, -1], np.int64), blocks)
        high = highs.repeat(4, 0).repeat(4, 1).repeat(4, 2)[:shape[0], :shape[1], :shape[2]]
        high = np.where(high == -1, rng.integers(0, 2, shape), high).astype(dtype)
        with np.errstate(over="ignore"):
            image = image + (high << dtype(32))
    view = with_layout(image, layout) if layout != "Fpad" else pair_layout(image, "Fpad")
    levels = checked_pyramid(view, (2, 2, 2), num_levels, method="mode", sparse=sparse)
    for k, level in enumerate(levels, start=1):
        want = ref_downsample(image, [2**k] * 3, "mode", sparse=sparse)
        np.testing.assert_array_equal(level, want, err_msg=f"level {k}")


@pytest.mark.parametrize("method", ["mode", "median"])
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), layout=st.sampled_from(LAYOUTS),
       dtype=st.sampled_from([np.uint8, np.int16, np.uint32, np.int64, np.uint64]),
       factors=st.sampled_from([(2, 2, 2), (2, 2, 1), (1, 2, 3), (2, 2, 2, 1), (4, 4, 4)]),
       num_levels=st.integers(1, 4), noise=st.sampled_from([0.0, 0.02, 0.3]),
       labels=st.sampled_from([6, 200]))
def test_pyramid_histograms_of_blocky_labels(method, seed, sparse, layout, dtype, factors, num_levels, noise,
                                             labels):
    # Segmentation-like volumes, large enough that whole blocks of several
    # levels (the level-by-level leaf, in runs along the fastest axis) sit
    # beside partial edge blocks: every level equals a direct downsample.
    # 200 labels with noise give blocks of many bins (past the exact mode's
    # few-bins path) and many tied modes.
    rng = np.random.default_rng(seed)
    shape = tuple(int(rng.integers(5, 40)) for _ in factors)
    palette = rng.choice(np.arange(-3, 250).astype(dtype) if np.dtype(dtype).kind == "i"
                         else np.arange(0, 250).astype(dtype), labels, replace=False)
    palette[0] = 0
    coarse = rng.integers(0, labels, tuple(-(-s // 5) for s in shape))
    idx = coarse
    for axis in range(len(shape)):
        idx = idx.repeat(5, axis)
    idx = idx[tuple(slice(0, s) for s in shape)]
    idx = np.where(rng.random(shape) < noise, rng.integers(0, labels, shape), idx)
    image = palette[idx]
    view = with_layout(image, layout)
    levels = checked_pyramid(view, factors, num_levels, method=method, sparse=sparse)
    for k, level in enumerate(levels, start=1):
        direct = mipmaker.downsample(image, [f**k for f in factors], method=method, sparse=sparse)
        np.testing.assert_array_equal(level, direct)
