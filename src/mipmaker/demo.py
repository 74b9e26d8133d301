"""Built-in demo data: an EM-like image with its segmentation, and a montage.

The volume is synthetic but shaped like connectomics data: a Voronoi
partition into "cells" (the labels) and an image in which cell interiors are
grey and textured and membranes (label boundaries) are dark.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ._downsample import pyramid

__all__ = ["synthetic_volume", "run_demo"]


def synthetic_volume(shape=(384, 384, 48), cell=(32, 32, 8), seed=0):
    """Return ``(image, labels)``: uint8 EM-like image and uint64 labels, (X, Y, Z).

    Labels form a Voronoi partition with one seed per `cell`-sized grid
    cell (found among the 27 neighbouring cells, so it is exact and linear
    in the volume); labels are large random uint64 values, as in real
    segmentations.

    Examples
    --------
    >>> image, labels = synthetic_volume((32, 32, 4), (8, 8, 2))
    >>> image.shape, image.dtype, labels.dtype
    ((32, 32, 4), dtype('uint8'), dtype('uint64'))
    """
    rng = np.random.default_rng(seed)
    shape = np.asarray(shape)
    cell = np.asarray(cell)
    grid = -(-shape // cell)
    seeds = (np.indices(grid).reshape(3, -1).T + rng.random((int(np.prod(grid)), 3))) * cell
    ids = rng.integers(1, 2**63, size=len(seeds), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    # Work on the padded grid as (gx, cx, gy, cy, gz, cz) blocks: every voxel
    # of a cell sees the same 27 candidate seeds, so distances broadcast.
    g = [int(x) for x in grid]
    c = [int(x) for x in cell]
    seed_grid = seeds.reshape(g[0], g[1], g[2], 3).astype(np.float32)
    local = [np.arange(n, dtype=np.float32) for n in c]
    base = [np.arange(n, dtype=np.float32) * cs for n, cs in zip(g, c)]
    pos = [
        (base[0][:, None] + local[0][None, :])[:, :, None, None, None, None],
        (base[1][:, None] + local[1][None, :])[None, None, :, :, None, None],
        (base[2][:, None] + local[2][None, :])[None, None, None, None, :, :],
    ]
    blocks = (g[0], c[0], g[1], c[1], g[2], c[2])
    best = np.full(blocks, np.inf, np.float32)
    second = np.full(blocks, np.inf, np.float32)
    labels = np.zeros(blocks, np.uint64)
    id_grid = ids.reshape(g)
    for offset in np.ndindex(3, 3, 3):
        raw = [np.arange(n) + o - 1 for n, o in zip(g, offset)]
        idx = [np.clip(r, 0, n - 1) for r, n in zip(raw, g)]
        near = seed_grid[np.ix_(*idx)]  # (gx, gy, gz, 3)
        # Cells past the grid edge do not exist (clipping would repeat a seed).
        missing = np.zeros(g, bool)
        for a, r in enumerate(raw):
            shape_a = [1, 1, 1]
            shape_a[a] = g[a]
            missing |= ((r < 0) | (r >= g[a])).reshape(shape_a)
        near = np.where(missing[..., None], np.inf, near)
        d = sum(
            (pos[a] - near[..., a][:, None, :, None, :, None]) ** 2 for a in range(3)
        )
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        best = np.where(closer, d, best)
        labels = np.where(closer, id_grid[np.ix_(*idx)][:, None, :, None, :, None], labels)
    full = tuple(n * cs for n, cs in zip(g, c))
    crop = tuple(slice(0, int(n)) for n in shape)
    labels = labels.reshape(full)[crop]
    # Distance to the nearest boundary is about (sqrt(d2) - sqrt(d1)) / 2.
    membrane = ((np.sqrt(second) - np.sqrt(best)) < 1.5).reshape(full)[crop]
    shade = 150 + (labels % np.uint64(60)).astype(np.float32)
    noise = rng.normal(0, 18, tuple(shape)).astype(np.float32)
    image = np.where(membrane, 40, shade) + noise
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _colorize(labels):
    """Stable pseudo-colours for labels (0 stays black)."""
    h = labels.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(255) for s in (16, 32, 48)], axis=-1).astype(np.uint8)
    rgb[labels == 0] = 0
    return rgb


def _montage(images, height):
    """Concatenate (Y, X, 3) slices left to right, each scaled to `height` rows."""
    tiles = []
    for img in images:
        scale = max(1, height // img.shape[0])
        tile = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
        pad = np.zeros((height, tile.shape[1] + 4, 3), np.uint8)
        pad[: tile.shape[0], : tile.shape[1]] = tile[:height]
        tiles.append(pad)
    return np.concatenate(tiles, axis=1)


def run_demo(out_dir="mipmaker-demo", shape=(384, 384, 48), levels=4, threads=None):
    """Build mean and mode pyramids of the demo volume and write a montage.

    Writes ``image_level{k}.npy`` / ``labels_level{k}.npy`` and
    ``montage.png`` into `out_dir` and returns a dict of throughputs in
    megavoxels of input per second.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    image, labels = synthetic_volume(shape)
    print(f"synthetic volume {image.shape} (x, y, z): {time.perf_counter() - t0:.1f} s to generate")

    factors = (2, 2, 1)
    results = {}
    pyramids = {}
    for name, vol, method in (("image", image, "mean"), ("labels", labels, "mode")):
        pyramid(vol, factors, 1, method=method, threads=threads)  # warm-up
        t0 = time.perf_counter()
        levels_ = pyramid(vol, factors, levels, method=method, threads=threads)
        seconds = time.perf_counter() - t0
        mvx = vol.size / seconds / 1e6
        results[name] = mvx
        pyramids[name] = [vol] + levels_
        print(
            f"{name:6s} {vol.dtype}: {levels} levels of {factors} {method:4s} (exact) "
            f"in {seconds * 1e3:7.1f} ms = {mvx:8.1f} MVx/s of input"
        )
        for k, level in enumerate(levels_, start=1):
            np.save(out / f"{name}_level{k}.npy", level)

    z = image.shape[2] // 2
    row_image = [np.repeat(lvl[:, :, z].T[..., None], 3, axis=-1) for lvl in pyramids["image"]]
    row_labels = [_colorize(lvl[:, :, z].T) for lvl in pyramids["labels"]]
    h = image.shape[1]
    picture = np.concatenate([_montage(row_image, h), _montage(row_labels, h)], axis=0)
    Image.fromarray(picture).save(out / "montage.png")
    print(f"wrote {levels} levels of each pyramid and {out / 'montage.png'}")
    return results
