"""Resource edges: huge outputs, overflowing shapes, huge factors, tiny volumes.

None of these may crash the interpreter: an output that cannot be allocated
is a MemoryError, a shape whose size overflows 64 bits a ValueError, and
factors far beyond the extent or volumes of one voxel give ordinary results.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import mipmaker
from reference import METHODS, ref_downsample, ref_pyramid


def _zeros_view(shape, dtype=np.uint8):
    """A read-only view of `shape` backed by one element (all strides 0)."""
    return as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape), writeable=False)


# ---------------------------------------------------------------------------
# Outputs too large to allocate
# ---------------------------------------------------------------------------

HUGE_CALLS = [
    pytest.param(lambda a: mipmaker.downsample(a, (1, 1)), id="mean"),
    pytest.param(lambda a: mipmaker.downsample(a, (1, 1), method="mode"), id="mode"),
    pytest.param(lambda a: mipmaker.downsample(a, (2, 1), method="stride"), id="stride"),
    pytest.param(lambda a: mipmaker.pyramid(a, (1, 1), 2), id="pyramid"),
    pytest.param(lambda a: mipmaker.pyramid(a, (2, 2), 2, method="stride"), id="pyramid-stride"),
    pytest.param(lambda a: mipmaker.pyramid(a, (1, 1), 2, exact=False), id="recursive"),
    pytest.param(lambda a: mipmaker.downsample_with_averaging(a, (1, 1)), id="tb-avg"),
    pytest.param(lambda a: mipmaker.downsample_segmentation(a, (2, 2)), id="tb-seg-2x2"),
    pytest.param(lambda a: mipmaker.downsample_segmentation(a, (1, 2)), id="tb-seg-mode"),
    pytest.param(lambda a: mipmaker.downsample_with_max_pooling(a, (1, 1)), id="tb-max"),
]


@pytest.mark.parametrize("call", HUGE_CALLS)
def test_huge_output_is_memory_error(call):
    image = _zeros_view((2**40, 2**20))  # 1 EiB of zeros in one byte
    with pytest.raises(MemoryError):
        call(image)


def test_huge_input_small_levels():
    # The input is 1 TiB of zeros, the levels are tiny: only they are allocated.
    levels = mipmaker.pyramid(_zeros_view((2**20, 2**20)), (2**19, 2**19), 2, method="stride")
    assert [lv.shape for lv in levels] == [(2, 2), (1, 1)]


# ---------------------------------------------------------------------------
# Shapes whose sizes do not fit 64 bits
# ---------------------------------------------------------------------------


class _Interface:
    """An array-like that claims `shape` over a single byte (strides 0)."""

    def __init__(self, shape):
        self._base = np.zeros(1, np.uint8)
        self.__array_interface__ = {
            "shape": shape, "typestr": "|u1", "strides": (0,) * len(shape),
            "data": (self._base.ctypes.data, True), "version": 3,
        }


@pytest.mark.parametrize("shape", [(2**40, 2**40), (2**62, 4), (2**21,) * 3], ids=["2d", "4", "3d"])
@pytest.mark.parametrize("call", [
    pytest.param(lambda a: mipmaker.downsample(a, (2,)), id="downsample"),
    pytest.param(lambda a: mipmaker.pyramid(a, (2,), 3), id="pyramid"),
    pytest.param(lambda a: mipmaker.downsample_segmentation(a, (2, 2)), id="tb-seg"),
    pytest.param(lambda a: mipmaker.downsample_with_striding(a, (2, 2)), id="tb-stride"),
])
def test_shape_overflow_is_value_error(shape, call):
    with pytest.raises(ValueError):
        call(_Interface(shape))


@pytest.mark.parametrize("shape, factors", [
    ((2**62,), (2**62,)), ((2**31, 2**31), (2**31, 2**31)), ((2**40, 3), (2**63, 2)),
], ids=["1d", "2d", "beyond"])
def test_enormous_views_stride_near_int64_limits(shape, factors):
    # Only block origins are read, so this is fast; index arithmetic runs
    # close to 2**63 (UBSan checks it in .ci/sanitize).
    image = _zeros_view(shape)
    got = mipmaker.downsample(image, factors, method="stride", threads=2)
    assert got.shape == tuple(-(-n // min(f, n)) for n, f in zip(shape, factors))
    assert not got.any()
    views = mipmaker.downsample_with_striding(image, factors, num_mips=3)
    assert views[-1].size and not views[-1].any()


# ---------------------------------------------------------------------------
# Factors far beyond the extent; one-voxel volumes; many levels
# ---------------------------------------------------------------------------

HUGE_FACTORS = [2**40, 2**62, 2**63, 2**100]
SHAPES = [(1,), (1, 1, 1), (3, 5), (2, 1, 3, 1)]


def _image(shape, dtype=np.int16):
    return (np.arange(int(np.prod(shape))) % 7 - 2).astype(dtype).reshape(shape)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", HUGE_FACTORS, ids=["2^40", "2^62", "2^63", "2^100"])
@pytest.mark.parametrize("shape", SHAPES, ids=["1", "1x1x1", "3x5", "2x1x3x1"])
def test_huge_factors_reduce_to_one_voxel(method, factor, shape):
    image = _image(shape)
    factors = (factor,) * len(shape)
    got = mipmaker.downsample(image, factors, method=method)
    assert got.shape == (1,) * len(shape)
    np.testing.assert_array_equal(got, ref_downsample(image, factors, method))
    levels = mipmaker.pyramid(image, factors, 5, method=method)
    for level in levels:
        np.testing.assert_array_equal(level, got)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int64, np.float16, np.complex128],
                         ids=["b", "u8", "i64", "f16", "c128"])
def test_one_voxel_volume(method, dtype):
    image = np.ones((1, 1, 1), dtype)
    if method in ("median", "min", "max") and np.dtype(dtype).kind == "c":
        pytest.skip("ordered methods do not take complex data")
    for factors in [(1, 1, 1), (2, 2, 2), (2**40, 3, 1)]:
        got = mipmaker.downsample(image, factors, method=method, sparse=False)
        np.testing.assert_array_equal(got, image)
        assert mipmaker.pyramid(image, factors, 3, method=method)[-1].shape == (1, 1, 1)


@pytest.mark.parametrize("factor", [(2, 2, 2), (2, 2, 1), (3, 3, 3), (2**40,) * 3],
                         ids=["2x2x2", "2x2x1", "3x3x3", "huge"])
def test_one_voxel_volume_tinybrain(factor):
    image = np.array([[[7]]], np.uint32)
    for result in (
        mipmaker.downsample_with_averaging(image, factor, num_mips=3),
        mipmaker.downsample_segmentation(image, factor, num_mips=3),
        mipmaker.downsample_segmentation(image, factor, sparse=True, num_mips=3),
        mipmaker.downsample_with_striding(image, factor, num_mips=3),
        mipmaker.downsample_with_min_pooling(image, factor, num_mips=3),
        mipmaker.downsample_with_max_pooling(image, factor, num_mips=3),
    ):
        assert len(result) == 3
        for level in result:
            np.testing.assert_array_equal(level, image)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "recursive"])
@pytest.mark.parametrize("method", METHODS)
def test_many_levels_on_tiny_volumes(method, exact):
    # More levels than the fused core call takes (16): the rest run one by one.
    image = _image((3, 2, 5), np.uint8)
    levels = mipmaker.pyramid(image, (2, 2, 2), 40, method=method, exact=exact)
    assert len(levels) == 40
    want = ref_pyramid(image, (2, 2, 2), 20, method, exact=exact)
    for got, expected in zip(levels, want):
        np.testing.assert_array_equal(got, expected)
    for level in levels[20:]:
        np.testing.assert_array_equal(level, want[-1])


def test_many_mips_tinybrain():
    image = _image((5, 3), np.uint8)
    for fn in (mipmaker.downsample_with_averaging, mipmaker.downsample_segmentation,
               mipmaker.downsample_with_striding, mipmaker.downsample_with_max_pooling):
        mips = fn(image, (2, 2), num_mips=40)
        assert len(mips) == 40 and mips[-1].shape == (1, 1)


# ---------------------------------------------------------------------------
# Found by the fuzzer under UBSan: unaligned data; threads beyond a C int
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, offset", [
    (np.float32, 1), (np.uint16, 1), (np.int64, 4), (np.complex64, 4), (np.complex128, 4),
], ids=["f32+1", "u16+1", "i64+4", "c64+4", "c128+4"])
def test_unaligned_data_is_value_error(dtype, offset):
    # Reading elements through a misaligned pointer is undefined behaviour in
    # the C++ kernels; NumPy makes such arrays from buffers with an offset.
    itemsize = np.dtype(dtype).itemsize
    buf = np.zeros(8 * itemsize + 16, np.uint8)
    image = np.ndarray((2, 4), dtype, buffer=buf, offset=offset)
    with pytest.raises(ValueError, match="aligned"):
        mipmaker.downsample(image, (2, 2))
    with pytest.raises(ValueError, match="aligned"):
        mipmaker.downsample_segmentation(image, (2, 2))
    aligned = np.ndarray((2, 4), dtype, buffer=buf, offset=16)
    out = np.ndarray((1, 2), dtype, buffer=np.zeros(2 * itemsize + 16, np.uint8), offset=offset)
    with pytest.raises(ValueError, match="aligned"):
        mipmaker.downsample(aligned, (2, 2), out=out)
    np.testing.assert_array_equal(mipmaker.downsample(aligned, (2, 2)), np.zeros((1, 2), dtype))


@pytest.mark.parametrize("threads", [2**31, 2**63, 10**30], ids=["2^31", "2^63", "10^30"])
def test_threads_beyond_c_int(threads):
    image = _image((40, 30), np.uint16)
    got = mipmaker.downsample(image, (3, 2), method="mode", threads=threads)
    np.testing.assert_array_equal(got, mipmaker.downsample(image, (3, 2), method="mode", threads=1))
