"""Models within a byte budget, each in a fresh process (times and peaks include nothing of another run):

  refuse  registry.load("timm:convnext_xxlarge"): the seconds from the process's start (imports included) until the
          refusal, and the process's peak memory (before the budget: 228 s of both cores and 12.1 GB)
  build   registry.load(NAME) of networks within the cap, random weights: seconds, and the build's peak (the
          process's high-water mark, reset after its imports) above its memory then, as a multiple of the network's
          own size (the goal: about 2x)

Run: python bench/model_budget.py [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from sections import write_section  # noqa: E402

REFUSE = """
import json, resource, time
t0 = time.perf_counter()
from spp_viz import registry
try:
    registry.load("timm:convnext_xxlarge")
    said = "built"
except ValueError as e:
    said = str(e)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                  / 1024, "said": said}))
"""
BUILD = """
import json, sys, time
from spp_viz import budgets, registry
import timm, torchvision  # the libraries' own imports, before the baseline

def status(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field + ":")) / 1024

registry.size(sys.argv[1])
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark from here
base = status("VmRSS")
t0 = time.perf_counter()
model = registry.load(sys.argv[1])
seconds = time.perf_counter() - t0
peak = status("VmHWM") - base
size = sum(budgets.storages(model).values()) / 2**20
print(json.dumps({"seconds": seconds, "peak_mb": peak, "size_mb": size}))
"""
NETWORKS = ("torchvision:vgg16", "timm:convnext_base", "torchvision:resnet50")


def run(code: str, *args: str) -> dict:
    env = {**os.environ, "SPP_VIZ_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=600, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    refused = run(REFUSE)
    rows = [f"| refuse timm:convnext_xxlarge (3,386 MB) | {refused['seconds']:.1f} s | {refused['peak_mb']:,.0f} MB "
            "(the whole process) | - |"]  # fmt: skip
    for name in NETWORKS:
        got = run(BUILD, name)
        rows.append(f"| build {name} ({got['size_mb']:,.0f} MB) | {got['seconds']:.1f} s | +{got['peak_mb']:,.0f} MB "
                    f"| {got['peak_mb'] / got['size_mb']:.2f}x |")  # fmt: skip
    text = (
        f"`python bench/model_budget.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        "CPU only, each line a fresh process (random weights).\n\n"
        "| what | time | peak | peak / network size |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"The refusal said: \"{refused['said']}\"\n"
    )
    print(text)
    if not args.no_write:
        write_section("model_budget.py", text, "Models within a byte budget")


if __name__ == "__main__":
    main()
