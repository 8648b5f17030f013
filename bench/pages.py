"""Classroom speed in a real browser: the app's cold start, and every page's time after a student's upload.

What a class sees, measured as it sees it: `bash run.sh app` started afresh (an empty cache folder, as on a fresh
clone), then Debian's Chromium (driven by Playwright, as in tests/test_browser.py) opens the home page. For each of
three ImageNet photos of different sizes (the smallest tenth, the median and the largest of `../shared/imagenet-sample`
by pixel count), a new browser session uploads the photo on the home page and clicks through every page of the
sidebar. A page's time runs from the click until Streamlit reports the script finished (its `stApp` element's
`data-test-script-state` left notRunning, to rerunRequested or running, and came back), no spinner shows, and the
browser has drawn the figures: Plotly draws them after the run has finished, and a page's figures still being drawn
would otherwise be counted in the next click's time. Drawn = the end of the last long task (the Long Tasks API)
before 300 ms without one.

  cold start = `bash run.sh app` launched -> the home page drawn (the script finished, "The network in use" shown)
  page       = click on the page's sidebar link (Home: the upload) -> script finished, no spinner, figures drawn
  tab        = on a page drawn one tab at a time (Pyramid pooling), click on each further tab -> the same

Goals (issue 31): cold start <= 5 s; every page's median <= 1.5 s, its worst <= 2.5 s.

Run: python bench/pages.py [--json FILE] [--no-write] [--pages PAGE ...]
Writes the table into bench/results.md between the `bench/pages.py` markers (unless --no-write).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.md"
PHOTOS = ROOT.parent / "shared" / "imagenet-sample"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = [  # the sidebar links (from pages/NN_Title.py), in menu order
    "Feature maps", "Pyramid pooling", "Strongest activations", "Crop warp SPP", "Attributions", "Detection",
    "SPP Lab", "Lab experiments",
]  # fmt: skip
TABS = {  # pages drawn one tab at a time: each further tab is timed from its click, as a page is
    "Pyramid pooling": [
        "Winner map", "The output vector", "Fixed length, shown", "Rule inspector: where the training rule breaks",
        "Position: the bag-of-words test",
    ],
}  # fmt: skip
COLD_GOAL, MEDIAN_GOAL, WORST_GOAL = 5.0, 1.5, 2.5
BEGIN, END = "<!-- bench/pages.py: begin -->", "<!-- bench/pages.py: end -->"

# Records every change of the app's script state with its time, so that a run too short to be polled is still seen.
OBSERVE_JS = """
() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__runs = [];
  new MutationObserver(() => window.__runs.push([performance.now(), app.getAttribute('data-test-script-state')]))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  window.__busy = 0;  // when the last long task (50 ms or more of the page's main thread) ended
  new PerformanceObserver((list) => list.getEntries().forEach(
    (e) => { window.__busy = Math.max(window.__busy, e.startTime + e.duration); })).observe({type: 'longtask'});
}
"""
# The figures are drawn after the script's run has finished: a page is drawn once no long task has run for QUIET ms.
QUIET_MS = 300
# True once a run that started after t0 has finished and nothing spins.
DONE_JS = """
(t0) => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  // A click shows rerunRequested at once; a short run's running and notRunning can reach the page in one render.
  if (!window.__runs.some(([t, s]) => t >= t0 && s !== 'notRunning')) return false;
  return document.querySelectorAll("[data-testid='stSpinner']").length === 0;
}
"""


def pick_photos() -> list[Path]:
    """The photos at the 10th percentile, the median and the largest pixel count of the ImageNet sample."""
    from PIL import Image

    files = sorted(PHOTOS.glob("*.JPEG"))
    if not files:
        sys.exit(f"no photos in {PHOTOS}: the bench needs ../shared/imagenet-sample beside the clone")

    def pixels(p: Path) -> int:
        with Image.open(p) as im:
            return im.width * im.height

    ranked = sorted(files, key=lambda p: (pixels(p), p.name))
    return [ranked[len(ranked) // 10], ranked[len(ranked) // 2], ranked[-1]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, cache: str, log) -> subprocess.Popen:
    env = {**os.environ, "SPP_VIZ_OFFLINE": "1", "SPP_VIZ_CACHE": cache}
    cmd = ["bash", str(ROOT / "run.sh"), "app", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/_stcore/health")
            if conn.getresponse().read() == b"ok":
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s")


def timed(page, action, timeout_s: float = 300) -> float:
    """Seconds from ``action()`` until a script run that it started has finished, no spinner shows and the browser
    has drawn what the run sent (the end of the last long task before QUIET_MS without one)."""
    t0 = page.evaluate("performance.now()")
    action()
    page.wait_for_function(DONE_JS, arg=t0, polling=25, timeout=timeout_s * 1000)
    done = page.evaluate("performance.now()")
    page.wait_for_function(f"() => performance.now() - window.__busy >= {QUIET_MS}", polling=25)
    t1 = max(done, page.evaluate("window.__busy"))
    errors = page.locator("[data-testid='stException']")
    if errors.count():
        raise RuntimeError(f"the page raised: {errors.first.inner_text()[:500]}")
    return (t1 - t0) / 1000


def label(name: str, tab: str | None) -> str:
    """A row of the table: the page, or one of its tabs after the first."""
    return name if tab is None else f"{name}, tab {tab!r}"


def run(photos: list[Path], pages: list[str] = PAGES) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    with tempfile.TemporaryDirectory() as cache, sync_playwright() as p, open(Path(cache) / "server.log", "w+") as log:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # before the clock starts
        launched = time.monotonic()
        proc = start_server(port, str(Path(cache) / "cache"), log)
        try:
            wait_healthy(port, proc)
            healthy = time.monotonic() - launched
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
            page.get_by_text("The network in use").first.wait_for(timeout=120_000)
            page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=120_000)
            cold = time.monotonic() - launched
            context.close()
            rows = [(name, None) for name in pages]
            rows = [row for name, _ in rows for row in [(name, None), *((name, tab) for tab in TABS.get(name, []))]]
            times: dict[str, list[float]] = {"Home (upload)": [], **{label(*row): [] for row in rows}}
            for photo in photos:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                page.get_by_text("The network in use").first.wait_for(timeout=120_000)
                page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=120_000)
                page.evaluate(OBSERVE_JS)
                upload = page.locator(".st-key-upload input[type='file']")
                times["Home (upload)"].append(timed(page, partial(upload.set_input_files, str(photo))))
                page.get_by_text(f"{photo.name}: what each approach feeds the network").first.wait_for()
                nav = page.locator("[data-testid='stSidebarNav'] a")
                for name, tab in rows:
                    if tab is None:
                        click = nav.filter(has_text=re.compile(rf"^{name}$")).first.click
                    else:
                        click = page.get_by_role("tab", name=tab, exact=True).click
                    times[label(name, tab)].append(timed(page, click))
                    print(f"  {photo.name}: {label(name, tab)} {times[label(name, tab)][-1]:.2f} s", flush=True)
                context.close()
        except Exception:
            log.seek(0)
            print(log.read()[-3000:], file=sys.stderr)
            raise
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        browser.close()
    return {"healthy_s": healthy, "cold_start_s": cold, "pages": times}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), CPU only, torch {torch.__version__}, Python {platform.python_version()}"


def table(result: dict, photos: list[Path]) -> str:
    from PIL import Image

    sizes = []
    for p in photos:
        with Image.open(p) as im:
            sizes.append(f"{p.name} ({im.width} x {im.height})")
    cold = result["cold_start_s"]
    lines = [
        f"`python bench/pages.py` on {result['date']}, {result['machine']}. Photos, one new browser session each: "
        + ", ".join(sizes)
        + ".",
        "",
        f"Cold start (`bash run.sh app` -> home page drawn): **{cold:.1f} s** (server healthy after "
        f"{result['healthy_s']:.1f} s); goal <= {COLD_GOAL:g} s: {'met' if cold <= COLD_GOAL else 'MISSED'}.",
        "",
        "| page | " + " | ".join(f"photo {k + 1} (s)" for k in range(len(photos))) + " | median | worst | goal |",
        "|---|" + "---|" * len(photos) + "---|---|---|",
    ]
    for name, ts in result["pages"].items():
        med, worst = statistics.median(ts), max(ts)
        ok = "met" if med <= MEDIAN_GOAL and worst <= WORST_GOAL else "**MISSED**"
        lines.append(f"| {name} | " + " | ".join(f"{t:.2f}" for t in ts) + f" | {med:.2f} | {worst:.2f} | {ok} |")
    return "\n".join(lines)


def write_results(text: str) -> None:
    old = RESULTS.read_text()
    section = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old:
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n## Classroom speed: every page in a browser\n\n" + section + "\n"
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave bench/results.md alone")
    parser.add_argument(
        "--pages", nargs="+", choices=PAGES, default=PAGES, metavar="PAGE", help="visit only these (implies --no-write)"
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")
    photos = pick_photos()
    result = run(photos, args.pages)
    result.update(date=time.strftime("%Y-%m-%d"), machine=machine(), photos=[p.name for p in photos])
    result["summary"] = {
        name: {"median_s": statistics.median(ts), "worst_s": max(ts)} for name, ts in result["pages"].items()
    }
    text = table(result, photos)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_write and args.pages == PAGES:
        write_results(text)


if __name__ == "__main__":
    main()
