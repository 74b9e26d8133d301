"""Built-in demo data: an EM-like image with its segmentation, and a montage.

The volume is synthetic but shaped like connectomics data: a Voronoi
partition into "cells" (the labels) and an image in which cell interiors are
grey and textured and membranes (label boundaries) are dark.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


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


def run_demo(out_dir="mipmaker-demo", shape=(384, 384, 48), levels=4, threads=None, progress=True):
    """Build on-disk OME-Zarr pyramids of the demo volume and write a montage.

    Writes ``em.npy`` and ``labels.npy`` (the volume), ``em.ome.zarr`` (mean
    pyramid) and ``labels.ome.zarr`` (exact mode pyramid) built by
    `mipmaker.build`, and ``montage.png`` (the middle slice at every level,
    read back from disk). Returns a dict of build throughputs in megavoxels
    of input per second.
    """
    import shutil

    from PIL import Image

    from .build import build
    from .info import preview

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    image, labels = synthetic_volume(shape)
    print(f"synthetic volume {image.shape} (x, y, z): {time.perf_counter() - t0:.1f} s to generate")
    factors = (2, 2, 1)
    results = {}
    pictures = []
    for name, vol, method in (("em", image, "mean"), ("labels", labels, "mode")):
        np.save(out / f"{name}.npy", vol)
        dest = out / f"{name}.ome.zarr"
        shutil.rmtree(dest, ignore_errors=True)  # the demo's own output from an earlier run
        state = build(out / f"{name}.npy", dest, levels=levels, factor=factors, method=method,
                      chunk=(64, 64, 16), workers=threads, progress=progress)
        mvx = vol.size / state.seconds / 1e6
        results[name] = mvx
        print(f"{name:6s} {vol.dtype}: {levels} levels of {factors} {method} (exact) -> {dest} "
              f"in {state.seconds:.2f} s = {mvx:.1f} MVx/s of input")
        pictures.append(preview(dest, out / f"{name}.png"))
    picture = np.concatenate([np.asarray(Image.open(p).convert("RGB")) for p in pictures], axis=0)
    Image.fromarray(picture).save(out / "montage.png")
    print(f"wrote {out / 'montage.png'} (middle slice of every level, read back from disk); "
          f"inspect with `mipmaker info {out / 'em.ome.zarr'}`")
    return results
