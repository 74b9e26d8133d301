"""Drop-in replacements for tinybrain 1.7.0's functions.

Same names, signatures and list returns (one array per mip), so that
``import mipmaker as tinybrain`` works for igneous, chunkflow and friends.
Results are bit-identical to tinybrain where tinybrain is correct and
correct where it is not (see ``docs/semantics.md``). Axis 0 is x, 1 is y,
2 is z; further axes (channels, time) are independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _core
from . import _validate as v
from ._downsample import _levels, _run

__all__ = [
    "downsample_with_averaging",
    "downsample_segmentation",
    "downsample_with_striding",
    "downsample_with_min_pooling",
    "downsample_with_max_pooling",
]

_MEAN, _MODE, _MIN, _MAX = (v.METHODS.index(m) for m in ("mean", "mode", "min", "max"))

# tinybrain's own mode rules (C++ enum TinybrainRule).
_COUNTLESS_2X2, _STIPPLED_2X2, _COUNT_2X2X2, _SPARSE_COUNT_2X2X2 = range(4)


def _common(img, name, factor, num_mips, threads):
    arr = v.image(img, name)
    f = v.factors(factor, arr.ndim, name="factor", allow_extra_ones=True)
    return arr, f, v.count(num_mips, "num_mips"), v.threads(threads)


def downsample_with_averaging(
    img: ArrayLike, factor: Sequence[float], num_mips: int = 1, sparse: bool = False, *, threads: int | None = None
) -> list[np.ndarray]:
    """Average pooling, truncating like tinybrain, exact at every mip.

    Mip ``k`` is the mean of the voxels of its ``factor**k`` block of `img`,
    truncated (floor for unsigned, toward zero for signed integers); floats
    are summed in float64. Partial edge blocks average the voxels they have.
    Unlike tinybrain, the integer mean never drifts across mips and odd
    sizes, 64-bit sums and sparse mode past mip 4 are correct.

    Parameters
    ----------
    img : (X[, Y, Z, C, T]) array_like
        Any numeric dtype and memory layout (up to 8 dimensions).
    factor : sequence of int
        Per-axis factor such as ``(2, 2, 1)``; entries beyond ``img.ndim``
        must be 1.
    num_mips : int
        Number of mips to return.
    sparse : bool
        Average only the non-zero voxels of each block (0 if there are none).
    threads : int, optional
        Worker threads (default: all usable cores).

    Returns
    -------
    list of ndarray
        One array per mip, shape ``ceil(shape / factor**k)``, `img`'s dtype.

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> mipmaker.downsample_with_averaging(np.arange(1, 10, dtype=np.uint8).reshape(3, 3), (2, 2))[0]
    array([[3, 4],
           [7, 9]], dtype=uint8)
    """
    arr, f, mips, n = _common(img, "img", factor, num_mips, threads)
    sparse = v.flag(sparse, "sparse")
    # Truncating a bool mean would need a unanimous block; bool means majority.
    rounding = v.ROUND_HALF_EVEN if arr.dtype == bool else v.ROUND_TRUNCATE
    return _levels(arr, f, mips, _MEAN, sparse, rounding, n)


def _tinybrain_rule(f, sparse):
    """The tinybrain rule that applies to factor `f`, or None for a true mode."""
    if len(f) >= 2 and f[:2] == (2, 2) and all(x == 1 for x in f[2:]):
        return _STIPPLED_2X2 if sparse else _COUNTLESS_2X2
    if len(f) >= 3 and f[:3] == (2, 2, 2) and all(x == 1 for x in f[3:]):
        return _SPARSE_COUNT_2X2X2 if sparse else _COUNT_2X2X2
    return None


def downsample_segmentation(
    img: ArrayLike, factor: Sequence[float], sparse: bool = False, num_mips: int = 1, *, threads: int | None = None
) -> list[np.ndarray]:
    """Mode pooling of labels, recursively per mip, as tinybrain does it.

    Factors (2, 2[, 1...]) and (2, 2, 2[, 1...]) follow tinybrain's rules
    bit for bit: 2x2 "countless" (a==b -> a, a==c -> a, b==c -> b, else d;
    with `sparse`, the "stippled" rule in which zero loses to any label) and
    2x2x2 "highest count, ties to the first voxel in x, y, z order" (with
    `sparse`, zeros are not counted). Those rules also hold for C-order,
    strided and multi-channel input, where tinybrain's 2x2x2 path breaks.
    Any other factor takes the true mode of each block, ties to the smallest
    label (tinybrain strides or approximates there). Labels are compared
    exactly, uint64 included. For an exact (non-recursive) mode at every
    level use ``mipmaker.pyramid(img, factor, n, method="mode")``.

    Parameters
    ----------
    img : (X, Y[, Z, C, T]) array_like
        Labels of any integer dtype (other dtypes are compared bitwise).
    factor : sequence of int
        Per-axis factor; entries beyond ``img.ndim`` must be 1.
    sparse : bool
        Zero is background: it never wins against a label.
    num_mips : int
        Number of mips; mip ``k`` is computed from mip ``k - 1``.
    threads : int, optional
        Worker threads (default: all usable cores).

    Returns
    -------
    list of ndarray
        One array per mip, shape ``ceil(shape / factor**k)``.

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> labels = np.array([[1, 2], [2, 1]], dtype=np.uint32)  # a=1, b=2, c=2, d=1
    >>> mipmaker.downsample_segmentation(labels, (2, 2))[0]
    array([[2]], dtype=uint32)
    """
    arr, f, mips, n = _common(img, "img", factor, num_mips, threads)
    sparse = v.flag(sparse, "sparse")
    rule = _tinybrain_rule(f, sparse)
    if rule is not None:
        shapes = [arr.shape]
        for _ in range(mips):
            shapes.append(v.output_shape(shapes[-1], f))
        out = [v.allocate(arr, shape) for shape in shapes[1:]]
        if out:
            # One call for every mip: the core runs them band by band while
            # the lower mips are still in cache.
            _core.tinybrain_mode_levels(arr, out, rule, n)
        return out
    out = []
    source = arr
    for _ in range(mips):
        source = _run(source, f, _MODE, sparse, v.ROUND_HALF_EVEN, n)
        out.append(source)
    return out


def downsample_with_striding(
    array: ArrayLike, factor: Sequence[float], num_mips: int = 1, *, threads: int | None = None
) -> list[np.ndarray]:
    """Keep the first voxel of every block: views of `array`, as in tinybrain.

    Returns
    -------
    list of ndarray
        Views ``array[::f0, ::f1, ...]`` applied `num_mips` times; they share
        memory with `array` (a factor of all ones gives views of the input;
        tinybrain returns an empty list there).

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> mipmaker.downsample_with_striding(np.arange(16).reshape(4, 4), (2, 2))[0]
    array([[ 0,  2],
           [ 8, 10]])
    """
    arr, f, mips, _ = _common(array, "array", factor, num_mips, threads)
    step = tuple(slice(None, None, fi) for fi in f)
    out = []
    source = arr
    for _ in range(mips):
        source = source[step]
        out.append(source)
    return out


def _pooling(array, factor, num_mips, threads, method):
    arr, f, mips, n = _common(array, "array", factor, num_mips, threads)
    v.method(v.METHODS[method], arr.dtype, False)
    return _levels(arr, f, mips, method, False, v.ROUND_HALF_EVEN, n)


def downsample_with_min_pooling(
    array: ArrayLike, factor: Sequence[float], num_mips: int = 1, *, threads: int | None = None
) -> list[np.ndarray]:
    """Minimum of every block, correct on any shape (ceil-sized outputs).

    NaN is ignored unless a whole block is NaN.

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> mipmaker.downsample_with_min_pooling(np.arange(9, dtype=np.int8).reshape(3, 3), (2, 2))[0]
    array([[0, 2],
           [6, 8]], dtype=int8)
    """
    return _pooling(array, factor, num_mips, threads, _MIN)


def downsample_with_max_pooling(
    array: ArrayLike, factor: Sequence[float], num_mips: int = 1, *, threads: int | None = None
) -> list[np.ndarray]:
    """Maximum of every block, correct on any shape (ceil-sized outputs).

    NaN is ignored unless a whole block is NaN.

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> mipmaker.downsample_with_max_pooling(np.arange(9, dtype=np.int8).reshape(3, 3), (2, 2))[0]
    array([[4, 5],
           [7, 8]], dtype=int8)
    """
    return _pooling(array, factor, num_mips, threads, _MAX)
