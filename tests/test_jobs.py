"""The server's queue for heavy work, driven by threads: order, bounded concurrency, nothing lost, gone sessions
dropped, cancellation, a full queue, estimates."""

from __future__ import annotations

import threading
import time

import pytest

from ui.job_queue import JobCancelled, JobQueue, QueueFull, current_job, default_workers


def wait_all(jobs, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not all(j.done for j in jobs):
        assert time.monotonic() < deadline, [j.state for j in jobs]
        time.sleep(0.01)


def test_one_worker_runs_jobs_in_the_order_asked_and_loses_none():
    q = JobQueue(workers=1)
    started: list[int] = []
    gate = threading.Event()

    def make(i):
        def fn(job):
            started.append(i)
            gate.wait(5)
            return i * i

        return fn

    jobs = [q.submit("square", make(i)) for i in range(12)]
    time.sleep(0.1)
    assert [q.position(j) for j in jobs] == [0, *range(1, 12)]  # the first runs, the rest wait in order
    gate.set()
    wait_all(jobs)
    assert started == list(range(12))
    assert [j.future.result() for j in jobs] == [i * i for i in range(12)]
    assert all(j.state == "done" for j in jobs)
    q.close()


def test_concurrency_is_bounded_by_the_workers():
    q = JobQueue(workers=2)
    lock = threading.Lock()
    now = {"running": 0, "most": 0}

    def fn(job):
        with lock:
            now["running"] += 1
            now["most"] = max(now["most"], now["running"])
        time.sleep(0.05)
        with lock:
            now["running"] -= 1
        return job.id

    jobs = [q.submit("sleep", fn) for _ in range(10)]
    wait_all(jobs)
    assert now["most"] == 2
    assert sorted(j.future.result() for j in jobs) == sorted(j.id for j in jobs)
    q.close()


def test_a_job_whose_session_has_gone_is_dropped_before_it_runs():
    q = JobQueue(workers=1)
    gate = threading.Event()
    ran = []
    first = q.submit("block", lambda job: gate.wait(5))
    gone = q.submit("work", lambda job: ran.append("gone"), alive=lambda: False)
    here = q.submit("work", lambda job: ran.append("here"))
    gate.set()
    wait_all([first, gone, here])
    assert gone.state == "dropped" and gone.future.cancelled()
    assert ran == ["here"]
    q.close()


def test_cancel_drops_a_waiting_job_and_stops_a_running_one_at_its_next_report():
    q = JobQueue(workers=1)
    steps = []

    def long(job):
        for i in range(200):
            job.report(i / 200, f"step {i}")
            steps.append(i)
            time.sleep(0.01)
        return "finished"

    running = q.submit("long", long)
    waiting = q.submit("long", long)
    while not steps:
        time.sleep(0.01)
    q.cancel(waiting)
    q.cancel(running)
    with pytest.raises(JobCancelled):
        running.future.result(timeout=5)
    assert running.state == "cancelled" and len(steps) < 200
    assert waiting.state == "cancelled" and waiting.future.cancelled()
    q.close()


def test_a_failing_job_hands_its_error_to_whoever_waits_and_the_worker_goes_on():
    q = JobQueue(workers=1)

    def boom(job):
        raise ValueError("bad folder")

    bad = q.submit("x", boom)
    good = q.submit("x", lambda job: 7)
    wait_all([bad, good])
    with pytest.raises(ValueError, match="bad folder"):
        bad.future.result()
    assert good.future.result() == 7
    q.close()


def test_a_full_queue_refuses_more():
    q = JobQueue(workers=1, max_waiting=3)
    gate = threading.Event()
    jobs = [q.submit("block", lambda job: gate.wait(5))]
    time.sleep(0.05)  # the first is running, not waiting
    jobs += [q.submit("block", lambda job: gate.wait(5)) for _ in range(3)]
    with pytest.raises(QueueFull):
        q.submit("block", lambda job: None)
    gate.set()
    wait_all(jobs)
    q.close()


def test_estimates_use_each_kinds_mean_length():
    q = JobQueue(workers=1)
    done = q.submit("nap", lambda job: time.sleep(0.2))
    wait_all([done])
    assert q.mean("nap") == pytest.approx(0.2, abs=0.1)
    gate = threading.Event()
    blocker = q.submit("nap", lambda job: gate.wait(5))
    time.sleep(0.05)
    later = [q.submit("nap", lambda job: None) for _ in range(3)]
    # Two naps wait before the last one, the running nap is half done on average, and then its own: 3.5 naps.
    assert q.estimate(later[2]) == pytest.approx(3.5 * q.mean("nap"), rel=0.01)
    gate.set()
    wait_all([blocker, *later])
    q.close()


def test_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPP_VIZ_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.delenv("SPP_VIZ_WORKERS")
    assert default_workers() >= 1
    for bad in ("0", "two"):
        monkeypatch.setenv("SPP_VIZ_WORKERS", bad)
        with pytest.raises(ValueError, match="SPP_VIZ_WORKERS"):
            default_workers()


def test_a_keyed_job_is_shared_and_stops_only_when_nobody_waits():
    """Two sessions asking for the same network's build wait for one job; one leaving does not stop it; once both
    have left, it stops at its next report. A job on a worker knows it is one (``current_job``)."""
    q = JobQueue(workers=1)
    gate, runs, seen = threading.Event(), [], []

    def build(job):
        runs.append(job.id)
        seen.append(current_job() is job)
        while not gate.is_set():
            job.report(0.5, "building")
            time.sleep(0.01)
        return "model"

    alice, bob = (lambda: True), (lambda: True)
    first = q.submit("build", build, alice, key=("build", "resnet"))
    second = q.submit("build", build, bob, key=("build", "resnet"))
    other = q.submit("build", build, key=("build", "vgg"))
    assert second is first and other is not first and q.joined(("build", "resnet")) is first
    time.sleep(0.1)
    q.cancel(first, alice)  # Alice's page stopped waiting; Bob still waits
    time.sleep(0.1)
    assert first.state == "running" and not first.done
    gate.set()
    wait_all([first, other])
    assert first.future.result() == "model" and runs == [first.id, other.id] and seen == [True, True]
    assert current_job() is None and q.joined(("build", "resnet")) is None  # done: the next ask starts afresh
    gate.clear()
    third = q.submit("build", build, alice, key=("build", "resnet"))
    assert third is not first
    time.sleep(0.1)
    q.cancel(third, alice)  # the only one waiting leaves: stopped at its next report
    wait_all([third])
    assert third.state == "cancelled"
    q.close()
