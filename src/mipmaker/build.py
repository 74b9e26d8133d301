"""`mipmaker.build`: a pyramid from a volume on disk to a chunked, viewable one on disk.

The work is planned by `mipmaker.plan` into boxes; each box is read, reduced
by the in-memory core (`pyramid` / `downsample`) and written as whole chunks
or shards, then marked done. The same command after a crash finishes the
boxes that are not marked and gives the same bytes (see `_progress`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import __version__
from . import _validate as v
from ._downsample import downsample, pyramid
from ._progress import BuildState, check_record, run_local
from .formats import FORMATS, WRITERS, Location, open_source
from .formats.sharding import precomputed_write_unit
from .plan import auto_factors, make_levels, make_plan

__all__ = ["build", "BuildConfig", "Build", "parse_memory", "default_memory"]

LABEL_DTYPES = ("uint32", "uint64", "int32", "int64")
MAX_LEVELS = 16
SHARD_TARGET_BYTES = 16 << 20


def parse_memory(text):
    """``'512MB'``, ``'2GiB'``, ``'1.5G'``, ``1000000`` -> bytes (decimal and binary units)."""
    if isinstance(text, (int, np.integer)):
        value = int(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)b?\s*", str(text).lower())
        if not m:
            raise ValueError(f"`memory` must look like 512MB, 2GiB or a number of bytes, got {text!r}")
        base = 1024 if m.group(3) else 1000
        value = int(float(m.group(1)) * base ** " kmgt".index(m.group(2) or " "))
    if value <= 0:
        raise ValueError(f"`memory` must be positive, got {text!r}")
    return value


def default_memory():
    """Half of the memory available now (MemAvailable), or 2 GiB when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 2 << 30


def _xyz(value, name, *, positive=True, cast=int):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    try:
        out = tuple(cast(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be three numbers x,y,z, got {value!r}") from None
    if len(out) != 3 or (positive and min(out) <= 0):
        raise ValueError(f"`{name}` must be three positive numbers x,y,z, got {value!r}")
    return out


@dataclass
class BuildConfig:
    """Everything that decides the bytes of a build (what a resume must match)."""

    source: str
    format: str
    shape: tuple
    channels: int
    dtype: str
    method: str
    sparse: bool
    labels: bool
    factors: list  # per level above 0, x, y, z
    chunk: tuple
    shard: tuple | None
    compression: str
    encoding: str
    resolution: tuple
    translation: tuple
    unit: str
    offset: tuple
    axes: str | None = None
    in_place: bool = False  # levels added to the source (precomputed), level 0 not copied
    extra: dict = field(default_factory=dict)

    def to_json(self):
        d = asdict(self)
        return {k: list(val) if isinstance(val, tuple) else val for k, val in d.items()}


class Build:
    """A planned build: source, writer, plan; `run_task` does one box (any process)."""

    def __init__(self, config, dest, plan):
        self.config = config
        self.dest = dest if isinstance(dest, Location) else Location(dest)
        self.plan = plan
        self._source = None
        self._writer = None

    def __getstate__(self):
        # What a dask task carries: config, destination and plan (a few KiB); the
        # source and writer hold open stores and reopen lazily where it runs.
        return dict(self.__dict__, _source=None, _writer=None)

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def source(self):
        if self._source is None:
            self._source = open_source(self.config.source, axes=self.config.axes)
        return self._source

    @property
    def writer(self):
        if self._writer is None:
            c = self.config
            self._writer = WRITERS[c.format](
                self.dest, self.plan.levels, channels=c.channels, dtype=c.dtype, resolution=c.resolution,
                translation=c.translation, unit=c.unit, offset=c.offset, provenance=self.provenance(),
                labels=c.labels, compression=c.compression, encoding=c.encoding, sharded=c.shard is not None,
                **({"in_place": True} if c.in_place else {}),
            )
        return self._writer

    def provenance(self):
        c = self.config
        levels = []
        for n, p in enumerate(self.plan.passes):
            for k in p.levels:
                if k:
                    levels.append({"path": str(k), "factor": list(self.plan.levels[k].factor), "from_level": p.base,
                                   "recursive": p.base != 0})
        levels.sort(key=lambda d: int(d["path"]))
        return {
            "description": "built by mipmaker: level k reduces each block of level `from_level` "
                           "(level 0 unless `recursive`) exactly",
            "method": "mipmaker.build",
            "version": __version__,
            "kwargs": {"method": c.method, "sparse": c.sparse, "factors": [list(f) for f in c.factors]},
            "levels": levels,
        }

    def run_task(self, pass_index, box_index, threads=None):
        """Read box `box_index` of pass `pass_index`, make its levels, write them; return voxels read."""
        p = self.plan.passes[pass_index]
        start, stop = p.box_bounds(box_index)
        if pass_index == 0:
            block = self.source.read(start, stop, buffer=_box_buffer)
        else:
            block = self.writer.read(p.base, start, stop, buffer=_box_buffer)
        written = [k for k in p.levels if k != p.base]
        ratios = [r for k, r in zip(p.levels, p.ratios) if k != p.base]
        outs = _reduce(block, ratios, self.config.method, self.config.sparse, threads)
        if p.base in p.levels:
            self.writer.write(p.base, start, stop, block)
        for k, ratio, out in zip(written, ratios, outs):
            lo, hi = p.level_bounds(box_index, self.plan.levels[k].shape, ratio)
            self.writer.write(k, lo, hi, out)
        return p.box_voxels(box_index)


_buffers = threading.local()


def _box_buffer(shape, dtype, order):
    """This thread's box array, reused from task to task while its shape holds.

    A box lives only inside `Build.run_task`, so each thread needs one; the
    planner's memory model already counts one box per task.
    """
    arr = getattr(_buffers, "box", None)
    if arr is None or arr.shape != shape or arr.dtype != dtype or not arr.flags[f"{order}_CONTIGUOUS"]:
        _buffers.box = None  # free the old one first
        arr = _buffers.box = np.empty(shape, dtype, order=order)
    return arr


def _reduce(block, ratios, method, sparse, threads):
    """Levels of `block` (x, y, z, c) for cumulative `ratios`, each exact from the block."""
    if not ratios:
        return []
    first = ratios[0]
    if all(r == tuple(f**(k + 1) for f in first) for k, r in enumerate(ratios)):
        return pyramid(block, first + (1,), len(ratios), method=method, sparse=sparse, exact=True, threads=threads)
    return [downsample(block, r + (1,), method=method, sparse=sparse, threads=threads) for r in ratios]


def _configure(source, src, fmt, levels, factor, resolution, method, sparse, labels, chunk, shard,
               compression, encoding, axes, in_place):
    if in_place:
        if source.kind != "precomputed":
            raise ValueError(
                f"`dest` equals `source`, which adds levels in place: only precomputed sources allow that "
                f"(this one is {source.kind}); give a new destination"
            )
        fmt = fmt or "precomputed"
        if fmt != "precomputed":
            raise ValueError(f"`format` must be precomputed to add levels to a precomputed source, got {fmt!r}")
        if encoding is None:
            encoding = source.encoding if source.encoding in ("raw", "compressed_segmentation") else "raw"
        if resolution is not None:
            raise ValueError("`resolution` comes from the source's info when adding levels in place")
    fmt = fmt or "ome-zarr"
    if fmt not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(FORMATS)}, got {fmt!r}")
    dtype = np.dtype(source.dtype)
    if dtype.newbyteorder("=") not in v.DTYPES or dtype.kind in "bc":
        raise TypeError(f"`source` has dtype {dtype}; a pyramid needs integers or floats")
    if labels is None:
        labels = source.labels if source.labels is not None else dtype.name in LABEL_DTYPES
    if method == "auto":
        method = "mode" if labels else "mean"
    v.method(method, dtype, bool(sparse))
    res = _xyz(resolution, "resolution", cast=float) or source.resolution or (1.0, 1.0, 1.0)
    chunk = _xyz(chunk, "chunk")
    factor = _xyz(factor, "factor")
    if levels is not None:
        levels = v.count(levels, "levels", minimum=1)
        if levels > MAX_LEVELS:
            raise ValueError(f"`levels` must be at most {MAX_LEVELS}, got {levels}")
    factors = _level_factors(source.shape, chunk, factor, res, levels)
    if compression not in ("none", "zstd", "gzip", "blosc"):
        raise ValueError(f"`compression` must be none, zstd, gzip or blosc, got {compression!r}")
    if encoding is None:
        encoding = "raw"
    if encoding not in ("raw", "compressed_segmentation"):
        raise ValueError(f"`encoding` must be raw or compressed_segmentation, got {encoding!r}")
    if fmt != "precomputed" and encoding != "raw":
        raise ValueError("`encoding` applies to precomputed output; use `compression` for OME-Zarr")
    if fmt == "precomputed" and compression not in ("none", "zstd"):
        raise ValueError("`compression` applies to OME-Zarr output; precomputed takes `encoding`")
    extra = {"base_chunk": list(source.read_unit)} if in_place else {}
    if shard == "auto":
        shard = _default_shard(chunk, source.channels * dtype.itemsize) if fmt == "ome-zarr" else None
        extra["shard_per_level"] = shard is not None
    elif shard in (None, "none"):
        shard = None
    else:
        shard = _xyz(shard, "shard")
        if fmt == "ome-zarr-0.4":
            raise ValueError("`shard` needs zarr v3: use --format ome-zarr or precomputed")
        if any(s % c for s, c in zip(shard, chunk)):
            raise ValueError(f"`shard` {shard} must be a multiple of `chunk` {chunk} on every axis")
    translation = source.translation or tuple(o * r for o, r in zip(source.offset, res))
    return BuildConfig(
        source=src, format=fmt, shape=tuple(source.shape), channels=int(source.channels), dtype=dtype.name,
        method=method, sparse=bool(sparse), labels=bool(labels), factors=[tuple(f) for f in factors],
        chunk=chunk, shard=shard, compression=compression, encoding=encoding, resolution=tuple(res),
        translation=tuple(float(t) for t in translation), unit=source.unit, offset=tuple(source.offset), axes=axes,
        in_place=bool(in_place), extra=extra,
    )


def _level_factors(shape, chunk, factor, res, levels):
    """Per-level factors: fixed `factor`, or near-isotropic ones from `res`; default level count
    stops when the top level fits one chunk along every axis that shrinks."""
    limit = levels if levels is not None else MAX_LEVELS
    candidates = [factor] * limit if factor else auto_factors(res, limit)
    if levels is not None:
        return candidates
    out, cur = [], list(shape)
    for f in candidates:
        if all(n <= c or k == 1 for n, c, k in zip(cur, chunk, f)):
            break
        out.append(f)
        cur = [-(-n // k) for n, k in zip(cur, f)]
    return out or candidates[:1]


def _default_shard(chunk, voxel_bytes):
    """Double the chunk x, y, z in turn while the shard stays within 16 MiB."""
    shard = list(chunk)
    a = 0
    for _ in range(12):
        trial = list(shard)
        trial[a % 3] *= 2
        if int(np.prod(trial)) * voxel_bytes > SHARD_TARGET_BYTES:
            break
        shard = trial
        a += 1
    return tuple(shard)


def _levels_for(config):
    chunks = config.chunk
    if config.in_place:  # level 0 keeps the source's own chunks
        chunks = [tuple(config.extra["base_chunk"])] + [config.chunk] * len(config.factors)
    levels = make_levels(config.shape, config.factors, chunks)
    if config.shard is None:
        return levels
    if config.format == "precomputed":
        units = [precomputed_write_unit(lv.shape, lv.chunk, tuple(max(s, c) for s, c in zip(config.shard, lv.chunk)))
                 for lv in levels]
    else:
        units = [config.shard] * len(levels)
    if config.extra.get("shard_per_level"):
        # Default shards shrink with the level (never below a chunk) so each
        # covers about the same level-0 region: one box can then make many
        # levels within the memory budget.
        units = [
            tuple(max(c, (s // f) // c * c) for s, f, c in zip(config.shard, lv.factor, lv.chunk))
            for lv in levels
        ]
    return make_levels(config.shape, config.factors, chunks, units)


def build(source, dest, *, format=None, levels=None, factor=None, resolution=None, method="auto",
          sparse=False, labels=None, chunk=(128, 128, 64), shard="auto", compression="zstd", encoding=None,
          axes=None, memory=None, workers=None, dry_run=False, progress=True, client=None):
    """Build a multiscale pyramid of the volume at `source` into `dest`.

    Level 0 is a chunked copy of the source; levels of the first pass are the
    exact reduction of each level-0 block (``mipmaker.downsample(volume,
    F_k)`` for the cumulative factor ``F_k``, which for a constant factor is
    ``mipmaker.pyramid(volume, factor, n, exact=True)``); levels that one box
    cannot hold within `memory` come from a later pass over a written level
    (the metadata records which). Rerunning the same call after a crash
    finishes the missing boxes and gives identical bytes.

    Parameters
    ----------
    source : str or os.PathLike
        ``.npy``, TIFF stack folder or (OME-)TIFF file, zarr v2/v3, OME-Zarr,
        N5 or Neuroglancer precomputed; a path or a tensorstore URL
        (``file://``, ``gs://``, ``s3://``, optionally behind ``precomputed://``).
    dest : str or os.PathLike
        A new (or empty) folder or URL, or an unfinished build of the same
        call. When it is the `source` itself (precomputed only), the levels
        are added to the source's ``info`` next to its level 0, which is not
        copied (what igneous does).
    format : {"ome-zarr", "ome-zarr-0.4", "precomputed"}, optional
        Default: ome-zarr; precomputed when `dest` is the source (in place).
    levels : int, optional
        Levels above 0 (default: until the top level fits in one chunk).
    factor : (3,) ints, optional
        Factor per level, x, y, z; default: near-isotropic from `resolution`.
    resolution : (3,) floats, optional
        Voxel size x, y, z (nm); default: the source's, else 1, 1, 1.
    method : {"auto", "mean", "mode", "median", "min", "max", "stride"}
        "auto": mode for labels, mean for images.
    sparse : bool
        Zero is background (see `mipmaker.downsample`).
    labels : bool, optional
        Whether the source is a segmentation (default: from its metadata or
        dtype: uint32/uint64/int32/int64 are labels).
    chunk, shard : (3,) ints, x, y, z
        Chunk shape; shard shape (OME-Zarr v0.5 default: about 16 MiB; "none"
        for unsharded; precomputed rounds it to a Morton-code box of chunks).
    compression : {"zstd", "gzip", "blosc", "none"}
        OME-Zarr chunk compression.
    encoding : {"raw", "compressed_segmentation"}, optional
        Precomputed chunk encoding.
    axes : str, optional
        Storage axes of ``.npy``, plain zarr and N5 sources (default ``xyz``).
    memory : int or str, optional
        Budget for all running tasks (default: half of available RAM).
    workers : int, optional
        Boxes processed at once (default: twice the CPU count, so I/O overlaps compute).
    dry_run : bool
        Plan only; nothing is written.
    progress : bool
        Show a progress bar on stderr.
    client : dask.distributed.Client, optional
        Run the boxes on this cluster instead of local threads.

    Returns
    -------
    BuildState
        The plan, timing and counts (`dry_run`: nothing executed).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "v.npy"), np.arange(64 * 64 * 8, dtype=np.uint8).reshape(64, 64, 8))
    >>> state = build(os.path.join(d, "v.npy"), os.path.join(d, "v.ome.zarr"), levels=2,
    ...               factor=(2, 2, 1), chunk=(32, 32, 8), progress=False)
    >>> [lv.shape for lv in state.plan.levels]
    [(64, 64, 8), (32, 32, 8), (16, 16, 8)]
    """
    src = os.fspath(source)
    if "://" not in src:
        src = os.path.abspath(src)  # a resumed build matches from any working directory
    # Two boxes per core: one reads or writes while the other computes.
    workers = v.count(workers, "workers", minimum=1) if workers is not None else 2 * (os.cpu_count() or 1)
    memory = parse_memory(memory) if memory is not None else default_memory()
    dest_loc = Location(dest)
    src_loc = Location(src)
    if dest_loc.local is not None and src_loc.local is not None:
        in_place = os.path.realpath(dest_loc.local) == os.path.realpath(src_loc.local)
    else:
        in_place = dest_loc.url == src_loc.url
    source_obj = open_source(src, axes=axes)
    config = _configure(source_obj, src, format, levels, factor, resolution, method, sparse, labels, chunk,
                        shard, compression, encoding, axes, in_place)
    if not dry_run:
        check_record(dest_loc, config)  # before planning: the plan of other options may not even fit
    level_list = _levels_for(config)
    plan = make_plan(
        level_list, channels=config.channels, itemsize=np.dtype(config.dtype).itemsize, memory=memory,
        workers=workers, read_unit=source_obj.read_unit, read_overhead=getattr(source_obj, "plane_bytes", 0),
        copy_base=not config.in_place,
    )
    b = Build(config, dest_loc, plan)
    b._source = source_obj
    state = BuildState(b, memory=memory, workers=workers)
    if dry_run:
        return state
    t0 = time.perf_counter()
    if client is not None:
        from ._dask import run_dask

        run_dask(state, client, progress=progress)
    else:
        run_local(state, progress=progress)
    state.seconds = time.perf_counter() - t0
    return state
