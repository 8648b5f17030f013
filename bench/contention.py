"""GradCAM's latency alone and while another thread runs Occlusion on a 512-pixel image (the shared server's case).

Before, every method held the shared model's one lock, so GradCAM waited for the whole Occlusion run. Now no method
holds a lock; what is left is the CPU they share. Prints JSON: idle_s, under_load_s (medians), ratio.

    python bench/contention.py [--repeats 7] [--old-lock]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from badfiles import photo  # noqa: E402

from spp_viz.explain import attribution as A  # noqa: E402
from spp_viz.images import resize_short_side, to_tensor  # noqa: E402
from spp_viz.models import load_model


def gradcam_seconds(model, x, repeats: int, lock: threading.Lock | None = None) -> list[float]:
    out = []
    for _ in range(repeats):
        time.sleep(0.2)  # a student's next click comes a moment later (and a held lock goes back to its waiter)
        start = time.perf_counter()
        with lock or contextlib.nullcontext():
            A.gradcam(model, x, 281)
        out.append(time.perf_counter() - start)
    return out


def under_load(model, small, big, repeats: int, lock: threading.Lock | None) -> list[float]:
    """GradCAM timings while a thread runs Occlusion on ``big`` again and again (under ``lock``, if given)."""
    stop = threading.Event()

    def heavy() -> None:
        while not stop.is_set():
            with lock or contextlib.nullcontext():
                A.occlusion(model, big, 281)
            time.sleep(0.05)  # a lock is not fair: without a pause this thread would take it straight back

    worker = threading.Thread(target=heavy, daemon=True)
    worker.start()
    time.sleep(2.0)  # let Occlusion get going
    timings = gradcam_seconds(model, small, repeats, lock)
    stop.set()
    worker.join(timeout=600)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--old-lock", action="store_true", help="also time the old one-lock design")
    args = parser.parse_args()
    model = load_model(device="cpu")
    small = to_tensor(resize_short_side(photo(320, 240, seed=1), 224))
    big = to_tensor(resize_short_side(photo(640, 480, seed=2), 512))
    gradcam_seconds(model, small, 2)  # warm-up
    idle = gradcam_seconds(model, small, args.repeats)

    loaded = under_load(model, small, big, args.repeats, None)
    result = {
        "idle_s": statistics.median(idle),
        "under_load_s": statistics.median(loaded),
        "ratio": statistics.median(loaded) / statistics.median(idle),
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "occlusion_windows_512": A.occlusion_windows(tuple(big.shape[-2:])),
        "goal": "ratio <= 2",
    }
    if args.old_lock:
        # The old design, side by side: one lock per model, held by every method for its whole run.
        old = under_load(model, small, big, 3, threading.Lock())
        result["old_lock_under_load_s"] = statistics.median(old)
        result["old_lock_ratio"] = statistics.median(old) / result["idle_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
