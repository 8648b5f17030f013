"""A class submitting at once (issue 33; release tier): 30 (SPP_VIZ_CLASS_LOAD_SESSIONS) browser sessions on one
`spp-viz app`, through the class-at-once load test's harness (tests/test_load.py), each following the teacher's link,
uploading a photo of its own, labelling it with a class of its own and voting, all at the same time. No entry may be
lost: the database ends with one entry per session, each with the label that session chose, and every session saw
"Sent."."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from streamlit_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, chromium_or_skip, streamlit_server
from test_load import TIMEOUT_MS, idle, photos, upload

from spp_viz import classroom, registry

pytestmark = [pytest.mark.browser, pytest.mark.release]
chromium_or_skip()
SESSIONS = int(os.environ.get("SPP_VIZ_CLASS_LOAD_SESSIONS", "30"))
KEY = "load-test-key"


def labels(names: list[str], count: int) -> list[int]:
    """Classes whose name is no part of another's (typed into the searchable box, each picks itself)."""
    lowered = [n.lower() for n in names]
    unique = [i for i, n in enumerate(lowered) if sum(n in other for other in lowered) == 1 and n.isascii()]
    return unique[:: max(1, len(unique) // count)][:count]


async def student(browser, link: str, image, name: str) -> str:
    """One student: the teacher's link, an upload, a label, a vote, Submit; returns what the page said."""
    context = await browser.new_context(viewport={"width": 1300, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    try:
        await page.goto(link, timeout=TIMEOUT_MS)
        await idle(page)
        await upload(page, image)
        await page.get_by_text("What does your photo show?").first.wait_for(timeout=TIMEOUT_MS)
        await idle(page)
        await page.get_by_role("combobox", name="What does your photo show?").click()
        await page.keyboard.type(name)
        await page.keyboard.press("Enter")
        await idle(page)
        await page.get_by_text("the warp", exact=True).click()
        await idle(page)
        await page.get_by_role("button", name="Submit").click()
        sent = page.get_by_text("Sent.").first
        await sent.wait_for(timeout=TIMEOUT_MS)
        return await sent.inner_text()
    except Exception as e:  # noqa: BLE001 - reported with what the page showed, asserted below
        return f"FAILED: {e}\n{(await page.inner_text('body'))[-1500:]}"
    finally:
        await context.close()


async def class_at_once(url: str, link: str, images, names: list[str]) -> tuple[list[str], float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        start = time.monotonic()
        said = await asyncio.gather(*(student(browser, link, im, n) for im, n in zip(images, names, strict=True)))
        seconds = time.monotonic() - start
        await browser.close()
    return list(said), seconds


def test_thirty_students_submitting_at_once_lose_no_entry(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'classes.sqlite'}"
    monkeypatch.setenv(classroom.DATABASE_ENV, url)
    monkeypatch.setenv(classroom.TEACHER_KEY_ENV, KEY)
    names = registry.load(registry.DEFAULT_MODEL).class_names
    chosen = labels(names, SESSIONS)
    assert len(chosen) == SESSIONS
    images = photos(tmp_path, SESSIONS)
    store = classroom.ClassStore(url)
    code = store.open_class(KEY, "load test").code
    with streamlit_server() as server:
        said, seconds = asyncio.run(class_at_once(server, f"{server}/Class?class={code}", images,
                                                  [names[i] for i in chosen]))  # fmt: skip
    entries = store.entries(code)
    report = f"{SESSIONS} students submitting at once: {seconds:.0f} s; {len(entries)} entries stored\n"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "class_load.txt").write_text(report)
    print(report)
    failed = [s for s in said if not s.startswith("Sent.")]
    assert not failed, failed[:3]
    for s, i in zip(said, chosen, strict=True):
        assert f"You said your photo shows {names[i]} and voted for the warp" in s
    assert len({e.browser for e in entries}) == len(entries) == SESSIONS
    assert sorted(e.true_class for e in entries) == sorted(chosen)
    assert all(e.poll == "warp" and set(e.top5) == set(classroom.VIEWS) for e in entries)
