"""Boxes (x0, y0, x1, y1) in pixel edges, x1/y1 exclusive: IoU, clipping, and box regression's encode/decode.

One IoU for the whole package: proposals, window labels, matching and the scenes' overlap test all use ``box_iou``.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [M, 4]: [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy  # [N, M]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def clean_boxes(boxes: np.ndarray, image_size: tuple[int, int], min_side: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and drop empty, degenerate, inverted or non-finite ones.

    Returns:
        (boxes [M, 4] float32, indices [M] of the kept input rows).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = image_size
    finite = np.isfinite(b).all(axis=1)
    b = np.where(np.isfinite(b), b, 0.0)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    keep = finite & (b[:, 2] - b[:, 0] >= min_side) & (b[:, 3] - b[:, 1] >= min_side)
    return b[keep].astype(np.float32), np.nonzero(keep)[0]


def _centres(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return b[:, 0] + w / 2, b[:, 1] + h / 2, w, h


def encode_boxes(windows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """R-CNN's regression targets from windows to boxes: (dx / w, dy / h, log(w' / w), log(h' / h)), [N, 4]."""
    px, py, pw, ph = _centres(windows)
    gx, gy, gw, gh = _centres(targets)
    return np.stack([(gx - px) / pw, (gy - py) / ph, np.log(gw / pw), np.log(gh / ph)], axis=1)


def decode_boxes(windows: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """The boxes that ``deltas`` [N, 4] move ``windows`` [N, 4] to (the inverse of encode_boxes)."""
    px, py, pw, ph = _centres(windows)
    d = np.asarray(deltas, dtype=np.float64).reshape(-1, 4)
    cx, cy = px + d[:, 0] * pw, py + d[:, 1] * ph
    w, h = pw * np.exp(np.clip(d[:, 2], -4, 4)), ph * np.exp(np.clip(d[:, 3], -4, 4))  # a wild prediction stays finite
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
