"""`mipmaker.build(..., client=...)` and ``--dask``: the same bytes as the local executor, on loopback.

One 2-worker cluster (processes, 127.0.0.1, no dashboard) serves the module.
Volumes are small but planned into several boxes and two passes (a memory
budget just above the per-task overhead), so pass 2 reads what pass 1 wrote.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from buildkit import assert_same_tree, image, labels, tree  # noqa: E402

from mipmaker.build import Build, build  # noqa: E402
from mipmaker.cli import main  # noqa: E402
from mipmaker.plan import make_levels, make_plan  # noqa: E402

SHAPE = (96, 80, 12)
CASES = {
    # format: build kwargs
    "ome-zarr": dict(format="ome-zarr", shard=(16, 16, 4), compression="zstd"),
    "precomputed": dict(format="precomputed", shard="none", encoding="compressed_segmentation"),
}
COMMON = dict(levels=3, factor=(2, 2, 1), chunk=(8, 8, 4), workers=2, progress=False)


@pytest.fixture(scope="module")
def client():
    from mipmaker._dask import LOCAL_CLUSTER  # processes on 127.0.0.1, no dashboard

    with distributed.LocalCluster(n_workers=2, **LOCAL_CLUSTER) as cluster, distributed.Client(cluster) as c:
        yield c


def small_memory(src, kw):
    """A budget just above the smallest feasible one: several small boxes and at least two passes."""
    def plan(memory):
        try:
            return build(src, "unused", dry_run=True, memory=memory, **kw, **COMMON).plan
        except ValueError:  # too small
            return None

    lo, hi = 1 << 20, 1 << 30  # infeasible, feasible
    while hi - lo > 1024:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if plan(mid) else (mid, hi)
    for memory in range(hi, hi + (256 << 10), 4 << 10):
        p = plan(memory)
        if p and len(p.passes) >= 2 and all(len(q) > 1 for q in p.passes):
            return memory
    raise AssertionError("no budget gives two passes of several boxes; adjust the test volume")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """{format: (source path, build kwargs, local build's tree)}: the local executor's output is the reference."""
    folder = tmp_path_factory.mktemp("dask-src")
    out = {}
    for fmt, kw in CASES.items():
        vol = labels(SHAPE) if fmt == "precomputed" else image(SHAPE)
        path = str(folder / f"{fmt}.npy")
        np.save(path, vol)
        kw = {**kw, **COMMON, "memory": small_memory(path, kw)}
        dest = str(folder / f"local-{fmt}")
        build(path, dest, **kw)
        out[fmt] = (path, kw, tree(dest))
    return out


class KillOnce(Build):
    """Kills its worker process (SIGKILL) in the middle of box `target`, after its first write, once."""

    target = (0, 3)
    flag = None  # file created (O_EXCL) by the one task that kills

    def run_task(self, pass_index, box_index, threads=None):
        if (pass_index, box_index) == self.target:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                write = self.writer.write

                def write_then_die(*args):
                    write(*args)
                    os.kill(os.getpid(), signal.SIGKILL)

                self.writer.write = write_then_die
        return super().run_task(pass_index, box_index, threads)


class Slow(Build):
    """Boxes that take a while, so a client can be killed between them."""

    def run_task(self, pass_index, box_index, threads=None):
        time.sleep(0.2)
        return super().run_task(pass_index, box_index, threads)


@pytest.mark.parametrize("fmt", list(CASES))
def test_dask_build_equals_local(client, sources, tmp_path, fmt):
    src, kw, want = sources[fmt]
    dest = str(tmp_path / "out")
    state = build(src, dest, client=client, **kw)
    assert state.tasks_run == state.plan.tasks and state.tasks_skipped == 0
    assert_same_tree(tree(dest), want)


def test_dask_build_survives_killed_worker(client, sources, tmp_path):
    src, kw, want = sources["ome-zarr"]
    dest = str(tmp_path / "out")
    before = set(client.scheduler_info()["workers"])
    state = build(src, dest, dry_run=True, **kw)
    state.build.__class__ = KillOnce
    state.build.flag = str(tmp_path / "killed")
    from mipmaker._dask import run_dask

    run_dask(state, client, progress=False)
    assert os.path.exists(state.build.flag), "the worker was not killed"
    assert_same_tree(tree(dest), want)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it under a new address
    assert set(client.scheduler_info()["workers"]) != before


def test_dask_build_resumes_after_client_dies(client, sources, tmp_path):
    src, kw, want = sources["ome-zarr"]
    dest = str(tmp_path / "out")
    script = (
        "import sys, test_dask; from distributed import Client; from mipmaker._dask import run_dask; "
        "from mipmaker.build import build\n"
        f"state = build({src!r}, {dest!r}, dry_run=True, **{kw!r})\n"
        "state.build.__class__ = test_dask.Slow\n"
        f"run_dask(state, Client({client.scheduler.address!r}), progress=False)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    done = os.path.join(dest, ".mipmaker", "done")
    try:
        deadline = time.monotonic() + 60
        while not (os.path.isdir(done) and len(os.listdir(done)) >= 3):
            assert proc.poll() is None, "the client finished or failed before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()  # reaped: its lock's pid is no longer alive
    with open(os.path.join(dest, ".mipmaker", "build.json")) as f:
        assert json.load(f)["state"] == "building"
    state = build(src, dest, client=client, **kw)
    assert state.resumed and state.tasks_skipped >= 3
    assert_same_tree(tree(dest), want)


def test_dask_build_interrupted_on_client_resumes(client, sources, tmp_path, monkeypatch):
    import mipmaker._dask as md

    src, kw, want = sources["precomputed"]
    dest = str(tmp_path / "out")
    real = md.progress_bar

    def interrupting_bar(state, todo, enabled):
        bar = real(state, todo, enabled)
        update, boxes = bar.update, []

        def update_then_stop(n):  # Ctrl-C on the client once half of the boxes are done
            update(n)
            boxes.append(n)
            if 2 * len(boxes) >= state.plan.tasks:
                raise KeyboardInterrupt

        bar.update = update_then_stop
        return bar

    monkeypatch.setattr(md, "progress_bar", interrupting_bar)
    with pytest.raises(KeyboardInterrupt):
        build(src, dest, client=client, **kw)
    assert not os.path.exists(os.path.join(dest, ".mipmaker", "lock"))
    monkeypatch.setattr(md, "progress_bar", real)
    state = build(src, dest, client=client, **kw)
    assert state.resumed and 0 < state.tasks_skipped < state.plan.tasks
    assert_same_tree(tree(dest), want)


def test_cli_dask_address(client, sources, tmp_path, capsys):
    src, kw, want = sources["ome-zarr"]
    dest = str(tmp_path / "out")
    args = ["build", src, dest, "--levels", "3", "--factor", "2,2,1", "--chunk", "8,8,4", "--shard", "16,16,4",
            "--memory", str(kw["memory"]), "--workers", "2"]
    assert main(args + ["--dask", client.scheduler.address, "--dry-run"]) == 0
    plan = build(src, dest, dry_run=True, **kw).plan
    assert f"tasks: {plan.tasks} (one per box; the dask graph has one node per task)" in capsys.readouterr().out
    assert not os.path.exists(dest)
    assert main(args + ["--dask", client.scheduler.address, "--quiet"]) == 0
    assert_same_tree(tree(dest), want)


def test_cli_dask_local(sources, tmp_path):
    src, kw, want = sources["precomputed"]
    dest = str(tmp_path / "out")
    args = ["build", src, dest, "--format", "precomputed", "--encoding", "compressed_segmentation", "--levels", "3",
            "--factor", "2,2,1", "--chunk", "8,8,4", "--shard", "none", "--memory", str(kw["memory"]), "--workers", "2",
            "--quiet"]
    assert main(args + ["--dask-local", "2"]) == 0
    assert_same_tree(tree(dest), want)


def test_cli_dask_options_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["build", "a.npy", "b", "--dask", "tcp://127.0.0.1:1", "--dask-local", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_memory_warning_names_small_workers():
    from mipmaker._dask import _check_memory

    class FakeClient:
        def scheduler_info(self, n_workers=-1):
            return {"workers": {"tcp://a:1": {"memory_limit": 8 << 20, "nthreads": 1},
                                "tcp://b:1": {"memory_limit": 1 << 30, "nthreads": 2},
                                "tcp://c:1": {"memory_limit": 0, "nthreads": 4}}}

    plan = make_plan(make_levels((64, 64, 8), [(2, 2, 1)], (32, 32, 8)), memory=1 << 30)
    with pytest.warns(RuntimeWarning, match=r"tcp://a:1 \(8\.0 MiB for 1 thread") as record:
        _check_memory(FakeClient(), plan, [[0]])
    assert "tcp://b:1" not in str(record[0].message) and "tcp://c:1" not in str(record[0].message)


def test_import_mipmaker_does_not_import_dask():
    code = ("import sys, mipmaker, mipmaker.build, mipmaker.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
