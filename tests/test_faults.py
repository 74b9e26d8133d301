"""Fault injection for builds: failing writes (disk full), failing reads, corrupt chunks."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import buildkit as bk
from mipmaker.build import build
from mipmaker.formats import chunked, writers

OPTS = dict(levels=3, factor=(2, 2, 1), chunk=(8, 8, 4), shard="none", memory=bk.task_overhead() + 4000,
            workers=2, progress=False)


@pytest.fixture
def src(tmp_path):
    np.save(tmp_path / "v.npy", bk.image((48, 40, 12), seed=5))
    return tmp_path / "v.npy"


@pytest.fixture
def clean(src, tmp_path):
    build(src, tmp_path / "clean", **OPTS)
    return bk.tree(tmp_path / "clean")


def _fail_after(monkeypatch, cls, name, n, exc):
    real = getattr(cls, name)
    calls = []

    def wrapper(self, *args, **kw):
        calls.append(1)
        if len(calls) > n:
            raise exc
        return real(self, *args, **kw)

    monkeypatch.setattr(cls, name, wrapper)
    return calls


@pytest.mark.parametrize("after", [0, 5, 17], ids=["first", "early", "late"])
def test_disk_full_mid_build_then_rerun(src, tmp_path, clean, monkeypatch, after):
    _fail_after(monkeypatch, writers.Writer, "write", after, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        build(src, tmp_path / "out", **OPTS)
    monkeypatch.undo()
    state = build(src, tmp_path / "out", **OPTS)
    assert state.resumed
    bk.assert_same_tree(bk.tree(tmp_path / "out"), clean)


def test_failing_read_then_rerun(src, tmp_path, clean, monkeypatch):
    from mipmaker.formats import sources

    _fail_after(monkeypatch, sources.NpySource, "read", 3, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(OSError, match="Input/output error"):
        build(src, tmp_path / "out", **OPTS)
    monkeypatch.undo()
    build(src, tmp_path / "out", **OPTS)
    bk.assert_same_tree(bk.tree(tmp_path / "out"), clean)


def test_failing_read_of_a_written_level(src, tmp_path, clean, monkeypatch):
    """A later pass reads a level the build wrote; a failure there is resumed too."""
    _fail_after(monkeypatch, writers.Writer, "read", 0, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(OSError):
        build(src, tmp_path / "out", **OPTS)
    monkeypatch.undo()
    build(src, tmp_path / "out", **OPTS)
    bk.assert_same_tree(bk.tree(tmp_path / "out"), clean)


def test_cli_reports_disk_full_in_one_line(src, tmp_path, monkeypatch, capsys):
    from mipmaker.cli import main

    _fail_after(monkeypatch, writers.Writer, "write", 2, OSError(errno.ENOSPC, "No space left on device"))
    rc = main(["build", str(src), str(tmp_path / "out"), "--factor", "2,2,1", "--levels", "2", "--chunk", "8,8,4",
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("mipmaker: error:") and err.count("\n") == 1 and "No space left" in err


def test_truncated_chunk_in_source_is_an_error(tmp_path, src):
    """A corrupt chunk of a source is a one-line error, not zeros in the pyramid."""
    build(src, tmp_path / "pc", format="precomputed", levels=1, factor=(2, 2, 1), chunk=(8, 8, 4),
          progress=False)
    folder = tmp_path / "pc" / next(p for p in os.listdir(tmp_path / "pc") if p[0].isdigit())
    chunk = folder / sorted(os.listdir(folder))[0]
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(ValueError, match="chunk length") as err:
        build(tmp_path / "pc", tmp_path / "out", levels=1, factor=(2, 2, 1), chunk=(8, 8, 4), progress=False)
    assert "\n" not in str(err.value).strip() and chunk.name in str(err.value)


def test_corrupt_zarr_json_is_one_line(tmp_path, src):
    build(src, tmp_path / "z.ome.zarr", levels=1, factor=(2, 2, 1), chunk=(8, 8, 4), progress=False)
    (tmp_path / "z.ome.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match="zarr.json"):
        build(tmp_path / "z.ome.zarr", tmp_path / "out", levels=1, factor=(2, 2, 1), progress=False)
    assert not (tmp_path / "out").exists()


def test_read_context_keeps_many_reads_in_flight():
    assert chunked.READ_CONTEXT["file_io_concurrency"]["limit"] >= 16
