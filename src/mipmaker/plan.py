"""The build planner: which level-0 boxes make which levels, within a memory budget.

Pure functions of shapes, factors, write units and a budget; no I/O. A build
is a sequence of passes. A pass reads boxes of its base level (the source for
the first pass, a level written by an earlier pass otherwise) and writes a run
of levels above it; every box covers whole write units (chunks, or shards when
sharded) of every level it writes, so no two boxes ever write the same chunk
and a box's work can be repeated without changing a byte. Levels of the first
pass are exact reductions of level-0 blocks; levels of a later pass are exact
reductions of blocks of that pass's base level (recursive overall).

All shapes, factors and boxes are in x, y, z order (the igneous, CloudVolume
and Neuroglancer convention), whatever order the source or destination
stores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Level", "Pass", "Plan", "make_levels", "make_plan", "auto_factors", "format_bytes"]

# Bytes a task holds beyond its arrays: codec buffers, the core's tiles.
TASK_OVERHEAD = 16 << 20
# What a writer holds in copies at once: one slab (formats.writers.WRITE_SLAB_BYTES).
WRITE_COPY_BYTES = 64 << 20
# Boxes stop growing here: bigger boxes only lengthen the tail of a build.
MAX_BOX_BYTES = 512 << 20


def format_bytes(n):
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _ceil_div(a, b):
    return -(-a // b)


def auto_factors(resolution, num_levels):
    """Per-level factors that make anisotropic voxels near-isotropic, then halve all axes.

    At each level an axis is halved when doubling its resolution brings it
    closer (in log scale) to the coarsest axis; when no axis qualifies, every
    axis is halved.

    Parameters
    ----------
    resolution : (3,) sequence of float
        Voxel size, x, y, z (nm).
    num_levels : int
        Levels above level 0.

    Returns
    -------
    list of (3,) tuple of int
        The factor of each level relative to the level below.

    Examples
    --------
    >>> auto_factors((4, 4, 40), 5)
    [(2, 2, 1), (2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2)]
    >>> auto_factors((8, 8, 8), 2)
    [(2, 2, 2), (2, 2, 2)]
    """
    res = [float(r) for r in resolution]
    out = []
    for _ in range(num_levels):
        top = max(res)
        f = tuple(2 if abs(math.log(2 * r / top)) < abs(math.log(r / top)) else 1 for r in res)
        if f == (1,) * len(res):
            f = (2,) * len(res)
        res = [r * k for r, k in zip(res, f)]
        out.append(f)
    return out


@dataclass(frozen=True)
class Level:
    """One level of the output pyramid (x, y, z)."""

    index: int
    shape: tuple
    factor: tuple  # cumulative factor from level 0
    chunk: tuple
    write_unit: tuple  # chunk, or shard when sharded: what one write covers


@dataclass(frozen=True)
class Pass:
    """A run of levels made from boxes of one base level.

    Boxes are numbered with x fastest, so consecutive boxes walk a z-slab
    (sequential for sources stored as z planes).
    """

    base: int
    levels: tuple  # levels written, ascending; includes `base` only for level 0
    box: tuple  # box shape in base-level voxels
    base_shape: tuple
    ratios: tuple  # per written level: its factor relative to the base level
    memory: int  # estimated bytes one task holds
    concurrency: int  # tasks that may run at once within the budget

    @property
    def grid(self):
        return tuple(_ceil_div(n, b) for n, b in zip(self.base_shape, self.box))

    def __len__(self):
        return int(np.prod(self.grid, dtype=np.int64))

    @property
    def voxels(self):
        """Base-level voxels the pass reads."""
        return int(np.prod(self.base_shape, dtype=np.int64))

    def box_bounds(self, i):
        """(start, stop) of box `i` in base-level voxels."""
        if not 0 <= i < len(self):
            raise IndexError(f"box {i} out of range for a pass of {len(self)} boxes")
        idx = np.unravel_index(i, self.grid, order="F")
        start = tuple(int(k) * b for k, b in zip(idx, self.box))
        stop = tuple(min(s + b, n) for s, b, n in zip(start, self.box, self.base_shape))
        return start, stop

    def box_voxels(self, i):
        """Base-level voxels in box `i` (fewer at the far edges)."""
        start, stop = self.box_bounds(i)
        return math.prod(b - a for a, b in zip(start, stop))

    def level_bounds(self, i, level_shape, ratio):
        """(start, stop) that box `i` produces in a level `ratio` times coarser."""
        start, stop = self.box_bounds(i)
        lo = tuple(s // r for s, r in zip(start, ratio))
        hi = tuple(min(_ceil_div(e, r), n) for e, r, n in zip(stop, ratio, level_shape))
        return lo, hi


@dataclass(frozen=True)
class Plan:
    """Levels and passes of a build; `to_json` / `from_json` round-trip it."""

    levels: tuple
    passes: tuple
    channels: int
    itemsize: int
    memory: int

    @property
    def tasks(self):
        return sum(len(p) for p in self.passes)

    def to_json(self):
        return {
            "levels": [asdict(lv) for lv in self.levels],
            "passes": [asdict(p) for p in self.passes],
            "channels": self.channels,
            "itemsize": self.itemsize,
            "memory": self.memory,
        }

    @classmethod
    def from_json(cls, obj):
        def tuples(d):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        passes = []
        for p in obj["passes"]:
            p = tuples(p)
            p["ratios"] = tuple(tuple(r) for r in p["ratios"])
            passes.append(Pass(**p))
        return cls(
            levels=tuple(Level(**tuples(lv)) for lv in obj["levels"]),
            passes=tuple(passes),
            channels=obj["channels"],
            itemsize=obj["itemsize"],
            memory=obj["memory"],
        )

    def describe(self):
        """The plan as text (what ``mipmaker build --dry-run`` prints)."""
        lines = ["level  shape (x,y,z)          factor      chunk          write unit     made by"]
        made = {}
        for n, p in enumerate(self.passes):
            for k in p.levels:
                made[k] = "copy of the source" if k == 0 else (
                    f"pass {n + 1}, exact from level {p.base}" if n else "pass 1, exact from level 0"
                )
        for lv in self.levels:
            lines.append(
                f"{lv.index:>5}  {_xyz(lv.shape):<22} {_xyz(lv.factor):<11} {_xyz(lv.chunk):<14} "
                f"{_xyz(lv.write_unit):<14} {made.get(lv.index, 'the source (levels added in place)')}"
            )
        lines.append("")
        for n, p in enumerate(self.passes):
            written = ", ".join(str(k) for k in p.levels)
            lines.append(
                f"pass {n + 1}: reads level {p.base} {_xyz(p.base_shape)} in {len(p)} boxes of "
                f"{_xyz(p.box)} ({_xyz(p.grid)}), writes levels {written}; "
                f"{format_bytes(p.memory)} per task, {p.concurrency} at once"
            )
        lines.append(
            f"tasks: {self.tasks} (one per box; the dask graph has one node per task); "
            f"memory budget {format_bytes(self.memory)}"
        )
        return "\n".join(lines)


def _xyz(t):
    return ",".join(str(int(v)) for v in t)


def make_levels(shape, level_factors, chunks, write_units=None):
    """The levels of a pyramid: shapes, cumulative factors, chunks and write units.

    Parameters
    ----------
    shape : (3,) tuple of int
        Level-0 shape, x, y, z.
    level_factors : list of (3,) tuple of int
        Factor of each level above 0 relative to the one below.
    chunks : (3,) tuple or list of (3,) tuples
        Chunk shape (one for all levels, or one per level, level 0 first);
        clipped to each level's shape.
    write_units : (3,) tuple or list of (3,) tuples, optional
        Shard shapes (multiples of the chunk); default: the chunk. Clipped to
        the level's shape rounded up to whole chunks.

    Examples
    --------
    >>> [lv.shape for lv in make_levels((100, 80, 9), [(2, 2, 1)] * 2, (64, 64, 64))]
    [(100, 80, 9), (50, 40, 9), (25, 20, 9)]
    """
    n = len(level_factors) + 1
    chunks = _per_level(chunks, n, "chunks")
    units = chunks if write_units is None else _per_level(write_units, n, "write_units")
    levels = []
    level_shape = tuple(int(s) for s in shape)
    factor = (1,) * len(level_shape)
    for k in range(n):
        if k:
            f = tuple(int(x) for x in level_factors[k - 1])
            level_shape = tuple(_ceil_div(s, x) for s, x in zip(level_shape, f))
            factor = tuple(a * b for a, b in zip(factor, f))
        chunk = tuple(min(int(c), max(s, 1)) for c, s in zip(chunks[k], level_shape))
        unit = tuple(
            min(int(u), _ceil_div(max(s, 1), c) * c) for u, s, c in zip(units[k], level_shape, chunk)
        )
        levels.append(Level(k, level_shape, factor, chunk, unit))
    return tuple(levels)


def _per_level(value, n, name):
    value = list(value)
    if value and np.ndim(value[0]) == 0:
        return [tuple(value)] * n
    if len(value) != n:
        raise ValueError(f"`{name}` must give one shape or one per level ({n}), got {len(value)}")
    return [tuple(v) for v in value]


def make_plan(levels, *, channels=1, itemsize=1, memory, workers=1, read_unit=None, read_overhead=0,
              copy_base=True):
    """Split a pyramid build into passes of boxes that fit `memory`.

    Parameters
    ----------
    levels : tuple of Level
        From `make_levels`; level 0 is written by the first pass.
    channels, itemsize : int
        Channels per voxel and bytes per channel.
    memory : int
        Bytes all running tasks may hold together.
    workers : int
        Tasks to run at once; each gets ``memory / workers`` (a pass whose
        smallest box needs more runs fewer at once).
    read_unit : (3,) tuple of int, optional
        What the source reads at once (a TIFF plane: ``(X, Y, 1)``); boxes grow
        to cover it first.
    read_overhead : int
        Extra bytes a task holds while reading (a decoded plane).
    copy_base : bool
        Whether the first pass writes level 0 (False when the levels are
        added to the source itself).

    Returns
    -------
    Plan

    Examples
    --------
    >>> lv = make_levels((1024, 1024, 64), [(2, 2, 1)] * 4, (128, 128, 64))
    >>> plan = make_plan(lv, memory=256 << 20, workers=1)
    >>> [p.levels for p in plan.passes], plan.passes[0].box
    ([(0, 1, 2, 3, 4)], (1024, 1024, 64))
    >>> plan = make_plan(lv, memory=96 << 20, workers=1)  # too little for one pass
    >>> [p.levels for p in plan.passes], plan.passes[0].box
    ([(0, 1, 2), (3, 4)], (512, 512, 64))
    """
    if memory <= 0:
        raise ValueError(f"`memory` must be positive, got {memory}")
    workers = max(1, int(workers))
    voxel_bytes = channels * itemsize
    passes = []
    base = 0
    top = len(levels) - 1
    if top == 0 and not copy_base:
        raise ValueError("`levels` must be at least 1 when level 0 is not copied")
    while not passes or base < top:
        write_base = copy_base and not passes
        chosen = None
        # The most levels that two boxes at once allow (one reads while the
        # other computes), then as many boxes at once as those levels allow.
        for c in sorted({min(2, workers), 1}, reverse=True):
            for t in range(top, base, -1):
                box = _min_box(levels, base, t, write_base)
                need = _task_memory(levels, base, t, box, write_base, voxel_bytes, read_overhead)
                if need * c <= memory:
                    chosen = (t, box, memory // max(c, min(workers, memory // need)))
                    break
            if chosen or top == base:
                break
        if chosen is None and top == base:  # level 0 only: a plain copy
            box = _min_box(levels, base, base, True)
            if _task_memory(levels, base, base, box, True, voxel_bytes, read_overhead) <= memory:
                chosen = (base, box, memory // workers)
        if chosen is None:
            need = _task_memory(
                levels, base, base + 1 if base < top else base,
                _min_box(levels, base, min(base + 1, top), write_base), write_base, voxel_bytes, read_overhead,
            )
            have, want = format_bytes(memory), format_bytes(need)
            if have == want:  # a few bytes short: "144.0 MiB ... needs 144.0 MiB" would read as a contradiction
                have, want = f"{memory} bytes", f"{need} bytes"
            raise ValueError(
                f"`memory` of {have} is too small: one box of level {base} that makes "
                f"whole chunks of level {min(base + 1, top)} needs {want}; "
                "raise --memory or use smaller --chunk/--shard"
            )
        t, box, share = chosen
        box = _grow(levels, base, t, box, write_base, voxel_bytes, read_overhead, share,
                    max(1, min(workers, memory // share)), read_unit)
        mem = _task_memory(levels, base, t, box, write_base, voxel_bytes, read_overhead)
        written = tuple(range(base if write_base else base + 1, t + 1))
        ratios = tuple(tuple(a // b for a, b in zip(levels[k].factor, levels[base].factor)) for k in written)
        passes.append(Pass(base, written, box, levels[base].shape, ratios, mem, max(1, min(workers, memory // mem))))
        base = t
        if top == 0:
            break
    return Plan(tuple(levels), tuple(passes), channels, itemsize, int(memory))


def _min_box(levels, base, top, write_base):
    """Smallest box (base voxels) covering whole write units of every written level."""
    first = base if write_base else base + 1
    bf = levels[base].factor
    box = []
    for a, n in enumerate(levels[base].shape):
        unit = 1
        for k in range(first, top + 1):
            unit = math.lcm(unit, levels[k].write_unit[a] * (levels[k].factor[a] // bf[a]))
        box.append(max(1, min(unit, n)))
    return tuple(box)


def _task_memory(levels, base, top, box, write_base, voxel_bytes, read_overhead):
    """Estimated bytes one task holds: the box read, its levels, their write buffers."""
    bf = levels[base].factor
    box_bytes = int(np.prod(box, dtype=np.int64)) * voxel_bytes
    out_bytes = 0
    largest = box_bytes if write_base else 0
    for k in range(base + 1, top + 1):
        r = [f // b for f, b in zip(levels[k].factor, bf)]
        level_bytes = int(np.prod([_ceil_div(b, x) for b, x in zip(box, r)], dtype=np.int64)) * voxel_bytes
        out_bytes += level_bytes
        largest = max(largest, level_bytes)
    # Measured (benchmarks/build_memory.py, tensorstore 0.1.86): reading a box
    # peaks at about 1.25x its size (chunk buffers in flight); levels likewise;
    # writes go one at a time, each copying at most one slab.
    return (box_bytes * 5 + out_bytes * 5) // 4 + min(WRITE_COPY_BYTES, largest) + TASK_OVERHEAD + read_overhead


def _grow(levels, base, top, box, write_base, voxel_bytes, read_overhead, share, workers, read_unit):
    """Double the box along its shortest axes while it fits and leaves work for every worker."""
    shape = levels[base].shape
    count = lambda b: int(np.prod([_ceil_div(n, x) for n, x in zip(shape, b)], dtype=np.int64))  # noqa: E731
    min_tasks = min(2 * workers, count(box))
    box = list(box)
    while True:
        candidates = [a for a in range(len(box)) if box[a] < shape[a]]
        if read_unit is not None:
            preferred = [a for a in candidates if box[a] < read_unit[a]]
            candidates = preferred or candidates
        grown = False
        for a in sorted(candidates, key=lambda a: (box[a], a)):
            trial = list(box)
            trial[a] = min(box[a] * 2, shape[a])
            mem = _task_memory(levels, base, top, trial, write_base, voxel_bytes, read_overhead)
            big = int(np.prod(trial, dtype=np.int64)) * voxel_bytes
            if mem <= share and big <= MAX_BOX_BYTES and count(trial) >= min_tasks:
                box = trial
                grown = True
                break
        if not grown:
            return tuple(box)
