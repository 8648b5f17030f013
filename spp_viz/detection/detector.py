"""The trained detector: its settings (``DetectorConfig``), per-class SVMs and box regressors on one backbone's pooled
window features, what it finds in an image (``Detections``), and its .safetensors file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import batched_nms

from ..pyramid import check_levels
from .boxes import decode_boxes
from .svm import LinearSVMs, RidgeRegressor


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


DEFAULT_CONFIG = DetectorConfig()


@dataclass(frozen=True)
class Detections:
    """Detections in one image: boxes Tensor-like [K, 4] (x0, y0, x1, y1), scores [K] (SVM scores), labels [K] (class
    index); ``correct`` [K] once marked against the ground truth (``evaluate.mark_detections``)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    correct: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def of_class(self, c: int) -> Detections:
        keep = self.labels == c
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def subset(self, rows: np.ndarray) -> Detections:
        """The detections at ``rows`` (indices or a mask), in that order."""
        correct = None if self.correct is None else self.correct[rows]
        return Detections(self.boxes[rows], self.scores[rows], self.labels[rows], correct)

    @staticmethod
    def join(parts: Sequence[Detections]) -> Detections:
        if not parts:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return Detections(
            np.concatenate([d.boxes for d in parts]).reshape(-1, 4).astype(np.float32),
            np.concatenate([d.scores for d in parts]),
            np.concatenate([d.labels for d in parts]).astype(np.int64),
        )  # the defaults: the built-in scenes on a 2-core CPU in a few minutes


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
    ) -> Detections:
        """What the detector finds among an image's windows: each class's boxes after box regression (when asked),
        clipping and NMS, at most ``config.keep_per_image`` per class, class by class, strongest first."""
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
            out.append(Detections(b[valid][keep].astype(np.float32), scores[valid, c][keep], np.full(len(keep), c)))
        return Detections.join(out)

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
        classes=tuple(meta["classes"]),
        mode=meta["mode"],
        scales=tuple(meta["scales"]),
        backbone=meta["backbone"],
        backbone_print=meta["backbone_print"],
        config=config,
        feature_scale=float(meta["feature_scale"]),
        svms=svms,
        regressors=regressors,
        meta=meta.get("meta", {}),
    )
