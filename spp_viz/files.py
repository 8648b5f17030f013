"""Files that several writers share: the cache folder (activation indexes, detection features, Lab models) is one
folder that every app server of a machine may write at once (``spp-viz serve --replicas N``).

A file is written under a name of its own writer (process and thread) in the same folder, then renamed into place:
a rename within one file system is atomic, so a reader sees the old file or the new one, never half of one, and two
writers of the same file never write into each other's bytes (the last rename wins, whole).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` to a temporary path beside ``path``, then rename it to ``path``; the temporary file is removed
    when ``write`` fails. ``tmp`` keeps ``path``'s suffix (numpy and safetensors look at it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
