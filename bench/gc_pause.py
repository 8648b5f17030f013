"""The pause Streamlit adds after every script run: ``gc.collect(2)`` (its ``runner.postScriptGC``), holding the GIL.

In the server's process after the warm-up (the home page's imports and the default network, as `spp-viz app` has
them), a full collection is timed with the warm-up's objects frozen (what ``ui.warmup`` does) and unfrozen, side by
side. Run: python bench/gc_pause.py
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py's folder: the ui package


def collect_seconds(repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gc.collect(2)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import ui.warmup

    ui.warmup.start()
    ui.warmup.wait()
    frozen = gc.get_freeze_count()
    with_freeze = collect_seconds()
    gc.unfreeze()
    tracked = len(gc.get_objects())
    without = collect_seconds()
    print(f"objects after the warm-up: {tracked:,} ({frozen:,} frozen by it)")
    print(f"gc.collect(2), median of 5: {without * 1000:.0f} ms unfrozen, {with_freeze * 1000:.1f} ms frozen")


if __name__ == "__main__":
    main()
