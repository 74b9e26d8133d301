"""The in-memory API: `downsample` and `pyramid`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _core
from . import _validate as v

__all__ = ["downsample", "pyramid"]


def _run(arr, factors, method_index, sparse, rounding, threads, out=None):
    """Allocate (or check) the output and let the core fill it."""
    shape = v.output_shape(arr.shape, factors)
    dst = v.allocate(arr, shape) if out is None else v.out_array(out, arr, shape)
    if not arr.size:
        return dst
    clamped = v.clamp_factors(arr.shape, factors)
    if method_index in _RECURSION_IS_EXACT:
        # min and max: the fused kernel's tiles beat the row kernel, even for one level.
        _core.pyramid(arr, [dst], clamped, method_index, sparse, rounding, threads)
    else:
        _core.downsample(arr, dst, clamped, method_index, sparse, rounding, threads)
    return dst


# Methods whose levels the core can fuse into one pass, exact at every level:
# accumulators for mean, min and max; merged block histograms for mode and
# median; for stride, each level's rows copied from level 1's while in cache.
_FUSABLE = tuple(v.METHODS.index(m) for m in ("mean", "min", "max", "mode", "median", "stride"))
_RECURSION_IS_EXACT = (v.METHODS.index("min"), v.METHODS.index("max"))
_STRIDE = v.METHODS.index("stride")
_MAX_FUSED = 16  # levels per fused core call (kMaxLevels in types.h)


def _levels(arr, factors, num_levels, method_index, sparse, rounding, threads):
    """Levels 1..num_levels, level k the reduction of each factors**k block of `arr`.

    Every method is fused: the input is read once for up to 16 levels.
    """
    if num_levels == 0:
        return []
    if method_index not in _FUSABLE or num_levels == 1:
        # One level is one downsample: the row kernels (and the small-block
        # mode) beat a one-level histogram pyramid several times over.
        return [
            _run(arr, [f**k for f in factors], method_index, sparse, rounding, threads)
            for k in range(1, num_levels + 1)
        ]
    fused = min(num_levels, _MAX_FUSED)
    clamped = v.clamp_factors(arr.shape, factors)
    shapes = [v.output_shape(arr.shape, clamped)]
    for _ in range(fused - 1):
        shapes.append(v.output_shape(shapes[-1], clamped))
    out = [v.allocate(arr, shape) for shape in shapes]
    if arr.size:
        _core.pyramid(arr, out, clamped, method_index, sparse, rounding, threads)
    # Beyond 16 levels (only for extents above 2**16 per axis), one pass each.
    for k in range(fused + 1, num_levels + 1):
        out.append(_run(arr, [f**k for f in factors], method_index, sparse, rounding, threads))
    return out


def downsample(
    image: ArrayLike,
    factors: Sequence[float],
    *,
    method: str = "mean",
    sparse: bool = False,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Reduce every block of ``factors`` voxels of `image` to one voxel.

    Blocks are aligned at index 0; the output has ``ceil(n / f)`` voxels
    along each axis, and a partial block at the far edge is reduced over the
    voxels it has. The semantics are tensorstore's ``downsample`` (see
    ``docs/semantics.md``), computed in the C++ core with the GIL released.

    Parameters
    ----------
    image : (N0[, N1, ..., N7]) array_like
        Any layout (C, Fortran, strided or negative-stride views, read-only,
        memory-mapped); never copied and never written to. bool, int8..int64,
        uint8..uint64, float16, float32, float64, complex64, complex128.
    factors : sequence of int
        Block size per axis, at most ``image.ndim`` entries; missing trailing
        axes get 1. Integral floats such as ``2.0`` are accepted.
    method : {"mean", "mode", "median", "min", "max", "stride"}
        mean: exact integer sum, rounded half to even (floats in float64);
        mode: most frequent value, ties to the smallest; median: lower median;
        min / max; stride: the block's first voxel. NaN is ignored by mode,
        median, min and max unless the whole block is NaN; mean propagates it.
    sparse : bool
        Treat 0 as background: zeros are ignored unless the whole block is
        zero. Not defined for ``"stride"``.
    out : (M0[, M1, ...]) ndarray, optional
        Preallocated output with the downsampled shape and `image`'s dtype;
        any layout. It is filled and returned.
    threads : int, optional
        Worker threads; default ``MIPMAKER_NUM_THREADS`` or the usable cores.
        The result does not depend on it.

    Returns
    -------
    (M0[, M1, ...]) ndarray
        ``M_i = ceil(N_i / factors[i])``, same dtype; Fortran order when
        `image` is Fortran-contiguous, else C order.

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> mipmaker.downsample(np.arange(1, 10, dtype=np.uint8).reshape(3, 3), (2, 2))
    array([[3, 4],
           [8, 9]], dtype=uint8)
    >>> mipmaker.downsample(np.array([5, 3, 3, 5, 7], dtype=np.uint64), (4,), method="mode")
    array([3, 7], dtype=uint64)
    """
    arr = v.image(image)
    f = v.factors(factors, arr.ndim)
    sparse = v.flag(sparse, "sparse")
    m = v.method(method, arr.dtype, sparse)
    n = v.threads(threads)
    return _run(arr, f, m, sparse, v.ROUND_HALF_EVEN, n, out)


def pyramid(
    image: ArrayLike,
    factors: Sequence[float],
    num_levels: int,
    *,
    method: str = "mean",
    sparse: bool = False,
    exact: bool = True,
    threads: int | None = None,
) -> list[np.ndarray]:
    """Downsample `image` `num_levels` times by `factors`.

    Parameters
    ----------
    image : (N0[, N1, ..., N7]) array_like
        As for `downsample`.
    factors : sequence of int
        Per-level block size per axis.
    num_levels : int
        Number of levels to return (level 0, the input, is not included).
    method, sparse, threads
        As for `downsample`.
    exact : bool
        True: level ``k`` equals ``downsample(image, factors**k)`` for every
        method (an exact mode of the whole ``f**k`` block, means rounded
        once). False: level ``k`` is computed from level ``k - 1`` (cheaper;
        identical for min, max and stride).

    Returns
    -------
    list of ndarray
        Levels 1..`num_levels`, shapes ``ceil(N / factors**k)``.

    Examples
    --------
    >>> import numpy as np, mipmaker
    >>> levels = mipmaker.pyramid(np.zeros((64, 64, 8), np.uint8), (2, 2, 1), 3)
    >>> [level.shape for level in levels]
    [(32, 32, 8), (16, 16, 8), (8, 8, 8)]
    """
    arr = v.image(image)
    f = v.factors(factors, arr.ndim)
    levels = v.count(num_levels, "num_levels")
    sparse = v.flag(sparse, "sparse")
    exact = v.flag(exact, "exact")
    m = v.method(method, arr.dtype, sparse)
    n = v.threads(threads)
    if exact or m in _RECURSION_IS_EXACT or m == _STRIDE:
        return _levels(arr, f, levels, m, sparse, v.ROUND_HALF_EVEN, n)
    out = []
    source = arr
    for _ in range(levels):
        source = _run(source, f, m, sparse, v.ROUND_HALF_EVEN, n)
        out.append(source)
    return out
