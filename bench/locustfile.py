"""A class of simulated students for Locust (https://locust.io): each user is one browser session spoken over
Streamlit's protocol (``bench/student.py``), weighted like a lesson: they read between clicks (10 to 30 s), look at
the Feature maps, Pyramid pooling and Crop, warp or SPP pages, now and then upload another photo, and submit to the
class when one is open. Each page is reported to Locust as a request (type "page", named by the page), so Locust's
percentiles, failures and CSV files come for free; a run that raised or showed an error box is a failure.

One machine:
    locust -f bench/locustfile.py --headless --host http://127.0.0.1:8501 --users 30 --spawn-rate 30 \\
        --run-time 5m --csv lesson

Several machines (a school loading a bigger server): one master, any number of workers, each pointing at it:
    locust -f bench/locustfile.py --master --headless --expect-workers 2 --host http://SERVER:8501 --users 200 ...
    locust -f bench/locustfile.py --worker --master-host MASTER_ADDRESS     (on each load machine)

Settings from the environment: SPP_VIZ_PHOTOS (a folder of photos each student picks from; default the app's
samples), SPP_VIZ_CLASS_CODE (a class to submit to), SPP_VIZ_WAIT ("10,30": the reading pause in seconds).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from locust import User, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student import Page, Student  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("Feature maps", "Pyramid pooling", "Crop warp SPP")


def photos() -> list[Path]:
    folder = Path(os.environ.get("SPP_VIZ_PHOTOS") or ROOT / "assets" / "samples")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise RuntimeError(f"no photos in {folder}")
    return found


WAIT = tuple(float(x) for x in os.environ.get("SPP_VIZ_WAIT", "10,30").split(","))


class Classmate(User):
    """One student of a lesson."""

    wait_time = between(*WAIT)

    def on_start(self) -> None:
        self.student = Student(self.host, timeout=600)
        self.photos = photos()
        self.timed("Home", self.student.open)
        self.upload()

    def on_stop(self) -> None:
        self.student.close()

    def timed(self, name: str, action) -> Page | None:  # noqa: ANN001
        """Run one action and report it to Locust as a request: its time, and a failure when it raised, showed an
        error box, or the connection failed."""
        start, page, failure = time.perf_counter(), None, None
        try:
            page = action()
            problems = page.exceptions + page.errors
            if page.status != "finished" or problems:
                failure = RuntimeError(f"{name}: {page.status}; {' | '.join(problems)[:500]}")
        except Exception as e:  # noqa: BLE001  reported to Locust, which counts it
            failure = e
        events.request.fire(
            request_type="page", name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=len(page.texts) if page else 0, exception=failure,
            context={"replica": self.student.replica},
        )  # fmt: skip
        return page

    def upload(self) -> None:
        photo = random.choice(self.photos)
        page = self.timed("Upload", lambda: self.student.upload(photo.read_bytes(), photo.name))
        if page is not None and not page.shows(f"In use: **{photo.name}**"):
            events.request.fire(request_type="check", name="upload in use", response_time=0, response_length=0,
                                exception=RuntimeError(f"{photo.name} is not in use"), context={})  # fmt: skip

    @task(3)
    def feature_maps(self) -> None:
        self.timed("Feature maps", lambda: self.student.page("Feature maps"))

    @task(3)
    def pyramid(self) -> None:
        self.timed("Pyramid pooling", lambda: self.student.page("Pyramid pooling"))

    @task(2)
    def crop_warp(self) -> None:
        self.timed("Crop warp SPP", lambda: self.student.page("Crop warp SPP"))

    @task(1)
    def another_photo(self) -> None:
        self.upload()

    @task(1)
    def submit(self) -> None:
        code = os.environ.get("SPP_VIZ_CLASS_CODE")
        if code:
            submit_to_class(self.student, code, self.timed)


def submit_to_class(student: Student, code: str, timed) -> None:  # noqa: ANN001
    """The Class page as a student uses it: the code, what the photo shows, a vote, Submit."""
    timed("Class", lambda: student.page("Class"))
    timed("Class: code", lambda: student.set("class_code", code))
    label = student.options("class_label")
    timed("Class: label", lambda: student.set("class_label", random.choice(label[:50])))
    vote = student.options("class_vote")
    timed("Class: vote", lambda: student.set("class_vote", random.choice(vote)))
    timed("Class: submit", lambda: student.click("class_submit"))
