"""The class database's schema: SQLAlchemy's own create, versioned in a table of its own, each version's change
made by Alembic's operations for the database at hand (SQLite and PostgreSQL write their ALTERs differently).

Version 1: classes, entries, submission attempts. 2: each class asks a question. 3: the teachers' tokens (a reload
reopens the dashboard).
"""

from __future__ import annotations

from collections.abc import Callable

from .questions import DEFAULT_QUESTION

SCHEMA_VERSION = 3
CODE_LENGTH = 6
MAX_TITLE = 120


class SchemaError(RuntimeError):
    """The database's schema is newer than this code."""


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
        Column("browser", String(64), primary_key=True),  # a student counts once per class
        Column("submitted_at", Float, nullable=False),
        Column("true_class", Integer, nullable=False),
        Column("top5", Text, nullable=False),  # JSON: {arm: [five class indices]}
        Column("p_true", Text, nullable=False),  # JSON: {arm: probability of the true class}
        Column("poll", String(8), nullable=False),
        Column("thumbnail", LargeBinary, nullable=True),  # only when the student shared it
    )  # fmt: skip
    # Submissions and withdrawals per server-side session and minute (the column keeps its first name).
    attempts = Table("spp_viz_attempts", meta, Column("browser", String(64), nullable=False, index=True),
                     Column("at", Float, nullable=False))  # fmt: skip
    teachers = Table(  # since version 3: a teacher's token, stored hashed, gone with its class or when it closes
        "spp_viz_teachers", meta,
        Column("token_hash", String(64), primary_key=True),
        Column("code", String(CODE_LENGTH), nullable=False, index=True),
        Column("expires_at", Float, nullable=False),
    )  # fmt: skip
    return meta, version, classes, entries, attempts, teachers


META, VERSION, CLASSES, ENTRIES, ATTEMPTS, TEACHERS = _tables()


def _add_question(conn) -> None:
    """1 -> 2: each class asks a question; the classes opened before asked about the views."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import Column, String

    Operations(MigrationContext.configure(conn)).add_column(
        CLASSES.name, Column("question", String(16), nullable=False, server_default=DEFAULT_QUESTION)
    )


def _add_teachers(conn) -> None:
    """2 -> 3: the teachers' tokens (``migrate`` has just made the table: a new table needs no ALTER)."""


# Migrations from each version to the next, as functions of a connection (Alembic's operations on it).
MIGRATIONS: dict[int, Callable] = {1: _add_question, 2: _add_teachers}


def migrate(conn) -> int:
    """Create the tables if missing, then run each migration from the stored version up to ``SCHEMA_VERSION``.

    Raises:
        SchemaError: when the database's schema is newer than this code (a newer app wrote it).
    """
    META.create_all(conn, checkfirst=True)
    row = conn.execute(VERSION.select()).first()
    if row is None:
        conn.execute(VERSION.insert().values(version=SCHEMA_VERSION))
        return SCHEMA_VERSION
    found = row[0]
    if found > SCHEMA_VERSION:
        raise SchemaError(f"the class database has schema version {found}, newer than this app's {SCHEMA_VERSION}")
    for v in range(found, SCHEMA_VERSION):
        MIGRATIONS[v](conn)
    conn.execute(VERSION.update().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
