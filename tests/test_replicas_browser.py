"""Replicas behind HAProxy in real browsers (issue 34; release tier): `spp-viz serve --replicas 2` on loopback, 16
(SPP_VIZ_REPLICA_SESSIONS) Chromium sessions through its one port, each uploading a photo of its own and visiting
every page.

- Each session's requests reach one replica: the cookie HAProxy set never changes, the Server panel names that
  replica, the photo stays in use on every page (an upload that reached another replica would be lost), and no
  upload or media request fails.
- The sessions split between the replicas: neither gets fewer than a third.
- Replica r2 is killed mid-run: the sessions on r1 carry on untouched (no reconnect, no message, their photo in
  use), and each browser that was on r2 is connected again within 10 s (to r1, or to r2 once `serve` has started it
  again); its page stays as it was, and its next click is served with a message that says why its photo is gone;
  after uploading it again it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, chromium_or_skip
from test_deploy import haproxy_or_skip
from test_load import TIMEOUT_MS, attributions, idle, photos, upload, visit
from test_replicas import ports

from spp_viz.replicas import REPLICA_HEADER

pytestmark = [pytest.mark.browser, pytest.mark.release]
chromium_or_skip()
SESSIONS = int(os.environ.get("SPP_VIZ_REPLICA_SESSIONS", "16"))
MOVED = "and the app started again here: upload your photo again"
PHASE_TIMEOUT = 420  # seconds for every session's pages after the kill
FIRST_PAGES = [("Feature maps", "(rank 1 of 1280)"), ("Pyramid pooling", "Output length k x M"),
               ("Crop warp SPP", "Download the predictions (CSV)")]  # fmt: skip
LATER_PAGES = [("Strongest activations", "strongest responses in the gallery"),
               ("Detection", "windows after class-wise non-maximum suppression"),
               ("SPP Lab", "What the built-in images look like"), ("Lab experiments", "Results shipped with the app"),
               ("Class", "You are")]  # fmt: skip


@contextlib.contextmanager
def served(replicas: int = 2, timeout: float = 300) -> Iterator[tuple[str, Path, Path]]:
    """`spp-viz serve --replicas N` on loopback; yields (the proxy's URL, serve's folder, serve's log); Ctrl-C after."""
    haproxy_or_skip()
    base = ports(replicas)
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"serve-{base}.log"
    env = {**os.environ, "SPP_VIZ_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "spp_viz", "serve", "--replicas", str(replicas), "--port", str(base),
           "--address", "127.0.0.1"]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while "SPP-net Explorer: http" not in log_path.read_text():
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"serve did not start in {timeout:.0f} s:\n{log_path.read_text()}"
            time.sleep(0.5)
        folder = Path(re.search(r"\(log: (\S+)/replica-r1\.log\)", log_path.read_text()).group(1))
        yield f"http://127.0.0.1:{base}", folder, log_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def replica_of(context) -> str:
    return next(c["value"] for c in await context.cookies() if c["name"] == "SPPVIZ_REPLICA")


async def server_panel_names(page) -> str:
    await page.locator("[data-testid='stSidebar']").get_by_text("Server", exact=True).click()
    line = page.get_by_text(re.compile(r"This server: replica \w+ of 2")).first
    await line.wait_for(timeout=TIMEOUT_MS)
    text = await line.inner_text()
    await page.locator("[data-testid='stSidebar']").get_by_text("Server", exact=True).click()
    # Closing the panel reruns the page (it is drawn only while open). A photo sent at once, while that run redrew the
    # sidebar, was seen lost here (the uploader empty, no request failed): wait for the run to end, as a student's next
    # click comes after the page has settled.
    await page.get_by_text(re.compile(r"This server: replica \w+ of 2")).first.wait_for(state="detached",
                                                                                     timeout=TIMEOUT_MS)
    await idle(page)
    return re.search(r"replica (\w+) of 2", text).group(1)


class Session:
    """One student's browser: its replica, what failed, and when it was served again after the kill."""

    def __init__(self, browser, url: str, image) -> None:
        self.browser, self.url, self.image = browser, url, image
        self.failed: list[tuple[float, str, str]] = []  # (when, what, the replica that answered): uploads, media
        self.sockets: list[float] = []  # when each websocket opened
        self.replica = ""
        self.moved_after: float | None = None  # seconds from the kill until the app said it was moved
        self.reconnected_after: float | None = None  # ... until the browser's new websocket opened
        self.steps: list[str] = []  # what it did, for a failure's report
        self.replica_after = ""  # the replica that served it after the kill

    async def start(self) -> None:
        self.context = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = await self.context.new_page()
        self.page.on("websocket", lambda ws: self.sockets.append(time.monotonic()))
        self.page.on("response", self._response)
        await self.page.goto(self.url, timeout=TIMEOUT_MS)
        await idle(self.page)
        await upload(self.page, self.image)
        self.replica = await replica_of(self.context)
        for link, ready in FIRST_PAGES:
            try:
                await visit(self.page, link, ready, self.image)
                await self.no_broken_picture(link)
            except AssertionError as e:  # what a lost photo needs to be understood: the replica, failed requests
                raise AssertionError(f"{e}\nsession on {self.replica}, now {await replica_of(self.context)}; "
                                     f"websockets opened: {len(self.sockets)}; failed requests: {self.failed}") from e
        assert await server_panel_names(self.page) == self.replica
        assert await replica_of(self.context) == self.replica

    def _response(self, response) -> None:
        if ("/_stcore/upload_file" in response.url or "/media/" in response.url) and response.status >= 400:
            by = response.headers.get(REPLICA_HEADER.lower(), "")
            self.failed.append((time.monotonic(), f"{response.status} {response.url}", by))

    async def no_broken_picture(self, where: str) -> None:
        """Every picture the page shows has loaded: a 404 for a picture of a run the page has already replaced
        (Streamlit drops a run's media once a newer run of the session ends) leaves nothing broken on screen."""
        broken = await self.page.eval_on_selector_all(
            "[data-testid='stMain'] img, [data-testid='stSidebar'] img",
            "els => els.filter(e => e.complete && e.naturalWidth === 0).map(e => e.src)",
        )
        assert not broken, (where, self.replica, broken, self.failed)

    def step(self, what: str) -> None:
        self.steps.append(f"{time.strftime('%H:%M:%S')} {what}")

    async def carry_on(self) -> None:
        """On the surviving replica: every other page, the photo still in use, nothing said about a move."""
        for link, ready in LATER_PAGES[:1]:
            self.step(link)
            await visit(self.page, link, ready, self.image)
            await self.no_broken_picture(link)
        self.step("Attributions")
        await attributions(self.page)
        for link, ready in LATER_PAGES[1:]:
            self.step(link)
            await visit(self.page, link, ready, self.image)
            await self.no_broken_picture(link)
        self.step("done")
        assert not await self.page.get_by_text(MOVED).count()
        assert await replica_of(self.context) == self.replica == "r1"

    async def moved(self, killed_at: float) -> None:
        """On the killed replica: the browser reconnects to r1 (the page it shows stays), its next click is served
        there with a message that says why the photo is gone; the photo uploaded again works."""
        self.step("waiting for the reconnection")
        while not any(t > killed_at for t in self.sockets) and time.monotonic() - killed_at < 60:
            await asyncio.sleep(0.1)
        self.reconnected_after = next(t for t in self.sockets if t > killed_at) - killed_at
        self.step(f"reconnected after {self.reconnected_after:.1f} s; clicking Feature maps")
        await self.page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Feature maps").click()
        await self.page.get_by_text(MOVED).first.wait_for(timeout=TIMEOUT_MS)
        self.moved_after = time.monotonic() - killed_at
        self.step("told it moved; uploading again")
        await idle(self.page)
        # Served by r1, or by r2 started again (serve restarts it) if that answered first; the panel says which.
        self.replica_after = await replica_of(self.context)
        self.step(f"on {self.replica_after}; opening the Server panel")
        assert await server_panel_names(self.page) == self.replica_after
        # The uploader starts empty under another key (the old one still showed the photo sent to the dead server).
        self.step("sending the photo again")
        await self.page.locator(".st-key-upload-again input[type='file']").set_input_files(str(self.image))
        self.step("waiting for the sidebar's In use")
        await self.page.get_by_text(f"In use: {self.image.name}").first.wait_for(timeout=TIMEOUT_MS)
        await idle(self.page)
        self.step("Feature maps again")
        await visit(self.page, "Feature maps", "(rank 1 of 1280)", self.image)
        self.step("done")


async def run(url: str, folder: Path, images) -> tuple[list[Session], float, float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        sessions = [Session(browser, url, im) for im in images]
        await asyncio.gather(*(s.start() for s in sessions))
        killed_at = time.monotonic()
        os.kill(int((folder / "replica-r2.pid").read_text()), signal.SIGKILL)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.carry_on() if s.replica == "r1" else s.moved(killed_at) for s in sessions)),
                timeout=PHASE_TIMEOUT,
            )
        except TimeoutError:
            report = []
            for i, s in enumerate(sessions):
                await s.page.screenshot(path=ARTIFACTS / f"replicas-session{i}.png")
                report.append(f"session {i} on {s.replica}: {s.steps[-2:]}")
                if s.steps[-1:] != [f"{s.steps[-1][:9]}done"]:  # what a stuck page shows, and what failed
                    sidebar = await s.page.locator("[data-testid='stSidebar']").inner_text()
                    main = await s.page.locator("[data-testid='stMain']").inner_text()
                    report.append(f"  cookie {await replica_of(s.context)}; failed requests {s.failed}; "
                                  f"websockets {[round(t - killed_at, 1) for t in s.sockets]}\n"
                                  f"  sidebar: {sidebar[:400]!r}\n  page: {main[:400]!r}")
            logs = "".join(f"\n--- {p.name}:\n" + p.read_text()[-1500:] for p in sorted(folder.glob("*.log")))
            raise AssertionError("sessions stuck after the kill:\n" + "\n".join(report) + logs) from None
        seconds = time.monotonic() - killed_at
        await browser.close()
    return sessions, seconds, killed_at


def test_sixteen_sessions_on_two_replicas_stick_split_and_survive_a_killed_replica(tmp_path):
    images = photos(tmp_path, SESSIONS)
    with served(2) as (url, folder, log):
        sessions, seconds, killed_at = asyncio.run(run(url, folder, images))
        said = log.read_text()
    on = {r: [i for i, s in enumerate(sessions) if s.replica == r] for r in ("r1", "r2")}
    moved = [round(sessions[i].moved_after, 1) for i in on["r2"]]
    back = [round(sessions[i].reconnected_after, 1) for i in on["r2"]]
    after = [sessions[i].replica_after for i in on["r2"]]
    report = (f"{SESSIONS} sessions: {len(on['r1'])} on r1, {len(on['r2'])} on r2; r2 killed; its sessions' browsers "
              f"connected again after {back} s (to {after}), and their next click was served there with the message "
              f"by {moved} s after the kill; the rest of the run took {seconds:.0f} s\n")  # fmt: skip
    (ARTIFACTS / "replicas_load.txt").write_text(report)
    print(report)
    assert min(len(v) for v in on.values()) >= SESSIONS / 3, on
    for i, s in enumerate(sessions):
        # Every request of a session reaches its own replica: no upload fails, and a failed media request was answered
        # by the session's replica (a picture of a run its page had replaced: no_broken_picture checks the screen).
        # A moved session's page, drawn by the dead replica, asks the new one for that replica's pictures: not counted.
        failed = [(f, by) for t, f, by in s.failed if t < killed_at or s.replica == "r1"]
        assert not [f for f, _ in failed if "/_stcore/upload_file" in f], (i, s.replica, failed)
        assert all(by == s.replica for _, by in failed), (i, s.replica, failed)
    for i in on["r1"]:
        assert len(sessions[i].sockets) == 1, (i, "a session on the surviving replica reconnected")
    assert all(m <= 10 for m in back), report
    assert "Replica r2 exited with code -9; HAProxy sends its students to the others; starting it again." in said
