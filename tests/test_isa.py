"""Every instruction-set build of the kernels gives the reference's answers.

The default ISA runs the whole suite; here each available one (the portable
scalar build always among them) is forced in turn on a randomized sweep.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mipmaker
from mipmaker import _core
from reference import ref_downsample, ref_pyramid, ref_tb_mode_2x2, ref_tb_mode_2x2x2
from test_downsample import small_block_image

ISAS = _core.available_isas()
DEFAULT_ISA = _core.isa()
DTYPES = [np.uint8, np.int16, np.uint32, np.int64, np.uint64, np.float32, np.float64, np.bool_]


@pytest.fixture(params=ISAS)
def isa(request):
    previous = _core.isa()
    assert _core.force_isa(request.param)
    yield request.param
    _core.force_isa(previous)


def test_scalar_build_is_always_available():
    assert "scalar" in ISAS
    assert _core.isa() in ISAS
    assert not _core.force_isa("no-such-isa")


@pytest.mark.skipif(bool(os.environ.get("MIPMAKER_ISA")), reason="MIPMAKER_ISA chooses the build")
def test_default_is_the_widest_build_the_cpu_runs():
    # available_isas() lists the builds this CPU runs from the narrowest up.
    assert ISAS[0] == "scalar"
    assert DEFAULT_ISA == ISAS[-1]


@st.composite
def cases(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, 11), min_size=1, max_size=4)))
    if dtype.kind == "b":
        seed = draw(st.integers(0, 2**32 - 1))
        image = np.random.default_rng(seed).integers(0, 2, shape).astype(bool)
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 4, shape).astype(dtype) if draw(st.booleans()) else (
            rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
            if dtype.kind in "iu" else rng.normal(0, 100, shape).astype(dtype))
    factors = draw(st.lists(st.integers(1, 4), min_size=len(shape), max_size=len(shape)))
    order = draw(st.sampled_from("CF"))
    return np.asarray(image, order=order), factors


@pytest.mark.parametrize("method", ["mean", "mode", "median", "min", "max", "stride"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), sparse=st.booleans())
def test_isa_matches_reference(isa, method, case, sparse):
    image, factors = case
    sparse = sparse and method != "stride"
    got = mipmaker.downsample(image, factors, method=method, sparse=sparse, threads=2)
    want = ref_downsample(image, factors, method, sparse=sparse)
    if method == "mean" and image.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rule", ["2x2", "2x2x2"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), order=st.sampled_from("CF"),
       dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64]))
def test_isa_tinybrain_rules(isa, rule, seed, sparse, order, dtype):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 12, 3))
    image = np.asarray(rng.integers(0, 3, shape).astype(dtype), order=order)
    factor = (2, 2, 1) if rule == "2x2" else (2, 2, 2)
    got = mipmaker.downsample_segmentation(image, factor, sparse=sparse)[0]
    want = ref_tb_mode_2x2(image, sparse) if rule == "2x2" else ref_tb_mode_2x2x2(image, sparse)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rule", ["2x2", "2x2x2"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), order=st.sampled_from("CFY"),
       dtype=st.sampled_from([np.uint32, np.int32, np.uint64, np.int64]), noise=st.sampled_from([0.0, 0.05, 0.5]))
def test_isa_tinybrain_rules_long_blocky_lines(isa, rule, seed, sparse, order, dtype, noise):
    # Lines of whole vectors (AVX2: 4 or 8 outputs) mixing uniform and mixed
    # blocks, as a segmentation does, with labels that use the sign bit. The
    # vector lines are instantiated per unit-stride axis: x (F), z (C) and y
    # ("Y": C order with one plane, so y is the unit-stride axis).
    rng = np.random.default_rng(seed)
    fast = {"F": 0, "Y": 1, "C": 2}[order]
    shape = tuple(int(s) for s in rng.integers(2, 40, 3))
    shape = tuple(int(rng.integers(33, 70)) if d == fast else s for d, s in enumerate(shape))
    if order == "Y":
        shape = shape[:2] + (1,)
    info = np.iinfo(dtype)
    palette = rng.integers(info.min, info.max, 4, dtype=dtype, endpoint=True)
    palette[0] = 0
    coarse = rng.integers(0, 4, tuple(-(-s // 3) for s in shape))
    idx = coarse.repeat(3, 0).repeat(3, 1).repeat(3, 2)[: shape[0], : shape[1], : shape[2]]
    flip = rng.random(shape) < noise
    idx = np.where(flip, rng.integers(0, 4, shape), idx)
    image = np.asarray(palette[idx], order="C" if order == "Y" else order)
    factor = (2, 2, 1) if rule == "2x2" else (2, 2, 2)
    got = mipmaker.downsample_segmentation(image, factor, sparse=sparse)[0]
    want = ref_tb_mode_2x2(image, sparse) if rule == "2x2" else ref_tb_mode_2x2x2(image, sparse)
    np.testing.assert_array_equal(got, want)


def _pair_rows(rng, min_length, order, fz):
    """(shape, factors) of a volume whose contiguous axis (min_length..149 long) is halved."""
    shape = [int(rng.integers(min_length, 150)), int(rng.integers(1, 9)), int(rng.integers(1, 6))]
    factors = [2, 2, fz]
    if order == "C":
        shape, factors = shape[::-1], factors[::-1]
    return shape, factors


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16], ids=lambda d: np.dtype(d).name)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), order=st.sampled_from("CF"),
       levels=st.integers(1, 3), fz=st.sampled_from([1, 2]))
def test_isa_pair_means_of_long_rows(isa, dtype, seed, sparse, order, levels, fz):
    # Means in pairs along a contiguous axis of whole vectors and a tail
    # (AVX2: 32 bytes), extreme values and runs of zeros, one level and
    # fused pyramids (16- and 32-bit accumulators, first and later rows).
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    shape, factors = _pair_rows(rng, 33, order, fz)
    image = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    image[rng.random(shape) < 0.3] = 0
    image[rng.random(shape) < 0.1] = info.max
    image[rng.random(shape) < 0.1] = info.min
    image = np.asarray(image, order=order)
    got = mipmaker.pyramid(image, factors, levels, method="mean", sparse=sparse, threads=2)
    want = ref_pyramid(image, factors, levels, "mean", sparse=sparse)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), order=st.sampled_from("CF"),
       levels=st.integers(1, 3), fz=st.sampled_from([1, 2]))
def test_isa_float_pair_means_of_long_rows(isa, seed, sparse, order, levels, fz):
    # float32 means in pairs along a contiguous axis (AVX2: 8 floats a step,
    # summed in double) with a tail, signed zeros, infinities and NaN.
    rng = np.random.default_rng(seed)
    shape, factors = _pair_rows(rng, 17, order, fz)
    image = (rng.normal(0, 1000, shape)).astype(np.float32)
    image[rng.random(shape) < 0.3] = 0.0
    image[rng.random(shape) < 0.1] = -0.0
    image[rng.random(shape) < 0.02] = np.inf
    image[rng.random(shape) < 0.02] = np.nan
    image = np.asarray(image, order=order)
    got = mipmaker.pyramid(image, factors, levels, method="mean", sparse=sparse, threads=2)
    want = ref_pyramid(image, factors, levels, "mean", sparse=sparse)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("method", ["mean", "min", "max"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.float32], ids=lambda d: np.dtype(d).name)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), levels=st.integers(1, 3),
       fx=st.integers(1, 3), fy=st.integers(1, 3), fz=st.integers(2, 4))
def test_isa_short_row_pyramids(isa, method, dtype, seed, sparse, levels, fx, fy, fz):
    # C order with a short last axis that every level halves (thirds,
    # quarters) whole: several top-level rows per pass, with partial blocks
    # along the outer axes and a partial y block (one row at a time) at the
    # edge.
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 8)), int(rng.integers(1, 40)), fz**levels * int(rng.integers(1, 4)))
    if dtype == np.float32:
        image = rng.normal(0, 1000, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        image = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    image[rng.random(shape) < 0.3] = 0
    factors = (fx, fy, fz)
    got = mipmaker.pyramid(image, factors, levels, method=method, sparse=sparse, threads=2)
    want = ref_pyramid(image, factors, levels, method, sparse=sparse)
    for g, w in zip(got, want):
        if dtype == np.float32 and method == "mean":
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-30)
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32], ids=lambda d: np.dtype(d).name)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), levels=st.integers(1, 3),
       rounding=st.sampled_from(["trunc", "half_even"]))
def test_isa_lane_means(isa, dtype, seed, sparse, levels, rounding):
    # C order with a short factor-1 last axis runs as lanes: whole lane pairs,
    # a short block at the row's end, kept sums stored and added in pyramids.
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    shape = (int(rng.integers(1, 9)), int(rng.integers(2, 40)), int(rng.integers(2, 70)))
    image = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    image[rng.random(shape) < 0.3] = 0
    factors = (2, 2, 1)
    if rounding == "trunc":
        # tinybrain's averaging truncates; mipmaker's drop-in does the same.
        got = mipmaker.downsample_with_averaging(image, factors, levels, sparse, threads=2)
        want = ref_pyramid(image, factors, levels, "mean", sparse=sparse, rounding="trunc")
    else:
        got = mipmaker.pyramid(image, factors, levels, method="mean", sparse=sparse, threads=2)
        want = ref_pyramid(image, factors, levels, "mean", sparse=sparse)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("method", ["mode", "median"])
@pytest.mark.parametrize("factors", [(2, 2, 2), (3, 3, 3), (4, 4, 1), (1, 1, 32)],
                         ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("dtype_id", ["u8", "i16", "u64", "f32"])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_isa_blocks_up_to_32(isa, method, factors, dtype_id, layout):
    # The SIMD paths for mode and median of small blocks, and their portable
    # counterparts (the scalar build counts pairs and keeps nth_element).
    view = small_block_image(factors, dtype_id, layout, [len(isa), sum(factors), len(dtype_id)])
    image = np.ascontiguousarray(view)
    for sparse in (False, True):
        got = mipmaker.downsample(view, factors, method=method, sparse=sparse)
        np.testing.assert_array_equal(got, ref_downsample(image, factors, method, sparse=sparse))


@pytest.mark.parametrize("method", ["mode", "median"])
@pytest.mark.parametrize("factors", [(4, 4, 1), (3, 3, 3)], ids=lambda f: "x".join(map(str, f)))
@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.uint64, np.int64], ids=lambda d: np.dtype(d).str[1:])
def test_isa_sorted_blocks_with_extreme_labels(isa, method, factors, dtype):
    # Blocks of 16 and 27 values are sorted in SIMD lanes by an unrolled
    # network (medians; modes where the ISA has min/max for the width) and
    # scanned for the longest run: few labels, so runs tie often, drawn from
    # the type's extremes, its sign boundary and zero. Rows of 130 blocks
    # along memory fill whole 64-byte vectors and a scalar tail.
    info = np.iinfo(dtype)
    palette = np.array(sorted({info.min, info.min + 1, -1 if info.min < 0 else 1, 0, 2,
                               info.max // 2, info.max // 2 + 1, info.max}), dtype=dtype)
    rng = np.random.default_rng([len(isa), sum(factors), np.dtype(dtype).itemsize])
    shape = (factors[0] * 130 + 1, factors[1] * 2, factors[2] * 2)
    for k in (2, 3, len(palette)):
        image = np.asfortranarray(rng.choice(palette[rng.permutation(len(palette))[:k]], shape))
        for sparse in (False, True):
            got = mipmaker.downsample(image, factors, method=method, sparse=sparse)
            np.testing.assert_array_equal(got, ref_downsample(image, factors, method, sparse=sparse))
