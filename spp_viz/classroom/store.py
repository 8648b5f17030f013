"""Class mode: a teacher opens a class, students join with its code and submit what the app's three views
made of their own photo, and the class's results live in a real database.

The database is SQLite in the cache folder by default (WAL mode, one writer at a time: a class of 30 on one server),
or PostgreSQL when ``SPP_VIZ_DATABASE_URL`` is set, so that several app servers share one class. The schema is made
by SQLAlchemy and versioned in its own table (``migrate``). Stored per entry: the class code, an anonymous
per-browser id, the true class (or none), each view's top-1 and top-5 and the probability of the true class, the
poll answer, and a 128-pixel thumbnail only when the student chose to share it. No photo is stored.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..i18n import _, translate
from ..settings import DATABASE_ENV, DEFAULT_MODEL, TEACHER_KEY_ENV, class_max_entries, teacher_key  # noqa: F401
from .access import is_teacher, new_teacher_token, token_hash
from .database import database_url, engine, with_driver
from .questions import DEFAULT_QUESTION, QUESTIONS, Question, question
from .schema import (  # noqa: F401  (re-exported)
    ATTEMPTS,
    CLASSES,
    CODE_LENGTH,
    ENTRIES,
    MAX_TITLE,
    META,
    SCHEMA_VERSION,
    TEACHERS,
    VERSION,
    SchemaError,
    migrate,
)

POLL_CHOICES = QUESTIONS["views"].poll  # "which view will be right?"; none: "none of the three"
NONE_OF_THESE = -1  # the true class when the photo shows none of ImageNet's classes
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a projector
MAX_PER_MINUTE = 6  # submissions (and withdrawals) per student's session per minute
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
        raise ClassError(_("this class asks about {arms}, not {given}: reload the page").format(
            arms=", ".join(q.arms), given=", ".join(probs)))  # fmt: skip
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
        self.url = with_driver(url) if url else database_url()
        self.clock = clock
        self.engine = engine(self.url)
        self._migrate()

    def _migrate(self, attempts: int = 5) -> None:
        """``migrate``, tried again when another app server (a replica on the same database) created the same table
        at the same moment: the loser's CREATE fails with "already exists", and the second look finds it."""
        from sqlalchemy.exc import ProgrammingError

        for attempt in range(attempts):
            try:
                self._run(migrate)
                return
            except SchemaError as e:
                raise ClassError(str(e)) from e
            except (DatabaseDown, ProgrammingError) as e:
                if attempt == attempts - 1 or "already exists" not in str(e).lower():
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _run(self, work: Callable):
        """``work(connection)`` in one transaction. Every failure of the database itself becomes ``DatabaseDown``,
        with one sentence a student can read: unreachable, busy, a full disk, or a write refused three times."""
        from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except IntegrityError as e:  # the same student's two submissions at once, or a code drawn twice: again
                if attempt == 2:
                    raise DatabaseDown(_("the class database refused the write three times (others wrote the "
                                         "same row at that moment)")) from e  # fmt: skip
            except PoolTimeout as e:
                raise DatabaseDown(_("the class database is busy: every connection to it is in use")) from e
            except ProgrammingError:  # the app's own mistake, or the race _migrate retries: not the student's
                raise
            except DBAPIError as e:
                if any(w in str(e.orig).lower() for w in ("disk is full", "no space left", "diskfull")):
                    raise DatabaseDown(_("the server's disk is full: the class database cannot write")) from e
                raise DatabaseDown(
                    _("the class database cannot be reached ({why})").format(why=f"{type(e.orig).__name__}: {e.orig}")
                ) from e

    # --- the teacher
    def open_class(self, key: str, title: str = "", hours: float = 2.0, retention_days: float = 7.0,
                   model: str = DEFAULT_MODEL, asks: str = DEFAULT_QUESTION) -> ClassInfo:  # fmt: skip
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
            raise ClassError(
                _("a class title has at most {most} characters, this one {n}").format(most=MAX_TITLE, n=len(title))
            )
        if not 0 < hours <= 24 or not 0 < retention_days <= 90:
            raise ClassError(_("a class is open for up to 24 hours and kept for up to 90 days"))
        now = self.clock()
        info = ClassInfo(_new_code(), title, model, now, now + hours * 3600, now + retention_days * 86400, asks)

        def work(conn) -> None:
            self._purge(conn, now)
            conn.execute(CLASSES.insert().values(**asdict(info)))

        self._run(work)
        return info

    def teacher_token(self, key: str, code: str) -> str:
        """A token that reopens ``code``'s dashboard without the passphrase (a reload, the projector's tab): random,
        stored hashed, gone when the class is closed or deleted."""
        self._check_key(key)
        info = self.find(code, open_only=False)
        token = new_teacher_token()
        self._run(lambda c: c.execute(TEACHERS.insert().values(token_hash=token_hash(token), code=info.code,
                                                                 expires_at=info.delete_after)))  # fmt: skip
        return token

    def teacher_class(self, token: str) -> ClassInfo | None:
        """The class a teacher's token opens, or None (unknown, revoked, or its class gone)."""
        now = self.clock()
        query = TEACHERS.select().where((TEACHERS.c.token_hash == token_hash(token)) & (TEACHERS.c.expires_at > now))
        row = self._run(lambda c: c.execute(query).first())
        if row is None:
            return None
        try:
            return self.find(row.code, open_only=False)
        except ClassError:
            return None

    def close_class(self, key_or_token: str, code: str) -> None:
        """Close the class now (by the passphrase, or the class's own teacher token), and revoke its tokens."""
        info = self.teacher_class(key_or_token)
        if info is None or info.code != _clean(code):
            self._check_key(key_or_token)
        now, code = self.clock(), _clean(code)

        def work(conn) -> None:
            conn.execute(CLASSES.update().where(CLASSES.c.code == code).values(closes_at=now))
            conn.execute(TEACHERS.delete().where(TEACHERS.c.code == code))

        self._run(work)

    def _check_key(self, key: str) -> None:
        if not is_teacher(key, teacher_key()):
            raise ClassError(_("that is not the teacher's passphrase (the server's log shows it, or {env})").format(
                env="SPP_VIZ_TEACHER_KEY"))  # fmt: skip

    # --- everyone
    def find(self, code: str, open_only: bool = True) -> ClassInfo:
        """The class with this code; a class past its retention is gone from the moment it expires, whether or not
        it was purged yet.

        Raises:
            ClassError: "no open class with code ...": a closed class and a code that never was read the same.
        """
        code = _clean(code)
        now = self.clock()
        query = CLASSES.select().where((CLASSES.c.code == code) & (CLASSES.c.delete_after > now))
        row = self._run(lambda c: c.execute(query).mappings().first())
        info = ClassInfo(**row) if row is not None else None
        if info is None or open_only and not info.is_open(now):
            raise ClassError(_("there is no open class with the code {code}: check it on the teacher's screen").format(
                code=code or _("(empty)")))  # fmt: skip
        return info

    def submit(self, code: str, entry: Entry, session: str | None = None) -> None:
        """Store ``entry``, replacing the same student's earlier one in this class (a student counts once).

        Args:
            session: the server's own session the entry comes from: its per-minute limit (default the entry's
                student id).

        Raises:
            ClassError: a wrong or closed code, an entry for another question than the class's, more than
                ``MAX_PER_MINUTE`` submissions from this session, or a class full (``SPP_VIZ_CLASS_MAX_ENTRIES``).
        """
        info = self.find(code)
        if set(entry.top5) != set(info.asks.arms):
            raise ClassError(_("class {code} asks about {compared}: reload the page and submit again").format(
                code=info.code, compared=translate(info.asks.compared)))  # fmt: skip
        now, cap = self.clock(), class_max_entries()

        def work(conn) -> None:
            self._limit(conn, session or entry.browser, now)
            mine = (ENTRIES.c.code == info.code) & (ENTRIES.c.browser == entry.browser)
            if conn.execute(ENTRIES.select().where(mine)).first() is None:
                held = len(conn.execute(ENTRIES.select().with_only_columns(ENTRIES.c.browser)
                                        .where(ENTRIES.c.code == info.code)).all())  # fmt: skip
                if held >= cap:
                    raise ClassError(_("class {code} has its {cap} entries already: no more are taken").format(
                        code=info.code, cap=cap))  # fmt: skip
            conn.execute(ENTRIES.delete().where(mine))
            conn.execute(ENTRIES.insert().values(
                code=info.code, browser=entry.browser, submitted_at=now, true_class=entry.true_class,
                top5=json.dumps(entry.top5), p_true=json.dumps(entry.p_true), poll=entry.poll,
                thumbnail=entry.thumbnail))  # fmt: skip

        self._run(work)

    def withdraw(self, code: str, browser: str, session: str | None = None) -> bool:
        """Delete this student's entry in the class; True when there was one."""
        info = self.find(code, open_only=False)
        now = self.clock()

        def work(conn) -> bool:
            self._limit(conn, session or browser, now)
            gone = conn.execute(ENTRIES.delete().where((ENTRIES.c.code == info.code) & (ENTRIES.c.browser == browser)))
            return gone.rowcount > 0

        return self._run(work)

    def entries(self, code: str) -> list[Entry]:
        """The class's entries, oldest first; none once the class is past its retention."""
        now = self.clock()
        alive = CLASSES.select().with_only_columns(CLASSES.c.code).where(CLASSES.c.delete_after > now)
        query = (ENTRIES.select().where((ENTRIES.c.code == _clean(code)) & ENTRIES.c.code.in_(alive))
                 .order_by(ENTRIES.c.submitted_at, ENTRIES.c.browser))  # fmt: skip
        rows = self._run(lambda c: c.execute(query).mappings().all())
        return [Entry(r["browser"], r["true_class"], json.loads(r["top5"]), json.loads(r["p_true"]), r["poll"],
                      r["submitted_at"], r["thumbnail"]) for r in rows]  # fmt: skip

    def mine(self, code: str, browser: str) -> Entry | None:
        return next((e for e in self.entries(code) if e.browser == browser), None)

    def _limit(self, conn, key: str, now: float) -> None:
        recent = conn.execute(ATTEMPTS.select().where((ATTEMPTS.c.browser == key) & (ATTEMPTS.c.at > now - 60)))
        if len(recent.all()) >= MAX_PER_MINUTE:
            raise ClassError(_("at most {n} submissions a minute: wait a moment").format(n=MAX_PER_MINUTE))
        conn.execute(ATTEMPTS.insert().values(browser=key, at=now))

    def _purge(self, conn, now: float) -> int:
        """Classes past their retention, with their entries (thumbnails included) and teacher tokens; attempts older
        than a minute. Returns how many classes went."""
        old = [r[0] for r in conn.execute(CLASSES.select().with_only_columns(CLASSES.c.code)
                                          .where(CLASSES.c.delete_after <= now))]  # fmt: skip
        if old:
            conn.execute(ENTRIES.delete().where(ENTRIES.c.code.in_(old)))
            conn.execute(TEACHERS.delete().where(TEACHERS.c.code.in_(old)))
            conn.execute(CLASSES.delete().where(CLASSES.c.code.in_(old)))
        conn.execute(TEACHERS.delete().where(TEACHERS.c.expires_at <= now))
        conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.at < now - 60))
        return len(old)

    def purge(self) -> int:
        """Delete what is past its retention now; how many classes went (``spp-viz class purge``, the server's
        hourly sweep)."""
        return self._run(lambda c: self._purge(c, self.clock()))


def _clean(code: str) -> str:
    return "".join(code.split()).upper()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
