"""Run a planned build on a dask.distributed cluster: ``mipmaker.build(..., client=...)``.

The client prepares the destination exactly as the local executor does
(record, metadata, lock; a rerun skips the boxes marked done), then submits
one task per remaining box, pass by pass: a pass reads the level an earlier
pass wrote, so it is submitted only when every task before it has finished.
The graph is one node per box, with no edges (the build's state, a few KiB,
is stored once per pass); each worker opens the source and the writer once
per run and shares them between its threads, as the local executor does.

A task writes whole chunks or shards of its box and then the box's done
marker, so a task that runs twice writes the same bytes twice: dask reruns
the tasks of a worker that dies, retries a task that raises (`RETRIES`), and
a client that dies leaves a destination the same call resumes.

Dask is imported here only; ``import mipmaker`` never loads this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
import warnings

try:
    from distributed import Client, LocalCluster, as_completed
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"running a build on dask needs dask.distributed ({exc}); install it with pip install 'mipmaker[dask]'"
    ) from None

from ._progress import progress_bar
from .plan import format_bytes

__all__ = ["run_dask", "connect", "LOCAL_CLUSTER", "TASK_THREADS", "RETRIES"]

# Core threads per box task. A worker with k threads runs k boxes at once, so
# a worker's parallelism comes from its thread count (the local executor
# instead splits the CPUs among its boxes).
TASK_THREADS = 1
# Reruns of a task that raised (an object store's transient error); a task
# whose worker died is rescheduled by dask without counting against these.
RETRIES = 3
# `--dask-local`: worker processes of one thread on loopback, no dashboard; the
# scheduler's small HTTP server (health checks) takes a free loopback port
# instead of 8787, so two builds' clusters do not collide.
LOCAL_CLUSTER = dict(threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                     scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
# Longest wait, at the end, for box tasks of an earlier run of the same build
# (a dead or interrupted client) still running on workers (`_wait_for_strays`).
STRAY_WAIT_S = 600


def run_dask(state, client, *, progress=True):
    """Run every remaining box of `state` on the cluster behind `client`.

    Parameters
    ----------
    state : BuildState
        A planned build (what ``build(..., dry_run=True)`` returns).
    client : distributed.Client
        Its workers must reach the source and the destination at the same
        paths or URLs as this process (a shared file system or object store).
    progress : bool
        Show a progress bar (input voxels) on stderr.
    """
    todo = state.prepare()
    futures = []
    try:
        prefix = f"mipmaker-{_token(state)}"
        _check_memory(client, state.plan, todo)
        # Keys are fixed for the run (a retried or rescheduled task keeps its key)
        # but new for each run: dask reports a cancelled key to its client a
        # little later, which would cancel the same key resubmitted by a rerun.
        run = uuid.uuid4().hex[:8]
        with progress_bar(state, todo, progress) as bar:
            for n, boxes in enumerate(todo):
                if not boxes:
                    continue
                # No task depends on another, so dask hands boxes to whichever
                # worker has a free thread; `state` is stored once per pass.
                batch = client.map(
                    _task, boxes, state=state, run=run, pass_index=n, threads=TASK_THREADS,
                    key=[f"{prefix}-{run}-p{n}-b{i}" for i in boxes], pure=False, retries=RETRIES,
                )
                futures.extend(batch)
                box_of = dict(zip((f.key for f in batch), boxes))
                # Results stay on the workers (the bar counts voxels from the
                # plan); a finished box is released at once, so dask never
                # reruns it when the worker that holds its result dies.
                for f in as_completed(batch):
                    if f.status != "finished":
                        f.result()  # raises the task's error (after its retries); `finally` cancels the rest
                    f.release()
                    bar.update(state.plan.passes[n].box_voxels(box_of[f.key]))
                    state.tasks_run += 1
        if state.resumed:  # only an earlier client of this build can have left tasks running
            _wait_for_strays(client, prefix)
        state.finish()
    finally:
        if futures:
            with contextlib.suppress(Exception):  # a closed client has nothing left to cancel
                client.cancel(futures)
        state.release()


_open = {}  # in a worker process: {run: Build} of the latest run, its source and writer open (reused by its tasks)
_open_lock = threading.Lock()


def _task(box_index, *, state, run, pass_index, threads):
    """One box on a worker: all of its writes, then its done marker (what `run_local` does per box)."""
    with _open_lock:
        if run not in _open:
            _open.clear()
            _open[run] = state.build
        build = _open[run]
    voxels = build.run_task(pass_index, box_index, threads=threads)
    state.mark_done(pass_index, box_index)
    return voxels


def _token(state):
    """Key prefix of a build: the same destination, configuration and plan give the same prefix."""
    record = json.dumps([state.build.dest.url, state.record("building")], sort_keys=True)
    return hashlib.sha1(record.encode()).hexdigest()[:12]


def _check_memory(client, plan, todo):
    """Warn (not fail) when a worker's memory limit is below what its threads' tasks may hold."""
    task = max((p.memory for p, boxes in zip(plan.passes, todo) if boxes), default=0)
    if not task:
        return
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    except Exception:  # information only: never stop a build for it
        return
    low = []
    for address, w in workers.items():
        limit, threads = w.get("memory_limit") or 0, max(1, int(w.get("nthreads") or 1))
        if limit and limit < task * threads:
            low.append(f"{address} ({format_bytes(limit)} for {threads} thread(s))")
    if low:
        warnings.warn(
            f"one box task of this build may hold {format_bytes(task)} and a dask worker runs one per "
            f"thread, but these workers have less: {', '.join(low[:3])}{' ...' if len(low) > 3 else ''}; "
            "dask may pause or restart them. Give workers more memory or fewer threads, or plan smaller "
            "boxes with a lower `memory` on a new destination",
            RuntimeWarning, stacklevel=3,
        )


def _running(prefix, dask_worker=None):
    state = dask_worker.state
    return [ts.key for ts in state.executing | state.long_running
            if isinstance(ts.key, str) and ts.key.startswith(prefix)]


def _wait_for_strays(client, prefix):
    """Wait for box tasks of this build that still run although no client wants them.

    When a client dies or a run is interrupted, dask forgets its tasks but
    cannot stop the ones that are running; one of them could write its done
    marker after `finish` has removed the markers. All of this run's tasks
    have finished here, so any task of the build still running on a worker
    is such a stray.
    """
    deadline = time.monotonic() + STRAY_WAIT_S
    while time.monotonic() < deadline:
        try:
            running = client.run(_running, prefix, on_error="return")
        except Exception:
            return
        if not any(isinstance(keys, list) and keys for keys in running.values()):
            return
        time.sleep(0.2)


@contextlib.contextmanager
def connect(address=None, local_workers=None):
    """A client of the scheduler at `address`, or of a new loopback cluster of `local_workers` processes.

    The local cluster (`LOCAL_CLUSTER`) is shut down on exit.
    """
    if local_workers is not None:
        with LocalCluster(n_workers=local_workers, **LOCAL_CLUSTER) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(address) as client:
            yield client
