"""Step 1 of the Detection page: the ImageNet classifier on each window of a photo (SPP-net mode), its top class per
window after class-wise NMS, and the windows that are parts of larger ones. Not a detector trained for detection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.ops import batched_nms

from ..models import SPPNet
from .proposals import proposals
from .windows import ModeResult, spp_mode


def classify_windows(
    model: SPPNet,
    img: Image.Image,
    mode: str = "fast",
    windows: int = 2000,
    scales: Sequence[int] = (688,),
    keep_features: int | None = None,
) -> ModeResult:
    """Proposals (timed into the result) and SPP-net mode on them: what the detection page shows first.

    ``keep_features``: keep only the first that many windows' feature vectors (``spp_mode``)."""
    start = time.perf_counter()
    boxes = proposals(img, mode, windows)
    seconds = time.perf_counter() - start
    result = spp_mode(model, img, boxes, scales, keep_features=keep_features)
    result.timing.proposals = seconds
    return result


@dataclass(frozen=True)
class WindowLabel:
    """One window's top ImageNet class and its probability (the classifier's, not a trained detector's)."""

    box: tuple[float, float, float, float]
    label: int
    name: str
    score: float


def label_windows(
    result: ModeResult,
    class_names: Sequence[str],
    score_threshold: float = 0.3,
    iou: float = 0.3,
    classes: Sequence[int] | None = None,
    top: int = 20,
) -> list[WindowLabel]:
    """Each window's top class and probability, class-wise NMS, strongest first."""
    if len(result.boxes) == 0:
        return []
    probs = result.logits.float().softmax(1)
    score, label = probs.max(1)
    keep = score >= score_threshold
    if classes is not None:
        keep &= torch.isin(label, torch.as_tensor(list(classes), device=label.device))
    boxes = torch.as_tensor(result.boxes, device=score.device)[keep]
    score, label = score[keep], label[keep]
    order = batched_nms(boxes, score, label, iou)[:top]
    return [
        WindowLabel(tuple(boxes[i].tolist()), int(label[i]), class_names[int(label[i])], float(score[i]))
        for i in order.tolist()
    ]


def parts_of_larger(detections: Sequence[WindowLabel], inside: float = 0.9) -> list[tuple[WindowLabel, WindowLabel]]:
    """(part, whole) pairs among detections: a window lying (``inside`` of its area) within a larger detection of
    the same class. Many such pairs mean the scores do not tell an object from its parts."""
    pairs = []
    for part in detections:
        px0, py0, px1, py1 = part.box
        area = max((px1 - px0) * (py1 - py0), 1e-9)
        for whole in detections:
            wx0, wy0, wx1, wy1 = whole.box
            if whole is part or whole.label != part.label or (wx1 - wx0) * (wy1 - wy0) <= area:
                continue
            overlap = max(0.0, min(px1, wx1) - max(px0, wx0)) * max(0.0, min(py1, wy1) - max(py0, wy0))
            if overlap >= inside * area:
                pairs.append((part, whole))
                break
    return pairs
