"""Class mode's database (issue 33): the same tests on SQLite in a temporary folder and on a PostgreSQL server the test
starts itself; the class's figures against a count by hand; the CLI export against the page's download."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from conftest import cli
from pg_server import postgres

from spp_viz import classroom
from spp_viz.classroom import NONE_OF_THESE, ClassError, ClassStore, DatabaseDown, Entry, class_results

KEY = "class-key"


@pytest.fixture(autouse=True)
def teacher_key(monkeypatch):
    monkeypatch.setenv(classroom.TEACHER_KEY_ENV, KEY)


@pytest.fixture(scope="module")
def pg_url():
    with postgres() as url:
        yield url


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A store on each backend; on PostgreSQL every test starts from empty tables."""
    url = f"sqlite:///{tmp_path / 'classes.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = ClassStore(url, clock=Clock())
    with s.engine.begin() as conn:
        for table in (classroom.ENTRIES, classroom.CLASSES, classroom.ATTEMPTS):
            conn.execute(table.delete())
    return s


def entry(browser: str, true_class: int, top1: dict[str, int], poll: str = "full") -> Entry:
    top5 = {v: [top1[v], *[c for c in range(10, 15) if c != top1[v]][:4]] for v in classroom.VIEWS}
    return Entry(browser, true_class, top5, {v: 0.5 for v in classroom.VIEWS}, poll)


def test_only_the_teachers_passphrase_opens_a_class(store):
    with pytest.raises(ClassError, match="not the teacher's passphrase"):
        store.open_class("guess")
    info = store.open_class(KEY, "  Period   3  ")
    assert len(info.code) == classroom.CODE_LENGTH and info.title == "Period 3"
    assert info.closes_at - info.opened_at == 2 * 3600 and info.delete_after - info.opened_at == 7 * 86400
    assert store.find(info.code.lower()) == info  # a code typed in lower case, with spaces, still finds it
    with pytest.raises(ClassError, match="there is no class with the code ZZZZZZ"):
        store.find("zzz zzz")


def test_a_browser_counts_once_and_can_withdraw(store):
    code = store.open_class(KEY).code
    store.submit(code, entry("a", 3, {"crop": 3, "warp": 3, "full": 3}))
    store.submit(code, entry("b", 4, {"crop": 1, "warp": 4, "full": 4}))
    store.clock.now += 1
    store.submit(code, entry("a", 5, {"crop": 5, "warp": 1, "full": 5}))  # replaces a's first entry
    got = store.entries(code)
    assert [(e.browser, e.true_class) for e in got] == [("b", 4), ("a", 5)]
    assert store.withdraw(code, "a") and not store.withdraw(code, "a")
    assert [e.browser for e in store.entries(code)] == ["b"]
    other = store.open_class(KEY).code  # another class sees none of this one's entries
    assert store.entries(other) == []


def test_submissions_per_minute_are_capped(store):
    code = store.open_class(KEY).code
    for _ in range(classroom.MAX_PER_MINUTE):
        store.submit(code, entry("a", 1, {"crop": 1, "warp": 1, "full": 1}))
    with pytest.raises(ClassError, match=f"at most {classroom.MAX_PER_MINUTE} submissions a minute"):
        store.submit(code, entry("a", 1, {"crop": 1, "warp": 1, "full": 1}))
    store.submit(code, entry("b", 1, {"crop": 1, "warp": 1, "full": 1}))  # another browser is not held up
    store.clock.now += 61
    store.submit(code, entry("a", 2, {"crop": 1, "warp": 1, "full": 1}))
    assert len(store.entries(code)) == 2


def test_a_class_closes_then_its_rows_are_deleted(store):
    info = store.open_class(KEY, hours=1, retention_days=1)
    store.submit(info.code, entry("a", 1, {"crop": 1, "warp": 1, "full": 1}))
    store.clock.now += 3601
    with pytest.raises(ClassError, match=f"class {info.code} closed at"):
        store.submit(info.code, entry("b", 1, {"crop": 1, "warp": 1, "full": 1}))
    assert len(store.entries(info.code)) == 1  # the teacher still sees a closed class
    store.clock.now += 86400
    store.purge()
    assert store.entries(info.code) == []
    with pytest.raises(ClassError, match="there is no class"):
        store.find(info.code, open_only=False)


def test_the_schema_is_versioned(store):
    with store.engine.begin() as conn:
        assert conn.execute(classroom.VERSION.select()).scalar_one() == classroom.SCHEMA_VERSION
        assert classroom.migrate(conn) == classroom.SCHEMA_VERSION  # a second start changes nothing
        conn.execute(classroom.VERSION.update().values(version=classroom.SCHEMA_VERSION + 1))
    with pytest.raises(ClassError, match="newer than this app's"):
        ClassStore(store.url)
    with store.engine.begin() as conn:
        conn.execute(classroom.VERSION.update().values(version=classroom.SCHEMA_VERSION))


def test_thirty_students_submitting_at_once_lose_no_entry(store):
    code = store.open_class(KEY).code
    errors: list[BaseException] = []

    def student(i: int) -> None:
        try:
            store.submit(code, entry(f"s{i}", i, {"crop": i, "warp": i, "full": i}))
        except BaseException as e:  # noqa: BLE001  collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(e.true_class for e in store.entries(code)) == list(range(30))


def test_an_unreachable_database_says_so():
    with pytest.raises(DatabaseDown, match="the class database cannot be reached"):
        ClassStore("postgresql+psycopg://nobody@127.0.0.1:9/none")


def test_the_class_figures_equal_a_count_by_hand():
    """Six photos (one of them of none of ImageNet's classes): crop right on 2, warp on 3, full on 5 of the five
    labelled; the views disagree on four photos; the poll said full 4 times, crop once, none once."""
    e = [
        entry("1", 1, {"crop": 1, "warp": 1, "full": 1}, "full"),
        entry("2", 2, {"crop": 9, "warp": 2, "full": 2}, "full"),
        entry("3", 3, {"crop": 9, "warp": 9, "full": 3}, "crop"),
        entry("4", 4, {"crop": 4, "warp": 4, "full": 4}, "full"),
        entry("5", 5, {"crop": 9, "warp": 9, "full": 5}, "none"),
        entry("6", NONE_OF_THESE, {"crop": 7, "warp": 8, "full": 7}, "full"),
    ]
    r = class_results(e, "efficientnet_lite0_spp")
    assert (r.count, r.labelled) == (6, 5)
    assert r.summary.accuracy["crop"]["top1"] == pytest.approx(2 / 5)
    assert r.summary.accuracy["warp"]["top1"] == pytest.approx(3 / 5)
    assert r.summary.accuracy["full"]["top1"] == pytest.approx(1.0)
    full_vs_crop = r.summary.against_crop["full"]["top1"]
    assert full_vs_crop.diff == pytest.approx(3 / 5)
    assert (full_vs_crop.only_this_view, full_vs_crop.only_other) == (3, 0)
    assert full_vs_crop.mcnemar_p == pytest.approx(0.25)  # 3 disagreements all one way: 2 * (1/2)^3
    assert r.poll == {"crop": 1, "warp": 0, "full": 4, "none": 1}
    assert r.happened == {"crop": 2, "warp": 3, "full": 5, "none": 0}
    assert [x.browser for x in r.disagreements] == ["2", "3", "5", "6"]
    assert any("no clear difference" in f for f in r.findings)  # five photos: the interval spans 0


def test_the_cli_export_equals_the_pages_download(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    store = ClassStore(url)
    info = store.open_class(KEY, "Lab group")
    probs = {v: np.eye(1000)[7] * 0.9 + 0.0001 for v in classroom.VIEWS}
    store.submit(info.code, classroom.entry_from_probs("x", 7, probs, "warp"))
    out = cli("class", "export", info.code.lower(), "--json", SPP_VIZ_DATABASE_URL=url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == classroom.export(store.entries(info.code), store.find(info.code))
    assert json.loads(out.stdout)["entries"][0]["full_top1"] == 7
    bad = cli("class", "export", "NOPE42", SPP_VIZ_DATABASE_URL=url)
    assert bad.returncode == 2 and "there is no class with the code NOPE42" in bad.stderr
