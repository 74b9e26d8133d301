"""`mipmaker info` and `mipmaker preview`: what a volume or pyramid on disk holds, and a picture of it."""

from __future__ import annotations

import numpy as np

from .formats import Location, detect_format, open_source
from .formats.chunked import ChunkedSource, ngff_multiscale

__all__ = ["open_levels", "describe", "preview", "colorize", "montage"]


def open_levels(where, *, axes=None):
    """Every level stored at `where` as sources, finest first (one for a plain array)."""
    loc = Location(where)
    kind = loc.hint if loc.hint == "precomputed" else detect_format(loc)
    if kind == "precomputed":
        n = len(loc.read_json("info")["scales"])
        return kind, [ChunkedSource(loc, kind, level=k) for k in range(n)]
    if kind in ("ome-zarr", "ome-zarr-0.4"):
        n = len(ngff_multiscale(loc)[0]["datasets"])
        return kind, [ChunkedSource(loc, kind, level=k) for k in range(n)]
    return kind, [open_source(loc, axes=axes)]


def describe(where, *, axes=None):
    """A text summary: format, levels with shapes, dtype, chunks and scales, build metadata."""
    loc = Location(where)
    kind, levels = open_levels(where, axes=axes)
    lines = [f"{loc.text}: {kind}, {levels[0].dtype}, {levels[0].channels} channel(s), {len(levels)} level(s)"]
    lines.append("level  shape (x,y,z)          read chunk (x,y,z)   resolution (x,y,z)")
    for k, src in enumerate(levels):
        chunk = ",".join(map(str, src.read_unit)) if src.read_unit else "-"
        res = ",".join(f"{r:g}" for r in src.resolution) if src.resolution else "-"
        lines.append(f"{k:>5}  {','.join(map(str, src.shape)):<22} {chunk:<20} {res}")
    meta = None
    if kind == "precomputed":
        info = loc.read_json("info")
        lines.append(f"type: {info.get('type')}, encoding: {info['scales'][0].get('encoding')}, "
                     f"sharded: {'sharding' in info['scales'][0]}")
        meta = info.get("mipmaker")
    elif kind in ("ome-zarr", "ome-zarr-0.4"):
        ms, version, _ = ngff_multiscale(loc)
        lines.append(f"OME-NGFF {version}, axes {''.join(a['name'] for a in ms['axes'])}, type {ms.get('type', '-')}")
        meta = ms.get("metadata")
    if isinstance(meta, dict) and meta.get("levels"):
        kw = meta.get("kwargs", {})
        lines.append(f"built by mipmaker {meta.get('version')}: method {kw.get('method')}"
                     f"{' sparse' if kw.get('sparse') else ''}")
        for lv in meta["levels"]:
            how = f"recursive, from level {lv['from_level']}" if lv.get("recursive") else "exact, from level 0"
            lines.append(f"  level {lv['path']}: factor {','.join(map(str, lv['factor']))}, {how}")
    return "\n".join(lines)


def colorize(labels):
    """Stable pseudo-colours for a 2-D label slice (0 stays black)."""
    h = labels.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(255) for s in (16, 32, 48)], axis=-1).astype(np.uint8)
    rgb[labels == 0] = 0
    return rgb


def _grey(plane):
    """A 2-D slice as 8-bit grey, scaled to its 0.5-99.5 percentile range unless it is uint8."""
    if plane.dtype == np.uint8:
        return plane
    plane = plane.astype(np.float64)
    lo, hi = np.percentile(plane, [0.5, 99.5]) if plane.size else (0, 1)
    return np.clip((plane - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)


def montage(images, height):
    """Concatenate (Y, X, 3) slices left to right, each scaled up by an integer to about `height` rows."""
    tiles = []
    for img in images:
        scale = max(1, height // max(img.shape[0], 1))
        tile = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
        pad = np.zeros((height, tile.shape[1] + 4, 3), np.uint8)
        pad[: min(height, tile.shape[0]), : tile.shape[1]] = tile[:height]
        tiles.append(pad)
    return np.concatenate(tiles, axis=1)


def preview(where, out, *, z=None, labels=None, max_size=1024, axes=None):
    """Write a PNG montage of one z slice (the middle one by default) at every level.

    Each level shows the slice at the same physical depth; level 0 is read
    at most `max_size` voxels wide (a centred crop), coarser levels the same
    region. Labels are pseudo-coloured.
    """
    from PIL import Image

    kind, levels = open_levels(where, axes=axes)
    base = levels[0]
    if labels is None:
        labels = bool(base.labels) if base.labels is not None else np.dtype(base.dtype).name in (
            "uint32", "uint64", "int32", "int64")
    z0 = base.shape[2] // 2 if z is None else int(z)
    if not 0 <= z0 < base.shape[2]:
        raise ValueError(f"`z` must be in [0, {base.shape[2]}), got {z}")
    width = [min(n, max_size) for n in base.shape[:2]]
    x0 = [(n - w) // 2 for n, w in zip(base.shape[:2], width)]
    tiles = []
    for src in levels:
        f = [max(1, round(b / max(s, 1))) for b, s in zip(base.shape, src.shape)]
        lo = [x0[0] // f[0], x0[1] // f[1], min(z0 // f[2], src.shape[2] - 1)]
        hi = [max(lo[0] + 1, -(-(x0[0] + width[0]) // f[0])), max(lo[1] + 1, -(-(x0[1] + width[1]) // f[1])), lo[2] + 1]
        hi = [min(h, n) for h, n in zip(hi, src.shape)]
        plane = np.asarray(src.read(lo, hi))[:, :, 0, 0].T
        tiles.append(colorize(plane) if labels else np.repeat(_grey(plane)[..., None], 3, axis=-1))
    picture = montage(tiles, max(width[1], 1))
    Image.fromarray(picture).save(out)
    return out
