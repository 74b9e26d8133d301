"""Build state on disk (record, done markers, lock) and the local executor.

``DEST/.mipmaker/build.json`` records the configuration and the plan before
anything else is written; a box's marker ``.mipmaker/done/<pass>-<box>`` is
written only after all of its chunks are stored. A rerun of the same build
reuses the recorded plan (so another ``--memory`` or ``--workers`` does not
move box boundaries) and skips marked boxes; chunks of unmarked boxes are
simply written again, whole, with the same bytes. When every box is done the
record says ``complete`` and the markers are removed, so an interrupted and
resumed build leaves exactly the files of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from . import __version__
from .plan import Plan

__all__ = ["BuildState", "run_local", "check_record", "STATE_DIR"]

STATE_DIR = ".mipmaker/"
RECORD = STATE_DIR + "build.json"
DONE = STATE_DIR + "done/"
LOCK = STATE_DIR + "lock"


class BuildState:
    """A build and how far it got: what `mipmaker.build` returns."""

    def __init__(self, build, *, memory, workers):
        self.build = build
        self.memory = memory
        self.workers = workers
        self.seconds = None
        self.tasks_run = 0
        self.tasks_skipped = 0
        self.resumed = False

    @property
    def plan(self):
        return self.build.plan

    def describe(self):
        c = self.build.config
        head = [
            f"source: {c.source} ({c.shape[0]},{c.shape[1]},{c.shape[2]} x {c.channels} channel(s) {c.dtype})",
            f"dest:   {self.build.dest.text} ({c.format}"
            + (f", shards {','.join(map(str, c.shard))}" if c.shard else "")
            + (f", {c.compression}" if c.format != "precomputed" else f", {c.encoding}") + ")",
            f"method: {c.method}{' sparse' if c.sparse else ''} ({'labels' if c.labels else 'image'}), "
            f"resolution {','.join(f'{r:g}' for r in c.resolution)}",
            "",
        ]
        return "\n".join(head) + self.plan.describe()

    # -- on-disk state -------------------------------------------------
    def record(self, state):
        return {"mipmaker": __version__, "state": state, "config": _plain(self.build.config.to_json()),
                "plan": _plain(self.plan.to_json())}

    def prepare(self):
        """Check or create the destination's record; return the boxes still to do, per pass."""
        dest = self.build.dest
        existing = dest.read_json(RECORD)
        if existing is None:
            if self.build.config.in_place:
                scales = (dest.read_json("info") or {}).get("scales", [])
                if len(scales) > 1:
                    raise ValueError(
                        f"{dest.text} already has {len(scales)} scales; adding levels in place needs a layer "
                        "with level 0 only (or write a new destination)"
                    )
            elif dest.exists(ignore=STATE_DIR.rstrip("/")):  # a lock left before any record is ours
                raise ValueError(
                    f"{dest.text} exists and is not a mipmaker build; refusing to write into it "
                    "(choose a new destination or delete it)"
                )
            self.build.writer.validate()
            _Lock.acquire(dest)
            dest.write_json(RECORD, self.record("building"))
        else:
            check_record(dest, self.build.config)
            _Lock.acquire(dest)
            self.resumed = True
            self.build.plan = Plan.from_json(existing["plan"])
            self.build._writer = None
            if existing.get("state") == "complete":
                dest.delete_prefix(DONE)
                return []
        self.build.writer.create()
        done = set(dest.list(DONE))
        todo = []
        for n, p in enumerate(self.plan.passes):
            boxes = [i for i in range(len(p)) if f"{DONE}{n}-{i}" not in done]
            self.tasks_skipped += len(p) - len(boxes)
            todo.append(boxes)
        return todo

    def mark_done(self, pass_index, box_index):
        self.mark_all_done([(pass_index, box_index)])

    def mark_all_done(self, boxes):
        """Mark finished boxes (pass, box) done, in order, after one sync for all of them."""
        # The boxes' chunks reach the disk before their markers can (power loss).
        self.build.dest.sync()
        for pass_index, box_index in boxes:
            self.build.dest.write(f"{DONE}{pass_index}-{box_index}", b"")

    def finish(self):
        dest = self.build.dest
        dest.write_json(RECORD, self.record("complete"))
        dest.delete_prefix(DONE)
        if dest.local is not None:
            try:
                os.rmdir(os.path.join(dest.local, DONE))
            except OSError:
                pass

    def release(self):
        _Lock.release(self.build.dest)


def check_record(dest, config):
    """Refuse a destination that records a build of another source or other options."""
    existing = dest.read_json(RECORD)
    if existing is not None and existing.get("config") != _plain(config.to_json()):
        raise ValueError(
            f"{dest.text} holds a different mipmaker build (other source or options); "
            "rerun that command to finish it, or choose a new destination"
        )


def _plain(obj):
    """JSON-normal form (tuples as lists) so a record compares equal after a round trip."""
    return json.loads(json.dumps(obj))


class _Lock:
    """One build per local destination: ``.mipmaker/lock`` holds the owner's pid and host."""

    @staticmethod
    def acquire(dest):
        if dest.local is None:
            return  # object stores have no atomic create here; one writer per URL is the user's job
        path = os.path.join(dest.local, LOCK)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(path) as f:
                        pid, host = f.read().split()
                except (OSError, ValueError):
                    pid, host = "0", ""
                if host == socket.gethostname() and _alive(int(pid)) and int(pid) != os.getpid():
                    raise ValueError(
                        f"{dest.text} is being written by another mipmaker build (pid {pid}); "
                        "wait for it or stop it first"
                    ) from None
                os.unlink(path)  # left by a build that died
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return
        raise ValueError(f"{dest.text}: could not take the build lock {path}")

    @staticmethod
    def release(dest):
        if dest.local is not None:
            try:
                os.unlink(os.path.join(dest.local, LOCK))
            except FileNotFoundError:
                pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def progress_bar(state, todo, enabled):
    from tqdm import tqdm

    total = sum(p.voxels for p in state.plan.passes)
    left = sum(p.box_voxels(i) for p, boxes in zip(state.plan.passes, todo) for i in boxes)
    return tqdm(total=total, initial=total - left, unit="vx", unit_scale=True, disable=not enabled,
                desc="build", smoothing=0.1, dynamic_ncols=True)


class _Committer:
    """Marks finished boxes done from its own thread, one sync per group.

    A sync waits for the disk; here it covers every box that finished while
    the previous one ran, and the workers go on reading and computing.
    """

    def __init__(self, state, bar):
        self.state, self.bar = state, bar
        self.cond = threading.Condition()
        self.pending, self.closed, self.error = [], False, None
        self.thread = threading.Thread(target=self._run, name="mipmaker-commit", daemon=True)
        self.thread.start()

    def add(self, pass_index, box_index, voxels):
        with self.cond:
            if self.error is not None:
                raise self.error
            self.pending.append((pass_index, box_index, voxels))
            self.cond.notify()

    def _run(self):
        while True:
            with self.cond:
                while not self.pending and not self.closed:
                    self.cond.wait()
                batch, self.pending = self.pending, []
            if not batch:
                return
            try:
                self.state.mark_all_done([(n, i) for n, i, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                with self.cond:
                    self.error = exc
                return
            for _, _, voxels in batch:
                self.bar.update(voxels)
                self.state.tasks_run += 1

    def close(self):
        """Commit what is pending, stop, and raise the error that stopped it, if any."""
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error


def run_local(state, *, progress=True):
    """Run every remaining box on a thread pool (the core releases the GIL)."""
    todo = state.prepare()
    try:
        bar = progress_bar(state, todo, progress)
        cpus = os.cpu_count() or 1
        stop = threading.Event()
        with bar:
            committer = _Committer(state, bar)
            try:
                _run_passes(state, todo, cpus, stop, committer)
            except BaseException:
                try:  # boxes that finished keep their markers; the task's error is the one to see
                    committer.close()
                except Exception:  # noqa: BLE001
                    pass
                raise
            committer.close()
        state.finish()
    finally:
        state.release()


def _run_passes(state, todo, cpus, stop, committer):
    for n, boxes in enumerate(todo):
        if not boxes:
            continue
        workers = max(1, min(state.workers, state.plan.passes[n].concurrency, len(boxes)))
        threads = max(1, cpus // workers)

        def task(i, n=n, threads=threads):
            if stop.is_set():
                return
            committer.add(n, i, state.build.run_task(n, i, threads=threads))

        with ThreadPoolExecutor(workers, thread_name_prefix="mipmaker-build") as pool:
            pending = {pool.submit(task, i) for i in boxes}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in finished:
                    if f.exception() is not None:
                        stop.set()
                        for other in pending:
                            other.cancel()
                        raise f.exception()
