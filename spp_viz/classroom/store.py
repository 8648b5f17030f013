"""Class mode (issue 33): a teacher opens a class, students join with its code and submit what the app's three views
made of their own photo, and the class's results live in a real database.

The database is SQLite in the cache folder by default (WAL mode, one writer at a time: a class of 30 on one server),
or PostgreSQL when ``SPP_VIZ_DATABASE_URL`` is set, so that several app servers share one class. The schema is made
by SQLAlchemy and versioned in its own table (``migrate``). Stored per entry: the class code, an anonymous
per-browser id, the true class (or none), each view's top-1 and top-5 and the probability of the true class, the
poll answer, and a 128-pixel thumbnail only when the student chose to share it. No photo is stored.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..settings import DATABASE_ENV, TEACHER_KEY_ENV, cache_root, teacher_key  # noqa: F401  (re-exported)
from .questions import DEFAULT_QUESTION, QUESTIONS, Question, question

SCHEMA_VERSION = 2  # 2: each class has a question (questions.QUESTIONS); version 1's classes asked "views"
POLL_CHOICES = QUESTIONS["views"].poll  # "which view will be right?"; none: "none of the three"
NONE_OF_THESE = -1  # the true class when the photo shows none of ImageNet's classes
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a projector
CODE_LENGTH = 6
MAX_PER_MINUTE = 6  # submissions (and withdrawals) per browser per minute
MAX_TITLE = 120
THUMBNAIL_SIDE = 128


class ClassError(ValueError):
    """A mistake a user can make (a wrong or closed code, too many submissions): one clear message."""


class DatabaseDown(RuntimeError):
    """The database cannot be reached: the page says so, the student's own exploration keeps working."""


@dataclass(frozen=True)
class ClassInfo:
    code: str
    title: str
    model: str  # the network every student's photo goes through (one of the app's own, by name)
    opened_at: float  # seconds since the epoch
    closes_at: float
    delete_after: float
    question: str = DEFAULT_QUESTION  # a key of questions.QUESTIONS

    @property
    def asks(self) -> Question:
        return question(self.question)

    def is_open(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.closes_at


@dataclass(frozen=True)
class Entry:
    """One student's photo, as stored: what each view predicted, and what the student said."""

    browser: str
    true_class: int  # NONE_OF_THESE when the photo shows none of ImageNet's classes
    top5: dict[str, list[int]]  # arm (a view, a head, a shuffle) -> its five classes, best first
    p_true: dict[str, float]  # arm -> its probability of the true class (0 when none)
    poll: str  # one of the class's question's poll answers
    submitted_at: float = 0.0
    thumbnail: bytes | None = field(default=None, repr=False)  # a JPEG, only when shared

    def right(self, view: str, k: int = 1) -> bool:
        return self.true_class != NONE_OF_THESE and self.true_class in self.top5[view][:k]

    @property
    def top1(self) -> dict[str, int]:
        return {a: t[0] for a, t in self.top5.items()}

    def row(self) -> dict:
        """The entry as the downloads and the CLI export write it (no thumbnail, no browser id)."""
        arms = list(self.top5)
        return {"true_class": self.true_class, "poll": self.poll, "submitted_at": round(self.submitted_at, 3),
                **{f"{a}_top1": self.top5[a][0] for a in arms}, **{f"{a}_top5": self.top5[a] for a in arms},
                **{f"{a}_p_true": round(self.p_true[a], 6) for a in arms}}  # fmt: skip


def database_url() -> str:
    """The database classes live in: ``SPP_VIZ_DATABASE_URL`` (postgresql:// uses psycopg), else SQLite."""
    url = os.environ.get(DATABASE_ENV, "").strip()
    return with_driver(url) if url else f"sqlite:///{cache_root() / 'classes.sqlite'}"


def with_driver(url: str) -> str:
    """``postgresql://`` as SQLAlchemy's psycopg (version 3) driver; other URLs as they are."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def thumbnail(jpeg_or_image) -> bytes:
    """A JPEG at most ``THUMBNAIL_SIDE`` pixels a side, of a PIL image."""
    img = jpeg_or_image.convert("RGB").copy()
    img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def entry_from_probs(browser: str, true_class: int, probs: dict[str, np.ndarray], poll: str,
                     thumb: bytes | None = None, asks: str = DEFAULT_QUESTION) -> Entry:  # fmt: skip
    """An entry from each arm's class probabilities (the views: ``explain.views.Comparison.probs``; the heads and
    the shuffles: ``questions.head_probs``, ``shuffle_probs``).

    Raises:
        ClassError: for a poll answer or a class index that is not one of the choices, or probabilities of other arms
            than the question's.
    """
    q = question(asks)
    if poll not in q.poll:
        raise ClassError(f"the poll's answer must be one of {', '.join(q.poll)}, not {poll!r}")
    if set(probs) != set(q.arms):
        raise ClassError(f"this class asks about {', '.join(q.arms)}, not {', '.join(probs)}: reload the page")
    n = len(next(iter(probs.values())))
    if true_class != NONE_OF_THESE and not 0 <= true_class < n:
        raise ClassError(f"the true class must be one of the {n} classes or none of them, not {true_class}")
    top5 = {a: [int(i) for i in np.argsort(-probs[a], kind="stable")[:5]] for a in q.arms}
    p_true = {a: float(probs[a][true_class]) if true_class != NONE_OF_THESE else 0.0 for a in q.arms}
    return Entry(browser, int(true_class), top5, p_true, poll, time.time(), thumb)


class ClassStore:
    """Classes and their entries in one database (SQLite or PostgreSQL), safe for several sessions at once.

    Every method raises ``DatabaseDown`` when the database cannot be reached, and ``ClassError`` for a user's mistake.
    """

    def __init__(self, url: str | None = None, clock: Callable[[], float] = time.time) -> None:
        from sqlalchemy import create_engine, event

        self.url = with_driver(url) if url else database_url()
        self.clock = clock
        sqlite = self.url.startswith("sqlite")
        if sqlite:
            path = self.url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.engine = create_engine(self.url, pool_pre_ping=True,
                                    connect_args={"timeout": 15} if sqlite else {"connect_timeout": 5})  # fmt: skip
        if sqlite:

            @event.listens_for(self.engine, "connect")
            def _pragmas(conn, _record) -> None:  # WAL: readers never wait for the one writer
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA busy_timeout=15000")

        self._migrate()

    def _migrate(self, attempts: int = 5) -> None:
        """``migrate``, tried again when another app server (a replica on the same database) created the same table
        at the same moment: the loser's CREATE fails with "already exists", and the second look finds it."""
        from sqlalchemy.exc import ProgrammingError

        for attempt in range(attempts):
            try:
                self._run(migrate)
                return
            except (DatabaseDown, ProgrammingError) as e:
                if attempt == attempts - 1 or "already exists" not in str(e).lower():
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _run(self, work: Callable):
        """``work(connection)`` in one transaction; the database's own failures become ``DatabaseDown``."""
        from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except IntegrityError:  # the same browser's two submissions at once, or a code drawn twice: again
                if attempt == 2:
                    raise
            except (OperationalError, InterfaceError) as e:
                raise DatabaseDown(f"the class database cannot be reached ({type(e.orig).__name__}: {e.orig})") from e

    # --- the teacher
    def open_class(self, key: str, title: str = "", hours: float = 2.0, retention_days: float = 7.0,
                   model: str = "efficientnet_lite0_spp", asks: str = DEFAULT_QUESTION) -> ClassInfo:  # fmt: skip
        """A new class with a fresh code asking question ``asks``, open for ``hours`` and deleted
        ``retention_days`` after it opened.

        Raises:
            ClassError: a wrong passphrase, a title that is too long, durations out of range, or no such question.
        """
        self._check_key(key)
        if asks not in QUESTIONS:
            raise ClassError(f"a class asks one of {', '.join(QUESTIONS)}, not {asks!r}")
        title = " ".join(title.split())
        if len(title) > MAX_TITLE:
            raise ClassError(f"a class title has at most {MAX_TITLE} characters, this one {len(title)}")
        if not 0 < hours <= 24 or not 0 < retention_days <= 90:
            raise ClassError("a class is open for up to 24 hours and kept for up to 90 days")
        now = self.clock()
        info = ClassInfo(_new_code(), title, model, now, now + hours * 3600, now + retention_days * 86400, asks)

        def work(conn) -> None:
            self._purge(conn, now)
            conn.execute(CLASSES.insert().values(**asdict(info)))

        self._run(work)
        return info

    def close_class(self, key: str, code: str) -> None:
        self._check_key(key)
        now = self.clock()
        self._run(lambda c: c.execute(CLASSES.update().where(CLASSES.c.code == _clean(code)).values(closes_at=now)))

    def _check_key(self, key: str) -> None:
        if not hmac.compare_digest(key.strip().encode(), teacher_key().encode()):
            raise ClassError("that is not the teacher's passphrase (the server's log shows it, or SPP_VIZ_TEACHER_KEY)")

    # --- everyone
    def find(self, code: str, open_only: bool = True) -> ClassInfo:
        """The class with this code.

        Raises:
            ClassError: "no class with code ..." or "class ... closed at ..." (one message each).
        """
        code = _clean(code)
        row = self._run(lambda c: c.execute(CLASSES.select().where(CLASSES.c.code == code)).mappings().first())
        if row is None:
            raise ClassError(f"there is no class with the code {code or '(empty)'}: check it on the teacher's screen")
        info = ClassInfo(**row)
        if open_only and not info.is_open(self.clock()):
            raise ClassError(f"class {code} closed at {time.strftime('%H:%M', time.localtime(info.closes_at))}")
        return info

    def submit(self, code: str, entry: Entry) -> None:
        """Store ``entry``, replacing the same browser's earlier one in this class (a browser counts once).

        Raises:
            ClassError: a wrong or closed code, an entry for another question than the class's, or more than
                ``MAX_PER_MINUTE`` submissions from this browser.
        """
        info = self.find(code)
        if set(entry.top5) != set(info.asks.arms):
            raise ClassError(f"class {info.code} asks about {info.asks.compared}: reload the page and submit again")
        now = self.clock()

        def work(conn) -> None:
            self._limit(conn, entry.browser, now)
            conn.execute(ENTRIES.delete().where((ENTRIES.c.code == info.code) & (ENTRIES.c.browser == entry.browser)))
            conn.execute(ENTRIES.insert().values(
                code=info.code, browser=entry.browser, submitted_at=now, true_class=entry.true_class,
                top5=json.dumps(entry.top5), p_true=json.dumps(entry.p_true), poll=entry.poll,
                thumbnail=entry.thumbnail))  # fmt: skip

        self._run(work)

    def withdraw(self, code: str, browser: str) -> bool:
        """Delete this browser's entry in the class; True when there was one."""
        info = self.find(code, open_only=False)
        now = self.clock()

        def work(conn) -> bool:
            self._limit(conn, browser, now)
            gone = conn.execute(ENTRIES.delete().where((ENTRIES.c.code == info.code) & (ENTRIES.c.browser == browser)))
            return gone.rowcount > 0

        return self._run(work)

    def entries(self, code: str) -> list[Entry]:
        """The class's entries, oldest first."""
        query = (
            ENTRIES.select().where(ENTRIES.c.code == _clean(code)).order_by(ENTRIES.c.submitted_at, ENTRIES.c.browser)
        )
        rows = self._run(lambda c: c.execute(query).mappings().all())
        return [Entry(r["browser"], r["true_class"], json.loads(r["top5"]), json.loads(r["p_true"]), r["poll"],
                      r["submitted_at"], r["thumbnail"]) for r in rows]  # fmt: skip

    def mine(self, code: str, browser: str) -> Entry | None:
        return next((e for e in self.entries(code) if e.browser == browser), None)

    def _limit(self, conn, browser: str, now: float) -> None:
        recent = conn.execute(ATTEMPTS.select().where((ATTEMPTS.c.browser == browser) & (ATTEMPTS.c.at > now - 60)))
        if len(recent.all()) >= MAX_PER_MINUTE:
            raise ClassError(f"at most {MAX_PER_MINUTE} submissions a minute from one browser: wait a moment")
        conn.execute(ATTEMPTS.insert().values(browser=browser, at=now))

    def _purge(self, conn, now: float) -> None:
        """Classes past their retention, with their entries; attempts older than a minute."""
        old = [r[0] for r in conn.execute(CLASSES.select().with_only_columns(CLASSES.c.code)
                                          .where(CLASSES.c.delete_after < now))]  # fmt: skip
        if old:
            conn.execute(ENTRIES.delete().where(ENTRIES.c.code.in_(old)))
            conn.execute(CLASSES.delete().where(CLASSES.c.code.in_(old)))
        conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.at < now - 60))

    def purge(self) -> None:
        self._run(lambda c: self._purge(c, self.clock()))


def _clean(code: str) -> str:
    return "".join(code.split()).upper()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# --- the schema: SQLAlchemy's own create, versioned in a table of its own


def _tables():
    from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, Text

    meta = MetaData()
    version = Table("spp_viz_schema", meta, Column("version", Integer, nullable=False))
    classes = Table(
        "spp_viz_classes", meta,
        Column("code", String(CODE_LENGTH), primary_key=True),
        Column("title", String(MAX_TITLE), nullable=False),
        Column("model", String(64), nullable=False),
        Column("opened_at", Float, nullable=False),
        Column("closes_at", Float, nullable=False),
        Column("delete_after", Float, nullable=False),
        Column("question", String(16), nullable=False, server_default=DEFAULT_QUESTION),  # since version 2
    )  # fmt: skip
    entries = Table(
        "spp_viz_entries", meta,
        Column("code", String(CODE_LENGTH), primary_key=True),
        Column("browser", String(64), primary_key=True),  # a browser counts once per class
        Column("submitted_at", Float, nullable=False),
        Column("true_class", Integer, nullable=False),
        Column("top5", Text, nullable=False),  # JSON: {arm: [five class indices]}
        Column("p_true", Text, nullable=False),  # JSON: {arm: probability of the true class}
        Column("poll", String(8), nullable=False),
        Column("thumbnail", LargeBinary, nullable=True),  # only when the student shared it
    )  # fmt: skip
    attempts = Table("spp_viz_attempts", meta, Column("browser", String(64), nullable=False, index=True),
                     Column("at", Float, nullable=False))  # fmt: skip
    return meta, version, classes, entries, attempts


META, VERSION, CLASSES, ENTRIES, ATTEMPTS = _tables()


def _add_question(conn) -> None:
    """1 -> 2: each class asks a question; the classes opened before asked about the views."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import Column, String

    # Alembic's operations write the ALTER for the database at hand (SQLite and PostgreSQL differ), not us.
    Operations(MigrationContext.configure(conn)).add_column(
        CLASSES.name, Column("question", String(16), nullable=False, server_default=DEFAULT_QUESTION)
    )


# Migrations from each version to the next, as functions of a connection (Alembic's operations on it).
MIGRATIONS: dict[int, Callable] = {1: _add_question}


def migrate(conn) -> int:
    """Create the tables if missing, then run each migration from the stored version up to ``SCHEMA_VERSION``.

    Raises:
        ClassError: when the database's schema is newer than this code (a newer app wrote it).
    """
    META.create_all(conn, checkfirst=True)
    row = conn.execute(VERSION.select()).first()
    if row is None:
        conn.execute(VERSION.insert().values(version=SCHEMA_VERSION))
        return SCHEMA_VERSION
    found = row[0]
    if found > SCHEMA_VERSION:
        raise ClassError(f"the class database has schema version {found}, newer than this app's {SCHEMA_VERSION}")
    for v in range(found, SCHEMA_VERSION):
        MIGRATIONS[v](conn)
    conn.execute(VERSION.update().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
