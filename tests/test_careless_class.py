"""A careless class (release tier): a real `spp-viz app`; six students in Chromium visit every page while four
careless sessions at once pick a 3.4 GB network, build two mid-size networks together, upload the 9,400 x 9,400
16-bit PNG three times and a 600 MB weights file; then the same students again without them. The harness and its
report are bench/careless_class.py's (which also prints the table for bench/results.md)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from conftest import ROOT
from streamlit_server import ARTIFACTS, chromium_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.release]

chromium_or_skip()
sys.path.insert(0, str(ROOT / "bench"))
import careless_class as harness  # noqa: E402

STUDENTS = 6
SLOWDOWN = 3.0  # the students' p95 page time under the careless sessions, at most this many times their own alone
SPARE_MB = 1024  # above the idle server and its model budget


def test_a_careless_class_gets_messages_and_the_others_keep_working(tmp_path):
    report = asyncio.run(harness.run(STUDENTS, tmp_path))
    text = harness.summary(report)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "careless_class.md").write_text(text)
    print(text)
    said = {c["act"]: c for c in report["careless"]}
    # One clear message for each careless action, never a traceback.
    assert "is 3,386 MB (846.5 M parameters) in memory" in said["huge"]["said"][0]
    assert "That file was not read" in said["huge"]["said"][1] and len(said["huge"]["problems"]) == 1
    assert all("Loaded in" in said[mid]["said"][0] for mid in ("mid0", "mid1"))  # each after its turn in the queue
    assert [s for s in said["png"]["said"] if s.startswith("NOT SHOWN")] == []
    assert "was shrunk from 9400 x 9400" in said["png"]["said"][-1]
    for c in report["careless"]:
        assert not [p for p in c["problems"] if "Traceback" in p], c
    # Every well-behaved student's page finished, with no error box and no traceback.
    for phase in ("alone", "during", "after"):
        assert len(report[phase]) == STUDENTS * (len(harness.PAGES) + 1)
        assert all(not s["problems"] for s in report[phase]), [s for s in report[phase] if s["problems"]]
    # The server lived, within its budgets, and the others barely noticed.
    assert report["alive"]
    assert report["peak_mb"] <= report["idle_mb"] + report["model_memory_mb"] + SPARE_MB
    p95 = {phase: harness.percentile([s["seconds"] for s in report[phase]], 95) for phase in ("alone", "during")}
    assert p95["during"] <= SLOWDOWN * p95["alone"], p95
