"""Files that several writers share, within a disk budget: the cache folder (activation indexes, detection features,
Lab models, downloaded weights) is one folder that every app server of a machine may write at once (``spp-viz serve
--replicas N``), and it holds at most ``SPP_VIZ_CACHE_MB``.

A file is written under a name of its own writer (process and thread) in the same folder, then renamed into place:
a rename within one file system is atomic, so a reader sees the old file or the new one, never half of one, and two
writers of the same file never write into each other's bytes (the last rename wins, whole).

After every write into the cache folder the least recently used files go until the folder is within its budget. A
file's last use is its access time, set whenever the library reads it (``in_use``), since file systems mounted with
``relatime`` update it at most daily. A file in use holds a shared lock (``flock``) that the trimmer tests before it
removes anything, in this process or another; a folder in use (the detection features a training reads, memory
mapped, for minutes) holds one on its ``.in-use`` file, and nothing in it is removed meanwhile. The class database
is not cache: it is never trimmed (its classes have their own retention), and it is counted apart.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .settings import CACHE_MB_ENV, cache_mb, cache_root

KEPT = ("classes.sqlite",)  # name prefixes the trimmer never removes: the class database and its journal files
FOLDER_LOCK = ".in-use"  # a folder's lock file: held (shared) while the folder is in use
FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """The disk (or the user's quota) is full; the message says what could not be saved, written for a person."""


def disk_full(e: BaseException) -> bool:
    """Whether an error is a full disk or quota (``DiskFull`` or the OSError it comes from)."""
    return isinstance(e, DiskFull) or (isinstance(e, OSError) and e.errno in FULL)


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` to a temporary path beside ``path``, then rename it to ``path``; the temporary file is removed
    when ``write`` fails. ``tmp`` keeps ``path``'s suffix (numpy and safetensors look at it). A file inside the cache
    folder is followed by a trim of the folder to its budget (the new file kept).

    Raises:
        DiskFull: when the disk is full, with what could not be saved; the folder is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in FULL:
            raise DiskFull(e.errno, f"the server's disk is full: {path.name} could not be saved") from e
        raise
    finally:
        tmp.unlink(missing_ok=True)
    if _inside(path, cache_root()):
        trim(keep=[path])
    return path


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def in_use(*paths: str | Path) -> Iterator[None]:
    """Mark files used now (their access time) and keep them from the trimmer while the block runs (a shared
    ``flock`` on each, which other processes see too). Missing files are skipped."""
    held = []
    try:
        for p in paths:
            held.extend(hold(p))
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing the descriptor releases its lock


def hold(path: str | Path) -> list[int]:
    """A shared lock on ``path`` (a file, or a folder through its ``.in-use`` file) kept until the returned
    descriptors are closed (``os.close``), its access time set to now; [] when it is missing."""
    try:
        if Path(path).is_dir():
            fd = os.open(Path(path) / FOLDER_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
        else:
            fd = os.open(path, os.O_RDONLY)
    except OSError:
        return []
    fcntl.flock(fd, fcntl.LOCK_SH)
    with contextlib.suppress(OSError):
        os.utime(fd, (time.time(), os.fstat(fd).st_mtime))
    return [fd]


@dataclass(frozen=True)
class Usage:
    """What the cache folder holds."""

    files: int
    nbytes: int  # the cache, which the budget bounds
    kept_bytes: int  # the class database, never trimmed
    budget: int  # bytes


def _cache_files(root: Path) -> Iterable[tuple[Path, os.stat_result, bool]]:
    """(path, stat, trimmable) of every file under ``root``; files being written (a writer's temporary name) are
    skipped, the class database is listed as not trimmable."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name == FOLDER_LOCK or name.startswith(".") and ".tmp" in name:
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:  # removed meanwhile
                continue
            yield path, st, not name.startswith(KEPT)


def budget_bytes() -> int:
    return cache_mb() * 1_000_000


def usage(root: str | Path | None = None) -> Usage:
    """The cache folder's size against its budget (``SPP_VIZ_CACHE_MB``)."""
    files = list(_cache_files(Path(root) if root is not None else cache_root()))
    return Usage(
        sum(t for _, _, t in files),
        sum(st.st_size for _, st, t in files if t),
        sum(st.st_size for _, st, t in files if not t),
        budget_bytes(),
    )


_TRIM = threading.Lock()  # one trim at a time in a process (each walks the whole folder)


def trim(root: str | Path | None = None, budget: int | None = None, keep: Iterable[str | Path] = ()) -> list[Path]:
    """Remove the least recently used files until the cache folder holds at most ``budget`` bytes (default
    ``SPP_VIZ_CACHE_MB``); files in ``keep``, files in use (``in_use``) and the class database stay. Returns what
    was removed."""
    root = Path(root) if root is not None else cache_root()
    budget = budget_bytes() if budget is None else budget
    kept = {Path(p).resolve() for p in keep}
    with _TRIM:
        files = [(p, st) for p, st, trimmable in _cache_files(root) if trimmable]
        total = sum(st.st_size for _, st in files)
        if total <= budget:
            return []
        removed: list[Path] = []
        folders: dict[Path, bool] = {}  # folder -> in use, asked once per trim
        for path, st in sorted(files, key=lambda f: max(f[1].st_atime, f[1].st_mtime)):
            if total <= budget:
                break
            if path.resolve() in kept or _folder_in_use(path.parent, root, folders) or not _remove_unless_held(path):
                continue
            total -= st.st_size
            removed.append(path)
    return removed


def _folder_in_use(folder: Path, root: Path, seen: dict[Path, bool]) -> bool:
    """Whether ``folder`` or a folder above it (up to ``root``) is held (``in_use`` of a folder)."""
    if folder in seen:
        return seen[folder]
    lock = folder / FOLDER_LOCK
    held = lock.exists() and _held(lock)
    if not held and root in folder.parents:
        held = _folder_in_use(folder.parent, root, seen)
    seen[folder] = held
    return held


def _held(path: Path) -> bool:
    """Whether someone holds a lock on ``path`` (``in_use``)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _remove_unless_held(path: Path) -> bool:
    """Remove ``path`` unless someone holds it (``in_use``); True when it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a reader: in use
        os.close(fd)
        return False
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def describe_budget() -> str:
    """The cache folder, its size and its budget, in words."""
    u = usage()
    return (
        f"{cache_root()}: {u.nbytes / 1e6:,.0f} MB in {u.files:,} files of at most {u.budget / 1e6:,.0f} MB "
        f"({CACHE_MB_ENV}; the least recently used go first)"
    )
