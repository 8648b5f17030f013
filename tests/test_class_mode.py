"""Class mode's database (issue 33): the same tests on SQLite in a temporary folder and on a PostgreSQL server the test
starts itself; the class's figures against a count by hand; the CLI export against the page's download."""

from __future__ import annotations

import json
import secrets
import threading
import time

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
        for table in (classroom.ENTRIES, classroom.CLASSES, classroom.ATTEMPTS, classroom.TEACHERS):
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
    with pytest.raises(ClassError, match="there is no open class with the code ZZZZZZ"):
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
    # A closed class reads to a student as a code that never was (a code cannot be told open from guessed).
    with pytest.raises(ClassError, match=f"there is no open class with the code {info.code}:"):
        store.submit(info.code, entry("b", 1, {"crop": 1, "warp": 1, "full": 1}))
    with pytest.raises(ClassError) as never:
        store.find("ZZZZZZ")
    assert str(never.value).replace("ZZZZZZ", info.code) == f"there is no open class with the code {info.code}: " \
        "check it on the teacher's screen"
    assert len(store.entries(info.code)) == 1  # the teacher still sees a closed class
    store.clock.now += 86400
    store.purge()
    assert store.entries(info.code) == []
    with pytest.raises(ClassError, match="there is no open class"):
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
    assert bad.returncode == 2 and "there is no open class with the code NOPE42" in bad.stderr


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
    the old class reads as the views question, its entries stay, and the version table says 3 (the teachers' tokens
    came with version 3: a table of their own, made as it is missing)."""
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
        assert conn.execute(classroom.VERSION.select()).scalar_one() == classroom.SCHEMA_VERSION == 3
    again.submit("OLDONE", entry("a", 1, {"crop": 1, "warp": 1, "full": 1}))
    assert len(again.entries("OLDONE")) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_app_servers_opening_a_new_database_at_once_all_get_it(backend, tmp_path, request):
    """App servers (replicas) that open one new database at the same moment race to create its tables (and, on
    SQLite, to switch it to WAL): each of them gets a working store. Without ``wal_mode``'s retry SQLite refused 18
    stores in 200 rounds of six on this project's machine: rare, so several rounds of new databases."""
    for round_ in range(12 if backend == "sqlite" else 1):
        open_at_once(backend, tmp_path / f"race{round_}.sqlite", request)


def open_at_once(backend: str, path, request) -> None:
    url = f"sqlite:///{path}"
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
    for s in stores:
        s.engine.dispose()


def test_wal_mode_waits_out_a_lock_sqlite_answers_at_once_and_raises_anything_else():
    """SQLite answers a journal-mode switch "database is locked" without waiting when another connection opens the
    new file at that moment: ``wal_mode`` tries again; any other error, or a lock past the deadline, is raised."""
    import sqlite3

    class Conn:
        def __init__(self, fails: int, error: str = "database is locked") -> None:
            self.fails, self.error, self.mode, self.calls = fails, error, "delete", 0

        def execute(self, sql: str):
            self.calls += 1
            if self.fails:
                self.fails -= 1
                raise sqlite3.OperationalError(self.error)
            if sql.endswith("=WAL"):
                self.mode = "wal"
            return sqlite3.connect(":memory:").execute("SELECT ?", (self.mode,))

    conn = Conn(fails=3)
    classroom.database.wal_mode(conn)
    assert conn.mode == "wal" and conn.calls == 5  # three refused reads, the read, the switch
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        classroom.database.wal_mode(Conn(fails=1, error="disk I/O error"))
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        classroom.database.wal_mode(Conn(fails=10**6), seconds=0.2)


# --- trust: limits follow the server's session, a class has a cap, retention is kept, a teacher's token


def test_one_session_with_fifty_made_up_ids_is_held_to_six_a_minute_and_the_class_to_its_cap(store, monkeypatch):
    """The per-minute limit counts the server's session, whatever student id each entry carries; the class takes at
    most SPP_VIZ_CLASS_MAX_ENTRIES entries (here 10), and a student already in it may still replace theirs."""
    monkeypatch.setenv("SPP_VIZ_CLASS_MAX_ENTRIES", "10")
    code = store.open_class(KEY).code
    taken, refused = [], []
    for minute in range(3):
        for i in range(50 // 3 + 1):
            browser = f"{minute:02d}{i:014d}"
            try:
                store.submit(code, entry(browser, 3, {"crop": 3, "warp": 3, "full": 3}), session="one-session")
                taken.append(browser)
            except ClassError as e:
                refused.append(str(e))
        store.clock.now += 61
    assert len(store.entries(code)) == 10  # the cap
    # Minute 1: 6 taken, 11 held back; minute 2: 4 more fill the class; then every try is refused by the cap.
    assert [b[:2] for b in taken] == ["00"] * 6 + ["01"] * 4
    assert sum("at most 6 submissions a minute" in r for r in refused) == 17 - 6
    assert sum("has its 10 entries already" in r for r in refused) == (17 - 4) + 17
    store.submit(code, entry(taken[0], 5, {"crop": 5, "warp": 5, "full": 5}), session="another")  # a replacement
    assert {e.true_class for e in store.entries(code) if e.browser == taken[0]} == {5}


def test_a_closed_class_and_a_code_that_never_was_read_the_same(store):
    code = store.open_class(KEY).code
    store.close_class(KEY, code)
    with pytest.raises(ClassError) as closed:
        store.find(code)
    with pytest.raises(ClassError) as never:
        store.find("ZZZZZZ")
    assert str(closed.value).replace(code, "X") == str(never.value).replace("ZZZZZZ", "X")
    assert store.find(code, open_only=False).code == code  # the teacher still sees it


def test_an_expired_class_is_gone_before_and_after_the_purge(store, monkeypatch):
    """From the moment its retention ends: not found, no entries, not exported; then purged, thumbnail and all."""
    info = store.open_class(KEY, retention_days=1)
    store.submit(info.code, Entry("a" * 16, 3, {v: [3, 1, 2, 4, 5] for v in classroom.VIEWS},
                                  {v: 0.5 for v in classroom.VIEWS}, "full", thumbnail=b"jpeg"))  # fmt: skip
    assert store.entries(info.code)[0].thumbnail == b"jpeg"
    store.clock.now = info.delete_after + 1
    with pytest.raises(ClassError, match="no open class"):
        store.find(info.code, open_only=False)
    assert store.entries(info.code) == []
    with store.engine.connect() as conn:  # still in the database until the purge
        assert conn.execute(classroom.ENTRIES.select()).first() is not None
    assert store.purge() == 1
    with store.engine.connect() as conn:
        assert conn.execute(classroom.ENTRIES.select()).first() is None  # the thumbnail went with its class
        assert conn.execute(classroom.CLASSES.select()).first() is None
    monkeypatch.setenv(classroom.DATABASE_ENV, store.url)
    out = cli("class", "export", info.code)
    assert out.returncode == 2 and "no open class" in out.stderr


def test_the_cli_purges_and_the_export_ignores_an_expired_class(store, monkeypatch):
    """`spp-viz class purge` and `export` on the real clock: a class whose retention ended (its date moved to the
    past here) is not exported, and the purge deletes it."""
    monkeypatch.setenv(classroom.DATABASE_ENV, store.url)
    code = ClassStore(store.url).open_class(KEY).code
    assert cli("class", "export", code).returncode == 0
    with store.engine.begin() as conn:
        conn.execute(classroom.CLASSES.update().values(delete_after=1.0))
    assert cli("class", "export", code).returncode == 2
    done = cli("class", "purge")
    assert done.returncode == 0 and done.stdout.startswith("1 class(es) past their retention deleted")


def test_a_teachers_token_reopens_the_dashboard_until_the_class_is_closed(store):
    info = store.open_class(KEY)
    token = store.teacher_token(KEY, info.code)
    assert store.teacher_class(token) == info and store.teacher_class("made-up") is None
    with store.engine.connect() as conn:  # only its hash is stored
        assert token not in str(conn.execute(classroom.TEACHERS.select()).all())
    with pytest.raises(ClassError, match="not the teacher's passphrase"):
        store.teacher_token("guess", info.code)
    store.close_class(token, info.code)  # the token closes its own class ...
    assert store.teacher_class(token) is None  # ... and is revoked by it
    with pytest.raises(ClassError, match="not the teacher's passphrase"):
        store.close_class(token, info.code)


def test_every_database_failure_is_one_sentence(store, monkeypatch):
    """Busy, a full disk, unreachable: DatabaseDown with a sentence (the page keeps the student's entry and says it)."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    code = store.open_class(KEY).code
    failures = [(PoolTimeout("QueuePool limit reached"), "busy"),
                (OperationalError("INSERT", {}, Exception("database or disk is full")), "disk is full"),
                (OperationalError("SELECT", {}, Exception("connection refused")), "cannot be reached")]  # fmt: skip
    for error, said in failures:

        def failing(error=error):
            raise error

        monkeypatch.setattr(store.engine, "begin", failing)
        with pytest.raises(DatabaseDown, match=said):
            store.submit(code, entry("b", 3, {"crop": 3, "warp": 3, "full": 3}))
        monkeypatch.undo()
        monkeypatch.setenv(classroom.TEACHER_KEY_ENV, KEY)


def test_throttles_and_signed_student_ids():
    from spp_viz.classroom.access import Throttle, Throttled, new_student, signed, verified

    now = [0.0]
    t = Throttle(limit=5, window_s=60, clock=lambda: now[0])
    for _ in range(5):
        t.attempt("s")
    with pytest.raises(Throttled, match="try again in 60 s"):
        t.attempt("s")
    t.attempt("other")  # another session has its own five
    now[0] = 45.0
    with pytest.raises(Throttled, match="try again in 15 s"):
        t.attempt("s")
    now[0] = 60.5
    t.attempt("s")
    me = new_student()
    assert verified(signed(me, "server key"), "server key") == me
    assert verified(signed(me, "another server"), "server key") is None
    assert verified(f"{me}.0123456789abcdef", "server key") is None and verified("[x](http://a)", "k") is None


def test_the_server_purges_expired_classes_at_start_and_every_sweep(store):
    """keep_retention (what the server starts): a class past its date goes at once, a later one at a later sweep;
    one sweeper per database."""
    from spp_viz.classroom.retention import keep_retention

    old, later = store.open_class(KEY, retention_days=1), store.open_class(KEY, retention_days=2)
    store.clock.now += 86400 + 1

    def codes() -> set[str]:
        with store.engine.begin() as conn:
            return {r[0] for r in conn.execute(classroom.CLASSES.select().with_only_columns(classroom.CLASSES.c.code))}

    def until(done, seconds: float = 20) -> bool:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return done()

    assert codes() == {old.code, later.code}  # past its date but not yet purged
    stop = keep_retention(store, every_s=0.05)
    try:
        assert stop is not None and keep_retention(store) is None  # one sweeper per database
        assert until(lambda: codes() == {later.code})
        store.clock.now += 86400
        assert until(lambda: codes() == set())
    finally:
        stop.set()
    deadline, again = time.monotonic() + 20, None  # stopped, the database may be swept again (a later server)
    while again is None and time.monotonic() < deadline:
        again = keep_retention(store, every_s=3600)
        time.sleep(0.02)
    assert again is not None
    again.set()
