"""Writers: OME-Zarr v0.5 (zarr v3, sharded), OME-Zarr v0.4 (zarr v2), Neuroglancer precomputed.

A writer receives (x, y, z, c) arrays and stores them in its own axis order
(OME-Zarr: (c,) z, y, x; precomputed: x, y, z, c). `create` writes all
metadata and is idempotent: the same build writes the same bytes. Level
writes are whole chunks or shards (the planner guarantees it), each stored
atomically by tensorstore, so a repeated write changes nothing.
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from .chunked import read_store
from .sharding import precomputed_sharding

__all__ = ["WRITERS", "Writer", "OmeZarrWriter", "PrecomputedWriter"]

# No fsync per chunk file (it costs more than the build's own work on a local
# disk); a box's files are synced once, before it is marked done (`Location.sync`).
CONTEXT = {"file_io_sync": False}

# What one write hands tensorstore at most (it holds a copy while encoding).
WRITE_SLAB_BYTES = 64 << 20

ZARR3_COMPRESSION = {
    "none": [],
    "zstd": [{"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
    "gzip": [{"name": "gzip", "configuration": {"level": 5}}],
    "blosc": [{"name": "blosc", "configuration": {"cname": "zstd", "clevel": 5, "shuffle": "shuffle", "typesize": 1, "blocksize": 0}}],
}
ZARR2_COMPRESSION = {
    "none": None,
    "zstd": {"id": "zstd", "level": 3},
    "gzip": {"id": "gzip", "level": 5},
    "blosc": {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1, "blocksize": 0},
}


class Writer:
    """Common part: level stores opened once, (x, y, z, c) boxes in, storage order out."""

    kind = "?"

    def __init__(self, loc, levels, *, channels, dtype, resolution, translation, unit, offset, provenance,
                 labels, compression="zstd", encoding="raw", sharded=False):
        self.loc = loc
        self.levels = levels
        self.channels = channels
        self.dtype = np.dtype(dtype)
        self.resolution = tuple(float(r) for r in resolution)
        self.translation = tuple(float(t) for t in translation)
        self.unit = unit
        self.offset = tuple(int(o) for o in offset)
        self.provenance = provenance
        self.labels = labels
        self.compression = compression
        self.encoding = encoding
        self.sharded = sharded
        self._stores = {}

    def store(self, level):
        if level not in self._stores:
            import tensorstore as ts

            self._stores[level] = ts.open(self._open_spec(level), read=True, write=True).result()
        return self._stores[level]

    def write(self, level, start, stop, data):
        """Store `data` (x, y, z, c) at voxels ``start:stop`` of `level`.

        Large boxes go in slabs of whole write units, one after the other:
        tensorstore copies what it is writing, so this bounds the copy to a
        slab instead of the box.
        """
        store = self.store(level)
        unit = self.levels[level].write_unit
        counts = [-(-(b - a) // u) for a, b, u in zip(start, stop, unit)]
        axis = max(range(3), key=lambda a: counts[a])
        slab_bytes = data.nbytes // max(counts[axis], 1)
        step = max(1, WRITE_SLAB_BYTES // max(slab_bytes, 1)) * unit[axis]
        for lo in range(start[axis], stop[axis], step):
            hi = min(lo + step, stop[axis])
            a, b = list(start), list(stop)
            a[axis], b[axis] = lo, hi
            part = data[tuple(slice(x - s, y - s) for x, y, s in zip(a, b, start))]
            store[self._index(a, b)].write(self._to_storage(part)).result()

    def read(self, level, start, stop, *, buffer=None):
        """Voxels ``start:stop`` of a written level as (x, y, z, c); `buffer` as for `read_store`."""
        return self._from_storage(read_store(self.store(level)[self._index(start, stop)], buffer))


class OmeZarrWriter(Writer):
    """OME-Zarr: v0.5 (zarr v3, sharding_indexed) or v0.4 (zarr v2, '/' separator)."""

    def __init__(self, loc, levels, *, version="0.5", **kw):
        super().__init__(loc, levels, **kw)
        self.version = version
        self.kind = "ome-zarr" if version == "0.5" else "ome-zarr-0.4"
        self.axes = "czyx" if self.channels > 1 else "zyx"

    def _storage(self, xyz, c):
        return ([c] if self.channels > 1 else []) + list(xyz[::-1])

    def _index(self, start, stop):
        sl = [slice(a, b) for a, b in zip(start, stop)][::-1]
        return tuple(([slice(None)] if self.channels > 1 else []) + sl)

    def _to_storage(self, data):
        data = data.transpose(3, 2, 1, 0)  # c, z, y, x
        return data if self.channels > 1 else data[0]

    def _from_storage(self, arr):
        if self.channels == 1:
            arr = arr[None]
        return arr.transpose(3, 2, 1, 0)

    def _array_metadata(self, lv):
        shape = self._storage(lv.shape, self.channels)
        chunk = self._storage(lv.chunk, self.channels)
        if self.version == "0.4":
            return {
                "shape": shape, "chunks": chunk, "dtype": self.dtype.str, "order": "C", "fill_value": 0,
                "compressor": ZARR2_COMPRESSION[self.compression], "filters": None, "dimension_separator": "/",
            }
        inner = [{"name": "bytes", "configuration": {"endian": "little"}}] + ZARR3_COMPRESSION[self.compression]
        if self.sharded:
            outer = self._storage(lv.write_unit, self.channels)
            codecs = [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": chunk, "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": "end"}}]
        else:
            outer, codecs = chunk, inner
        return {
            "shape": shape, "data_type": self.dtype.name, "dimension_names": list(self.axes),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": outer}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "codecs": codecs, "fill_value": 0,
        }

    def _open_spec(self, level):
        driver = "zarr3" if self.version == "0.5" else "zarr"
        return {"driver": driver, "kvstore": self.loc.kvstore(str(level)), "context": CONTEXT}

    def multiscales(self):
        res, unit = self.resolution, self.unit
        axes = ([{"name": "c", "type": "channel"}] if self.channels > 1 else []) + [
            {"name": a, "type": "space", "unit": unit} for a in "zyx"
        ]
        datasets = []
        for lv in self.levels:
            scale = [r * f for r, f in zip(res, lv.factor)]
            # Pixel centres: voxel i of level k covers level-0 voxels
            # [i F, (i + 1) F), centred at (i F + (F - 1) / 2) in level-0 units.
            shift = [t + (f - 1) / 2 * r for t, f, r in zip(self.translation, lv.factor, res)]
            lead = [1.0] if self.channels > 1 else []
            lead_t = [0.0] if self.channels > 1 else []
            datasets.append({
                "path": str(lv.index),
                "coordinateTransformations": [
                    {"type": "scale", "scale": lead + scale[::-1]},
                    {"type": "translation", "translation": lead_t + shift[::-1]},
                ],
            })
        entry = {"name": self.provenance.get("name", "image"), "axes": axes, "datasets": datasets,
                 "type": self.provenance["kwargs"]["method"], "metadata": self.provenance}
        if self.version == "0.4":
            entry = {"version": "0.4", **entry}
        return entry

    def validate(self):
        """Check every level's array metadata on an in-memory store: errors before a byte is written."""
        import tensorstore as ts

        driver = "zarr3" if self.version == "0.5" else "zarr"
        for lv in self.levels:
            spec = {"driver": driver, "kvstore": "memory://", "metadata": self._array_metadata(lv)}
            try:
                ts.open(spec, create=True).result()
            except Exception as exc:
                raise ValueError(f"cannot store level {lv.index} as {self.kind}: {exc}") from None

    def create(self):
        import tensorstore as ts

        if self.version == "0.5":
            group = {"zarr_format": 3, "node_type": "group",
                     "attributes": {"ome": {"version": "0.5", "multiscales": [self.multiscales()]}}}
            self.loc.write_json("zarr.json", group)
        else:
            self.loc.write_json(".zgroup", {"zarr_format": 2})
            self.loc.write_json(".zattrs", {"multiscales": [self.multiscales()]})
        driver = "zarr3" if self.version == "0.5" else "zarr"
        for lv in self.levels:
            spec = {"driver": driver, "kvstore": self.loc.kvstore(str(lv.index)), "metadata": self._array_metadata(lv),
                    "context": CONTEXT}
            self._stores[lv.index] = ts.open(spec, create=True, open=True, read=True, write=True).result()


class PrecomputedWriter(Writer):
    """Neuroglancer precomputed: raw or compressed_segmentation, sharded or not, x, y, z, c.

    With `in_place`, the destination is the source layer: its ``info`` keeps
    every key and scale 0 as they are, and the new levels become scales 1..N.
    """

    kind = "precomputed"

    def __init__(self, loc, levels, *, in_place=False, **kw):
        super().__init__(loc, levels, **kw)
        self.in_place = in_place

    def _index(self, start, stop):
        # Stores are opened translated to origin 0 (see `store`).
        return tuple(slice(a, b) for a, b in zip(start, stop)) + (slice(None),)

    def _to_storage(self, data):
        return data

    def _from_storage(self, arr):
        return arr

    def scale_key(self, lv):
        return "_".join(_num(r * f) for r, f in zip(self.resolution, lv.factor))

    def info(self):
        scales = []
        for lv in self.levels:
            offset = []
            for o, f in zip(self.offset, lv.factor):
                if o % f:
                    raise ValueError(
                        f"voxel_offset {self.offset} is not a multiple of level {lv.index}'s factor {lv.factor}: "
                        "the source's bounds are not aligned to the downsampling grid"
                    )
                offset.append(o // f)
            scale = {
                "key": self.scale_key(lv),
                "size": list(lv.shape),
                "voxel_offset": offset,
                "resolution": [_json_num(r * f) for r, f in zip(self.resolution, lv.factor)],
                "chunk_sizes": [list(lv.chunk)],
                "encoding": self.encoding,
            }
            if self.encoding == "compressed_segmentation":
                scale["compressed_segmentation_block_size"] = [8, 8, 8]
            if self.sharded:
                scale["sharding"] = precomputed_sharding(lv.shape, lv.chunk, lv.write_unit)
            scales.append(scale)
        if self.in_place:
            info = self.loc.read_json("info")
            if not isinstance(info, dict) or not info.get("scales"):
                raise ValueError(f"{self.loc.text}: `info` has no scales")
            keys = [s["key"] for s in scales[1:]]
            if len(set(keys)) != len(keys) or info["scales"][0]["key"] in keys:
                raise ValueError(f"scale keys {keys} collide; give integer resolutions that differ per level")
            return {**info, "scales": info["scales"][:1] + scales[1:], "mipmaker": self.provenance}
        return {
            "@type": "neuroglancer_multiscale_volume",
            "type": "segmentation" if self.labels else "image",
            "data_type": self.dtype.name,
            "num_channels": self.channels,
            "scales": scales,
            "mipmaker": self.provenance,
        }

    def _open_spec(self, level):
        return {"driver": "neuroglancer_precomputed", "kvstore": self.loc.kvstore(), "context": CONTEXT,
                "scale_metadata": {"key": self.scale_key(self.levels[level])}}

    def store(self, level):
        if level not in self._stores:
            import tensorstore as ts

            store = ts.open(self._open_spec(level), read=True, write=True).result()
            self._stores[level] = store[ts.d[:].translate_to[0]]
        return self._stores[level]

    def validate(self):
        if self.encoding == "compressed_segmentation" and self.dtype not in (np.uint32, np.uint64):
            raise ValueError(f"`encoding` compressed_segmentation needs uint32 or uint64 data, got {self.dtype}")
        # The precomputed data types (no int64 or float64: tensorstore and Neuroglancer reject them).
        if self.dtype.name not in ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "float32"):
            raise ValueError(f"precomputed cannot store {self.dtype}")
        self.info()

    def create(self):
        self.validate()
        self.loc.write_json("info", self.info())


def _json_num(v):
    return int(v) if float(v).is_integer() else float(v)


def _num(v):
    return str(_json_num(v))


WRITERS = {
    "ome-zarr": lambda loc, levels, **kw: OmeZarrWriter(loc, levels, version="0.5", **kw),
    "ome-zarr-0.4": lambda loc, levels, **kw: OmeZarrWriter(loc, levels, version="0.4", **kw),
    "precomputed": PrecomputedWriter,
}
