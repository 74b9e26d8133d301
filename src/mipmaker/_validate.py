"""Argument normalisation for every public function; owns the error texts.

Python validates and allocates, the C++ core only computes into the arrays
it is given. Every error names the offending parameter in backticks and
says what was expected and what was given.
"""

from __future__ import annotations

import numbers
import operator
import os

import numpy as np

MAX_RANK = 8
MAX_THREADS = 2**31 - 1  # the core's `int threads`

# Index order is the C++ DType enum (cpp/include/mipmaker/types.h).
DTYPES = (
    np.dtype(np.bool_),
    np.dtype(np.uint8),
    np.dtype(np.uint16),
    np.dtype(np.uint32),
    np.dtype(np.uint64),
    np.dtype(np.int8),
    np.dtype(np.int16),
    np.dtype(np.int32),
    np.dtype(np.int64),
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.complex64),
    np.dtype(np.complex128),
)
_SUPPORTED = {dt.newbyteorder("="): dt for dt in DTYPES}

# Index order is the C++ Method enum (cpp/include/mipmaker/method.h).
METHODS = ("mean", "mode", "median", "min", "max", "stride")
ORDERED_METHODS = ("median", "min", "max")  # need an ordering: no complex

ROUND_HALF_EVEN = 0
ROUND_TRUNCATE = 1


def image(value, name="image"):
    """Return `value` as an ndarray of a supported dtype, without copying arrays.

    Array-likes (lists, scalars in lists) go through `np.asarray`, as NumPy
    functions do.
    """
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if type(arr) is not np.ndarray:
        arr = arr.view(np.ndarray)  # subclasses such as np.memmap or np.matrix
    dt = arr.dtype
    if dt.fields is not None or dt.kind in "OUSVMm" or dt.newbyteorder("=") not in _SUPPORTED:
        raise TypeError(
            f"`{name}` must have a numeric dtype (bool, int8..int64, uint8..uint64, float16, "
            f"float32, float64, complex64, complex128), got {dt}"
        )
    if not dt.isnative:
        raise TypeError(
            f"`{name}` has non-native byte order ({dt.str}); convert it first with "
            f"`{name}.astype({dt.newbyteorder('=').name!r})`"
        )
    if arr.ndim == 0:
        raise ValueError(f"`{name}` must have at least 1 dimension, got a 0-d array")
    if arr.ndim > MAX_RANK:
        raise ValueError(f"`{name}` may have at most {MAX_RANK} dimensions, got {arr.ndim}")
    if any(s % arr.itemsize for s in arr.strides):
        raise ValueError(
            f"`{name}` has strides {arr.strides} that are not multiples of its item size "
            f"({arr.itemsize} bytes); such views are not supported"
        )
    _check_aligned(arr, name)
    return arr


def _check_aligned(arr, name):
    """Reject data the kernels cannot address as their element type.

    Reading a float through a pointer that is not a multiple of 4 is undefined
    behaviour in C++ (vectorised code may fault, UBSan reports it), and the
    tinybrain rules read complex64 as 8-byte integers, a stricter alignment
    than NumPy's. Copying instead would silently duplicate a memory-mapped
    volume, so this is an error with the fix in the message.
    """
    align = min(arr.itemsize, 8)
    if align > 1 and arr.size and (not arr.flags.aligned or arr.ctypes.data % align):
        raise ValueError(
            f"`{name}` is not aligned: its data starts at an address that is not a multiple of "
            f"{align} bytes, as {arr.dtype} elements need; pass an aligned copy, `{name}.copy()`"
        )


def factors(value, ndim, name="factors", allow_extra_ones=False):
    """Return a tuple of `ndim` positive ints, padding missing trailing axes with 1."""
    if isinstance(value, (str, bytes)) or not _is_sequence(value):
        raise TypeError(
            f"`{name}` must be a sequence of positive integers, one per axis "
            f"(e.g. (2, 2, 1)), got {type(value).__name__} {value!r}"
        )
    entries = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
    out = []
    for i, entry in enumerate(entries):
        out.append(_positive_int(entry, f"{name}[{i}]"))
    if len(out) > ndim:
        extra = out[ndim:]
        if not (allow_extra_ones and all(f == 1 for f in extra)):
            raise ValueError(
                f"`{name}` has {len(out)} entries but the image has {ndim} dimensions"
                + (" (extra entries must be 1)" if allow_extra_ones else "")
            )
        out = out[:ndim]
    return tuple(out) + (1,) * (ndim - len(out))


def _is_sequence(value):
    if isinstance(value, np.ndarray):
        return value.ndim == 1
    try:
        len(value)
        iter(value)
    except TypeError:
        return False
    return True


def _positive_int(entry, label):
    if isinstance(entry, (bool, np.bool_)):
        raise TypeError(f"`{label}` must be a positive integer, got {entry!r}")
    if isinstance(entry, numbers.Integral):
        result = int(entry)
    elif isinstance(entry, numbers.Real):
        if not np.isfinite(entry) or float(entry) != int(entry):
            raise ValueError(f"`{label}` must be a positive integer, got {entry!r}")
        result = int(entry)
    else:
        raise TypeError(f"`{label}` must be a positive integer, got {type(entry).__name__} {entry!r}")
    if result < 1:
        raise ValueError(f"`{label}` must be a positive integer, got {result}")
    return result


def count(value, name, minimum=0):
    """Return `value` as an int >= `minimum` (levels, mips)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return value


def flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def method(value, dtype, sparse):
    """Return the method index; check it suits `dtype` and `sparse`."""
    if not isinstance(value, str):
        raise TypeError(f"`method` must be a string, one of {METHODS}, got {type(value).__name__}")
    if value not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {value!r}")
    if value == "stride" and sparse:
        raise ValueError("`sparse=True` is not defined for `method='stride'` (a stride keeps the block origin)")
    if value in ORDERED_METHODS and dtype.kind == "c":
        raise TypeError(f"`method={value!r}` needs ordered values; `image` has complex dtype {dtype}")
    return METHODS.index(value)


def threads(value):
    """Resolve `threads`: None means MIPMAKER_NUM_THREADS, else the usable cores."""
    if value is None:
        env = os.environ.get("MIPMAKER_NUM_THREADS", "").strip()
        if env:
            try:
                n = int(env)
            except ValueError:
                n = 0
            if n < 1:
                raise ValueError(f"environment variable MIPMAKER_NUM_THREADS must be a positive integer, got {env!r}")
            return min(n, MAX_THREADS)
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`threads` must be None or a positive integer, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"`threads` must be None or a positive integer, got {value}")
    # The core takes a C int and never starts more threads than it has work
    # for, so a larger request means the same as the largest int.
    return min(value, MAX_THREADS)


def output_shape(shape, factors_):
    return tuple(-(-n // f) for n, f in zip(shape, factors_))


def clamp_factors(shape, factors_):
    """Factors larger than the extent reduce the whole axis; clamping keeps them in int64."""
    return [min(f, max(n, 1)) for n, f in zip(shape, factors_)]


def output_order(arr):
    """Fortran order in, Fortran order out; anything else gives C order."""
    return "F" if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"


def allocate(arr, shape):
    return np.empty(shape, dtype=arr.dtype, order=output_order(arr))


def out_array(out, arr, shape):
    """Check a caller-provided output buffer."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"`out` must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"`out` must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != arr.dtype:
        raise ValueError(f"`out` must have dtype {arr.dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("`out` is read-only")
    if any(s % out.itemsize for s in out.strides):
        raise ValueError(f"`out` has strides {out.strides} that are not multiples of its item size")
    _check_aligned(out, "out")
    if out.size and arr.size and np.may_share_memory(out, arr):
        raise ValueError("`out` must not overlap `image`")
    return out
