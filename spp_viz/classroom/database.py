"""Where the class database is and how the app connects to it: SQLite in the cache folder (WAL mode, a 15 s wait for
the one writer), or PostgreSQL through psycopg when ``SPP_VIZ_DATABASE_URL`` says so."""

from __future__ import annotations

import os
import random
import time

from ..settings import DATABASE_ENV, cache_root


def database_url() -> str:
    """The database classes live in: ``SPP_VIZ_DATABASE_URL`` (postgresql:// uses psycopg), else SQLite."""
    url = os.environ.get(DATABASE_ENV, "").strip()
    return with_driver(url) if url else f"sqlite:///{cache_root() / 'classes.sqlite'}"


def with_driver(url: str) -> str:
    """``postgresql://`` as SQLAlchemy's psycopg (version 3) driver; other URLs as they are."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def wal_mode(conn, seconds: float = 15.0) -> None:
    """Put an SQLite database in WAL mode (it stays so, in the file). Switching a new database needs it alone, and
    SQLite answers "database is locked" at once, without waiting ``busy_timeout``, when another app server's
    connection opens it at that moment: try again until ``seconds`` have passed."""
    import sqlite3

    deadline = time.monotonic() + seconds
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + 0.05 * random.random())


def engine(url: str):
    """SQLAlchemy's engine for ``url``, its connections checked before use; an SQLite file's folder is made."""
    from sqlalchemy import create_engine, event

    sqlite = url.startswith("sqlite")
    if sqlite:
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    made = create_engine(url, pool_pre_ping=True, connect_args={"timeout": 15} if sqlite else {"connect_timeout": 5})
    if sqlite:

        @event.listens_for(made, "connect")
        def _pragmas(conn, _record) -> None:  # WAL: readers never wait for the one writer
            conn.execute("PRAGMA busy_timeout=15000")
            wal_mode(conn)

    return made
