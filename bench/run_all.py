"""Run every benchmark in one go and write bench/latest-run.md: the machine, a table of the ratios, each full output.

Run: python bench/run_all.py [--skip-slow]   (about 20 minutes on the 2-core CPU; --skip-slow leaves out the
attribution and detection benchmarks, which take most of it)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
OUT = HERE / "latest-run.md"  # bench/results.md (kept by hand) quotes its figures with their dates

# (name, command, [(label, regex whose group 1 is the figure, goal)]), each benchmark's own printed lines.
BENCHES = [
    (
        "feature-maps page vs bare forward",
        [sys.executable, str(HERE / "features.py")],
        [
            (f"overhead ratio, {s} long side", rf"^\s+{s}\s.*?(\d+\.\d+)\s+(?:ok|MISSED)$", "<= 1.5")
            for s in (224, 512, 1024)
        ],
        False,
    ),
    (
        "pyramid page redraw",
        [sys.executable, str(HERE / "pyramid_redraw.py")],
        [("redraw vs recomputing conv5 (x faster)", r"\((\d+\.\d+)x faster", "redraw without conv5")],
        False,
    ),
    (
        "activation index throughput",
        [sys.executable, str(HERE / "activation_index.py")],
        [("index / bare forward throughput", r"ratio (\d+\.\d+)", ">= 0.8")],
        False,
    ),
    (
        "views bench throughput",
        [sys.executable, str(HERE / "views.py")],
        [("views bench / bare forward throughput", r"ratio (\d+\.\d+)", ">= 0.8")],
        False,
    ),
    (
        "attribution cost",
        [sys.executable, str(HERE / "attribution.py"), "--repeats", "3"],
        [
            ("GradCAM / forward, 224", r"GradCAM / forward = (\d+\.\d+)", "<= 3"),
            ("GradCAM / forward, 1024", r"(?s)GradCAM / forward = .*?GradCAM / forward = (\d+\.\d+)", "<= 3"),
        ],
        True,
    ),
    (
        "detection: R-CNN vs SPP-net",
        [sys.executable, "-m", "spp_viz", "bench", "detection"],
        [
            ("conv speed-up (x)", r"conv speed-up:\s+(\d+\.\d+)x", ">= 300"),
            ("conv + pooling/fc speed-up (x)", r"conv \+ pooling/fc speed-up:\s+(\d+\.\d+)x", ">= 200"),
            ("R-CNN / bare forward throughput", r"throughput ratio (\d+\.\d+)", ">= 0.9"),
        ],
        True,
    ),
    (
        "detection lab: SVMs, box regression, mAP",
        [sys.executable, str(HERE / "detection_lab.py")],
        [
            ("detection-lab at its defaults (s)", r"defaults, empty cache: (\d+) s", "<= 300"),
            ("feature speed-up, 2,000 windows (x)", r"windows: SPP-net .* per image: (\d+)x", ">= 50"),
        ],
        True,
    ),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"GPU: {gpu}; Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()
    rows, outputs = [], []
    for name, cmd, figures, slow in BENCHES:
        if slow and args.skip_slow:
            continue
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        run = subprocess.run(
            cmd, capture_output=True, text=True, cwd=HERE.parent, env={**os.environ, "PYTHONPATH": str(HERE)}
        )
        seconds = time.perf_counter() - start
        outputs.append((name, seconds, run.stdout.strip() or run.stderr.strip()[-2000:]))
        for label, pattern, goal in figures:
            m = re.search(pattern, run.stdout, flags=re.MULTILINE)
            rows.append((label, m.group(1) if m else "failed", goal))
            print(f"   {label}: {rows[-1][1]} (goal {goal})", flush=True)
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python bench/run_all.py` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Machine: {machine()}.",
        "",
        "| figure | measured | goal |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {value} | {goal} |" for label, value, goal in rows]
    for name, seconds, text in outputs:
        lines += ["", f"## {name} ({seconds:.0f} s)", "", "```", text, "```"]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
