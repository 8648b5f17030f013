"""Photos within a byte budget: the peak memory and time of decoding a photo near the pixel cap, in a fresh process
per file (its high-water mark, reset just before the decode, minus its resident size then), for a 16-bit grey PNG,
a float TIFF, an RGBA PNG and a progressive JPEG of 10,000 x 9,500 pixels (one flat colour), and the 194 KB,
9,400 x 9,400 16-bit PNG of issue 44 (before the budget: 4.8 s and +2.8 GB). The budget: 4 bytes a pixel of the full
size plus 100 MB.

Run: python bench/intake.py [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sections import write_section  # noqa: E402
from test_intake_memory import KINDS, NEAR_CAP, PEAK, near_cap  # noqa: E402

TIMED = PEAK.replace('img = load_image(data, name="big")', 'import time; t = time.perf_counter(); '
                     'img = load_image(data, name="big"); seconds = time.perf_counter() - t').replace(
    '"mode": img.mode}', '"mode": img.mode, "seconds": seconds}')  # fmt: skip
assert "seconds" in TIMED


def measure(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", TIMED, str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {kind: (near_cap(kind, NEAR_CAP), NEAR_CAP) for kind in KINDS}
        issue = Path(tmp) / "issue.png"
        Image.fromarray(np.full((9400, 9400), 30000, np.uint16)).save(issue, optimize=True)
        files["issue 44's PNG (194 KB)"] = (issue.read_bytes(), (9400, 9400))
        for kind, (data, (w, h)) in files.items():
            path = Path(tmp) / kind.replace(" ", "_")
            path.write_bytes(data)
            got = measure(path)
            bound = w * h * 4 / 2**20 + 100
            rows.append(f"| {kind} | {w:,} x {h:,} | {len(data) / 1e6:.1f} MB | {got['peak_mb']:.0f} MB | "
                        f"{bound:.0f} MB | {got['seconds']:.2f} s |")  # fmt: skip
    text = (
        f"`python bench/intake.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores: each "
        "file decoded by `images.load_image` in a fresh process (peak = its VmHWM, reset just before, minus its VmRSS "
        "then).\n\n"
        "| file | pixels | file size | peak | budget | time |\n|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(text)
    if not args.no_write:
        write_section("intake.py", text, "Photos within a byte budget")


if __name__ == "__main__":
    main()
