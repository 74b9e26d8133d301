"""Format adapters: readers and writers around the in-memory core.

Sources: ``.npy``, TIFF stacks and (OME-)TIFF, zarr v2/v3, OME-Zarr, N5,
Neuroglancer precomputed. Destinations: OME-Zarr v0.5 and v0.4, precomputed.
Nothing here is imported by the core API.
"""

from __future__ import annotations

import os

from ._kv import Location
from .chunked import ChunkedSource, ngff_multiscale
from .sources import TIFF_SUFFIXES, NpySource, Source, TiffSource
from .writers import WRITERS

__all__ = ["Location", "Source", "open_source", "detect_format", "WRITERS", "FORMATS"]

FORMATS = tuple(WRITERS)


def detect_format(loc):
    """What is stored at a `Location`: npy, tiff, precomputed, ome-zarr, ome-zarr-0.4, zarr3, zarr, n5."""
    if loc.local is not None:
        path = loc.local
        if not os.path.exists(path):
            raise FileNotFoundError(f"{loc.text}: no such file or folder")
        lower = path.lower()
        if os.path.isfile(path):
            if lower.endswith(".npy"):
                return "npy"
            if lower.endswith(TIFF_SUFFIXES):
                return "tiff"
            raise ValueError(f"{loc.text}: unknown file type (expected .npy, .tif/.tiff or a folder)")
        names = set(os.listdir(path))
        tiffs = [n for n in names if n.lower().endswith(TIFF_SUFFIXES)]
        # At least one TIFF: a zarr v2 group or chunkless array holds only dotfiles.
        if tiffs and all(n in tiffs or n.startswith(".") for n in names):
            return "tiff"
    if loc.read("info") is not None:
        return "precomputed"
    meta = loc.read_json("zarr.json")
    if meta is not None:
        if meta.get("node_type") == "group":
            if ngff_multiscale(loc)[0] is not None:
                return "ome-zarr"
            raise ValueError(f"{loc.text}: a zarr v3 group without OME multiscales; give the array's path")
        return "zarr3"
    if loc.read(".zattrs") is not None and ngff_multiscale(loc)[0] is not None:
        return "ome-zarr-0.4"
    if loc.read(".zarray") is not None:
        return "zarr"
    if loc.read(".zgroup") is not None:
        raise ValueError(f"{loc.text}: a zarr v2 group without OME multiscales; give the array's path")
    attrs = loc.read_json("attributes.json")
    if attrs is not None:
        if "dimensions" in attrs:
            return "n5"
        raise ValueError(f"{loc.text}: an N5 group; give the dataset's path")
    raise ValueError(
        f"{loc.text}: not a recognised volume (expected .npy, TIFF, zarr, OME-Zarr, N5 or precomputed)"
    )


def open_source(where, *, axes=None):
    """Open a volume for reading boxes; the format is detected.

    Parameters
    ----------
    where : str or os.PathLike
        A path or URL (see `Location`).
    axes : str, optional
        Storage axis order for sources that do not say (``.npy``, plain
        zarr, N5): letters of ``xyzct``, default ``xyz`` (tinybrain's).

    Returns
    -------
    Source
    """
    loc = where if isinstance(where, Location) else Location(where)
    kind = loc.hint if loc.hint == "precomputed" else detect_format(loc)
    if kind == "npy":
        return NpySource(loc.local, axes=axes)
    if kind == "tiff":
        if axes:
            raise ValueError("`axes` does not apply to TIFF sources (they are z, y, x)")
        return TiffSource(loc.local)
    return ChunkedSource(loc, kind, axes=axes)
