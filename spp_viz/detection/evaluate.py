"""PASCAL VOC evaluation: AP (11-point VOC 2007 and all-points), mAP and its uncertainty, and a detector tested on a
set of images.

Matching follows the VOC devkit: in each image, detections of a class are taken by falling score; one whose best IoU
with that class's ground truth is >= 0.5 is a true positive if that box is not yet taken, a false positive if it is;
a detection matched to a "difficult" box counts as neither, and difficult boxes are never missed.
Boxes are (x0, y0, x1, y1) in pixel edges (x1, y1 exclusive), so an area is (x1 - x0) * (y1 - y0), without VOC's +1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import verdicts
from ..i18n import _
from ..models import SPPNet
from ..progress import Progress, report
from ..stats import Interval
from .boxes import box_iou
from .data import DetectionImage, DetectionSet
from .detector import Detections, Detector
from .features import FeatureCache, fingerprint, window_features

IOU_THRESHOLD = 0.5


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


@dataclass(frozen=True)
class ImageMatch:
    """One image's detections of one class matched to its boxes of that class (VOC rules).

    Attributes:
        order: [D] the detections by falling score (indices into the input).
        tp / fp: [D] in that order; both False for one matched to a difficult box.
        found: [G] which boxes a true positive took.
    """

    order: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    found: np.ndarray


def match_image(
    boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, hard: np.ndarray, iou_threshold: float = IOU_THRESHOLD
) -> ImageMatch:
    """Take the detections by falling score; each takes the box it overlaps most if that overlap reaches the threshold:
    a true positive if the box is free, a false positive if taken, neither if the box is difficult."""
    hard = np.asarray(hard, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="stable")
    taken = np.zeros(len(gt), dtype=bool)
    overlaps = box_iou(np.asarray(boxes).reshape(-1, 4)[order], gt) if len(gt) else np.zeros((len(order), 0))
    tp, fp = np.zeros(len(order), dtype=bool), np.zeros(len(order), dtype=bool)
    for row in range(len(order)):
        j = int(overlaps[row].argmax()) if overlaps.shape[1] else -1
        if j < 0 or overlaps[row, j] < iou_threshold:
            fp[row] = True
        elif not hard[j]:
            if taken[j]:
                fp[row] = True
            else:
                tp[row] = taken[j] = True
    return ImageMatch(order, tp, fp, taken)


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
        m = match_image(boxes, sc, gt, hard, iou_threshold)
        scores += [float(sc[k]) for k in m.order]
        image += [i] * len(m.order)
        tp += m.tp.tolist()
        fp += m.fp.tolist()
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
    for _i in range(samples):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        d = mean_ap(per_class, kind, w) - (mean_ap(other, kind, w) if other is not None else 0.0)
        if not np.isnan(d):
            draws.append(d)
    draws = np.asarray(draws)
    lo, hi = np.percentile(draws, [2.5, 97.5]) if len(draws) else (np.nan, np.nan)
    return Interval(value, float(draws.std(ddof=1)) if len(draws) > 1 else float("nan"), float(lo), float(hi))


def compare_sentence(name_a: str, name_b: str, diff: Interval, unit: str | None = None) -> str:
    """A sentence for the difference a - b (in mAP points unless ``unit`` says otherwise): a clear difference only
    when the 95% interval excludes zero."""
    return verdicts.between(name_a, name_b, diff.value, diff.low, diff.high, unit or _("mAP points"))


def margin_verdict(diff: Interval, margin: float) -> str:
    """Whether a difference a - b stays above -margin ("holds", "fails", "unclear"): the paper's claim, SPP-net
    within 2 points."""
    return verdicts.within_margin(diff.low, diff.high, margin)


BOOTSTRAP_SAMPLES = 1000  # resamples of the test images behind every interval the page, CLI and JSON report


@dataclass
class ModeReport:
    """One mode's detector on the test set."""

    name: str  # "spp", "spp-5", "rcnn"
    mode: str
    scales: tuple[int, ...]
    classes: tuple[str, ...]
    per_class: list[ClassDetections]  # with box regression
    per_class_raw: list[ClassDetections]  # without
    feature_seconds: list[float]  # per test image, the same windows in every mode
    detections: list[Detections]  # per test image, with box regression
    train_seconds: float = 0.0
    detector: Detector | None = None

    @property
    def map(self) -> float:
        return mean_ap(self.per_class)

    @property
    def map_no_bbox_reg(self) -> float:
        return mean_ap(self.per_class_raw)

    def ap(self, regressed: bool = True, kind: str = "11point") -> dict[str, float]:
        marked = self.per_class if regressed else self.per_class_raw
        return {n: c.ap(kind) for n, c in zip(self.classes, marked, strict=True)}

    @property
    def feature_seconds_per_image(self) -> float:
        return float(np.mean(self.feature_seconds)) if self.feature_seconds else float("nan")

    @cached_property
    def interval(self) -> Interval:
        """mAP's 95% interval by bootstrap over test images (computed once: the page redraws often)."""
        return bootstrap_map(self.per_class, samples=BOOTSTRAP_SAMPLES)

    @cached_property
    def regression_gain(self) -> Interval:
        """mAP with box regression minus without, paired over the same resampled test images."""
        return bootstrap_map(self.per_class, self.per_class_raw, samples=BOOTSTRAP_SAMPLES)

    def json(self) -> dict:
        band = self.interval
        return {
            "map": self.map,
            "map_no_bbox_reg": self.map_no_bbox_reg,
            "map_all_points": mean_ap(self.per_class, "all"),
            "ap": self.ap(),
            "ap_no_bbox_reg": self.ap(regressed=False),
            "feature_seconds_per_image": self.feature_seconds_per_image,
            "scales": list(self.scales),
            "train_seconds": self.train_seconds,
            "map_95_interval": [band.low, band.high],
        }


def evaluate_detector(
    detector: Detector,
    backbone: SPPNet,
    data: DetectionSet,
    cache: FeatureCache | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> ModeReport:
    """Detections on every test image, marked against its ground truth (VOC rules, IoU 0.5)."""
    cache = cache if cache is not None else FeatureCache()
    print_ = fingerprint(backbone)
    if print_ != detector.backbone_print:
        raise ValueError(
            f"this detector was trained on the features of {detector.backbone}; the backbone given "
            f"({backbone.name}) computes other features"
        )
    if tuple(data.classes) != tuple(detector.classes):
        known, given = ", ".join(detector.classes), ", ".join(data.classes)
        raise ValueError(f"the detector knows {known}; the test set has {given}")
    num_classes = len(data.classes)
    raw: list[Detections] = []
    regressed: list[Detections] = []
    seconds = []
    for i, item in enumerate(data.images):
        said = _("{mode}: testing on image {i} of {n}").format(mode=detector.mode, i=i + 1, n=len(data))
        report(progress, i / len(data), said)
        wf = window_features(
            backbone, print_, item, detector.mode, detector.scales, detector.config, cache, with_gt=False
        )
        seconds.append(wf.seconds)
        raw.append(detector.detect(wf.boxes, wf.features, item.size, regress=False))
        regressed.append(detector.detect(wf.boxes, wf.features, item.size, regress=True))
    gt = [(item.boxes, item.labels, item.difficult) for item in data.images]

    def marked(dets: list[Detections]) -> list[ClassDetections]:
        out = []
        for c in range(num_classes):
            of_class = [d.of_class(c) for d in dets]  # one split per image and class
            out.append(
                match_class(
                    [d.boxes for d in of_class],
                    [d.scores for d in of_class],
                    [b[lab == c] for b, lab, _ in gt],
                    [hard[lab == c] for _, lab, hard in gt],
                )
            )
        return out

    return ModeReport(
        name=name or detector.mode,
        mode=detector.mode,
        scales=detector.scales,
        classes=data.classes,
        per_class=marked(regressed),
        per_class_raw=marked(raw),
        feature_seconds=seconds,
        detections=regressed,
        detector=detector,
    )


def mark_detections(
    detections: Detections, item: DetectionImage, threshold: float = 0.0
) -> tuple[Detections, np.ndarray]:
    """For drawing one test image: the detections scoring above ``threshold``, by falling score, each marked correct
    or a false positive by the evaluation's own matching (``match_image``), and the ground-truth boxes none of them
    found (difficult ones are never missed)."""
    shown = detections.subset(np.nonzero(detections.scores > threshold)[0])
    correct = np.zeros(len(shown), dtype=bool)
    found = np.zeros(len(item.boxes), dtype=bool)
    for c in np.unique(shown.labels):
        rows = np.nonzero(shown.labels == c)[0]
        of_class = np.nonzero(item.labels == c)[0]
        m = match_image(shown.boxes[rows], shown.scores[rows], item.boxes[of_class], item.difficult[of_class])
        correct[rows[m.order]] = ~m.fp
        found[of_class[m.found]] = True
    by_score = np.argsort(-shown.scores, kind="stable")
    marked = Detections(shown.boxes, shown.scores, shown.labels, correct).subset(by_score)
    return marked, item.boxes[~found & ~item.difficult]
