"""The paper's detection pipeline end to end (He et al. Sec. 4), SPP-net against R-CNN on labelled data.

Both modes read the same frozen conv layers and the same pyramid: SPP-net runs the conv layers once per image (at one
scale, or five with the closest-to-224 rule) and pools each window's cells; R-CNN warps each window to the network's
input size and runs the conv layers on it. On those features: per-class linear SVMs with hard negative mining, box
regression, class-wise NMS, and VOC mAP, with and without the regression.

Differences from the paper, on purpose: the SVMs read the pooled conv features directly (the paper's ZF-5 has fc6 and
fc7 fine-tuned on VOC between them); the default backbone is EfficientNet-Lite0 cut at its last stride-16 stage (the
paper's conv5 stride; its last map, stride 32 with an 851-pixel receptive field, cannot tell windows apart); and the
built-in scenes are synthetic. Window features are computed once per image, mode and settings, and cached on disk in
float16, so a second run only trains and an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms

from .detection import PAPER_SCALES, proposals, rcnn_mode, spp_mode
from .detection_data import DetectionImage, DetectionSet, read_voc, synthetic_scenes
from .detection_eval import ClassDetections, Interval, bootstrap_map, box_iou, match_class, mean_ap
from .detector import (
    EVICT_THRESHOLD,
    LinearSVMs,
    RidgeRegressor,
    assign_labels,
    choose_ridge_lambda,
    decode_boxes,
    hard_negatives,
    regression_pairs,
)
from .geometry import layer_geometry
from .models import SPPNet
from .pyramid import SpatialPyramidPool, check_levels

DEFAULT_CACHE = Path(os.environ.get("SPP_VIZ_CACHE", Path.home() / ".cache" / "spp_viz")) / "detection"
DETECTION_STRIDE = 16  # the paper's conv5 stride; the backbone is cut at its last stage with this stride
MODES = ("spp", "rcnn")
BOOTSTRAP_SAMPLES = 1000  # resamples of the test images behind every interval the page, CLI and JSON report
# The built-in scenes' default split sizes and windows: both modes, R-CNN included, in under 5 minutes on a 2-core CPU.
# Measured there: 40 + 30 scenes with 150 windows took 475 s, R-CNN's per-window passes most of it (README, Speed).
SCENES = {"train": 30, "test": 20}

Progress = Callable[[float, str], None] | None


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of one detection run (defaults: the built-in scenes on a 2-core CPU in a few minutes)."""

    levels: tuple[int, ...] = (4, 2, 1)  # the pyramid over the stride-16 map; {6,3,2,1} on 112 channels adds little
    windows: int = 100  # selective-search windows per image (the paper: about 2,000; R-CNN's cost grows with it)
    proposals: str = "fast"  # selective search "fast", "quality", or "sliding" windows
    scales: tuple[int, ...] = (688,)  # SPP-net: shorter side of the conv pass; several = the closest-to-224 rule
    svm_lambda: float = 1e-3  # L2 strength of the SVMs, relative to their mean squared hinge loss
    positive_weight: float = 2.0  # positives' loss weight (R-CNN's)
    feature_norm: float = 20.0  # features are scaled to this mean L2 norm (R-CNN's)
    initial_negatives: int = 10  # random negatives per image and class that mining starts from
    mining_rounds: int = 1  # passes of hard negative mining over the training images (the released code: one)
    retrain_every: int = 4000  # retrain during a pass once this many hard negatives were added
    ridge_lambdas: tuple[float, ...] = (10.0, 100.0, 1000.0, 4000.0, 10000.0)  # tried on held-out images
    max_regression_pairs: int = 4000  # per class, a random subset beyond this (bounds memory)
    nms_iou: float = 0.3
    keep_per_image: int = 100  # detections kept per class and image after NMS, for the evaluation
    seed: int = 0

    def validate(self) -> DetectorConfig:
        check_levels(self.levels)
        if self.windows < 1 or not self.scales or min(self.scales) < 32:
            raise ValueError("need at least one window per image and scales of at least 32 pixels")
        if self.mining_rounds < 0 or self.initial_negatives < 1:
            raise ValueError("mining rounds must be >= 0 and initial negatives >= 1")
        return self


# ----------------------------------------------------------------------------- backbone


def detection_backbone(model: SPPNet, levels: Sequence[int] = (4, 2, 1)) -> SPPNet:
    """The model's conv layers up to the last stage with stride <= 16, a max pyramid, and no classifier.

    Shares the model's layers (read only, nothing is copied or changed). For timm's EfficientNet the cut is inside
    ``blocks``; other models (ZF-5, AlexNet, Lab networks) keep all their conv layers.
    """
    full = model.features
    features, stage = full, "features"
    if hasattr(full, "blocks") and hasattr(full, "conv_stem"):
        for i in range(1, len(full.blocks) + 1):
            cand = nn.Sequential(OrderedDict(conv_stem=full.conv_stem, bn1=full.bn1, blocks=full.blocks[:i]))
            if layer_geometry(cand, (224, 224))[-1].x.jump <= DETECTION_STRIDE:
                features, stage = cand, f"blocks[:{i}]"
    stride = layer_geometry(features, (224, 224))[-1].x.jump
    with torch.inference_mode():
        probe = features(torch.zeros(1, 3, 64, 64, device=model.device))  # channels of the cut, from a tiny input
    spec = model.spec.__class__(
        **{
            **asdict(model.spec),
            "name": f"{model.name}/{stage}",
            "stride": stride,
            "channels": int(probe.shape[1]),
            "class_names": (),
        }
    )
    backbone = SPPNet(features, SpatialPyramidPool(check_levels(levels), "max"), nn.Identity(), spec)
    backbone.normalize.to(model.device)  # only the new buffers move; the shared layers are already there
    return backbone


def fingerprint(backbone: SPPNet) -> str:
    """A digest of the backbone's name, pyramid and conv weights: features cached under it are its own."""
    h = hashlib.sha1(f"{backbone.name}|{backbone.spp.levels}".encode())
    for name, t in backbone.features.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- window features, cached on disk


class FeatureCache:
    """Window boxes and float16 features per (image, settings) on disk; None keeps them in memory (tests)."""

    def __init__(self, root: str | Path | None = DEFAULT_CACHE) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, tuple[dict, np.ndarray, np.ndarray]] = {}
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(**parts) -> str:
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """(meta, boxes, features) or None; features are memory-mapped, read only when used."""
        if self.root is None:
            return self._memory.get(key)
        meta = self.root / f"{key}.json"
        if not meta.exists():
            return None
        try:
            return (
                json.loads(meta.read_text()),
                np.load(self.root / f"{key}.boxes.npy"),
                np.load(self.root / f"{key}.feats.npy", mmap_mode="r"),
            )
        except (OSError, ValueError):  # a damaged entry is computed again
            return None

    def features(self, key: str) -> np.ndarray:
        """One entry's features, read whole into memory (and dropped by the caller after use)."""
        if self.root is None:
            return self._memory[key][2]
        return np.load(self.root / f"{key}.feats.npy")

    def put(self, key: str, meta: dict, boxes: np.ndarray, feats: np.ndarray) -> None:
        if self.root is None:
            self._memory[key] = (meta, boxes, feats)
            return
        # The meta file is written last and renamed into place: an interrupted run never leaves an entry that looks
        # complete, and the next run resumes from the images already done.
        for suffix, arr in (("boxes.npy", boxes), ("feats.npy", feats)):
            tmp = self.root / f"{key}.{suffix}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, arr)
            os.replace(tmp, self.root / f"{key}.{suffix}")
        tmp = self.root / f"{key}.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.root / f"{key}.json")


@dataclass(frozen=True)
class WindowFeatures:
    """One image's windows and their pooled features (float16), with the seconds the features took."""

    boxes: np.ndarray  # [N, 4]; with ground truth, its K boxes come first
    features: np.ndarray  # [N, D] float16 (memory-mapped when read from the disk cache)
    seconds: float  # input preparation + conv + pooling, proposals excluded (the paper's feature time)
    gt_rows: int
    key: str  # where the cache keeps them


def cached_proposals(item: DetectionImage, config: DetectorConfig, cache: FeatureCache) -> np.ndarray:
    """The image's proposal windows [N, 4] (shared by both modes), computed once and kept in the cache."""
    key = FeatureCache.key(kind="proposals", image=item.digest(), mode=config.proposals, windows=config.windows)
    if (hit := cache.get(key)) is not None:
        return hit[1]
    boxes = proposals(item.image(), config.proposals, config.windows)
    cache.put(key, {}, boxes, np.zeros((len(boxes), 0), np.float16))
    return boxes


def window_features(
    backbone: SPPNet,
    print_: str,
    item: DetectionImage,
    mode: str,
    scales: Sequence[int],
    config: DetectorConfig,
    cache: FeatureCache,
    with_gt: bool,
) -> WindowFeatures:
    """The pooled features of an image's windows in one mode (read from the cache when they are there)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    key = FeatureCache.key(
        kind="features",
        backbone=print_,
        image=item.digest(),
        mode=mode,
        scales=list(scales) if mode == "spp" else None,
        windows=config.windows,
        proposals=config.proposals,
        with_gt=with_gt,
    )
    if (hit := cache.get(key)) is not None:
        meta, boxes, feats = hit
        return WindowFeatures(boxes, feats, meta["seconds"], meta["gt_rows"], key)
    windows = cached_proposals(item, config, cache)
    gt_rows = len(item.boxes) if with_gt else 0
    boxes = np.concatenate([item.boxes, windows]).astype(np.float32) if with_gt else windows
    img = item.image()
    if mode == "spp":
        result = spp_mode(backbone, img, boxes, scales, classify=False)
    else:
        result = rcnn_mode(backbone, img, boxes, classify=False)
    feats = result.features.float().cpu().numpy().astype(np.float16)  # half the disk and memory; SVMs read float32
    cache.put(key, {"seconds": result.timing.run, "gt_rows": gt_rows}, boxes, feats)
    return WindowFeatures(boxes, feats, result.timing.run, gt_rows, key)


# ----------------------------------------------------------------------------- the detector


@dataclass
class Detector:
    """Per-class SVMs and box regressors on one backbone's pooled window features."""

    classes: tuple[str, ...]
    mode: str
    scales: tuple[int, ...]
    backbone: str  # the backbone's name (model/stage)
    backbone_print: str  # fingerprint(backbone) at training time
    config: DetectorConfig
    feature_scale: float  # features are multiplied by this (their mean norm becomes config.feature_norm)
    svms: LinearSVMs
    regressors: dict[int, RidgeRegressor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """SVM scores [N, C] of float16 features [N, D]."""
        x = torch.from_numpy(np.asarray(feats, dtype=np.float32)) * self.feature_scale
        return self.svms.decision_function(x).numpy()

    def detect(
        self, boxes: np.ndarray, feats: np.ndarray, image_size: tuple[int, int], regress: bool = True
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per class: (boxes [k, 4], scores [k]) after box regression (when asked), clipping and class-wise NMS."""
        scores = self.scores(feats)
        x = np.asarray(feats, dtype=np.float32) * self.feature_scale if regress else None
        w, h = image_size
        out = []
        for c in range(len(self.classes)):
            b = boxes
            if x is not None and c in self.regressors:
                b = decode_boxes(boxes, self.regressors[c].predict(x))
            b = np.stack([b[:, 0].clip(0, w), b[:, 1].clip(0, h), b[:, 2].clip(0, w), b[:, 3].clip(0, h)], axis=1)
            valid = (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)
            tb, ts = torch.as_tensor(b[valid], dtype=torch.float32), torch.as_tensor(scores[valid, c])
            keep = batched_nms(tb, ts, torch.zeros(len(ts), dtype=torch.int64), self.config.nms_iou)
            keep = keep[: self.config.keep_per_image].numpy()
            out.append((b[valid][keep].astype(np.float32), scores[valid, c][keep]))
        return out

    def save(self, path: str | Path) -> Path:
        """A .safetensors file: the SVMs' and regressors' tensors, everything else in its metadata."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    def to_bytes(self) -> bytes:
        """The .safetensors file's bytes (for a download)."""
        from safetensors.torch import save

        tensors = {"svm.weight": self.svms.weight.contiguous(), "svm.bias": self.svms.bias.contiguous()}
        for c, reg in self.regressors.items():
            tensors[f"regression.{c}.weight"] = torch.from_numpy(np.ascontiguousarray(reg.weight, dtype=np.float32))
            tensors[f"regression.{c}.bias"] = torch.from_numpy(np.ascontiguousarray(reg.bias, dtype=np.float32))
        meta = {
            "classes": list(self.classes),
            "mode": self.mode,
            "scales": list(self.scales),
            "backbone": self.backbone,
            "backbone_print": self.backbone_print,
            "config": asdict(self.config),
            "feature_scale": self.feature_scale,
            "ridge_lambdas": {str(c): r.lam for c, r in self.regressors.items()},
            "svm": {"lam": self.svms.lam, "positive_weight": self.svms.positive_weight},
            "meta": self.meta,
        }
        return save(tensors, metadata={"spp_viz_detector": json.dumps(meta)})


def load_detector(source: str | Path | bytes) -> Detector:
    """A detector saved by Detector.save, from a path or the file's bytes (an upload).

    Raises:
        ValueError: not a detector file of this app.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file, safe_open

    try:
        if isinstance(source, bytes):
            tensors = load(source)
            header_len = int.from_bytes(source[:8], "little")
            meta_text = json.loads(source[8 : 8 + header_len]).get("__metadata__", {}).get("spp_viz_detector")
        else:
            tensors = load_file(str(source))
            with safe_open(str(source), "pt") as f:
                meta_text = (f.metadata() or {}).get("spp_viz_detector")
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"not a readable .safetensors file ({e})") from None
    if not meta_text:
        raise ValueError("this .safetensors file holds no detector of this app (no spp_viz_detector metadata)")
    meta = json.loads(meta_text)
    config = DetectorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    svms = LinearSVMs(meta["svm"]["lam"], meta["svm"]["positive_weight"])
    svms.weight, svms.bias = tensors["svm.weight"], tensors["svm.bias"]
    regressors = {}
    for c, lam in meta["ridge_lambdas"].items():
        reg = RidgeRegressor(lam)
        reg.weight = tensors[f"regression.{c}.weight"].double().numpy()
        reg.bias = tensors[f"regression.{c}.bias"].double().numpy()
        regressors[int(c)] = reg
    return Detector(
        tuple(meta["classes"]),
        meta["mode"],
        tuple(meta["scales"]),
        meta["backbone"],
        meta["backbone_print"],
        config,
        float(meta["feature_scale"]),
        svms,
        regressors,
        meta.get("meta", {}),
    )


# ----------------------------------------------------------------------------- training


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


def _report(progress: Progress, fraction: float, text: str) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), text)


def train_detector(
    backbone: SPPNet,
    data: DetectionSet,
    mode: str,
    scales: Sequence[int] = (688,),
    config: DetectorConfig = DetectorConfig(),
    cache: FeatureCache | None = None,
    progress: Progress = None,
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
    num_classes = len(data.classes)
    rng = np.random.default_rng(config.seed)
    images: list[_Image] = []
    pool = _Pool()
    pairs = [_Reservoir(config.max_regression_pairs) for _ in range(num_classes)]
    norms: list[float] = []
    start = time.perf_counter()
    for i, item in enumerate(data.images):
        _report(progress, 0.5 * i / len(data), f"{mode}: features of training image {i + 1} of {len(data)}")
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
    feature_seconds = time.perf_counter() - start
    scale = config.feature_norm / max(float(np.mean(norms)), 1e-6)

    svms = LinearSVMs(config.svm_lambda, config.positive_weight).fit(*pool.tensors(scale))
    mined = 0
    for round_ in range(config.mining_rounds):
        added = 0
        for i, im in enumerate(images):
            _report(
                progress,
                0.5 + 0.35 * (round_ + i / len(images)) / config.mining_rounds,
                f"{mode}: hard negatives, image {i + 1} of {len(images)}",
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

    _report(progress, 0.9, f"{mode}: box regression")
    regressors, lambdas = _fit_regressors([p.items for p in pairs], scale, config)
    return Detector(
        data.classes,
        mode,
        tuple(scales) if mode == "spp" else (),
        backbone.name,
        print_,
        config,
        scale,
        svms,
        regressors,
        {
            "data": data.name,
            "train_images": len(data),
            "hard_negatives_added": mined,
            "pool_size": len(pool.feats),
            "regression_pairs": [p.seen for p in pairs],
            "ridge_errors": lambdas,
            "feature_seconds_train": feature_seconds,
        },
    )


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


# ----------------------------------------------------------------------------- testing


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
    detections: list[list[tuple[np.ndarray, np.ndarray]]]  # per test image, per class: (boxes, scores), regressed
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
    progress: Progress = None,
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
    raw: list[list[tuple[np.ndarray, np.ndarray]]] = []
    regressed: list[list[tuple[np.ndarray, np.ndarray]]] = []
    seconds = []
    for i, item in enumerate(data.images):
        _report(progress, i / len(data), f"{detector.mode}: testing on image {i + 1} of {len(data)}")
        wf = window_features(
            backbone, print_, item, detector.mode, detector.scales, detector.config, cache, with_gt=False
        )
        seconds.append(wf.seconds)
        raw.append(detector.detect(wf.boxes, wf.features, item.size, regress=False))
        regressed.append(detector.detect(wf.boxes, wf.features, item.size, regress=True))
    gt = [(item.boxes, item.labels, item.difficult) for item in data.images]

    def marked(dets: list[list[tuple[np.ndarray, np.ndarray]]]) -> list[ClassDetections]:
        return [
            match_class(
                [d[c][0] for d in dets],
                [d[c][1] for d in dets],
                [b[lab == c] for b, lab, _ in gt],
                [hard[lab == c] for _, lab, hard in gt],
            )
            for c in range(num_classes)
        ]

    return ModeReport(
        name or detector.mode,
        detector.mode,
        detector.scales,
        data.classes,
        marked(regressed),
        marked(raw),
        seconds,
        regressed,
        detector=detector,
    )


# ----------------------------------------------------------------------------- the whole comparison


@dataclass(frozen=True)
class ModeSpec:
    """One row of the comparison: a mode and, for SPP-net, its scales."""

    name: str
    mode: str
    scales: tuple[int, ...] = ()


def mode_specs(modes: Sequence[str], scales: Sequence[int]) -> list[ModeSpec]:
    """Rows for mode names: "spp" (at ``scales``), "spp-5" (the paper's five scales), "rcnn"."""
    out = []
    for m in modes:
        if m == "spp":
            out.append(ModeSpec("spp", "spp", tuple(scales)))
        elif m == "spp-5":
            out.append(ModeSpec("spp-5", "spp", PAPER_SCALES))
        elif m == "rcnn":
            out.append(ModeSpec("rcnn", "rcnn"))
        else:
            raise ValueError(f"unknown mode {m!r}: use spp, spp-5 or rcnn")
    return out


@dataclass
class LabReport:
    data: str
    classes: tuple[str, ...]
    train_images: int
    test_images: int
    backbone: str
    config: DetectorConfig
    modes: dict[str, ModeReport]
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @cached_property
    def spp_minus_rcnn(self) -> Interval | None:
        """SPP-net's mAP minus R-CNN's, paired over the same resampled test images (None without both modes)."""
        if "spp" not in self.modes or "rcnn" not in self.modes:
            return None
        return bootstrap_map(self.modes["spp"].per_class, self.modes["rcnn"].per_class, samples=BOOTSTRAP_SAMPLES)

    def json(self) -> dict:
        out = {
            "data": self.data,
            "classes": list(self.classes),
            "train_images": self.train_images,
            "test_images": self.test_images,
            "backbone": self.backbone,
            "levels": list(self.config.levels),
            "windows": self.config.windows,
            "seconds": self.seconds,
            "modes": {name: r.json() for name, r in self.modes.items()},
            "skipped": [list(s) for s in self.skipped],
        }
        if (diff := self.spp_minus_rcnn) is not None:
            spp, rcnn = self.modes["spp"], self.modes["rcnn"]
            out["spp_minus_rcnn_map"] = {"value": diff.value, "se": diff.se, "low": diff.low, "high": diff.high}
            out["feature_speedup"] = rcnn.feature_seconds_per_image / spp.feature_seconds_per_image
        return out


def run_detection_lab(
    backbone: SPPNet,
    train: DetectionSet,
    test: DetectionSet,
    modes: Sequence[str] = MODES,
    config: DetectorConfig = DetectorConfig(),
    cache: FeatureCache | None = None,
    progress: Progress = None,
) -> LabReport:
    """Train and test a detector per mode on the same data, windows and backbone: the paper's comparison."""
    config.validate()
    cache = cache if cache is not None else FeatureCache()
    specs = mode_specs(modes, config.scales)
    start = time.perf_counter()
    reports = {}
    for k, spec in enumerate(specs):

        def part(lo: float, hi: float, k: int = k) -> Progress:
            if progress is None:
                return None
            return lambda f, text: progress((k + lo + (hi - lo) * f) / len(specs), text)

        t0 = time.perf_counter()
        detector = train_detector(backbone, train, spec.mode, spec.scales or config.scales, config, cache, part(0, 0.7))
        trained = time.perf_counter() - t0
        report = evaluate_detector(detector, backbone, test, cache, part(0.7, 1.0), name=spec.name)
        report.train_seconds = trained
        reports[spec.name] = report
    return LabReport(
        train.name,
        train.classes,
        len(train),
        len(test),
        backbone.name,
        config,
        reports,
        time.perf_counter() - start,
        [*train.skipped, *test.skipped],
    )


def misses_and_false_positives(
    detections: list[tuple[np.ndarray, np.ndarray]], item: DetectionImage, threshold: float = 0.0
) -> tuple[list[tuple[int, np.ndarray, float, bool]], np.ndarray]:
    """For drawing one test image: the detections scoring above ``threshold`` as (class, box, score, correct), by
    falling score, and the ground-truth boxes none of them found (difficult ones are never missed)."""
    shown = []
    found = np.zeros(len(item.boxes), dtype=bool)
    for c, (boxes, scores) in enumerate(detections):
        of_class = np.nonzero(item.labels == c)[0]
        taken = np.zeros(len(of_class), dtype=bool)
        overlaps = box_iou(boxes, item.boxes[of_class]) if len(of_class) else np.zeros((len(boxes), 0))
        for r in np.argsort(-scores, kind="stable"):
            if scores[r] <= threshold:
                continue
            correct = False
            if overlaps.shape[1]:
                j = int(overlaps[r].argmax())
                if overlaps[r, j] >= 0.5 and not taken[j]:
                    taken[j] = correct = True
                    found[of_class[j]] = True
            shown.append((c, boxes[r], float(scores[r]), correct))
    shown.sort(key=lambda d: -d[2])
    missed = item.boxes[~found & ~item.difficult]
    return shown, missed


def load_data(
    data: str,
    train_split: str = "trainval",
    test_split: str = "test",
    max_images: int | None = None,
    seed: int = 0,
) -> tuple[DetectionSet, DetectionSet]:
    """("synthetic" or a VOC-format folder) -> (training set, test set); the test set uses the training classes."""
    if data == "synthetic":
        return (
            synthetic_scenes("train", min(SCENES["train"], max_images or SCENES["train"]), seed),
            synthetic_scenes("test", min(SCENES["test"], max_images or SCENES["test"]), seed),
        )
    train = read_voc(data, train_split).limit(max_images)
    return train, read_voc(data, test_split, classes=train.classes).limit(max_images)
