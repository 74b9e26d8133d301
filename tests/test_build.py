"""mipmaker.build: passes, resume after a crash or a kill, the lock, reruns and bad inputs."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import buildkit as bk
from mipmaker.build import Build, build
from mipmaker.info import describe
from mipmaker.plan import Plan

# Tiny chunks and a budget a few kB above the per-task overhead: two passes of many boxes.
MULTI = dict(levels=4, factor=(2, 2, 1), chunk=(4, 4, 4), shard="none", memory=bk.task_overhead() + 2000,
             workers=1, progress=False)


def multi_plan(src, **kw):
    """The plan MULTI gives for `src` (a dry run)."""
    plan = build(src, "unused-dest", dry_run=True, **{**MULTI, **kw}).plan
    assert len(plan.passes) >= 2 and len(plan.passes[0]) >= 6, "MULTI should make 2+ passes of many boxes"
    return plan


@pytest.fixture
def npy(tmp_path):
    vol = bk.image()
    np.save(tmp_path / "v.npy", vol)
    return vol, tmp_path / "v.npy"


def crash_after(monkeypatch, n):
    """Make `Build.run_task` fail from its (n + 1)-th call on (a crash mid-build)."""
    real = Build.run_task
    calls = []

    def run_task(self, *args, **kw):
        calls.append(args)
        if len(calls) > n:
            raise RuntimeError("simulated crash")
        return real(self, *args, **kw)

    monkeypatch.setattr(Build, "run_task", run_task)
    return calls


# ---------------------------------------------------------------------------
# Passes: later levels come from a written level, and the metadata says so
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["ome-zarr", "precomputed"], ids=["omezarr", "pc"])
def test_later_pass_is_recursive_from_its_base(npy, tmp_path, fmt):
    vol, src = npy
    state = build(src, tmp_path / "out", format=fmt, **MULTI)
    plan = state.plan
    assert plan == multi_plan(src, format=fmt)
    bk.assert_levels(tmp_path / "out", fmt, bk.expected_levels(vol, (2, 2, 1), 4, "mean", plan=plan))
    # Not what one pass would give: mean rounds at the base level first.
    exact = bk.expected_levels(vol, (2, 2, 1), 4, "mean")
    assert bk.ts_level(tmp_path / "out", fmt, 4).tobytes() != exact[4].tobytes()
    base = {k: p.base for p in plan.passes for k in p.levels if k}
    if fmt == "precomputed":
        prov = json.loads((tmp_path / "out" / "info").read_text())["mipmaker"]
    else:
        prov = json.loads((tmp_path / "out" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0][
            "metadata"]
    assert [(lv["path"], lv["from_level"], lv["recursive"]) for lv in prov["levels"]] == [
        (str(k), base[k], base[k] != 0) for k in range(1, 5)]
    text = describe(tmp_path / "out")
    assert "level 1: factor 2,2,1, exact, from level 0" in text
    assert f"level 4: factor 16,16,1, recursive, from level {base[4]}" in text


def test_record(npy, tmp_path):
    _, src = npy
    state = build(src, tmp_path / "out", **MULTI)
    record = json.loads((tmp_path / "out" / ".mipmaker" / "build.json").read_text())
    assert record["state"] == "complete" and record["config"]["source"] == str(src)
    assert Plan.from_json(record["plan"]) == state.plan
    assert sorted(os.listdir(tmp_path / "out" / ".mipmaker")) == ["build.json"]  # no markers, no lock


def test_docstring_examples():
    import doctest

    import mipmaker.build

    result = doctest.testmod(mipmaker.build, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------
# Resume: a crashed build, rerun, gives the bytes of an uninterrupted one
# ---------------------------------------------------------------------------

# where: the crash comes after this many boxes; "pass2": at the first box of the second pass,
# "last": at the first box of the last pass
RESUME_CASES = [
    pytest.param({"format": "ome-zarr"}, 5, id="omezarr-pass1"),
    pytest.param({"format": "ome-zarr-0.4"}, "pass2", id="omezarr04-pass2"),
    pytest.param({"format": "precomputed"}, 0, id="pc-first"),
    # uint64 labels, 8 bytes a voxel: three passes (at the time of writing)
    pytest.param({"format": "precomputed", "encoding": "compressed_segmentation",
                  "memory": bk.task_overhead() + 12_000}, "last", id="pc-cseg-last"),
]


@pytest.mark.parametrize("opts,where", RESUME_CASES)
def test_crash_and_resume(tmp_path, monkeypatch, opts, where):
    vol = bk.labels() if "encoding" in opts else bk.image()
    np.save(tmp_path / "v.npy", vol)
    plan = multi_plan(tmp_path / "v.npy", **opts)
    n = {"pass2": len(plan.passes[0]), "last": sum(len(p) for p in plan.passes[:-1])}.get(where, where)
    opts = {**MULTI, **opts}
    build(tmp_path / "v.npy", tmp_path / "clean", **opts)
    clean = bk.tree(tmp_path / "clean")
    dest = tmp_path / "out"
    crash_after(monkeypatch, n)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(tmp_path / "v.npy", dest, **opts)
    monkeypatch.undo()
    record = json.loads((dest / ".mipmaker" / "build.json").read_text())
    assert record["state"] == "building"
    done = dest / ".mipmaker" / "done"
    assert (len(os.listdir(done)) if done.exists() else 0) == n
    assert not (dest / ".mipmaker" / "lock").exists(), "the lock is released on an error"
    state = build(tmp_path / "v.npy", dest, **opts)
    assert state.resumed and (state.tasks_skipped, state.tasks_run) == (n, plan.tasks - n)
    bk.assert_same_tree(bk.tree(dest), clean)


def test_resume_redoes_unmarked_boxes(npy, tmp_path, monkeypatch):
    """Markers lost (or never written) only cost work: those boxes are redone, same bytes."""
    _, src = npy
    build(src, tmp_path / "clean", **MULTI)
    crash_after(monkeypatch, 5)
    with pytest.raises(RuntimeError):
        build(src, tmp_path / "out", **MULTI)
    monkeypatch.undo()
    done = tmp_path / "out" / ".mipmaker" / "done"
    for name in sorted(os.listdir(done))[::2]:
        (done / name).unlink()
    left = len(os.listdir(done))
    state = build(src, tmp_path / "out", **MULTI)
    assert state.tasks_skipped == left and state.tasks_run == state.plan.tasks - left
    bk.assert_same_tree(bk.tree(tmp_path / "out"), bk.tree(tmp_path / "clean"))


def test_failed_sync_marks_nothing(npy, tmp_path, monkeypatch):
    """Markers follow a successful sync only; a sync error stops the build with that error."""
    from mipmaker.formats._kv import Location

    _, src = npy

    def sync(self):
        raise OSError(5, "simulated EIO on sync")

    monkeypatch.setattr(Location, "sync", sync)
    with pytest.raises(OSError, match="simulated EIO"):
        build(src, tmp_path / "out", **MULTI)
    done = tmp_path / "out" / ".mipmaker" / "done"
    assert not done.exists() or not os.listdir(done)
    monkeypatch.undo()
    build(src, tmp_path / "clean", **MULTI)
    state = build(src, tmp_path / "out", **MULTI)
    assert state.tasks_skipped == 0 and state.tasks_run == state.plan.tasks
    bk.assert_same_tree(bk.tree(tmp_path / "out"), bk.tree(tmp_path / "clean"))


def test_resume_with_other_workers_and_memory(npy, tmp_path, monkeypatch):
    """--workers and --memory do not decide bytes: a rerun with others reuses the recorded plan."""
    _, src = npy
    build(src, tmp_path / "clean", **MULTI)
    crash_after(monkeypatch, 7)
    with pytest.raises(RuntimeError):
        build(src, tmp_path / "out", **MULTI)
    monkeypatch.undo()
    state = build(src, tmp_path / "out", **{**MULTI, "workers": 3, "memory": "1GiB"})
    assert state.resumed and state.tasks_skipped == 7
    assert state.plan == multi_plan(src)  # the recorded plan, not one for 1 GiB and 3 workers
    fresh = build(src, tmp_path / "x", dry_run=True, **{**MULTI, "workers": 3, "memory": "1GiB"}).plan
    assert fresh != state.plan
    bk.assert_same_tree(bk.tree(tmp_path / "out"), bk.tree(tmp_path / "clean"))


@pytest.mark.parametrize("change", [{"levels": 3}, {"method": "max"}, {"chunk": (8, 8, 4)}],
                         ids=["levels", "method", "chunk"])
def test_rerun_with_other_options_refused(npy, tmp_path, monkeypatch, change):
    _, src = npy
    crash_after(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        build(src, tmp_path / "out", **MULTI)
    monkeypatch.undo()
    before = bk.tree(tmp_path / "out")
    with pytest.raises(ValueError, match="holds a different mipmaker build") as err:
        build(src, tmp_path / "out", **{**MULTI, **change})
    assert "\n" not in str(err.value)
    bk.assert_same_tree(bk.tree(tmp_path / "out"), before)


def test_completed_rerun_is_a_noop(npy, tmp_path):
    _, src = npy
    build(src, tmp_path / "out", **MULTI)
    before = bk.tree(tmp_path / "out")
    stamps = {p: os.stat(p).st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()
              and ".mipmaker" not in p.parts}
    state = build(src, tmp_path / "out", **{**MULTI, "workers": 2})
    assert state.resumed and state.tasks_run == 0
    bk.assert_same_tree(bk.tree(tmp_path / "out"), before)
    assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items()), "no chunk rewritten"


# ---------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------

def test_lock_refuses_a_live_build_and_takes_a_stale_one(npy, tmp_path, monkeypatch):
    _, src = npy
    build(src, tmp_path / "clean", **MULTI)
    crash_after(monkeypatch, 4)
    with pytest.raises(RuntimeError):
        build(src, tmp_path / "out", **MULTI)
    monkeypatch.undo()
    lock = tmp_path / "out" / ".mipmaker" / "lock"
    other = subprocess.Popen(["sleep", "60"])
    try:
        lock.write_text(f"{other.pid} {socket.gethostname()}")
        before = bk.tree(tmp_path / "out")
        with pytest.raises(ValueError, match=f"being written by another mipmaker build \\(pid {other.pid}\\)"):
            build(src, tmp_path / "out", **MULTI)
        bk.assert_same_tree(bk.tree(tmp_path / "out"), before)
    finally:
        other.kill()
        other.wait()
    # The same pid, now dead: a stale lock is taken over and the build finishes.
    state = build(src, tmp_path / "out", **MULTI)
    assert state.tasks_skipped == 4
    bk.assert_same_tree(bk.tree(tmp_path / "out"), bk.tree(tmp_path / "clean"))


@pytest.mark.parametrize("content", ["garbage", "", "1 another-host"], ids=["garbage", "empty", "other-host"])
def test_lock_unreadable_or_foreign_is_stale(npy, tmp_path, monkeypatch, content):
    _, src = npy
    crash_after(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        build(src, tmp_path / "out", **MULTI)
    monkeypatch.undo()
    (tmp_path / "out" / ".mipmaker" / "lock").write_text(content)
    build(src, tmp_path / "out", **MULTI)
    assert not (tmp_path / "out" / ".mipmaker" / "lock").exists()


def test_crash_between_lock_and_record(npy, tmp_path, monkeypatch):
    """A build killed right after taking the lock (before its record) still resumes."""
    from mipmaker import _progress

    _, src = npy
    real = _progress._Lock.acquire

    def acquire_then_die(dest):
        real(dest)
        raise KeyboardInterrupt

    monkeypatch.setattr(_progress._Lock, "acquire", staticmethod(acquire_then_die))
    with pytest.raises(KeyboardInterrupt):
        build(src, tmp_path / "out", **MULTI)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "out") == [".mipmaker"]
    build(src, tmp_path / "out", **MULTI)
    build(src, tmp_path / "clean", **MULTI)
    bk.assert_same_tree(bk.tree(tmp_path / "out"), bk.tree(tmp_path / "clean"))


# ---------------------------------------------------------------------------
# A real kill: SIGKILL the CLI at a random moment, rerun, compare every byte
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("trial", [0, 1, 2], ids=["t0", "t1", "t2"])
def test_kill_and_resume(tmp_path, trial):
    """Slow-ish (about 3 s each): one clean build, one killed CLI run and its resumption."""
    vol = bk.image((160, 160, 32), seed=3 + trial)
    np.save(tmp_path / "v.npy", vol)
    memory = bk.task_overhead() + 100_000  # boxes of 32x32x32 voxels
    opts = ["--factor", "2,2,1", "--levels", "2", "--chunk", "8,8,8", "--shard", "none", "--memory", str(memory),
            "--workers", "1"]
    t0 = time.perf_counter()
    state = build(tmp_path / "v.npy", tmp_path / "clean", factor=(2, 2, 1), levels=2, chunk=(8, 8, 8), shard="none",
                  memory=memory, workers=1, progress=False)
    seconds = time.perf_counter() - t0
    assert state.plan.tasks >= 20
    cmd = [sys.executable, "-m", "mipmaker", "build", str(tmp_path / "v.npy"), str(tmp_path / "out"), *opts,
           "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    record = tmp_path / "out" / ".mipmaker" / "build.json"
    deadline = time.monotonic() + 60
    while not record.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    delay = random.uniform(0.05, 0.7) * seconds
    time.sleep(delay)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done_dir = record.parent / "done"
    # No folder yet: no box done. A kill during a marker's write leaves
    # tensorstore's "<key>.__lock" temporary, which is not a marker.
    markers = len([n for n in os.listdir(done_dir) if not n.endswith(".__lock")]) if done_dir.exists() else 0
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    note = f"killed {delay:.2f} s into a {seconds:.2f} s build (alive: {alive}, boxes done: {markers})"
    print(note)  # shown with -s or on failure
    bk.assert_same_tree(bk.tree(tmp_path / "out"), bk.tree(tmp_path / "clean"))
    if not alive:
        pytest.skip(f"the build finished before the kill; trees compared anyway ({note})")
    assert "resumed" in rerun.stderr or "already complete" in rerun.stderr or markers == 0, note


# ---------------------------------------------------------------------------
# Bad inputs: one-line errors naming the parameter, destination untouched
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_sources(tmp_path_factory):
    """The odd sources the cases below refer to, made once."""
    root = tmp_path_factory.mktemp("bad")
    np.save(root / "v.npy", bk.image())
    np.save(root / "b.npy", np.zeros((4, 4, 4), bool))
    (root / "notes.txt").write_text("not a volume")
    for name, key in (("badinfo", "info"), ("badzarr", "zarr.json")):
        (root / name).mkdir()
        (root / name / key).write_text("{not json")
    bk.write_source("precomputed-offset", bk.image(), root)  # offset (12, 8, 3)
    (root / "tifs").mkdir()
    import tifffile

    tifffile.imwrite(root / "tifs" / "p0.tif", np.zeros((4, 5), np.uint8))
    return root


BAD = [
    ("missing.npy", {}, FileNotFoundError, "no such file"),
    ("notes.txt", {}, ValueError, "unknown file type"),
    ("v.npy", {"format": "n5"}, ValueError, "`format` must be one of"),
    ("v.npy", {"chunk": (0, 8, 4)}, ValueError, "`chunk`"),
    ("v.npy", {"chunk": (8, 8)}, ValueError, "`chunk`"),
    ("v.npy", {"factor": (2, -2, 1)}, ValueError, "`factor`"),
    ("v.npy", {"factor": "2,2"}, ValueError, "`factor`"),
    ("v.npy", {"chunk": (8, 8, 4), "shard": (12, 8, 4)}, ValueError, "`shard` .* multiple of `chunk`"),
    ("v.npy", {"shard": (0, 8, 4)}, ValueError, "`shard`"),
    ("v.npy", {"format": "ome-zarr-0.4", "shard": (256, 256, 64)}, ValueError, "`shard` needs zarr v3"),
    ("v.npy", {"format": "precomputed", "encoding": "compressed_segmentation"}, ValueError,
     "`encoding` compressed_segmentation needs uint32 or uint64"),
    ("v.npy", {"encoding": "compressed_segmentation"}, ValueError, "`encoding` applies to precomputed"),
    ("v.npy", {"compression": "lz4"}, ValueError, "`compression`"),
    ("v.npy", {"memory": 1000}, ValueError, "`memory` of .* is too small"),
    ("v.npy", {"memory": "lots"}, ValueError, "`memory` must look like"),
    ("v.npy", {"memory": 0}, ValueError, "`memory` must be positive"),
    ("v.npy", {"levels": 0}, ValueError, "`levels`"),
    ("v.npy", {"levels": 17}, ValueError, "`levels` must be at most 16"),
    ("v.npy", {"workers": 0}, ValueError, "`workers`"),
    ("v.npy", {"method": "average"}, ValueError, "`method`"),
    ("v.npy", {"method": "stride", "sparse": True}, ValueError, "`sparse=True`"),
    ("v.npy", {"resolution": (4, 4)}, ValueError, "`resolution`"),
    ("v.npy", {"axes": "xyq"}, ValueError, "`axes`"),
    ("v.npy", {"axes": "xy"}, ValueError, "`axes`"),
    ("tifs", {"axes": "zyx"}, ValueError, "`axes` does not apply to TIFF"),
    ("b.npy", {}, TypeError, "`source` has dtype bool"),
    ("badinfo", {}, ValueError, "`info` is not valid JSON"),
    ("badzarr", {}, ValueError, "`zarr.json` is not valid JSON"),
    ("src-precomputed-offset", {"format": "precomputed", "levels": 3}, ValueError,
     "voxel_offset .* not a multiple of level 3's factor .* not aligned"),
]


@pytest.mark.parametrize("source,kw,exc,match", BAD, ids=[
    "missing", "unknown-type", "unknown-format", "chunk-0", "chunk-2", "factor-neg", "factor-2", "shard-not-multiple",
    "shard-0", "shard-v04", "cseg-u8", "encoding-omezarr", "compression", "memory-small", "memory-text", "memory-0",
    "levels-0", "levels-17", "workers-0", "method", "stride-sparse", "resolution-2", "axes-letter", "axes-count",
    "axes-tiff", "bool", "corrupt-info", "corrupt-zarr-json", "offset-not-aligned"])
def test_bad_input(bad_sources, tmp_path, source, kw, exc, match):
    dest = tmp_path / "out"
    with pytest.raises(exc, match=match) as err:
        build(bad_sources / source, dest, progress=False, **{"chunk": (8, 8, 4), **kw})
    assert "\n" not in str(err.value)
    assert not dest.exists()


def test_offset_not_aligned_is_fine_for_omezarr(tmp_path):
    """OME-Zarr stores any offset as a translation: the same source builds."""
    vol = bk.image()
    path, _ = bk.write_source("precomputed-offset", vol, tmp_path)
    build(path, tmp_path / "out", levels=3, factor=(2, 2, 1), chunk=(8, 8, 4), progress=False)
    bk.assert_levels(tmp_path / "out", "ome-zarr", bk.expected_levels(vol, (2, 2, 1), 3, "mean"))


@pytest.mark.parametrize("what", ["not-a-build", "same-as-source"])
def test_bad_destination_untouched(tmp_path, what):
    np.save(tmp_path / "v.npy", bk.image())
    if what == "not-a-build":
        dest = tmp_path / "full"
        dest.mkdir()
        (dest / "keep.txt").write_text("mine")
        match = "exists and is not a mipmaker build"
    else:
        dest = tmp_path / "v.npy"
        match = "`dest`"
    before = bk.tree(tmp_path)
    with pytest.raises(ValueError, match=match) as err:
        build(tmp_path / "v.npy", dest, progress=False)
    assert "\n" not in str(err.value)
    bk.assert_same_tree(bk.tree(tmp_path), before)


def test_empty_destination_folder_is_fine(npy, tmp_path):
    _, src = npy
    (tmp_path / "out").mkdir()
    build(src, tmp_path / "out", **MULTI)
    assert (tmp_path / "out" / "zarr.json").exists()


def test_dry_run_writes_nothing(npy, tmp_path):
    _, src = npy
    state = build(src, tmp_path / "out", dry_run=True, **MULTI)
    assert not (tmp_path / "out").exists() and state.tasks_run == 0
    text = state.describe()
    assert "pass 2: reads level" in text and f"tasks: {state.plan.tasks}" in text
