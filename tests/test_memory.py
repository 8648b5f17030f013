"""Memory: 200 uploads of different images, in one session and across sessions, keep the process's RSS growth
under 300 MB (the caches are bounded with max_entries)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from badfiles import photo, save
from conftest import ROOT
from streamlit.testing.v1 import AppTest

LIMIT_MB = 300
ARTIFACTS = ROOT / "test-artifacts"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status on this system")


def new_session() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    return at


def upload(at: AppTest, i: int) -> None:
    data = save(photo(320 + (i % 7) * 16, 240 + (i % 5) * 16, seed=1000 + i), "JPEG", quality=90)
    at.file_uploader(key="upload").clear().run()
    at.file_uploader(key="upload").upload(f"u{i}.jpg", data, "image/jpeg").run()
    assert not at.exception, [e.value for e in at.exception]


def upload_growth_mb() -> float:
    """RSS growth of this process over 200 uploads, after a warm-up."""
    # AppTest reaches the sidebar only before a page switch: one session uploads on Home (decoding and the Home
    # picture each time); each new session uploads, then opens the feature-maps page (a forward pass each).
    for i in range(5):  # warm-up: model, allocator, imports
        at = new_session()
        upload(at, i)
        at.switch_page("pages/1_Feature_maps.py").run()
    start = rss_mb()
    at = new_session()
    for i in range(5, 155):  # 150 in one session
        upload(at, i)
    for i in range(155, 205):  # 50 more, each in a new session, each through the feature-maps page
        at = new_session()
        upload(at, i)
        at.switch_page("pages/1_Feature_maps.py").run()
        assert not at.exception, [e.value for e in at.exception]
    return rss_mb() - start


@pytest.mark.release
def test_two_hundred_uploads_keep_memory_bounded():
    # In a fresh process, as a server starts: the test process's RSS also moves with whatever the tests before this
    # one left in its heap (full suite: 200 to 302 MB; this test alone: 110 MB).
    code = "import test_memory; print(test_memory.upload_growth_mb())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=1200
    )
    assert out.returncode == 0, out.stderr[-3000:]
    growth = float(out.stdout.strip().splitlines()[-1])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "memory.txt").write_text(f"RSS growth over 200 uploads (after warm-up): {growth:.0f} MB\n")
    print(f"RSS growth over 200 uploads: {growth:.0f} MB")
    assert growth < LIMIT_MB
