"""Class mode in a real browser (issue 33; release tier): a teacher opens a class with the passphrase the server printed
to its log; six students, each in a browser of their own, join by the teacher's link, upload a different photo from
``../shared/imagenet-sample``, label it and vote; the teacher's screen shows six photos, per-view figures equal to
the app's views of those photos (computed here, outside the server) and the poll's tally; a withdrawal drops the
count. Once on SQLite, once on a PostgreSQL server the test starts itself. On SQLite the teacher's first request to the
fresh server is the Class page's own address (the first click on "Open a class" must count: Streamlit's legacy pages
mode once dropped it); on PostgreSQL the teacher opens the home page and goes to Class from the menu."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import pytest
from conftest import ROOT
from pg_server import postgres
from streamlit_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, chromium_or_skip, streamlit_server

from spp_viz import classroom, registry
from spp_viz.explain.views import VIEW_TITLES, compare_views
from spp_viz.images import load_image

pytestmark = [pytest.mark.browser, pytest.mark.release]
chromium_or_skip()
PHOTOS = ROOT.parent / "shared" / "imagenet-sample"
STUDENTS = 6


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path) -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        sqlite = f"sqlite:///{tmp_path / 'classes.sqlite'}"
        url = sqlite if request.param == "sqlite" else stack.enter_context(postgres())
        stack.enter_context(environment(SPP_VIZ_DATABASE_URL=url, SPP_VIZ_TEACHER_KEY=None))
        yield stack.enter_context(streamlit_server()), request.param


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def photos(names: list[str]) -> list[tuple[str, int]]:
    """Six photos whose class name is unique and no part of another's (typed into a searchable box, it picks it)."""
    if not PHOTOS.is_dir():
        pytest.skip("../shared/imagenet-sample is not beside this clone")
    lowered = [n.lower() for n in names]
    chosen = []
    for f in sorted(PHOTOS.glob("*.JPEG"))[::37]:
        index = int(f.name.split("_")[0])
        name = lowered[index]
        if sum(name in other for other in lowered) == 1:
            chosen.append((f.name, index))
    return chosen[:STUDENTS]


def passphrase(server_url: str) -> str:
    port = server_url.rsplit(":", 1)[1]
    log = (ARTIFACTS / f"server-{port}.log").read_text()
    return re.search(r"the teacher's passphrase is (\S+)", log).group(1)


def wait_text(page, text: str, timeout: float = 120) -> None:
    """Wait for text to show; on a timeout, print what the page does show, so a CI log says why."""
    try:
        page.get_by_text(text).first.wait_for(timeout=timeout * 1000)
    except Exception:
        print(f"--- waiting for {text!r}; the page shows:\n{page.inner_text('body')[-3000:]}")
        raise


def idle(page) -> None:
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=180_000)


def test_six_students_and_a_teacher(server, browser):
    server, backend = server
    model = registry.load(registry.DEFAULT_MODEL)
    chosen = photos(model.class_names)
    assert len(chosen) == STUDENTS
    teacher = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    if backend == "sqlite":  # the fresh server's first request: the Class page's own address
        teacher.goto(f"{server}/Class", timeout=120_000)
    else:  # the teacher starts the app and opens the Class page from the menu
        teacher.goto(server, timeout=120_000)
        idle(teacher)
        teacher.locator("[data-testid='stSidebarNav'] a").filter(has_text="Class").first.click()
    wait_text(teacher, "You are")
    idle(teacher)
    teacher.get_by_text("the teacher", exact=True).click()
    idle(teacher)
    teacher.get_by_label("Teacher's passphrase", exact=True).fill(passphrase(server))
    teacher.get_by_label("Title (shown to the class)").fill("Period 3")
    teacher.get_by_role("button", name="Open a class").click()
    idle(teacher)
    wait_text(teacher, "Class code")
    code = teacher.locator("[data-testid='stMetricValue']").first.inner_text().strip()
    link = teacher.locator("[data-testid='stCode']").first.inner_text().strip()
    assert link.endswith(f"?class={code}")
    pages = []
    for name, index in chosen:
        student = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        student.goto(link, timeout=120_000)  # the teacher's link, as a student follows it
        student.locator(".st-key-upload input[type='file']").set_input_files(str(PHOTOS / name))
        wait_text(student, "What does your photo show?")
        idle(student)
        box = student.get_by_role("combobox", name="What does your photo show?")  # focused, so typing searches
        box.click()
        student.keyboard.type(model.class_names[index])
        student.keyboard.press("Enter")
        idle(student)
        student.get_by_text("the full image (SPP)", exact=True).click()
        idle(student)
        wait_text(student, "Submit", 30)
        student.get_by_role("button", name="Submit").click()
        wait_text(student, "Sent.")
        assert model.class_names[index] in student.get_by_text("Sent.").first.inner_text()
        pages.append(student)
    wait_text(teacher, f"the full image (SPP) {len(chosen)}, none of them 0. Right", 30)  # the live tally, every 3 s
    right = {v: 0 for v in classroom.VIEWS}
    for name, index in chosen:
        comparison = compare_views(model, load_image(PHOTOS / name), 256)
        for v in classroom.VIEWS:
            right[v] += comparison.top1[v] == index
    table = teacher.locator("[data-testid='stTable']").first.inner_text()
    for v in classroom.VIEWS:
        assert re.search(rf"{re.escape(VIEW_TITLES[v])}\s+{right[v] / len(chosen) * 100:.1f}%", table), (v, table)
    assert teacher.locator("[data-testid='stMetricValue']").nth(1).inner_text().strip() == str(len(chosen))
    pages[0].get_by_role("button", name="Withdraw my entry").click()
    wait_text(teacher, f"the full image (SPP) {len(chosen) - 1}, none of them 0. Right", 30)
    assert teacher.locator("[data-testid='stMetricValue']").nth(1).inner_text().strip() == str(len(chosen) - 1)
