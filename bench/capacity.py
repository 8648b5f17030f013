"""How many students a server holds: the scenarios of a classroom, played by simulated students that speak the
browser's own protocol (``bench/student.py``: almost no CPU of their own, so the server is what is measured).

  burst    N students open the app at the same moment, each uploads a photo of its own (the 500 of
           ../shared/imagenet-sample where present, else the app's samples re-cut) and opens Feature maps, Pyramid
           pooling and Crop, warp or SPP with no pause: the time until the last page finished, and each page's p50
           and p95, for N = 10, 30, 60, 120; on `spp-viz serve --replicas 1` and `--replicas 2`, side by side.
  lesson   N students for some minutes with reading pauses (10 to 30 s), driven by Locust (bench/locustfile.py,
           headless): each page's p95, and the server's memory per student.
  start    the burst of 30 on the sample photo (its results cached: the issue's measure) and with 30 different
           uploads, under `streamlit run app.py` against `spp-viz app`.

Every scenario reports the load generator's own CPU share (its CPU seconds over the wall time of both cores). The
results go into bench/results.md between the `bench/capacity.py` markers (unless --no-write); --json keeps them all.

    python bench/capacity.py [--bursts 10,30,60,120] [--lesson 30,60] [--minutes 5] [--skip lesson,start,...]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from sections import publish  # noqa: E402
from student import Student, StudentError  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "imagenet-sample"
PAGES = ("Feature maps", "Pyramid pooling", "Crop warp SPP")
P95_GOAL = 2.0  # seconds: the answer for a school is the students per core at which the p95 stays within it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_files(count: int, folder: Path) -> list[Path]:
    """``count`` different photos: ImageNet's where ../shared has them, else the app's samples re-cut (crops of
    random size and place, saved as JPEG)."""
    found = sorted(PHOTOS.glob("*.JPEG")) if PHOTOS.is_dir() else []
    if len(found) >= count:
        return found[:count]
    rng = random.Random(0)
    samples = [Image.open(p).convert("RGB") for p in sorted((ROOT / "assets" / "samples").glob("*.jpg"))]
    out = []
    for i in range(count):
        img = samples[i % len(samples)]
        w, h = rng.randint(img.width // 2, img.width), rng.randint(img.height // 2, img.height)
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        path = folder / f"recut-{i:03d}.jpg"
        img.crop((x, y, x + w, y + h)).save(path, quality=90)
        out.append(path)
    return out


class Server:
    """An app server (or N behind HAProxy) started for a scenario; stopped on exit. ``pids`` are the processes that
    serve (the replicas, not HAProxy or serve's supervisor)."""

    def __init__(self, kind: str, log: Path, replicas: int = 1) -> None:
        self.kind, self.log, self.replicas, self.port = kind, log, replicas, free_port()
        env = {**os.environ, "SPP_VIZ_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}
        flags = ["--server.port", str(self.port), "--server.address", "127.0.0.1"]
        if kind == "serve":
            cmd = [sys.executable, "-m", "spp_viz", "serve", "--replicas", str(replicas), "--port", str(self.port),
                   "--address", "127.0.0.1"]  # fmt: skip
        elif kind == "streamlit run":
            cmd = [str(Path(sys.executable).parent / "streamlit"), "run", "app.py", *flags]
        else:
            cmd = [sys.executable, "-m", "spp_viz", "app", *flags]
        self.out = open(log, "w")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def _healthy(self) -> bool:
        import requests

        try:
            return requests.get(self.url + "/_stcore/health", timeout=2).text == "ok"
        except requests.RequestException:
            return False

    @property
    def pids(self) -> list[int]:
        procs = psutil.Process(self.proc.pid).children(recursive=True) + [psutil.Process(self.proc.pid)]
        return [p.pid for p in procs if "haproxy" not in p.name() and ("streamlit" in " ".join(p.cmdline())
                or "launch.py" in " ".join(p.cmdline()))]  # fmt: skip

    def rss_mb(self) -> float:
        return sum(psutil.Process(pid).memory_info().rss for pid in self.pids) / 2**20

    def cpu_s(self) -> float:
        return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in self.pids)

    def warm(self) -> None:
        """One student through every page of the burst first, on every replica: imports, the network, the sample's
        results (each replica is a process of its own; HAProxy spreads new students over them)."""
        warmed: set[str | None] = set()
        for _ in range(4 * self.replicas):
            with Student(self.url) as s:
                s.open()
                if s.replica in warmed:
                    continue
                for name in PAGES:
                    s.page(name)
                warmed.add(s.replica)
            if len(warmed) == self.replicas:
                return
        raise RuntimeError(f"warmed {sorted(map(str, warmed))} of {self.replicas} replicas")

    def stop(self) -> None:
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
        self.out.close()


def one_student(url: str, photo: Path | None, barrier: threading.Barrier, out: dict) -> None:
    """Open, upload, then every page of the burst; what it saw goes into ``out``."""
    out.update(pages=[], problems=[], replica=None)
    student = Student(url, timeout=900)
    try:
        barrier.wait()
        out["start"] = time.monotonic()
        page = student.open()
        out["pages"].append(("Home", page.seconds))
        out["problems"] += page.exceptions + page.errors
        if photo is not None:
            page = student.upload(photo.read_bytes(), photo.name)
            out["pages"].append(("Upload", page.seconds))
            if not page.shows(f"In use: **{photo.name}**"):
                out["problems"].append(f"{photo.name} not in use")
        for name in PAGES:
            page = student.page(name)
            out["pages"].append((name, page.seconds))
            out["problems"] += page.exceptions + page.errors
            if photo is not None and not page.shows(f"In use: **{photo.name}**"):
                out["problems"].append(f"{name}: {photo.name} no longer in use")
        out["replica"] = student.replica
    except StudentError as e:
        out["problems"].append(str(e))
    except Exception as e:  # noqa: BLE001  any failure of a student is a problem the report counts
        out["problems"].append(f"{type(e).__name__}: {e}")
    finally:
        out["done"] = time.monotonic()
        student.close()


def burst(server: Server, n: int, photos: list[Path] | None) -> dict:
    """N students at the same moment; the time until the last finished, page percentiles, the generator's CPU."""
    barrier = threading.Barrier(n + 1)
    outs = [{} for _ in range(n)]
    threads = [threading.Thread(target=one_student, args=(server.url, photos[i] if photos else None, barrier, outs[i]))
               for i in range(n)]  # fmt: skip
    for t in threads:
        t.start()
    cpu0, server0 = time.process_time(), server.cpu_s()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    wall = max(o["done"] for o in outs) - t0
    times = [s for o in outs for _, s in o["pages"]]
    replicas = [o["replica"] for o in outs if o["replica"]]
    return {
        "students": n, "all_done_s": wall, "p50_s": float(np.percentile(times, 50)),
        "p95_s": float(np.percentile(times, 95)), "pages": len(times),
        "problems": [p for o in outs for p in o["problems"]],
        "generator_cpu": (time.process_time() - cpu0) / (wall * os.cpu_count()),
        "server_cpu": (server.cpu_s() - server0) / (wall * os.cpu_count()),
        "replicas": {r: replicas.count(r) for r in sorted(set(replicas))},
    }  # fmt: skip


def lesson(server: Server, users: int, minutes: float, photos: list[Path], folder: Path) -> dict:
    """Locust, headless, ``users`` students with reading pauses for ``minutes``: each page's p95 from its CSV."""
    shown = folder / f"photos-{users}"
    shown.mkdir(exist_ok=True)
    for p in photos:
        shutil.copy(p, shown / p.name)
    idle_mb = server.rss_mb()
    prefix = folder / f"lesson-{server.replicas}-{users}"
    env = {**os.environ, "SPP_VIZ_PHOTOS": str(shown)}
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
           "--host", server.url, "--users", str(users), "--spawn-rate", str(users),
           "--run-time", f"{minutes * 60:.0f}s", "--csv", str(prefix), "--only-summary"]  # fmt: skip
    start = time.monotonic()
    proc = psutil.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_mb, cpu = idle_mb, 0.0
    while proc.poll() is None:
        try:
            cpu = sum(proc.cpu_times()[:2])
        except psutil.NoSuchProcess:
            break
        peak_mb = max(peak_mb, server.rss_mb())
        time.sleep(2)
    wall = time.monotonic() - start
    rows = list(csv.DictReader(io.StringIO(Path(f"{prefix}_stats.csv").read_text())))
    pages = {r["Name"]: {"requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                         "p50_s": float(r["50%"]) / 1000, "p95_s": float(r["95%"]) / 1000}
             for r in rows if r["Type"] == "page"}  # fmt: skip
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return {
        "students": users, "minutes": minutes, "pages": pages, "failures": int(total["Failure Count"]),
        "p95_s": float(total["95%"]) / 1000, "idle_mb": idle_mb, "peak_mb": peak_mb,
        "mb_per_student": (peak_mb - idle_mb) / users, "generator_cpu": cpu / (wall * os.cpu_count()),
    }  # fmt: skip


def run(args: argparse.Namespace, folder: Path) -> dict:
    photos = photo_files(sum(args.bursts) + max(args.lesson or [0]), folder)
    report: dict = {"bursts": {}, "lessons": {}, "start": {}}
    for replicas in (1, 2):
        server = Server("serve", folder / f"serve-{replicas}.log", replicas)
        try:
            server.warm()
            used = 0
            for n in args.bursts if "burst" not in args.skip else []:
                report["bursts"][f"{replicas}-{n}"] = result = burst(server, n, photos[used : used + n])
                used += n
                print(f"burst of {n} on {replicas} replica(s): {result['all_done_s']:.1f} s, p95 "
                      f"{result['p95_s']:.2f} s, generator {result['generator_cpu']:.1%}", flush=True)  # fmt: skip
            for users in args.lesson if "lesson" not in args.skip else []:
                report["lessons"][f"{replicas}-{users}"] = result = lesson(server, users, args.minutes,
                                                                             photos[:users], folder)  # fmt: skip
                print(f"lesson of {users} on {replicas} replica(s): p95 {result['p95_s']:.2f} s, "
                      f"{result['mb_per_student']:.0f} MB a student", flush=True)  # fmt: skip
        finally:
            server.stop()
    for kind in ("streamlit run", "spp-viz app") if "start" not in args.skip else []:
        server = Server(kind, folder / f"{kind.replace(' ', '-')}.log")
        try:
            server.warm()
            report["start"][kind] = {"sample": burst(server, 30, None), "uploads": burst(server, 30, photos[-30:])}
            print(f"{kind}: burst of 30 on the sample {report['start'][kind]['sample']['all_done_s']:.1f} s, "
                  f"with uploads {report['start'][kind]['uploads']['all_done_s']:.1f} s", flush=True)  # fmt: skip
        finally:
            server.stop()
    return report


def tables(report: dict, args: argparse.Namespace) -> str:
    cores = os.cpu_count()
    lines = [
        f"`python bench/capacity.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, {cores} cores, CPU only; "
        f"simulated students (bench/student.py) with {'ImageNet photos' if PHOTOS.is_dir() else 'the samples re-cut'}."
        "\n\n**The burst**: every student opens the app at the same moment, uploads a photo of its own and opens three "
        "pages with no pause.\n",
        "| students | replicas | all done | page p50 | page p95 | problems | generator CPU | server CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, b in report["bursts"].items():
        replicas = key.split("-")[0]
        lines.append(f"| {b['students']} | {replicas} | {b['all_done_s']:.1f} s | {b['p50_s']:.2f} s | "
                     f"{b['p95_s']:.2f} s | {len(b['problems'])} | {b['generator_cpu']:.1%} | {b['server_cpu']:.0%} |")
    if report["lessons"]:
        lines += ["", f"**The lesson**: students read 10 to 30 s between clicks, for {args.minutes:g} minutes "
                  "(Locust, headless).\n", "| students | replicas | page p95 | failures | memory a student | "
                  "generator CPU |", "|---|---|---|---|---|---|"]  # fmt: skip
        for key, le in report["lessons"].items():
            lines.append(f"| {le['students']} | {key.split('-')[0]} | {le['p95_s']:.2f} s | {le['failures']} | "
                         f"{le['mb_per_student']:.0f} MB | {le['generator_cpu']:.1%} |")  # fmt: skip
    if report["start"]:
        lines += ["", "**One start, whatever the command**: the burst of 30 students.\n",
                  "| server | on the sample photo (cached) | p95 | with 30 uploads | p95 |", "|---|---|---|---|---|"]
        for kind, r in report["start"].items():
            lines.append(f"| `{kind}` | {r['sample']['all_done_s']:.1f} s | {r['sample']['p95_s']:.2f} s | "
                         f"{r['uploads']['all_done_s']:.1f} s | {r['uploads']['p95_s']:.2f} s |")  # fmt: skip
    lines += ["", answer(report, cores)]
    return "\n".join(lines) + "\n"


def answer(report: dict, cores: int) -> str:
    """Students per core at a page p95 within P95_GOAL, for the burst and the lesson, from the largest N that met it."""
    out = []
    for what, runs in (("burst", report["bursts"]), ("lesson", report["lessons"])):
        for replicas in ("1", "2"):
            met = [r["students"] for k, r in runs.items() if k.startswith(replicas + "-") and r["p95_s"] <= P95_GOAL]
            tried = [r["students"] for k, r in runs.items() if k.startswith(replicas + "-")]
            if tried:
                best = max(met) if met else 0
                out.append(f"{what}, {replicas} replica(s): p95 <= {P95_GOAL:g} s up to {best} students of those "
                           f"tried ({', '.join(map(str, tried))}): **{best / cores:g} students per core**")  # fmt: skip
    return "Students per core (this machine's cores): " + "; ".join(out) + "." if out else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", default="10,30,60,120", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--lesson", default="30,60", type=lambda s: [int(x) for x in s.split(",") if x])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--skip", default="", help="comma-separated: burst, lesson, start")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args, Path(tmp))
    publish("capacity.py", "Capacity: simulated students", tables(report, args), report, args)


if __name__ == "__main__":
    main()
