"""Class mode's database (issue 33): the same tests on SQLite in a temporary folder and on a PostgreSQL server the test
starts itself; the class's figures against a count by hand; the CLI export against the page's download."""

from __future__ import annotations

import json
import secrets
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
    """An entry whose arms (the keys of ``top1``: views, heads or shuffles) have these top-1s."""
    top5 = {a: [t, *[c for c in range(10, 15) if c != t][:4]] for a, t in top1.items()}
    return Entry(browser, true_class, top5, {a: 0.5 for a in top1}, poll)


def info_of(asks: str) -> classroom.ClassInfo:
    return classroom.ClassInfo("ABCDEF", "", "efficientnet_lite0_spp", 0.0, 1.0, 2.0, asks)


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
    r = class_results(e, info_of("views"))
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


def test_the_heads_figures_equal_a_count_by_hand():
    """Five labelled photos: the {6,3,2,1} head right on 4, the one-level head on 2; they disagree on 2 photos, both
    one way: McNemar p = 2 * (1/2)^2 = 0.5; the paired difference +40 points, its interval spans 0 on five photos."""
    e = [
        entry("1", 1, {"spp": 1, "one_level": 1}, "spp"),
        entry("2", 2, {"spp": 2, "one_level": 9}, "spp"),
        entry("3", 3, {"spp": 3, "one_level": 9}, "one_level"),
        entry("4", 4, {"spp": 4, "one_level": 4}, "none"),
        entry("5", 5, {"spp": 9, "one_level": 8}, "spp"),
    ]
    r = class_results(e, info_of("heads"))
    spp, one = r.table
    assert (spp["head"], spp["top-1"], one["top-1"]) == ("{6,3,2,1} head (SPP-net)", "80.0%", "40.0%")
    assert spp["top-1 difference (95% interval)"].startswith("+40.0 (") and one["McNemar p, top-1"] == ""
    assert spp["McNemar p, top-1"] == "0.5"
    assert r.poll == {"spp": 3, "one_level": 1, "none": 1}
    assert r.happened == {"spp": 4, "one_level": 2, "none": 1}
    assert [x.browser for x in r.disagreements] == ["2", "3", "5"]
    assert "shows no clear difference from the one-level head (Lite0): +40.0 points" in r.findings[1]
    assert "right only with it: 2 photo(s), only with the one-level head (Lite0): 0" in r.findings[1]


def test_the_shuffle_figures_equal_a_count_by_hand():
    """Four photos: the top-1 first changes at 2x2 (photo 1), at 4x4 (photo 2), never (photo 3), and at 3x3 (photo 4,
    though 4x4 gives the original class back: the first change counts)."""
    ks = [f"k{k}" for k in (2, 3, 4, 6, 8)]

    def shuffled(browser: str, changed: set[str], poll: str) -> Entry:
        return entry(browser, 7, {"original": 7, **{k: (99 if k in changed else 7) for k in ks}}, poll)

    e = [
        shuffled("1", set(ks), "2"),
        shuffled("2", {"k4", "k6", "k8"}, "4"),
        shuffled("3", set(), "never"),
        shuffled("4", {"k3", "k6"}, "2"),
    ]
    assert [classroom.first_change(x.top1) for x in e] == ["2", "4", "never", "3"]
    r = class_results(e, info_of("shuffle"))
    assert r.happened == {"2": 1, "3": 1, "4": 1, "6": 0, "8": 0, "never": 1}
    assert r.poll == {"2": 2, "3": 0, "4": 1, "6": 0, "8": 0, "never": 1}
    rows = {row["tiles"]: row for row in r.table}
    assert [rows[t]["top-1 unchanged"] for t in ("2x2", "3x3", "4x4", "6x6", "8x8")] == [
        "75.0%", "50.0%", "50.0%", "25.0%", "50.0%"]  # fmt: skip
    # Wilson's interval for 2 of 4, by hand: 0.5 -/+ 1.96 sqrt(1/16 + 1.96^2/64) / (1 + 1.96^2/4) = 0.150 to 0.850
    assert rows["3x3"]["95% interval"] == "15.0 to 85.0%"
    assert r.findings[0].startswith("Over 4 photos of this class, the top-1 first changed at 2x2: 1, 3x3: 1, 4x4: 1")
    assert [x.browser for x in r.disagreements] == ["1", "2", "4"]


def test_wilson_interval_against_hand_values():
    from spp_viz.stats import wilson

    none = wilson([False] * 10)  # 0 of 10: the interval's top is z^2 / (n + z^2), not 0 as the normal one says
    assert (none.value, none.low) == (0.0, 0.0) and none.high == pytest.approx(3.8415 / 13.8415, abs=1e-4)
    half = wilson([True, False, True, False])
    assert (half.low, half.high) == (pytest.approx(0.1500, abs=1e-4), pytest.approx(0.8500, abs=1e-4))
    with pytest.raises(ValueError):
        wilson([])


def test_a_class_keeps_its_question_and_refuses_another_questions_entry(store):
    info = store.open_class(KEY, asks="heads")
    assert store.find(info.code).question == "heads" and store.find(info.code).asks.arms == ("spp", "one_level")
    with pytest.raises(ClassError, match=f"class {info.code} asks about the heads: reload the page"):
        store.submit(info.code, entry("a", 1, {"crop": 1, "warp": 1, "full": 1}))
    store.submit(info.code, entry("a", 1, {"spp": 1, "one_level": 2}, "spp"))
    assert store.entries(info.code)[0].top1 == {"spp": 1, "one_level": 2}
    with pytest.raises(ClassError, match="a class asks one of views, heads, shuffle"):
        store.open_class(KEY, asks="colours")
    probs = {a: np.eye(1000)[3] for a in ("spp", "one_level")}
    with pytest.raises(ClassError, match="the poll's answer must be one of spp, one_level, none"):
        classroom.entry_from_probs("b", 3, probs, "full", asks="heads")
    with pytest.raises(ClassError, match="this class asks about spp, one_level, not crop"):
        classroom.entry_from_probs("b", 3, {"crop": np.eye(1000)[3]}, "spp", asks="heads")


def test_a_version_1_database_is_migrated_and_its_classes_asked_about_the_views(store):
    """A database written by the first schema (no question column) opens under this code: Alembic adds the column,
    the old class reads as the views question, its entries stay, and the version table says 2."""
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, inspect

    with store.engine.begin() as conn:
        for table in reversed(classroom.store.META.sorted_tables):
            table.drop(conn)
        v1 = MetaData()
        version = Table("spp_viz_schema", v1, Column("version", Integer, nullable=False))
        times = (Column(c, Float, nullable=False) for c in ("opened_at", "closes_at", "delete_after"))
        classes = Table("spp_viz_classes", v1, Column("code", String(6), primary_key=True),
                        Column("title", String(120), nullable=False), Column("model", String(64), nullable=False),
                        *times)  # fmt: skip
        v1.create_all(conn)
        classroom.ENTRIES.create(conn)
        classroom.ATTEMPTS.create(conn)
        conn.execute(version.insert().values(version=1))
        conn.execute(classes.insert().values(code="OLDONE", title="before", model="efficientnet_lite0_spp",
                                             opened_at=store.clock(), closes_at=store.clock() + 60, delete_after=2e9))
    store.engine.dispose()
    again = ClassStore(store.url, clock=store.clock)
    assert "question" in {c["name"] for c in inspect(again.engine).get_columns("spp_viz_classes")}
    assert again.find("OLDONE").question == "views"
    with again.engine.connect() as conn:
        assert conn.execute(classroom.VERSION.select()).scalar_one() == classroom.SCHEMA_VERSION == 2
    again.submit("OLDONE", entry("a", 1, {"crop": 1, "warp": 1, "full": 1}))
    assert len(again.entries("OLDONE")) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_app_servers_opening_a_new_database_at_once_all_get_it(backend, tmp_path, request):
    """Replicas (issue 34) that open one new database at the same moment race to create its tables: each of them
    gets a working store."""
    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    if backend == "postgresql":  # a database of its own on the module's server: no tables yet
        from sqlalchemy import create_engine, text

        base = request.getfixturevalue("pg_url")
        name = f"race_{secrets.token_hex(4)}"
        admin = create_engine(classroom.with_driver(base), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = f"{base.rsplit('/', 1)[0]}/{name}"
    stores, errors = [], []
    barrier = threading.Barrier(6)

    def open_store() -> None:
        barrier.wait()
        try:
            stores.append(ClassStore(url))
        except BaseException as e:  # noqa: BLE001  collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    code = stores[0].open_class(KEY).code
    assert all(s.find(code).code == code for s in stores)
