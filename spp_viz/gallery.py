"""A gallery of photos, from a folder or as bytes: its items, how the network sees each, and reading them ahead in a
thread while the network runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image

from .images import ImageError, load_image, resize_short_side

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
INDEX_SHORT_SIDE = 224  # gallery images are seen at the training scale, as in the paper's Figure 2
T = TypeVar("T")


@dataclass(frozen=True)
class GalleryItem:
    """One gallery image: a file on disk, or bytes (an upload, a sample)."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ImageError(f"{self.name}: no path and no bytes")
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise ImageError(f"{self.name} cannot be read: {e.strerror or e}") from e


def folder_items(folder: str | Path) -> list[GalleryItem]:
    """Image files in a folder and its subfolders (by suffix), sorted by path.

    Raises:
        ValueError: when the folder does not exist.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"no folder at {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [GalleryItem(name=str(p.relative_to(root)), path=p) for p in files]


def gallery_view(data: bytes, name: str, short_side: int = INDEX_SHORT_SIDE) -> Image.Image:
    """How the index sees an image: load_image, then the shorter side at ``short_side``."""
    return resize_short_side(load_image(data, name=name), short_side)


def prefetched(work: Callable[[int], T], count: int, ahead: int = 4) -> Iterator[tuple[int, T]]:
    """(i, work(i)) for i in 0..count-1, in order, with up to ``ahead`` calls done early in one thread while the
    caller runs the network. Bounded, so a folder of thousands of photos is never decoded into memory at once."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = deque(pool.submit(work, i) for i in range(min(ahead, count)))
        for i in range(count):
            result = queue.popleft().result()
            if i + ahead < count:
                queue.append(pool.submit(work, i + ahead))
            yield i, result
