"""One app server against two behind HAProxy, side by side in one run (issue 34): page reruns served per minute to a
fixed number of browser sessions, and how long a student waits for a page (median, 95th percentile).

For each configuration `spp-viz serve --replicas R` starts on loopback (R = 1 and 2; both through HAProxy, so the
proxy's cost is in both), Chromium opens S sessions (default 6), each uploads an ImageNet photo of its own from
../shared/imagenet-sample and then, for the measured window (default 90 s), clicks between two pages (Feature maps,
Crop warp SPP) as fast as each page is served: a click counts when the page's result shows and its script run has
finished. The first round of each session (the network's first pass on its photo) is not counted. Run:

    python bench/replicas.py [--sessions S] [--seconds T] [--json FILE] [--no-write]

Writes its table into bench/results.md between the `bench/replicas.py` markers (unless --no-write).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PHOTOS = ROOT.parent / "shared" / "imagenet-sample"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip
PAGES = [("Feature maps", "(rank 1 of 1280)"), ("Crop warp SPP", "Download the predictions (CSV)")]
GOAL = 1.3  # issue 34: two replicas at least 1.3x one replica's throughput on this machine
TIMEOUT_MS = 600_000


def serve_folder(log: Path) -> Path:
    """The folder where serve keeps its replicas' logs and pid files, as its log names it."""
    return Path(re.search(r"\(log: (\S+)/replica-r1\.log\)", log.read_text()).group(1))


def cpu_seconds(log: Path) -> tuple[float, float, float]:
    """(the app servers' CPU seconds, the whole machine's busy seconds, its idle seconds) so far, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    servers = 0.0
    for pid_file in serve_folder(log).glob("replica-r*.pid"):
        fields = Path(f"/proc/{pid_file.read_text().strip()}/stat").read_text().rsplit(")", 1)[1].split()
        servers += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = (cpu[3] + cpu[4]) / tick  # idle, iowait
    return servers, sum(cpu) / tick - idle, idle


def rss_mb(log: Path) -> list[float]:
    """Each replica's resident memory now (MB), read from /proc through the pid files serve writes."""
    out = []
    for pid_file in sorted(serve_folder(log).glob("replica-r*.pid")):
        status = Path(f"/proc/{pid_file.read_text().strip()}/status").read_text()
        out.append(int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024)
    return out


def start(replicas: int, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "spp_viz", "serve", "--replicas", str(replicas), "--port", str(port),
           "--address", "127.0.0.1"]  # fmt: skip
    env = {**os.environ, "SPP_VIZ_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while "SPP-net Explorer: http" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"serve --replicas {replicas} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return proc


async def idle(page) -> None:
    await page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=TIMEOUT_MS)


async def student(browser, url: str, photo: Path, ready: asyncio.Queue, window: asyncio.Future,
                  waits: list[float]) -> None:  # fmt: skip
    """One session: upload, a first round of both pages (not counted), then click between them until the window
    closes; each page served inside the window is one wait."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(url, timeout=TIMEOUT_MS)
    await idle(page)
    await page.locator(".st-key-upload input[type='file']").set_input_files(str(photo))
    await page.get_by_text(f"In use: {photo.name}").first.wait_for(timeout=TIMEOUT_MS)
    await idle(page)
    for link, text in PAGES:
        await open_page(page, link, text)
    await ready.put(photo.name)
    end = await window  # the window opens once every session has had its first round
    i = 0
    while time.monotonic() < end:
        link, text = PAGES[i % 2]
        t0 = time.monotonic()
        await open_page(page, link, text)
        if time.monotonic() <= end:
            waits.append(time.monotonic() - t0)
        i += 1
    await context.close()


async def open_page(page, link: str, text: str) -> None:
    await page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=link).click()
    await page.get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)
    await idle(page)


async def measure(url: str, photos: list[Path], seconds: float) -> list[float]:
    from playwright.async_api import async_playwright

    waits: list[float] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ready: asyncio.Queue = asyncio.Queue()
        window = asyncio.get_running_loop().create_future()
        tasks = [asyncio.create_task(student(browser, url, ph, ready, window, waits)) for ph in photos]
        for _ in photos:
            await ready.get()
        window.set_result(time.monotonic() + seconds)
        await asyncio.gather(*tasks)
        await browser.close()
    return waits


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def table(result: dict) -> str:
    one, two = result["runs"]["1"], result["runs"]["2"]
    ratio = two["per_minute"] / one["per_minute"]
    lines = [
        f"`python bench/replicas.py --sessions {result['sessions']} --seconds {result['seconds']:g}` on "
        f"{result['date']}, {result['machine']}: {result['sessions']} Chromium sessions, each with its own ImageNet "
        "photo, clicking between Feature maps and Crop warp SPP as fast as each page is served (Chromium runs on the "
        "same two cores as the servers), through HAProxy in both configurations.",
        "",
        "| app servers | pages served per minute | wait median | wait 95th percentile | pages counted "
        "| memory per server, idle / after (MB) | CPU time: servers / browsers and the rest / idle |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ("1", "2"):
        x = result["runs"][r]
        memory = ", ".join(f"{a} / {b}" for a, b in zip(x["rss_idle_mb"], x["rss_after_mb"], strict=True))
        cpu = f"{x['cpu_servers']:.0%} / {x['cpu_others']:.0%} / {x['cpu_idle']:.0%}"
        lines.append(f"| {r} | {x['per_minute']:.1f} | {x['median_s']:.2f} s | {x['p95_s']:.2f} s | {x['count']} "
                     f"| {memory} | {cpu} |")  # fmt: skip
    lines += ["", f"Two replicas against one: **{ratio:.2f}x** the throughput (goal: at least {GOAL}x: "
              f"{'met' if ratio >= GOAL else 'MISSED'})."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=6, help="browser sessions at once (default 6)")
    parser.add_argument("--seconds", type=float, default=90.0, help="the measured window per configuration")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave bench/results.md alone")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")
    photos = sorted(PHOTOS.glob("*.JPEG"))[:: max(1, 500 // args.sessions)][: args.sessions]
    if len(photos) < args.sessions:
        sys.exit(f"needs {args.sessions} photos in {PHOTOS} (../shared/imagenet-sample beside the clone)")
    from sections import write_section

    from pages import machine

    result = {"sessions": args.sessions, "seconds": args.seconds, "runs": {}}
    for replicas, port in ((1, 18610), (2, 18620)):
        log = Path(f"/tmp/spp-viz-bench-serve-{replicas}.log")
        proc = start(replicas, port, log)
        try:
            idle_rss = rss_mb(log)
            before = cpu_seconds(log)
            waits = asyncio.run(measure(f"http://127.0.0.1:{port}", photos, args.seconds))
            servers, busy, idle = (b - a for a, b in zip(before, cpu_seconds(log), strict=True))
            busy_rss = rss_mb(log)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        result["runs"][str(replicas)] = {
            "count": len(waits), "per_minute": len(waits) / args.seconds * 60,
            "median_s": statistics.median(waits), "p95_s": p95(waits),
            "rss_idle_mb": [round(x) for x in idle_rss], "rss_after_mb": [round(x) for x in busy_rss],
            # Of the machine's CPU time while the sessions ran (uploads and first rounds included): the app servers',
            # everything else's (Chromium, HAProxy, this script), and idle.
            "cpu_servers": servers / (busy + idle), "cpu_others": (busy - servers) / (busy + idle),
            "cpu_idle": idle / (busy + idle),
        }  # fmt: skip
        print(f"{replicas} replica(s): {result['runs'][str(replicas)]}", flush=True)
    result.update(date=time.strftime("%Y-%m-%d"), machine=machine())
    text = table(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_write:
        write_section("replicas.py", text, "Replicas: one app server against two behind HAProxy (issue 34)")


if __name__ == "__main__":
    main()
