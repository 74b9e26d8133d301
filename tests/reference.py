"""Slow, obviously-correct NumPy reference for mipmaker's downsampling semantics.

Nothing here is fast or clever on purpose: the modern API is one Python loop over
output voxels, each reducing the slice of its block with plain NumPy (and Python
integers where exactness matters). The semantics are the ones in
``design.md`` ("Modern API"); ``test_reference.py`` checks them against
tensorstore's ``downsample`` driver and tinybrain 1.7.0.

Functions
---------
ref_downsample(image, factors, method, sparse=False, rounding="half_even")
ref_pyramid(image, factors, num_levels, method, sparse=False, exact=True)
ref_tb_mode_2x2(img, sparse)      tinybrain 1.7.0 2x2 mode (one mip)
ref_tb_mode_2x2x2(img, sparse)    tinybrain 1.7.0 2x2x2 mode (one mip)
"""

import numpy as np

METHODS = ("mean", "mode", "median", "min", "max", "stride")
ROUNDINGS = ("half_even", "trunc")


def normalize_factors(ndim, factors):
    """Return one positive int factor per axis (missing trailing axes get 1)."""
    factors = tuple(factors)
    if len(factors) > ndim:
        raise ValueError(f"`factors` has {len(factors)} entries for {ndim} axes")
    out = []
    for f in factors:
        if int(f) != f or f < 1:
            raise ValueError(f"`factors` entries must be positive integers, got {f!r}")
        out.append(int(f))
    return tuple(out) + (1,) * (ndim - len(out))


def output_shape(shape, factors):
    """``ceil(n / f)`` on every axis."""
    factors = normalize_factors(len(shape), factors)
    return tuple(-(-n // f) for n, f in zip(shape, factors))


def block_slices(index, factors):
    """The slice of the input block that output voxel ``index`` reduces."""
    return tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factors))


def _is_float_or_complex(dtype):
    return dtype.kind in "fc"


def _int_mean(values, rounding):
    """Exact mean of Python ints: floor/rem division, then round."""
    total = sum(values)  # Python ints: never overflows
    count = len(values)
    if rounding == "trunc":
        q = abs(total) // count
        return q if total >= 0 else -q
    q, r = divmod(total, count)  # floor division, 0 <= r < count
    if 2 * r > count or (2 * r == count and q % 2 == 1):
        q += 1
    return q


def _mean(block, rounding):
    kind = block.dtype.kind
    if kind == "b":
        # Majority of True, ties go to False.
        return 2 * int(np.count_nonzero(block)) > block.size
    if kind in "iu":
        return _int_mean(block.tolist(), rounding)  # tolist() gives Python ints
    if kind == "f":
        return block.astype(np.float64).sum() / block.size
    if kind == "c":
        # Divide each part on its own: complex division would turn inf parts into NaN.
        total = block.astype(np.complex128).sum()
        return complex(total.real / block.size, total.imag / block.size)
    raise TypeError(f"unsupported dtype {block.dtype}")


def _reduce(block, method, sparse, rounding):
    """Reduce one flattened block (C order, so block[0] is the block origin)."""
    if method == "stride":
        return block[0]
    if sparse:
        block = block[block != 0]  # -0.0 == 0, so signed zeros are dropped too
        if block.size == 0:
            return 0
    if method == "mean":
        return _mean(block, rounding)  # NaN propagates through the sum
    if _is_float_or_complex(block.dtype):
        nan = np.isnan(block)
        if nan.all():
            return block[0]  # a NaN
        block = block[~nan]
    if method == "min":
        return block.min()
    if method == "max":
        return block.max()
    if method == "median":
        return np.sort(block)[(block.size - 1) // 2]  # lower median
    if method == "mode":
        # np.unique sorts (complex: by real, then imag); argmax takes the first,
        # i.e. the smallest, of the most frequent values.
        values, counts = np.unique(block, return_counts=True)
        return values[np.argmax(counts)]
    raise AssertionError(method)


def ref_downsample(image, factors, method, sparse=False, rounding="half_even"):
    """Downsample ``image`` by ``factors`` with mipmaker's modern semantics.

    Blocks are aligned at 0; the output extent is ``ceil(n / f)``; partial edge
    blocks reduce over the voxels that exist. Output dtype = input dtype.
    ``rounding`` applies to integer means only: ``"half_even"`` (modern API) or
    ``"trunc"`` (toward zero, the tinybrain-compatible API).
    """
    image = np.asarray(image)
    if image.ndim == 0:
        raise ValueError("`image` must have at least one axis")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"`rounding` must be one of {ROUNDINGS}, got {rounding!r}")
    if sparse and method == "stride":
        raise ValueError("`sparse` is not supported with method 'stride'")
    if image.dtype.kind == "c" and method in ("median", "min", "max"):
        raise TypeError(f"`method` {method!r} does not support complex data")
    if image.dtype.kind not in "biufc":
        raise TypeError(f"`image` dtype {image.dtype} is not supported")
    factors = normalize_factors(image.ndim, factors)
    out = np.empty(output_shape(image.shape, factors), dtype=image.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, NaN: intended
        for index in np.ndindex(*out.shape):
            block = image[block_slices(index, factors)].ravel()
            out[index] = _reduce(block, method, sparse, rounding)
    return out


def ref_pyramid(image, factors, num_levels, method, sparse=False, exact=True,
                rounding="half_even"):
    """Levels 1..num_levels.

    exact=True: level k = ref_downsample(image, factors**k).
    exact=False: level k = ref_downsample(level k-1, factors).
    """
    image = np.asarray(image)
    factors = normalize_factors(image.ndim, factors)
    levels = []
    previous = image
    for k in range(1, num_levels + 1):
        if exact:
            level = ref_downsample(image, [f**k for f in factors], method, sparse, rounding)
        else:
            level = ref_downsample(previous, factors, method, sparse, rounding)
        levels.append(level)
        previous = level
    return levels


# --------------------------------------------------------------------------
# tinybrain 1.7.0 segmentation (mode) rules, one mip. Axis 0 is x, axis 1 is y,
# axis 2 is z; all other axes are kept. Values are compared bitwise (floats are
# viewed as unsigned ints of the same width, so NaN == NaN when the bits agree and
# 0.0 != -0.0); in sparse mode "zero" means all bits zero. A missing neighbour in
# a partial edge block is replaced by clamping its coordinate to the edge
# (duplicating the last row / column / plane), as tinybrain does.
# --------------------------------------------------------------------------


def _bits(img):
    img = np.asarray(img)
    if img.dtype.kind not in "iuf":
        raise TypeError(f"tinybrain mode reference: unsupported dtype {img.dtype}")
    return img.view(np.dtype(f"u{img.dtype.itemsize}"))


def _clamped_neighbour(bits, offsets):
    """bits[2i + ox, 2j + oy, (2k + oz,) ...] with each coordinate clamped to the edge."""
    index = []
    for axis, o in enumerate(offsets):
        n = bits.shape[axis]
        coords = np.minimum(np.arange(0, n, 2) + o, n - 1)
        shape = [1] * len(offsets)  # broadcast over the reduced axes only
        shape[axis] = coords.size
        index.append(coords.reshape(shape))
    return bits[tuple(index)]


def ref_tb_mode_2x2(img, sparse):
    """tinybrain's 2x2 mode on axes 0 and 1 (C++ "countless if" / numpy stippled)."""
    img = np.asarray(img)
    if img.ndim < 2:
        raise ValueError("needs at least 2 axes")
    bits = _bits(img)
    a = _clamped_neighbour(bits, (0, 0))
    b = _clamped_neighbour(bits, (1, 0))  # x neighbour
    c = _clamped_neighbour(bits, (0, 1))  # y neighbour
    d = _clamped_neighbour(bits, (1, 1))
    if not sparse:
        result = np.where(a == b, a, np.where(a == c, a, np.where(b == c, b, d)))
    else:
        # Stippled countless: B is the y neighbour, C the x neighbour.
        big_b, big_c = c, b
        pair = np.where((a != 0) & ((a == big_b) | (a == big_c)), a,
                        np.where((big_b != 0) & (big_b == big_c), big_b, 0))
        first_nonzero = np.where(a != 0, a, np.where(big_b != 0, big_b, big_c))
        result = np.where(pair != 0, pair, np.where(d != 0, d, first_nonzero))
    return np.ascontiguousarray(result.astype(bits.dtype)).view(img.dtype)


def ref_tb_mode_2x2x2(img, sparse):
    """tinybrain's 2x2x2 mode on axes 0, 1, 2 (C++ counting).

    Scan order t = x + 2y + 4z; the value with the highest count wins, ties go to
    the value whose first occurrence in scan order is earliest. Sparse: zeros are
    not counted; an all-zero block gives 0.
    """
    img = np.asarray(img)
    if img.ndim < 3:
        raise ValueError("needs at least 3 axes")
    bits = _bits(img)
    vals = [_clamped_neighbour(bits, (t & 1, (t >> 1) & 1, (t >> 2) & 1)) for t in range(8)]
    counts = [sum((v == w).astype(np.int64) for w in vals) for v in vals]
    if sparse:
        counts = [np.where(v != 0, ct, 0) for v, ct in zip(vals, counts)]
    counts = np.stack(counts)
    winner = np.argmax(counts, axis=0)  # first t with the highest count
    result = np.take_along_axis(np.stack(vals), winner[np.newaxis], axis=0)[0]
    if sparse:
        result = np.where(counts.max(axis=0) == 0, 0, result).astype(bits.dtype)
    return np.ascontiguousarray(result).view(img.dtype)
