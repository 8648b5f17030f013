"""Training the detector (Sec. 4.1): features of every training image, SVMs with hard negative mining, then box
regression, with memory bounded on any number of images (features are read again from the disk cache).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..i18n import _
from ..models import SPPNet
from ..progress import Progress, report
from .data import DetectionSet
from .detector import DEFAULT_CONFIG, Detector, DetectorConfig
from .features import FeatureCache, fingerprint, window_features
from .svm import (
    EVICT_THRESHOLD,
    LinearSVMs,
    RidgeRegressor,
    assign_labels,
    choose_ridge_lambda,
    hard_negatives,
    regression_pairs,
)


@dataclass
class _Pool:
    """The SVMs' training examples: feature rows and their labels per class (0 = not in that class's set)."""

    rows: dict[tuple[int, int], int] = field(default_factory=dict)  # (image, window) -> pool row
    feats: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def add(self, image: int, window: int, feat: np.ndarray, label: np.ndarray) -> None:
        """Add a window, or merge its labels into the row already there."""
        if (image, window) in self.rows:
            row = self.rows[(image, window)]
            self.labels[row] = np.where(label != 0, label, self.labels[row])
        else:
            self.rows[(image, window)] = len(self.feats)
            # A copy: a row of a memory-mapped file would keep the file (and a descriptor) open for the whole run.
            self.feats.append(np.array(feat, dtype=np.float16))
            self.labels.append(label.astype(np.int8))

    def has(self, image: int, window: int, c: int) -> bool:
        row = self.rows.get((image, window))
        return row is not None and self.labels[row][c] != 0

    def tensors(self, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.stack(self.feats).astype(np.float32)) * scale, torch.from_numpy(
            np.stack(self.labels).astype(np.int64)
        )

    def evict(self, scores: np.ndarray, threshold: float = EVICT_THRESHOLD) -> int:
        """Drop easy negatives (score below threshold) from their classes; rows left with no class go. Returns the
        number of (row, class) labels dropped."""
        labels = np.stack(self.labels)
        easy = (labels == -1) & (scores < threshold)
        labels[easy] = 0
        keep = np.nonzero((labels != 0).any(axis=1))[0]
        inverse = {row: key for key, row in self.rows.items()}
        self.rows = {inverse[int(r)]: i for i, r in enumerate(keep)}
        self.feats = [self.feats[int(r)] for r in keep]
        self.labels = [labels[int(r)] for r in keep]
        return int(easy.sum())


@dataclass
class _Image:
    """What training keeps of an image between passes: its windows' labels, never its features (those stay in the
    cache and are read again per image, so memory does not grow with the data)."""

    key: str  # the cache key of its features
    labels: np.ndarray  # [N, C] int8


@dataclass
class _Reservoir:
    """At most ``size`` regression pairs of one class, a uniform sample of all seen (reservoir sampling)."""

    size: int
    seen: int = 0
    items: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # (image, float16 feature, target)

    def add(self, rng: np.random.Generator, item: tuple[int, np.ndarray, np.ndarray]) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        elif (j := int(rng.integers(self.seen))) < self.size:
            self.items[j] = item


def train_detector(
    backbone: SPPNet,
    data: DetectionSet,
    mode: str,
    scales: Sequence[int] = (688,),
    config: DetectorConfig = DEFAULT_CONFIG,
    cache: FeatureCache | None = None,
    progress: Progress | None = None,
) -> Detector:
    """Features of every training image, SVMs with hard negative mining, then box regression.

    One pass computes (or reads) each image's features and keeps what training needs of them: the positives and a
    random start of negatives, the regression pairs (a bounded sample), and a sample for the feature scale. Mining
    then reads each image's features again from the cache. Progress goes 0 -> 1 over features (the first half),
    mining, regression.
    """
    config.validate()
    cache = cache if cache is not None else FeatureCache()
    print_ = fingerprint(backbone)
    start = time.perf_counter()
    first = _first_pass(backbone, print_, data, mode, scales, config, cache, progress)
    feature_seconds = time.perf_counter() - start
    svms = LinearSVMs(config.svm_lambda, config.positive_weight).fit(*first.pool.tensors(first.scale))
    mined = _mine_hard_negatives(svms, first, len(data.classes), config, cache, mode, progress)
    report(progress, 0.9, _("{mode}: box regression").format(mode=mode))
    regressors, lambdas = _fit_regressors([p.items for p in first.pairs], first.scale, config)
    return Detector(
        classes=data.classes,
        mode=mode,
        scales=tuple(scales) if mode == "spp" else (),
        backbone=backbone.name,
        backbone_print=print_,
        config=config,
        feature_scale=first.scale,
        svms=svms,
        regressors=regressors,
        meta={
            "data": data.name,
            "train_images": len(data),
            "hard_negatives_added": mined,
            "pool_size": len(first.pool.feats),
            "regression_pairs": [p.seen for p in first.pairs],
            "ridge_errors": lambdas,
            "feature_seconds_train": feature_seconds,
        },
    )


@dataclass
class _FirstPass:
    """What the pass over the training images keeps: per image its labels, the SVMs' starting pool, a bounded sample
    of regression pairs per class, and the feature scale."""

    images: list[_Image]
    pool: _Pool
    pairs: list[_Reservoir]
    scale: float


def _first_pass(
    backbone: SPPNet,
    print_: str,
    data: DetectionSet,
    mode: str,
    scales: Sequence[int],
    config: DetectorConfig,
    cache: FeatureCache,
    progress: Progress | None,
) -> _FirstPass:
    """Each training image's features once: positives and a random start of negatives into the pool, regression
    pairs into the reservoirs, and norms for R-CNN's feature scale. Progress 0 -> 0.5."""
    num_classes = len(data.classes)
    rng = np.random.default_rng(config.seed)
    images: list[_Image] = []
    pool = _Pool()
    pairs = [_Reservoir(config.max_regression_pairs) for _ in range(num_classes)]
    norms: list[float] = []
    for i, item in enumerate(data.images):
        report(
            progress,
            0.5 * i / len(data),
            _("{mode}: features of training image {i} of {n}").format(mode=mode, i=i + 1, n=len(data)),
        )
        wf = window_features(backbone, print_, item, mode, scales, config, cache, with_gt=True)
        feats = np.asarray(wf.features)
        labels = assign_labels(wf.boxes, item.boxes, item.labels, item.difficult, num_classes, wf.gt_rows)
        images.append(_Image(wf.key, labels))
        if i < 20:  # R-CNN's feature scaling: one factor, so the mean L2 norm becomes feature_norm
            norms += np.linalg.norm(feats[:50].astype(np.float32), axis=1).tolist()
        for c in range(num_classes):
            pos = np.nonzero(labels[:, c] == 1)[0]
            neg = np.nonzero(labels[:, c] == -1)[0]
            neg = rng.choice(neg, size=min(len(neg), config.initial_negatives), replace=False) if len(neg) else neg
            for r in np.concatenate([pos, neg]):
                label = np.zeros(num_classes, np.int8)
                label[c] = labels[r, c]
                pool.add(i, int(r), feats[r], label)
        # Box regression learns from the proposals (not the ground-truth boxes themselves) near a box.
        rows, classes, targets = regression_pairs(wf.boxes[wf.gt_rows :], item.boxes, item.labels)
        for r, c, t in zip(rows, classes, targets, strict=True):
            pairs[int(c)].add(rng, (i, np.array(feats[wf.gt_rows + r], dtype=np.float16), t))  # a copy, as above
    scale = config.feature_norm / max(float(np.mean(norms)), 1e-6)
    return _FirstPass(images, pool, pairs, scale)


def _mine_hard_negatives(
    svms: LinearSVMs,
    first: _FirstPass,
    num_classes: int,
    config: DetectorConfig,
    cache: FeatureCache,
    mode: str,
    progress: Progress | None,
) -> int:
    """R-CNN's hard negative mining: each image's features read again from the cache, the negatives inside the
    margin added, the SVMs retrained (and easy negatives dropped) as they accumulate. Returns how many were added.
    Progress 0.5 -> 0.85."""
    pool, images, scale = first.pool, first.images, first.scale
    mined = 0
    for round_ in range(config.mining_rounds):
        added = 0
        for i, im in enumerate(images):
            report(
                progress,
                0.5 + 0.35 * (round_ + i / len(images)) / config.mining_rounds,
                _("{mode}: hard negatives, image {i} of {n}").format(mode=mode, i=i + 1, n=len(images)),
            )
            feats = cache.features(im.key)
            scores = svms.decision_function(torch.from_numpy(feats.astype(np.float32)) * scale).numpy()
            for c in range(num_classes):
                for r in hard_negatives(scores[:, c], im.labels[:, c]):
                    if not pool.has(i, int(r), c):
                        label = np.zeros(num_classes, np.int8)
                        label[c] = -1
                        pool.add(i, int(r), feats[r], label)
                        added += 1
            if added >= config.retrain_every:
                mined += added
                added = 0
                svms.fit(*pool.tensors(scale))
                pool.evict(svms.decision_function(pool.tensors(scale)[0]).numpy())
        mined += added
        svms.fit(*pool.tensors(scale))
        pool.evict(svms.decision_function(pool.tensors(scale)[0]).numpy())
    return mined


def _fit_regressors(
    pairs: list[list[tuple[int, np.ndarray, np.ndarray]]], scale: float, config: DetectorConfig
) -> tuple[dict[int, RidgeRegressor], dict[str, float]]:
    """One ridge regressor per class; lambda chosen on every fifth training image held out, then refit on all."""
    errors = dict.fromkeys(config.ridge_lambdas, 0.0)
    counted = 0
    for items in pairs:
        held = np.asarray([i % 5 == 4 for i, _, _ in items], dtype=bool)
        if held.sum() < 2 or (~held).sum() < 2:
            continue
        x = np.stack([p[1] for p in items]).astype(np.float32) * scale
        y = np.stack([p[2] for p in items])
        _, errs = choose_ridge_lambda(x[~held], y[~held], x[held], y[held], config.ridge_lambdas)
        for lam, e in errs.items():
            errors[lam] += e * held.sum()
        counted += int(held.sum())
    best = min(errors, key=errors.get) if counted else max(config.ridge_lambdas[:4])
    regressors = {}
    for c, items in enumerate(pairs):
        if len(items) >= 2:
            x = np.stack([p[1] for p in items]).astype(np.float32) * scale
            regressors[c] = RidgeRegressor(best).fit(x, np.stack([p[2] for p in items]))
    return regressors, {str(k): float(v / counted) if counted else float("nan") for k, v in errors.items()}
