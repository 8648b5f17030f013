"""Streamlit's usual command (release tier): `streamlit run app.py`, started as a teacher who knows Streamlit would,
with no SPP_VIZ_TEACHER_KEY: the server's log holds the passphrase it made (printed once, when the first student's
run started the warm-up), and a teacher in Chromium who types it opens a class."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, chromium_or_skip, free_port

pytestmark = [pytest.mark.browser, pytest.mark.release]

chromium_or_skip()


def test_streamlit_run_prints_the_passphrase_and_a_teacher_opens_a_class(tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SPP_VIZ_TEACHER_KEY"}
    env.update(SPP_VIZ_OFFLINE="1", SPP_VIZ_DATABASE_URL=f"sqlite:///{tmp_path / 'classes.sqlite'}")
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"streamlit-run-{port}.log"
    streamlit = str(Path(sys.executable).parent / "streamlit")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([streamlit, "run", "app.py", "--server.port", str(port), "--server.address",
                                 "127.0.0.1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            deadline = time.monotonic() + 120
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/Class", timeout=10_000)
                    break
                except Exception:  # noqa: BLE001  not serving yet
                    assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-3000:]
                    time.sleep(1)
            page.get_by_text("the teacher", exact=True).first.wait_for(timeout=180_000)
            said = re.findall(r"the teacher's passphrase is (\S+) ", log_path.read_text())
            assert len(said) == 1, log_path.read_text()[-3000:]  # once, however many runs
            page.get_by_text("the teacher", exact=True).first.click()
            page.get_by_role("textbox", name="Teacher's passphrase").fill(said[0])
            page.get_by_role("button", name="Open a class").click()
            page.get_by_text("Class code").first.wait_for(timeout=120_000)
            assert "teacher=" in page.url  # the dashboard's token: a reload keeps it
            code = page.locator("[data-testid='stMetricValue']").first.inner_text()
            page.reload()
            page.get_by_text("Class code").first.wait_for(timeout=120_000)
            assert page.locator("[data-testid='stMetricValue']").first.inner_text() == code
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
