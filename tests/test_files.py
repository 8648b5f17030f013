"""One cache folder, several writers (app replicas, issue 34): a file is renamed into place whole, so a reader never
sees half of one and two writers of the same file never mix their bytes."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from spp_viz.detection.features import FeatureCache
from spp_viz.files import FOLDER_LOCK, DiskFull, disk_full, in_use, trim, usage, write_atomically

SHAPE = (64, 1024)  # 256 KB of float32 per write: long enough for two writers to overlap


def _writer(root: str, value: float, until: float) -> None:
    cache = FeatureCache(root)
    feats = np.full(SHAPE, value, np.float32)
    while time.monotonic() < until:
        cache.put("same", {"writer": value}, np.full((4, 4), value, np.float32), feats)


def test_two_processes_writing_one_entry_never_leave_a_mixed_or_half_file(tmp_path):
    until = time.monotonic() + 2.0
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), v, until)) for v in (1.0, 2.0)]
    for w in writers:
        w.start()
    cache, reads = FeatureCache(tmp_path), 0
    while any(w.is_alive() for w in writers):
        got = cache.get("same")
        if got is None:  # not written yet
            continue
        _, boxes, feats = got
        feats = np.asarray(feats)
        assert feats.shape == SHAPE and len(np.unique(feats)) == 1, "a file mixed two writers or was read half-written"
        assert len(np.unique(boxes)) == 1
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert reads > 10
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != FOLDER_LOCK)  # the lock says the folder is in use
    assert left == ["same.boxes.npy", "same.feats.npy", "same.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = write_atomically(tmp_path / "a.json", lambda tmp: tmp.write_text("old"))

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def aged(path, seconds_ago: float, size: int = 1000):
    """A file of ``size`` bytes last used ``seconds_ago``."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - seconds_ago
    os.utime(path, (when, when))
    return path


def test_the_cache_folder_is_trimmed_least_recently_used_first_keeping_what_is_in_use(tmp_path):
    """Five 1,000-byte files in a 2,500-byte budget: the least recently used go until it fits, passing over a file
    held in use, a folder held in use, and the class database (never cache)."""
    oldest = aged(tmp_path / "index" / "a.npz", 500)
    held = aged(tmp_path / "lab" / "b.safetensors", 400)
    busy = aged(tmp_path / "detection" / "c.feats.npy", 300)
    older = aged(tmp_path / "index" / "d.npz", 200)
    newest = aged(tmp_path / "index" / "e.npz", 100)
    database = aged(tmp_path / "classes.sqlite", 1000, size=5000)
    assert usage(tmp_path).nbytes == 5000 and usage(tmp_path).kept_bytes == 5000 and usage(tmp_path).files == 5
    with in_use(held, tmp_path / "detection"):
        removed = trim(tmp_path, budget=2500)
    assert removed == [oldest, older, newest]  # b is held, c's folder is held: the newer ones go instead
    assert held.exists() and busy.exists() and database.exists() and usage(tmp_path).nbytes == 2000
    assert trim(tmp_path, budget=1500) == [busy]  # let go: c was used longest ago (holding b read it just now)
    assert trim(tmp_path, budget=10_000) == []  # within the budget: nothing goes


def test_reading_a_file_marks_it_used(tmp_path):
    first, second = aged(tmp_path / "a.npz", 300), aged(tmp_path / "b.npz", 200)
    with in_use(first):  # read now: b is now the least recently used
        pass
    assert trim(tmp_path, budget=1000) == [second]


def test_a_full_disk_is_one_message_and_leaves_nothing_behind(tmp_path):
    import errno

    def full(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull) as info:
        write_atomically(tmp_path / "model.safetensors", full)
    assert disk_full(info.value) and "disk is full: model.safetensors could not be saved" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no half-written temporary file


def test_a_write_into_the_cache_folder_keeps_it_within_its_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("SPP_VIZ_CACHE", str(tmp_path))
    monkeypatch.setenv("SPP_VIZ_CACHE_MB", "1")  # 1,000,000 bytes
    old = aged(tmp_path / "index" / "old.npz", 100, size=600_000)
    new = write_atomically(tmp_path / "lab" / "new.safetensors", lambda p: p.write_bytes(b"y" * 600_000))
    assert new.exists() and not old.exists()
