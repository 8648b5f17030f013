"""Class mode: a teacher opens a class asking one of the app's comparisons (``questions``), students join with its
code and submit what it made of their own photo, and the class's results live in a real database (``store``, its
``schema``, reached through ``database``, kept past no retention date: ``retention``) and are summed up with the
app's own statistics (``results``). Who may do what, without accounts: ``access``."""

from .database import database_url, with_driver
from .questions import (
    DEFAULT_QUESTION,
    NEVER,
    QUESTIONS,
    VIEWS,
    Question,
    first_change,
    head_probs,
    question,
    shuffle_probs,
)
from .results import ClassResults, class_results, export, export_csv
from .store import (
    ATTEMPTS,
    CLASSES,
    CODE_LENGTH,
    DATABASE_ENV,
    ENTRIES,
    MAX_PER_MINUTE,
    MAX_TITLE,
    NONE_OF_THESE,
    POLL_CHOICES,
    SCHEMA_VERSION,
    TEACHER_KEY_ENV,
    TEACHERS,
    VERSION,
    ClassError,
    ClassInfo,
    ClassStore,
    DatabaseDown,
    Entry,
    entry_from_probs,
    migrate,
    teacher_key,
    thumbnail,
)  # fmt: skip

__all__ = [
    "DEFAULT_QUESTION", "NEVER", "QUESTIONS", "Question", "first_change", "head_probs", "question", "shuffle_probs",
    "ATTEMPTS", "CLASSES", "CODE_LENGTH", "DATABASE_ENV", "ENTRIES", "MAX_PER_MINUTE", "MAX_TITLE", "NONE_OF_THESE",
    "POLL_CHOICES", "SCHEMA_VERSION", "TEACHER_KEY_ENV", "TEACHERS", "VERSION", "VIEWS", "ClassError", "ClassInfo",
    "ClassResults", "ClassStore", "DatabaseDown", "Entry", "class_results", "database_url", "entry_from_probs",
    "export", "export_csv", "migrate", "teacher_key", "thumbnail", "with_driver",
]  # fmt: skip
