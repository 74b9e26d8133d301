"""Readers for chunked stores through tensorstore: zarr v2/v3, OME-Zarr, N5, precomputed."""

from __future__ import annotations

import os

import numpy as np

from .sources import Source, _storage_box, _to_xyzc, _view_xyzc, _xyzc_shape, parse_axes

__all__ = ["ChunkedSource", "ngff_multiscale", "READ_CONTEXT"]

# Many reads in flight: a local SSD delivers about twice the bandwidth at
# queue depth 64 than at tensorstore's default (one per core); object stores
# want many requests in flight too.
READ_CONTEXT = {"file_io_concurrency": {"limit": 64}}


def ngff_multiscale(loc):
    """The first ``multiscales`` entry and the OME version of a group, or (None, None)."""
    meta = loc.read_json("zarr.json")
    if meta is not None:
        ome = meta.get("attributes", {}).get("ome")
        if meta.get("node_type") == "group" and ome and ome.get("multiscales"):
            return ome["multiscales"][0], ome.get("version", "0.5"), ome
        return None, None, None
    attrs = loc.read_json(".zattrs")
    if attrs and attrs.get("multiscales"):
        ms = attrs["multiscales"][0]
        return ms, ms.get("version", "0.4"), attrs
    return None, None, None


class ChunkedSource(Source):
    """A tensorstore-readable array (level `level` of a multiscale group or precomputed volume)."""

    def __init__(self, loc, kind, axes=None, level=0):
        import tensorstore as ts

        self.text = loc.text
        self.kind = kind
        if kind == "precomputed":
            info = loc.read_json("info")
            if not isinstance(info, dict) or not info.get("scales"):
                raise ValueError(f"{loc.text}: `info` has no scales; not a precomputed volume")
            scale = info["scales"][level]
            if loc.local is not None:
                _refuse_suffixed_chunks(loc, os.path.join(loc.local, str(scale.get("key", ""))))
            spec = {"driver": "neuroglancer_precomputed", "kvstore": loc.kvstore(), "scale_index": level}
            self.labels = info.get("type") == "segmentation"
            self.resolution = tuple(float(r) for r in scale["resolution"])
            self.offset = tuple(int(o) for o in scale.get("voxel_offset", (0, 0, 0)))
            self.read_unit = tuple(scale["chunk_sizes"][0])
            self.encoding = scale.get("encoding", "raw")
            storage_axes = "xyzc"
        elif kind in ("ome-zarr", "ome-zarr-0.4"):
            ms, version, attrs = ngff_multiscale(loc)
            dataset = ms["datasets"][level]
            spec = {"driver": "zarr3" if version.startswith("0.5") else "zarr", "kvstore": loc.kvstore(dataset["path"])}
            names = [_ngff_letter(a) for a in ms["axes"]]
            storage_axes = "".join(names)
            scale = _transform(dataset, "scale", len(names))
            translation = _transform(dataset, "translation", len(names))
            self.resolution = tuple(scale[storage_axes.index(a)] if a in storage_axes else 1.0 for a in "xyz")
            self.translation = tuple(
                translation[storage_axes.index(a)] if a in storage_axes else 0.0 for a in "xyz"
            )
            units = [a.get("unit") for a in ms["axes"] if a.get("type") == "space" and a.get("unit")]
            self.unit = units[0] if units else "nanometer"
            self.labels = True if "image-label" in attrs or ms.get("type") == "mode" else None
        else:
            spec = {"driver": {"zarr3": "zarr3", "zarr": "zarr", "n5": "n5"}[kind], "kvstore": loc.kvstore()}
            storage_axes = None
        try:
            store = ts.open({**spec, "context": READ_CONTEXT}, read=True).result()
        except Exception as exc:  # tensorstore raises ValueError/RuntimeError subclasses
            raise ValueError(f"{loc.text}: cannot open as {kind}: {_first_line(exc)}") from None
        if kind == "precomputed":
            store = store[ts.d[:].translate_to[0]]
        if storage_axes is None:
            labels = [lb for lb in store.domain.labels]
            named = "".join(lb[0].lower() for lb in labels) if all(lb.lower() in ("x", "y", "z", "c", "t", "channel") for lb in labels) else None
            storage_axes = axes or named or {2: "xy", 3: "xyz", 4: "xyzc"}.get(store.rank, "?" * store.rank)
        elif axes and kind != "precomputed":
            storage_axes = axes
        self.axes = parse_axes(storage_axes, store.rank)
        self._store = store
        self._storage_shape = tuple(int(n) for n in store.shape)
        self.dtype = np.dtype(store.dtype.numpy_dtype)
        self.shape, self.channels = _xyzc_shape(self.axes, self._storage_shape)
        _to_xyzc(self.axes, self._storage_shape)
        if self.read_unit is None:
            chunk = store.chunk_layout.read_chunk.shape
            if chunk is not None:
                size = dict(zip(self.axes, chunk))
                self.read_unit = tuple(int(size.get(a, 1)) for a in "xyz")

    def read(self, start, stop, *, buffer=None):
        """Voxels ``start:stop`` (x, y, z) as an (x, y, z, c) view; `buffer` as for `read_store`."""
        box = _storage_box(self.axes, self._storage_shape, start, stop)
        arr = read_store(self._store[tuple(slice(lo, hi) for lo, hi in box)], buffer)
        return _view_xyzc(arr, self.axes)


def read_store(view, buffer=None):
    """Read a tensorstore view into a new array, or into ``buffer(shape, dtype, order)``.

    A reused buffer skips the kernel's zeroing of fresh pages, which costs as
    much CPU as the copy itself in a disk-bound build.
    """
    order = storage_order(view)
    if buffer is None:
        return np.asarray(view.read(order=order).result())
    import tensorstore as ts

    arr = buffer(tuple(view.shape), np.dtype(view.dtype.numpy_dtype), order)
    ts.array(arr, copy=False, write=True).write(view.translate_to[0]).result()
    return arr


def storage_order(store):
    """"F" when chunks are stored with the first axis fastest (precomputed, N5), else "C".

    Reading into the stored order is a copy per chunk; the other order is a
    transpose per chunk, several times slower. The core reads both alike.
    """
    inner = store.chunk_layout.inner_order
    if inner is not None and len(inner) > 1 and list(inner) == list(range(len(inner)))[::-1]:
        return "F"
    return "C"


# CloudVolume / igneous (CloudFiles) store compressed local chunks as "<name>.gz" etc.;
# tensorstore looks for "<name>", finds nothing and would read the fill value (zeros).
COMPRESSED_SUFFIXES = (".gz", ".br", ".zstd", ".bz2", ".xz")


def _refuse_suffixed_chunks(loc, folder):
    """Raise when the first entries of a local scale folder are CloudFiles-compressed chunk files."""
    try:
        with os.scandir(folder) as entries:
            for _, entry in zip(range(16), entries):
                if entry.name.endswith(COMPRESSED_SUFFIXES):
                    raise ValueError(
                        f"{loc.text}: chunk files like {entry.name!r} were written compressed by CloudVolume/"
                        "igneous, which tensorstore cannot read (it would see zeros); rewrite them uncompressed "
                        "first (e.g. with CloudVolume(..., compress=False))"
                    )
    except (FileNotFoundError, NotADirectoryError):
        pass


def _ngff_letter(axis):
    name = axis.get("name", "").lower()
    if axis.get("type") == "channel" or name in ("c", "channel"):
        return "c"
    if name in ("x", "y", "z", "t"):
        return name
    raise ValueError(f"unsupported OME-Zarr axis {axis!r} (expected t, c, z, y, x)")


def _transform(dataset, kind, rank):
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == kind and kind in t:
            return [float(v) for v in t[kind]]
    return [1.0 if kind == "scale" else 0.0] * rank


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
