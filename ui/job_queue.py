"""The server's bounded queue for heavy work, as threads see it: no Streamlit here (tests drive it with threads).

Jobs run on ``SPP_VIZ_WORKERS`` worker threads in the order they were asked for; a job whose session has gone is
dropped before it starts, and a cancelled one stops at its next progress report. A job submitted with a ``key``
(building a network, a download) is shared: a second session asking for the same key waits for the same job, and
the job is cancelled only once every session waiting for it has stopped waiting. ``ui.jobs`` is the page side.
"""

from __future__ import annotations

import collections
import contextvars
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from spp_viz.settings import WORKERS_ENV

MAX_WAITING = 64  # beyond this many waiting jobs a new one is refused with a message: the server is overloaded
DEFAULT_ESTIMATE_S = 20.0  # before any job of a kind has finished, its length is unknown: assume this much


class JobCancelled(Exception):
    """Raised inside a job at its next progress report once nobody waits for it any more."""


class QueueFull(RuntimeError):
    """The server already has MAX_WAITING jobs waiting."""


@dataclass
class Job:
    """One piece of heavy work: what it runs, who waits for it, how far it got."""

    id: int
    kind: str  # "R-CNN mode", "Occlusion", ...: jobs of a kind share a running mean of their length
    fn: Callable[[Job], Any]
    watchers: list[Callable[[], bool]]  # one per session waiting for it: is that session still connected?
    key: Hashable | None = None  # a shared job's key (None: the job of one session)
    future: Future = field(default_factory=Future)
    state: str = "waiting"  # waiting, running, done, dropped, cancelled, failed
    fraction: float = 0.0
    text: str = ""
    updates: list[Any] = field(default_factory=list)  # what the job reported (e.g. one log per epoch)
    started: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, text: str = "", update: Any = None) -> None:
        """Called by the job as it goes; raises JobCancelled when nobody waits for it any more."""
        if self._cancel.is_set():
            raise JobCancelled(self.kind)
        self.fraction, self.text = min(max(fraction, 0.0), 1.0), text
        if update is not None:
            self.updates.append(update)

    @property
    def done(self) -> bool:
        return self.future.done()

    def alive(self) -> bool:
        """Whether any session waiting for the job is still connected."""
        return any(watch() for watch in list(self.watchers))


_current = threading.local()


def current_job() -> Job | None:
    """The job this thread runs now (on a worker), else None: work already on a worker runs there directly instead
    of queueing behind itself."""
    return getattr(_current, "job", None)


def default_workers() -> int:
    """SPP_VIZ_WORKERS, or half the cores (at least one): the other half stays free for light work."""
    raw = os.environ.get(WORKERS_ENV, "")
    if raw.strip():
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a whole number, got {raw!r}") from None
        if value < 1:
            raise ValueError(f"{WORKERS_ENV} must be at least 1, got {value}")
        return value
    return max(1, (os.cpu_count() or 2) // 2)


class JobQueue:
    """First come, first served on a fixed number of worker threads, with at most ``max_waiting`` jobs waiting."""

    def __init__(self, workers: int, max_waiting: int = MAX_WAITING) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: set[int] = set()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._shared: dict[Hashable, Job] = {}  # keyed jobs waiting or running
        self._means: dict[str, tuple[float, int]] = {}  # kind -> (mean seconds, jobs finished)
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"spp-viz-worker-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(
        self, kind: str, fn: Callable[[Job], Any], alive: Callable[[], bool] = lambda: True, key: Hashable | None = None
    ) -> Job:
        """Queue ``fn(job)``; with ``key``, join the job of that key when one waits or runs. Raises QueueFull when
        ``max_waiting`` jobs are already waiting."""
        with self._lock:
            if key is not None and (same := self._shared.get(key)) is not None and not same.done:
                same.watchers.append(alive)
                return same
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"the server has {len(self._waiting)} heavy jobs waiting already")
            # The submitter's context variables go with the work (its session's language: spp_viz.i18n).
            job = Job(next(self._ids), kind, functools.partial(contextvars.copy_context().run, fn), [alive], key)
            if key is not None:
                self._shared[key] = job
            self._waiting.append(job)
            self._lock.notify()
        return job

    def joined(self, key: Hashable) -> Job | None:
        """The shared job of ``key`` while it waits or runs."""
        with self._lock:
            job = self._shared.get(key)
            return job if job is not None and not job.done else None

    def position(self, job: Job) -> int:
        """0 while the job runs (or has run); k when k - 1 jobs wait before it."""
        with self._lock:
            for k, j in enumerate(self._waiting, 1):
                if j is job:
                    return k
        return 0

    def estimate(self, job: Job) -> float:
        """Seconds until the job is done: the jobs before it and itself, at each kind's mean length so far."""
        with self._lock:
            ahead = list(itertools.takewhile(lambda j: j is not job, self._waiting))
            running = len(self._running)
        own = self.mean(job.kind)
        if job.state == "running":
            return max(0.0, own - (time.monotonic() - (job.started or time.monotonic())))
        wait = sum(self.mean(j.kind) for j in ahead) + (own / 2 if running >= self.workers else 0.0)
        return wait / self.workers + own

    def mean(self, kind: str) -> float:
        return self._means.get(kind, (DEFAULT_ESTIMATE_S, 0))[0]

    def finished(self, kind: str) -> int:
        """How many jobs of ``kind`` have run to the end."""
        return self._means.get(kind, (0.0, 0))[1]

    def cancel(self, job: Job, alive: Callable[[], bool] | None = None) -> None:
        """One session stopped waiting for the job (``alive`` names which; None: all of them). Once nobody waits:
        drop it if it waits, stop it at its next report if it runs."""
        with self._lock:
            if alive is not None and alive in job.watchers:
                job.watchers.remove(alive)
            else:
                job.watchers.clear()
            if job.watchers:
                return
            job._cancel.set()
            if job in self._waiting:
                self._waiting.remove(job)
                job.state = "cancelled"
                job.future.cancel()
                self._forget(job)

    def _forget(self, job: Job) -> None:
        if job.key is not None and self._shared.get(job.key) is job:
            del self._shared[job.key]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"workers": self.workers, "running": len(self._running), "waiting": len(self._waiting)}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _next(self) -> Job | None:
        with self._lock:
            while not self._waiting and not self._closed:
                self._lock.wait()
            if self._closed:
                return None
            job = self._waiting.popleft()
            self._running.add(job.id)
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            _current.job = job
            try:
                self._run(job)
            finally:
                _current.job = None
                with self._lock:
                    self._running.discard(job.id)
                    self._forget(job)

    def _run(self, job: Job) -> None:
        try:
            alive = job.alive()
        except Exception:  # a session registry that fails to answer: treat the session as gone
            alive = False
        if not alive or job._cancel.is_set():
            job.state = "dropped"
            job.future.cancel()
            return
        job.state, job.started = "running", time.monotonic()
        try:
            result = job.fn(job)
        except JobCancelled as e:
            job.state = "cancelled"
            job.future.set_exception(e)
            return
        except BaseException as e:  # handed to whoever waits: the page shows it as its own error
            job.state = "failed"
            job.future.set_exception(e)
            return
        seconds = time.monotonic() - job.started
        with self._lock:
            mean, n = self._means.get(job.kind, (0.0, 0))
            self._means[job.kind] = ((mean * n + seconds) / (n + 1), n + 1)
        job.state = "done"
        job.future.set_result(result)
