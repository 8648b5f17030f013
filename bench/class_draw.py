"""How long the teacher's screen takes with a class of 200 entries (issue 33: "a class of 200 entries still draws in
under a second").

For each of the three questions (views, heads, shuffle) a class is opened in a fresh SQLite file and 200 entries with
made-up predictions are stored (each arm's top-5, the true class, a poll answer; a thumbnail for every fourth). Timed,
median of 5: reading them back and summing them up (``store.entries`` + ``class_results``: the bootstrap intervals and
McNemar's tests, or the Wilson intervals), and one script run of the Class page in the teacher's role in AppTest (the
page's own code: table, sentences, poll chart, disagreement thumbnails, downloads), side by side with the same page on
an empty class. Run: python bench/class_draw.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENTRIES = 200
KEY = "bench-key"


def fill(store, code: str, n: int, asks: str) -> None:
    import io

    import numpy as np
    from PIL import Image

    from spp_viz.classroom import Entry, question

    arms, poll = question(asks).arms, question(asks).poll[0]

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.new("RGB", (128, 96), (90, 140, 200)).save(buf, "JPEG")
    for i in range(n):
        truth = int(rng.integers(1000))
        top5 = {v: [truth if rng.random() < 0.6 else int(rng.integers(1000)), *map(int, rng.integers(1000, size=4))]
                for v in arms}  # fmt: skip
        store.clock = lambda i=i: 1_900_000_000.0 + i * 61  # past the per-minute cap: one browser per minute
        store.submit(code, Entry(f"b{i}", truth, top5, {v: 0.5 for v in arms}, poll,
                                 thumbnail=buf.getvalue() if i % 4 == 0 else None))  # fmt: skip


def median_seconds(work, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def page_seconds(code: str, photos: int) -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run().switch_page("pages/9_Class.py").run()
    at.session_state["class_role"] = "teacher"
    at.session_state["class_teacher"] = (KEY, code)
    at.run()  # the first run loads the network and imports the page's modules: not timed
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["Photos"] == str(photos)  # the page did draw the class
    return median_seconds(at.run)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="spp-viz-class-bench-"))
    os.environ.update(SPP_VIZ_TEACHER_KEY=KEY, SPP_VIZ_OFFLINE="1", SPP_VIZ_CACHE=str(folder))
    url = f"sqlite:///{folder / 'classes.sqlite'}"
    os.environ["SPP_VIZ_DATABASE_URL"] = url
    from spp_viz.classroom import ClassStore, class_results

    for asks in ("views", "heads", "shuffle"):
        store = ClassStore(url, clock=lambda: 1_900_000_000.0)
        empty = store.open_class(KEY, "empty", hours=24, asks=asks)
        full = store.open_class(KEY, "two hundred", hours=24, asks=asks)
        fill(store, full.code, ENTRIES, asks)
        summed = median_seconds(lambda: class_results(store.entries(full.code), full))  # noqa: B023
        store.clock = lambda: 1_900_000_000.0  # the classes are open at this time
        print(f"[{asks}] store.entries + class_results, {ENTRIES} entries, median of 5: {summed:.3f} s")
        with_none, with_all = page_seconds(empty.code, 0), page_seconds(full.code, ENTRIES)
        print(f"[{asks}] the teacher's page, one script run, median of 5: empty class {with_none:.3f} s, {ENTRIES} "
              f"entries {with_all:.3f} s ({'met' if with_all <= 1.0 else 'MISSED'}: goal <= 1 s)")  # fmt: skip

if __name__ == "__main__":
    main()
