"""A careless class: well-behaved students in Chromium visit every page, first alone, then while four careless
sessions at once do what took a server down before its budgets (issue 44):

  huge      picks timm:convnext_xxlarge (3.4 GB) by name, then uploads a 600 MB file as the weights of ResNet-18
  mid x 2   two sessions pick a mid-size network each at the same moment (ResNet-50, ConvNeXt-Tiny: random weights)
  png       uploads a 194 KB PNG of 9,400 x 9,400 16-bit grey pixels, three times (three file names)

Each careless action must end in one clear message (a refusal with its reason, or the network loaded after its turn
in the queue, or the photo shrunk), never a traceback. The report gives each student page's time (the click until
the script run it started has finished: Streamlit's own `script_finished` message, and no spinner), p50 and p95 in
both phases, the server's peak memory (its VmHWM) against its idle size, and whether the server process lived
throughout. tests/test_careless_class.py (release tier) asserts on it; this script prints it and writes the table
into bench/results.md.

Run: python bench/careless_class.py [--students 6] [--no-write] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sections import publish  # noqa: E402
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

PAGES = [  # the sidebar links, in menu order
    "Feature maps", "Pyramid pooling", "Strongest activations", "Crop warp SPP", "Attributions", "Detection",
    "SPP Lab", "Lab experiments", "Class",
]  # fmt: skip
TIMEOUT_MS = 600_000
MID_SIZE = ("torchvision:resnet50", "timm:convnext_tiny")
HUGE = "timm:convnext_xxlarge"
MODEL_MEMORY_MB = 1000  # the server's model budget in this run: the default network and both mid-size ones fit
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def careless_files(folder: Path) -> dict[str, Path]:
    """The 16-bit PNG of the issue (one flat colour: 194 KB) and a 600 MB file (sparse on disk: nothing written)."""
    png = folder / "flat16.png"
    Image.fromarray(np.full((9400, 9400), 30000, np.uint16)).save(png, optimize=True)
    big = folder / "weights.pth"
    with open(big, "wb") as f:
        f.truncate(600_000_000)
    return {"png": png, "big": big}


class Runs:
    """The script runs a session's websocket reports (Streamlit's ForwardMsg): ``new_session`` when one starts,
    ``script_finished`` when it ends (not when it ends early for a rerun)."""

    def __init__(self, page) -> None:
        self.events: list[tuple[float, str]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, str):
            return
        try:
            msg = ForwardMsg.FromString(payload)
        except Exception:  # noqa: BLE001  not a ForwardMsg
            return
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.events.append((time.monotonic(), "start"))
        elif kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self.events.append((time.monotonic(), "finish"))

    def finished_after(self, t0: float) -> float | None:
        started = False
        for t, kind in self.events:
            if t >= t0:
                started = started or kind == "start"
                if started and kind == "finish":
                    return t
        return None


async def timed(page, runs: Runs, action, retry_s: float = 30) -> float:
    """Seconds from ``action()`` until the run it started has finished and no spinner shows (a click that starts
    no run within ``retry_s`` is made again; the time counts from the first)."""
    t0 = time.monotonic()
    await action()
    for attempt in (0, 1):
        start, deadline = time.monotonic(), time.monotonic() + (retry_s if attempt == 0 else TIMEOUT_MS / 1000)
        while time.monotonic() < deadline:
            done = runs.finished_after(start if attempt else t0)
            if done is not None and await page.locator("[data-testid='stSpinner']").count() == 0:
                return done - t0
            await asyncio.sleep(0.025)
        await action()
    raise RuntimeError("no script run finished")


async def problems(page) -> list[str]:
    """Tracebacks and error boxes on the page."""
    found = []
    for selector in ("[data-testid='stException']", "[data-testid='stAlertContentError']"):
        boxes = page.locator(selector)
        found += [await boxes.nth(i).inner_text() for i in range(await boxes.count())]
    return found


async def student(browser, url: str) -> list[dict]:
    """A student who behaves: the home page, then every page by the sidebar's links (one session), timed."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    runs = Runs(page)
    try:
        out = [{"page": "Home", "seconds": await timed(page, runs, lambda: page.goto(url)), "problems": []}]
        await page.locator(IDLE).wait_for()
        out[0]["problems"] = await problems(page)
        nav = page.locator("[data-testid='stSidebarNav']")
        for link in PAGES:
            seconds = await timed(page, runs, lambda link=link: nav.get_by_role("link", name=link).click())
            await page.locator(IDLE).wait_for()
            out.append({"page": link, "seconds": seconds, "problems": await problems(page)})
        return out
    finally:
        await context.close()


async def _other_network(page, name: str, weights: str = "random (untrained)") -> None:
    sidebar = page.locator("[data-testid='stSidebar']")
    await sidebar.locator("[data-testid='stSelectbox']").filter(has=page.get_by_text("Network", exact=True)).click()
    await page.get_by_role("option", name="Any timm or torchvision CNN ...").click()
    await page.locator(IDLE).wait_for()
    await sidebar.get_by_text(weights, exact=True).click()
    await page.locator(IDLE).wait_for()
    box = sidebar.get_by_label("timm or torchvision CNN", exact=True)
    await box.fill(name)
    await box.press("Enter")


async def careless(browser, url: str, act: str, files: dict[str, Path]) -> dict:
    """One careless session's actions; what the page said after each (the text that answered it, or problems)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    said: list[str] = []
    try:
        await page.goto(url)
        await page.locator(IDLE).wait_for()
        sidebar = page.locator("[data-testid='stSidebar']")
        if act == "huge":
            await _other_network(page, HUGE)
            said.append(await _answer(page, "is 3,386 MB"))
            await _other_network(page, "timm:resnet18", "a file of mine")
            await _answer(page, "State dict of timm:resnet18")  # its own uploader is there, and the run is over
            weights = sidebar.locator("[class*='st-key-weights_upload_'] input[type='file']")
            await weights.set_input_files(str(files["big"]))
            said.append(await _answer(page, "That file was not read"))
        elif act.startswith("mid"):
            await _other_network(page, MID_SIZE[int(act[-1])])
            said.append(await _answer(page, "Loaded in"))
        elif act == "png":
            for i in range(3):
                copy = files["png"].with_name(f"flat16-{i}.png")
                copy.write_bytes(files["png"].read_bytes())
                await sidebar.locator(".st-key-upload input[type='file']").set_input_files(str(copy))
                said.append(await _answer(page, f"In use: {copy.name}"))
            await page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Feature maps").click()
            said.append(await _answer(page, "was shrunk from 9400 x 9400 to 2048 x 2048 pixels on reading"))
        return {"act": act, "said": said, "problems": await problems(page)}
    finally:
        await context.close()


async def _answer(page, text: str) -> str:
    """Wait for the text that answers an action, and the run to end; return it (or, on a timeout, the sidebar)."""
    try:
        await page.get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)
        await page.locator(IDLE).wait_for()
        return await page.get_by_text(text).first.inner_text()
    except Exception:  # noqa: BLE001  the report says what the page showed instead
        return "NOT SHOWN: " + (await page.locator("[data-testid='stSidebar']").inner_text())[-600:]


def vm(pid: int, field: str) -> float:
    """A field of /proc/PID/status in MB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


async def run(students: int, folder: Path) -> dict:
    from playwright.async_api import async_playwright

    files = careless_files(folder)
    procs: list = []
    env = {"SPP_VIZ_MODEL_MEMORY_MB": str(MODEL_MEMORY_MB)}
    with streamlit_server(procs=procs, env=env) as url:
        pid = procs[0].pid
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            warm = await student(browser, url)  # the first visit of every page (imports, the cache's first fill)
            idle_mb = vm(pid, "VmRSS")
            alone = [s for group in await asyncio.gather(*(student(browser, url) for _ in range(students)))
                     for s in group]  # fmt: skip
            t0 = time.monotonic()
            acts = [careless(browser, url, a, files) for a in ("huge", "mid0", "mid1", "png")]
            results = await asyncio.gather(*(student(browser, url) for _ in range(students)), *acts)
            attack_s = time.monotonic() - t0
            during = [s for group in results[:students] for s in group]
            after = [s for group in await asyncio.gather(*(student(browser, url) for _ in range(students)))
                     for s in group]  # fmt: skip
            await browser.close()
        alive = procs[0].poll() is None
        peak_mb, end_mb = vm(pid, "VmHWM"), vm(pid, "VmRSS")
    return {
        "students": students, "warm": warm, "alone": alone, "during": during, "after": after,
        "careless": list(results[students:]), "idle_mb": idle_mb, "peak_mb": peak_mb, "end_mb": end_mb,
        "alive": alive, "attack_s": attack_s, "model_memory_mb": MODEL_MEMORY_MB,
    }  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(report: dict) -> str:
    rows = []
    for phase in ("alone", "during", "after"):
        t = [s["seconds"] for s in report[phase]]
        rows.append(f"| {phase} | {len(t)} | {percentile(t, 50):.2f} | {percentile(t, 95):.2f} | {max(t):.2f} |")
    ratio = percentile([s["seconds"] for s in report["during"]], 95) / percentile(
        [s["seconds"] for s in report["alone"]], 95
    )
    careless_rows = "\n".join(f"| {c['act']} | {' / '.join(x[:90] for x in c['said'])} |" for c in report["careless"])
    return (
        f"`python bench/careless_class.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()} "
        f"{os.cpu_count()} cores, CPU only; `spp-viz app` with SPP_VIZ_MODEL_MEMORY_MB={report['model_memory_mb']}, "
        f"{report['students']} students in Chromium (every page, the sample photo).\n\n"
        "| students' pages | pages | p50 s | p95 s | worst s |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"p95 during the careless sessions / alone: **{ratio:.2f}x** (goal: at most 3x). Server memory: idle "
        f"{report['idle_mb']:.0f} MB, peak {report['peak_mb']:.0f} MB (+{report['peak_mb'] - report['idle_mb']:.0f} "
        f"MB; bound: the model budget {report['model_memory_mb']} MB + 1 GB), at the end {report['end_mb']:.0f} MB; "
        f"the server process {'lived throughout' if report['alive'] else 'DIED'}.\n\n"
        "| careless session | what the app said |\n|---|---|\n" + careless_rows + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = asyncio.run(run(args.students, Path(tmp)))
    publish("careless_class.py", "A careless class: budgets under four careless sessions", summary(report), report,
            args)


if __name__ == "__main__":
    main()
