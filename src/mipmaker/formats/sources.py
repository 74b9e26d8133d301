"""Readers: every source presents boxes as (x, y, z, c) arrays, whatever it stores.

`open_source` detects the format. Reads return any memory layout (a view
transposed from storage order); the core reads every layout at the same
speed, so nothing is copied to reorder axes.
"""

from __future__ import annotations

import os
import re
import threading

import numpy as np

from ._kv import Location

__all__ = ["Source", "open_source", "parse_axes"]

TIFF_SUFFIXES = (".tif", ".tiff")


def parse_axes(axes, ndim, name="axes"):
    """Check an axes string (letters of ``xyzct``) against an array's rank."""
    axes = str(axes).lower()
    if len(axes) != ndim or len(set(axes)) != ndim or not set(axes) <= set("xyzct"):
        raise ValueError(
            f"`{name}` must name each of the source's {ndim} axes once with letters from x, y, z, c, t "
            f"(e.g. {'xyz' if ndim == 3 else 'xyzc' if ndim == 4 else 'xy'}), got {axes!r}"
        )
    if "x" not in axes or "y" not in axes:
        raise ValueError(f"`{name}` must include x and y, got {axes!r}")
    return axes


class Source:
    """A volume to read boxes from.

    Attributes
    ----------
    shape : (3,) tuple of int
        x, y, z.
    channels : int
    dtype : numpy.dtype
    resolution : (3,) tuple of float or None
        Voxel size x, y, z in `unit`, when the source says.
    offset : (3,) tuple of int
        Position of voxel (0, 0, 0) in voxels (precomputed ``voxel_offset``).
    translation : (3,) tuple of float or None
        Physical position of voxel (0, 0, 0) (OME-Zarr), when known.
    labels : bool or None
        Whether the source says it holds a segmentation.
    read_unit : (3,) tuple of int or None
        What one read fetches at least (boxes grow to it first).
    """

    kind = "?"
    resolution = None
    translation = None
    unit = "nanometer"
    labels = None
    read_unit = None
    offset = (0, 0, 0)

    def read(self, start, stop, *, buffer=None):
        """Voxels ``start:stop`` (x, y, z) as an (x, y, z, c) array.

        `buffer`, when given, is called as ``buffer(shape, dtype, order)`` for
        an array to read into (storage axes and order), instead of a new one.
        """
        raise NotImplementedError

    def describe(self):
        return (
            f"{self.kind} {self.text}: {','.join(map(str, self.shape))} (x,y,z) x {self.channels} channel(s) "
            f"{self.dtype}"
        )


def _to_xyzc(axes, shape):
    """Permutation and squeezes taking storage axes to (x, y, z, c)."""
    for letter, n in zip(axes, shape):
        if letter == "t" and n != 1:
            raise ValueError(f"a time axis of length {n} is not supported; select one time point first")
    return [axes.index(a) if a in axes else None for a in "xyzc"]


def _view_xyzc(arr, axes):
    """View a storage-order array as (x, y, z, c): transposed, unit axes added, t dropped."""
    if "t" in axes:
        arr = np.take(arr, 0, axis=axes.index("t"))
        axes = axes.replace("t", "")
    order = [axes.index(a) for a in "xyzc" if a in axes]
    arr = arr.transpose(order)
    present = [a for a in "xyzc" if a in axes]
    index = tuple(slice(None) if a in present else None for a in "xyzc")
    return arr[index]


def _storage_box(axes, shape, start, stop):
    """Storage-order slices for an x, y, z box (all channels, t = 0)."""
    out = []
    for letter, n in zip(axes, shape):
        if letter in "xyz":
            k = "xyz".index(letter)
            out.append((start[k], stop[k]))
        elif letter == "t":
            out.append((0, 1))
        else:
            out.append((0, n))
    return out


def _xyzc_shape(axes, shape):
    size = dict(zip(axes, shape))
    return tuple(int(size.get(a, 1)) for a in "xyz"), int(size.get("c", 1))


class NpySource(Source):
    """A ``.npy`` file, read with positioned reads (no mmap: resident memory stays bounded)."""

    kind = "npy"

    def __init__(self, path, axes=None):
        self.text = os.fspath(path)
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            self._data_offset = f.tell()
        if dtype.hasobject or dtype.fields is not None:
            raise TypeError(f"{self.text}: dtype {dtype} is not a numeric array")
        default = {2: "xy", 3: "xyz", 4: "xyzc"}.get(len(shape), None)
        self.axes = parse_axes(axes or default or "?" * len(shape), len(shape))
        # Storage order is the reverse of the axes for a Fortran-order file.
        self._storage_axes = self.axes[::-1] if fortran else self.axes
        self._storage_shape = tuple(shape[::-1]) if fortran else tuple(shape)
        self._file_dtype = dtype
        self.dtype = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
        self.shape, self.channels = _xyzc_shape(self.axes, shape)
        _to_xyzc(self.axes, shape)
        # Whole rows of the two fastest storage axes make long contiguous reads.
        size = dict(zip(self._storage_axes, self._storage_shape))
        fast = self._storage_axes[-2:]
        self.read_unit = tuple(int(size.get(a, 1)) if a in fast else 1 for a in "xyz")
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def read(self, start, stop, *, buffer=None):
        box = _storage_box(self._storage_axes, self._storage_shape, start, stop)
        arr = _pread_box(self._fd, self._data_offset, self._storage_shape, self._file_dtype, box,
                         buffer if self._file_dtype == self.dtype else None)
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        return _view_xyzc(arr, self._storage_axes)


def _pread_box(fd, data_offset, shape, dtype, box, buffer=None):
    """Read a box of a C-contiguous array stored at `data_offset` with few, large preads.

    Each read covers one contiguous span of the file; where the box's rows
    are short (a partial innermost axis), a span takes in whole rows of the
    next axes too (at most 4x the bytes needed) and the box is cut out of it.
    """
    extent = [hi - lo for lo, hi in box]
    out = np.empty(extent, dtype) if buffer is None else buffer(tuple(extent), np.dtype(dtype), "C")
    if out.size == 0:
        return out
    n = len(shape)
    item = dtype.itemsize
    strides = [int(np.prod(shape[j + 1:], dtype=np.int64)) for j in range(n)]
    k = n - 1
    while k > 0 and box[k] == (0, shape[k]):
        k -= 1
    # Axes k.. form each span; widen while spans are small and mostly wanted.
    while k > 0:
        wanted = int(np.prod(extent[k:], dtype=np.int64))
        span = (extent[k] - 1) * strides[k] + sum((e - 1) * st for e, st in zip(extent[k + 1:], strides[k + 1:])) + 1
        if span * item >= 1 << 20:
            break
        wider = (extent[k - 1] - 1) * strides[k - 1] + span
        if wider > 4 * wanted * extent[k - 1] or wider * item > 64 << 20:
            break
        k -= 1
    first = sum(lo * st for (lo, _), st in zip(box[k:], strides[k:]))
    span = sum((e - 1) * st for e, st in zip(extent[k:], strides[k:])) + 1
    contiguous = span == int(np.prod(extent[k:], dtype=np.int64))
    runs = out.reshape(-1, *extent[k:])
    if not contiguous:
        buf = np.empty(span, dtype)
        cut = np.lib.stride_tricks.as_strided(buf, shape=extent[k:], strides=[st * item for st in strides[k:]])
    for r, outer in enumerate(np.ndindex(*extent[:k])):
        pos = sum((o + box[j][0]) * strides[j] for j, o in enumerate(outer)) + first
        _pread_into(fd, memoryview(runs[r] if contiguous else buf).cast("B"), data_offset + pos * item)
        if not contiguous:
            runs[r] = cut
    return out


def _pread_into(fd, view, offset):
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"unexpected end of file reading {len(view)} bytes at {offset}")
        done += got


class TiffSource(Source):
    """A TIFF stack: a folder of single-plane files, or one multi-page (OME-)TIFF."""

    kind = "tiff"

    def __init__(self, path):
        import tifffile

        self.text = os.fspath(path)
        self._lock = threading.Lock()
        if os.path.isdir(path):
            files = sorted(
                (f for f in os.listdir(path) if f.lower().endswith(TIFF_SUFFIXES)), key=_natural_key
            )
            if not files:
                raise ValueError(f"{self.text}: no .tif/.tiff files in the folder")
            self._files = [os.path.join(path, f) for f in files]
            with tifffile.TiffFile(self._files[0]) as tif:
                page = tif.series[0]
                plane_shape, dtype, axes = page.shape, page.dtype, page.axes
            if axes not in ("YX", "YXS"):
                raise ValueError(f"{self._files[0]}: expected one Y,X plane per file, got axes {axes}")
            self._plane_axes = axes
            self._page_axes = "Z"
            self._page_shape = (len(files),)
            self._tif = None
        else:
            self._files = None
            self._tif = tifffile.TiffFile(path)
            series = self._tif.series[0]
            axes = series.axes.replace("I", "Z").replace("Q", "Z")
            split = axes.index("Y")
            self._plane_axes = axes[split:]
            self._page_axes = axes[:split]
            self._page_shape = tuple(series.shape[:split])
            plane_shape, dtype = tuple(series.shape[split:]), series.dtype
            if self._plane_axes not in ("YX", "YXS") or not set(self._page_axes) <= set("ZCT"):
                raise ValueError(f"{self.text}: unsupported TIFF axes {series.axes!r} (expected [T][Z][C]YX[S])")
            if "C" in self._page_axes and self._plane_axes == "YXS":
                raise ValueError(f"{self.text}: both C pages and S samples; convert to one channel axis first")
            self._pages = series.pages
            self.ome = self._tif.is_ome
        sizes = dict(zip(self._page_axes, self._page_shape))
        if sizes.get("T", 1) != 1:
            raise ValueError(f"{self.text}: a time axis of length {sizes['T']} is not supported")
        self.dtype = np.dtype(dtype)
        self.shape = (int(plane_shape[1]), int(plane_shape[0]), int(sizes.get("Z", 1)))
        self.channels = int(plane_shape[2]) if self._plane_axes == "YXS" else int(sizes.get("C", 1))
        self.read_unit = (self.shape[0], self.shape[1], 1)
        self.plane_bytes = self.shape[0] * self.shape[1] * self.channels * self.dtype.itemsize

    def _plane(self, z, c):
        import tifffile

        if self._files is not None:
            data = tifffile.imread(self._files[z])
            if data.shape[:2] != (self.shape[1], self.shape[0]):
                raise ValueError(
                    f"{self._files[z]}: plane is {data.shape[1]}x{data.shape[0]}, expected "
                    f"{self.shape[0]}x{self.shape[1]} like the first file"
                )
            return data
        index = {"Z": z, "C": c, "T": 0}
        flat = int(np.ravel_multi_index([index[a] for a in self._page_axes], self._page_shape)) if self._page_axes else 0
        with self._lock:  # one file handle: tifffile seeks
            return self._pages[flat].asarray()

    def read(self, start, stop, *, buffer=None):
        (x0, y0, z0), (x1, y1, z1) = start, stop
        shape = (z1 - z0, y1 - y0, x1 - x0, self.channels)
        out = np.empty(shape, self.dtype) if buffer is None else buffer(shape, np.dtype(self.dtype), "C")
        per_page = self._plane_axes == "YX" and self.channels > 1
        for z in range(z0, z1):
            for c in range(self.channels if per_page else 1):
                plane = self._plane(z, c)
                if plane.ndim == 2:
                    plane = plane[:, :, None]
                part = plane[y0:y1, x0:x1]
                if per_page:
                    out[z - z0, :, :, c] = part[:, :, 0]
                else:
                    out[z - z0] = part
        return out.transpose(2, 1, 0, 3)


def _natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
