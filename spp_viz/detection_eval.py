"""PASCAL VOC evaluation: IoU, average precision (11-point VOC 2007 and all-points), mAP, and its uncertainty.

Matching follows the VOC devkit: in each image, detections of a class are taken by falling score; one whose best IoU
with that class's ground truth is >= 0.5 is a true positive if that box is not yet taken, a false positive if it is;
a detection matched to a "difficult" box counts as neither, and difficult boxes are never missed.
Boxes are (x0, y0, x1, y1) in pixel edges (x1, y1 exclusive), so an area is (x1 - x0) * (y1 - y0), without VOC's +1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLD = 0.5


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


def average_precision(recall: np.ndarray, precision: np.ndarray, kind: str = "11point") -> float:
    """AP from a precision-recall curve (detections by falling score), as the VOC devkit computes it.

    ``"11point"`` (VOC 2007): the mean over r in {0, 0.1, ..., 1} of the best precision at recall >= r.
    ``"all"`` (VOC 2010 on): the area under the curve after making precision non-increasing.
    """
    recall, precision = np.asarray(recall, dtype=np.float64), np.asarray(precision, dtype=np.float64)
    if kind == "11point":
        return float(
            np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)])
        )
    if kind != "all":
        raise ValueError(f"unknown AP kind {kind!r}: use '11point' or 'all'")
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # the envelope: precision made non-increasing in recall
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


@dataclass(frozen=True)
class ClassDetections:
    """Every detection of one class over a test set, marked against the ground truth.

    Attributes:
        scores: [D] by falling score.
        image: [D] the test image each came from.
        tp / fp: [D] bool; both False for a detection matched to a difficult box.
        positives: [I] non-difficult ground-truth boxes of the class in each test image.
    """

    scores: np.ndarray
    image: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: np.ndarray

    def curve(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) by falling score; ``weights`` counts each image that many times (a bootstrap)."""
        w = np.ones(len(self.positives)) if weights is None else np.asarray(weights, dtype=np.float64)
        npos = float((w * self.positives).sum())
        tp = np.cumsum(self.tp * w[self.image])
        fp = np.cumsum(self.fp * w[self.image])
        recall = tp / npos if npos > 0 else np.zeros_like(tp)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return recall, precision

    def ap(self, kind: str = "11point", weights: np.ndarray | None = None) -> float:
        """AP of the class; NaN when the (resampled) test set holds none of its objects."""
        w = np.ones(len(self.positives)) if weights is None else weights
        if float((w * self.positives).sum()) == 0:
            return float("nan")
        return average_precision(*self.curve(weights), kind=kind)


def match_class(
    det_boxes: Sequence[np.ndarray],
    det_scores: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    gt_difficult: Sequence[np.ndarray],
    iou_threshold: float = IOU_THRESHOLD,
) -> ClassDetections:
    """Mark one class's detections over a test set, image by image (lists indexed by test image)."""
    scores, image, tp, fp = [], [], [], []
    positives = np.zeros(len(gt_boxes), dtype=np.int64)
    for i, (boxes, sc, gt, hard) in enumerate(zip(det_boxes, det_scores, gt_boxes, gt_difficult, strict=True)):
        hard = np.asarray(hard, dtype=bool)
        positives[i] = int((~hard).sum())
        order = np.argsort(-np.asarray(sc), kind="stable")
        taken = np.zeros(len(gt), dtype=bool)
        overlaps = box_iou(np.asarray(boxes)[order], gt) if len(gt) else np.zeros((len(order), 0))
        for row, k in enumerate(order):
            is_tp = is_fp = False
            if overlaps.shape[1]:
                j = int(overlaps[row].argmax())
                if overlaps[row, j] >= iou_threshold:
                    if not hard[j]:
                        if taken[j]:
                            is_fp = True
                        else:
                            is_tp = taken[j] = True
                else:
                    is_fp = True
            else:
                is_fp = True
            scores.append(float(sc[k]))
            image.append(i)
            tp.append(is_tp)
            fp.append(is_fp)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")  # over the whole set, by falling score
    return ClassDetections(
        np.asarray(scores, dtype=np.float64)[order],
        np.asarray(image, dtype=np.int64)[order],
        np.asarray(tp, dtype=bool)[order],
        np.asarray(fp, dtype=bool)[order],
        positives,
    )


def mean_ap(per_class: Sequence[ClassDetections], kind: str = "11point", weights: np.ndarray | None = None) -> float:
    """The mean of the classes' APs (classes without objects in the set are left out)."""
    aps = [c.ap(kind, weights) for c in per_class]
    aps = [a for a in aps if not np.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


@dataclass(frozen=True)
class Interval:
    """A bootstrap estimate: the value on the data, its standard error and 95% interval."""

    value: float
    se: float
    low: float
    high: float


def bootstrap_map(
    per_class: Sequence[ClassDetections],
    other: Sequence[ClassDetections] | None = None,
    kind: str = "11point",
    samples: int = 1000,
    seed: int = 0,
) -> Interval:
    """mAP's uncertainty by resampling test images; with ``other``, the paired difference mAP - mAP(other).

    Each resample draws the test images with replacement and recomputes every class's AP on them, for both results
    with the same draw, so the difference's interval accounts for the images the two share.
    """
    n = len(per_class[0].positives)
    rng = np.random.default_rng(seed)
    value = mean_ap(per_class, kind) - (mean_ap(other, kind) if other is not None else 0.0)
    draws = []
    for _ in range(samples):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        d = mean_ap(per_class, kind, w) - (mean_ap(other, kind, w) if other is not None else 0.0)
        if not np.isnan(d):
            draws.append(d)
    draws = np.asarray(draws)
    lo, hi = np.percentile(draws, [2.5, 97.5]) if len(draws) else (np.nan, np.nan)
    return Interval(value, float(draws.std(ddof=1)) if len(draws) > 1 else float("nan"), float(lo), float(hi))


def compare_sentence(name_a: str, name_b: str, diff: Interval, unit: str = "mAP points") -> str:
    """A sentence for the difference a - b: a clear difference only when the 95% interval excludes zero."""
    d = 100 * diff.value
    band = f"{100 * diff.low:+.1f} to {100 * diff.high:+.1f}"
    if diff.low > 0 or diff.high < 0:
        better, worse = (name_a, name_b) if d > 0 else (name_b, name_a)
        return f"{better} scores {abs(d):.1f} {unit} above {worse} (95% interval of {name_a} - {name_b}: {band})."
    return f"No clear difference between {name_a} and {name_b}: {d:+.1f} {unit}, 95% interval {band} includes 0."


def margin_verdict(diff: Interval, margin: float) -> str:
    """Whether a difference a - b stays above -margin: "holds" when the whole 95% interval does, "fails" when the
    whole interval lies below it, "unclear" when it spans -margin (the paper's claim: SPP-net within 2 points)."""
    if diff.low > -margin:
        return "holds"
    if diff.high < -margin:
        return "fails"
    return "unclear"
