"""Candidate windows for detection: selective search (OpenCV contrib) or sliding windows, deterministic per image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .boxes import clean_boxes

PROPOSAL_MODES = ("fast", "quality", "sliding")
SEARCH_SIDE = 500  # selective search runs on the image shrunk to this longer side: seconds instead of a minute


def sliding_windows(
    image_size: tuple[int, int],
    sizes: Sequence[int] = (96, 160, 256, 384),
    overlap: float = 0.5,
    aspects: Sequence[float] = (1.0, 0.5, 2.0),
) -> np.ndarray:
    """Square and elongated windows at several sizes, sliding with the given overlap: [N, 4]."""
    w, h = image_size
    out = []
    for s in sizes:
        for a in aspects:
            bw, bh = s * np.sqrt(a), s / np.sqrt(a)
            if bw > w or bh > h:
                continue
            sx, sy = max(1.0, bw * (1 - overlap)), max(1.0, bh * (1 - overlap))
            for y in np.arange(0, h - bh + 1, sy):
                for x in np.arange(0, w - bw + 1, sx):
                    out.append((x, y, x + bw, y + bh))
    if not out:
        out.append((0, 0, w, h))
    return np.asarray(out, dtype=np.float32)


def proposals(img: Image.Image, mode: str = "fast", max_windows: int = 2000) -> np.ndarray:
    """Candidate windows: selective search ("fast" or "quality", OpenCV contrib) or "sliding" windows.

    Deterministic for a given image. Selective search runs on the image shrunk to ``SEARCH_SIDE`` pixels on its
    longer side and its boxes are scaled back. Returns at most ``max_windows`` boxes [N, 4].
    """
    if max_windows < 1:
        raise ValueError(f"the number of windows must be at least 1, got {max_windows}")
    if mode not in PROPOSAL_MODES:
        raise ValueError(f"unknown proposal mode {mode!r}: use one of {', '.join(PROPOSAL_MODES)}")
    if mode == "sliding":
        boxes = sliding_windows(img.size)
    else:
        import cv2

        scale = min(1.0, SEARCH_SIDE / max(img.size))
        small = img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        search.setBaseImage(np.ascontiguousarray(np.asarray(small)[:, :, ::-1]))  # RGB -> BGR
        search.switchToSelectiveSearchFast() if mode == "fast" else search.switchToSelectiveSearchQuality()
        # OpenCV returns the same set of boxes on every run but in a random order (its diversification ranking, not
        # seedable from Python). A canonical order, then a fixed-seed shuffle, makes the first N the same every
        # time while still mixing sizes and places, as the paper's randomised ranking does.
        rects = np.unique(search.process(), axis=0).astype(np.float32)  # (x, y, w, h), sorted
        rects = rects[np.random.default_rng(0).permutation(len(rects))]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / scale
    boxes, _ = clean_boxes(boxes, img.size)
    return boxes[:max_windows]
