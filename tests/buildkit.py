"""Helpers for the `mipmaker build` tests: tiny sources of every kind, read-back, trees.

Sources are written with the libraries users have (NumPy, tifffile,
zarr-python, tensorstore, CloudVolume); outputs are read back here with
tensorstore alone (not through `mipmaker.formats`), so a reader bug and a
writer bug cannot cancel out.
"""

import hashlib
import os
import re
import sys

import numpy as np

import mipmaker

SHAPE = (37, 29, 11)  # x, y, z: odd on every axis
FACTOR = (2, 2, 1)
LEVELS = 2
CHUNK = (8, 8, 4)
SHARD = (16, 16, 8)
LABEL_BASE = 2**60  # labels differ only below float64's 53-bit mantissa


def task_overhead():
    """Bytes the planner counts for any task (the memory of a one-voxel task), via the public API.

    Budgets in the tests are this plus a few kB, so they keep forcing small
    boxes and several passes whatever constant overheads the model adds.
    """
    from mipmaker.plan import make_levels, make_plan

    return make_plan(make_levels((1, 1, 1), [], (1, 1, 1)), memory=1 << 40).passes[0].memory


def import_zarr():
    """``import zarr``, working around numcodecs <= 0.16.6 failing on zfpy's "1.0.1.post0".

    cloud-volume pulls in zfpy through zfpc; numcodecs parses its version with
    ``int()`` and the import of zarr (and ome-zarr) fails with ValueError.
    """
    try:
        import zarr
    except ValueError:
        import importlib.metadata as md

        real = md.version
        md.version = lambda name: re.sub(r"\.post\d+$", "", real(name)) if name == "zfpy" else real(name)
        for name in [m for m in sys.modules if m.split(".")[0] in ("numcodecs", "zarr")]:
            del sys.modules[name]
        try:
            import zarr
        finally:
            md.version = real
    return zarr


def image(shape=SHAPE, dtype="uint8", seed=0):
    """Random image data, x, y, z (zeros included, for sparse methods)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.normal(100, 30, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, 0), min(info.max, 1000) + 1, shape, dtype=dtype)


def labels(shape=SHAPE, dtype="uint64", seed=1):
    """Labels in patches (so blocks have ties and majorities), zeros included.

    uint64 labels lie above 2**60 and differ only in their low bits (a float64
    round trip would merge them); uint32 ones above 2**31.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    base = dtype.type(LABEL_BASE if dtype.itemsize == 8 else 2**31)
    ids = base + rng.integers(0, 6, [-(-n // 3) for n in shape]).astype(dtype)
    ids[rng.random(ids.shape) < 0.15] = 0
    vol = np.repeat(np.repeat(np.repeat(ids, 3, 0), 3, 1), 3, 2)[: shape[0], : shape[1], : shape[2]]
    noise = rng.random(shape) < 0.2
    vol[noise] = base + rng.integers(0, 6, int(noise.sum())).astype(dtype)
    return np.ascontiguousarray(vol)


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------

READERS = ["npy-c", "npy-f", "npy-c-zyx", "npy-f-zyx", "tif-dir", "tif", "ome-tif", "zarr2", "zarr3",
           "ome-zarr", "ome-zarr-0.4", "n5", "precomputed", "precomputed-offset"]
OFFSET = (12, 8, 3)  # voxel_offset of "precomputed-offset": a multiple of FACTOR ** LEVELS
RESOLUTION = (4.0, 4.0, 40.0)


def write_source(kind, vol, folder):
    """Store `vol` (x, y, z) as a `kind` source in `folder`; return (path, build kwargs)."""
    import tensorstore as ts

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"src-{kind}")
    kw = {}
    if kind.startswith("npy"):
        path += ".npy"
        data = vol.transpose(2, 1, 0) if kind.endswith("zyx") else vol
        data = np.asfortranarray(data) if kind.startswith("npy-f") else np.ascontiguousarray(data)
        np.save(path, data)
        assert np.load(path).flags.f_contiguous == kind.startswith("npy-f")
        if kind.endswith("zyx"):
            kw["axes"] = "zyx"
    elif kind == "tif-dir":
        import tifffile

        os.makedirs(path)
        for z in range(vol.shape[2]):  # unpadded names: natural sort must order 2 before 10
            tifffile.imwrite(os.path.join(path, f"plane{z}.tif"), vol[:, :, z].T)
    elif kind in ("tif", "ome-tif"):
        import tifffile

        path += ".ome.tif" if kind == "ome-tif" else ".tif"
        zyx = np.ascontiguousarray(vol.transpose(2, 1, 0))
        if kind == "ome-tif":
            tifffile.imwrite(path, zyx, ome=True, metadata={"axes": "ZYX"})
        else:
            tifffile.imwrite(path, zyx)
        with tifffile.TiffFile(path) as tif:
            assert tif.is_ome == (kind == "ome-tif") and len(tif.pages) == vol.shape[2]
    elif kind in ("zarr2", "zarr3"):
        zarr = import_zarr()
        path += ".zarr"
        arr = zarr.create_array(path, shape=vol.shape, chunks=(16, 8, 4), dtype=vol.dtype,
                                zarr_format=2 if kind == "zarr2" else 3)
        arr[...] = vol
    elif kind == "n5":
        path += ".n5"
        store = ts.open({"driver": "n5", "kvstore": "file://" + os.path.abspath(path), "metadata": {
            "dimensions": list(vol.shape), "blockSize": [16, 8, 4], "dataType": vol.dtype.name,
            "compression": {"type": "gzip"}}}, create=True).result()
        store[...] = vol
    elif kind in ("ome-zarr", "ome-zarr-0.4", "precomputed"):
        from mipmaker.build import build

        npy = os.path.join(folder, f"for-{kind}.npy")
        np.save(npy, vol)
        path += ".ome.zarr" if kind.startswith("ome") else ""
        build(npy, path, format=kind, levels=1, factor=(2, 2, 2), chunk=(16, 16, 8), shard="none",
              resolution=RESOLUTION, progress=False, workers=1)
    elif kind == "precomputed-offset":
        from cloudvolume import CloudVolume

        info = CloudVolume.create_new_info(
            num_channels=1, layer_type="segmentation" if vol.dtype == np.uint64 else "image",
            data_type=vol.dtype.name, encoding="raw", resolution=list(RESOLUTION), voxel_offset=list(OFFSET),
            chunk_size=[16, 8, 4], volume_size=list(vol.shape))
        # compress=False: tensorstore does not read CloudVolume's local ".gz" chunk files.
        cv = CloudVolume("file://" + os.path.abspath(path), info=info, compress=False, progress=False)
        cv.commit_info()
        cv[tuple(slice(o, o + n) for o, n in zip(OFFSET, vol.shape))] = vol
    else:
        raise AssertionError(kind)
    return path, kw


# ---------------------------------------------------------------------------
# Reading outputs back (tensorstore only) and what they must equal
# ---------------------------------------------------------------------------

def ts_level(dest, fmt, k):
    """Level `k` of a built pyramid as (x, y, z, c), read with tensorstore directly."""
    import tensorstore as ts

    url = "file://" + os.path.abspath(dest) + "/"
    if fmt == "precomputed":
        store = ts.open({"driver": "neuroglancer_precomputed", "kvstore": url, "scale_index": k}).result()
        return np.asarray(store.read().result())
    driver = "zarr3" if fmt == "ome-zarr" else "zarr"
    arr = np.asarray(ts.open({"driver": driver, "kvstore": f"{url}{k}/"}).result().read().result())
    arr = arr if arr.ndim == 4 else arr[None]
    return arr.transpose(3, 2, 1, 0)  # (c,) z, y, x -> x, y, z, c


def expected_levels(vol, factor, levels, method, sparse=False, plan=None):
    """Level 0..`levels` of `vol` (x, y, z[, c]) as the build must store them (x, y, z, c).

    Levels of the first pass are ``mipmaker.pyramid(vol, ..., exact=True)``;
    a level made by a later pass is the exact pyramid of that pass's base
    level (its `from` level in the plan).
    """
    vol = vol if vol.ndim == 4 else vol[..., None]
    f4 = tuple(factor) + (1,)
    out = [vol] + mipmaker.pyramid(vol, f4, levels, method=method, sparse=sparse, exact=True)
    if plan is not None:
        for p in plan.passes[1:]:
            above = [k for k in p.levels if k > p.base]
            rec = mipmaker.pyramid(out[p.base], f4, len(above), method=method, sparse=sparse, exact=True)
            for k, arr in zip(above, rec):
                assert k == p.base + above.index(k) + 1
                out[k] = arr
    return out


def assert_levels(dest, fmt, want):
    """Every stored level equals `want` bit for bit (dtype, shape and bytes)."""
    for k, w in enumerate(want):
        got = ts_level(dest, fmt, k)
        assert got.dtype == w.dtype and got.shape == w.shape, (k, got.dtype, got.shape, w.dtype, w.shape)
        assert got.tobytes() == np.ascontiguousarray(w).tobytes(), f"level {k} differs"


# ---------------------------------------------------------------------------
# Trees: every file's bytes and every folder
# ---------------------------------------------------------------------------

def tree(path):
    """{relative path: sha1 of the bytes} for files, ``"<dir>"`` for folders; {} when absent."""
    out = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path) + "/"] = "<dir>"
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.relpath(os.path.join(root, f), path)] = hashlib.sha1(fh.read()).hexdigest()
    return out


def assert_same_tree(got, want):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    assert not (missing or extra or changed), f"missing {missing[:5]}, extra {extra[:5]}, changed {changed[:5]}"
