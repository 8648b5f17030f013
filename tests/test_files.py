"""One cache folder, several writers (app replicas, issue 34): a file is renamed into place whole, so a reader never
sees half of one and two writers of the same file never mix their bytes."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from spp_viz.detection.features import FeatureCache
from spp_viz.files import write_atomically

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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.boxes.npy", "same.feats.npy", "same.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = write_atomically(tmp_path / "a.json", lambda tmp: tmp.write_text("old"))

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
