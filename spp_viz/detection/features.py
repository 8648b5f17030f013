"""Window features for the detector: the stride-16 backbone, and each image's pooled window features in one mode,
cached on disk in float16 (a second run only trains; an interrupted run resumes).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import DiskFull, hold, write_atomically
from ..footprint import measure
from ..geometry import layer_geometry
from ..models import SPPNet
from ..pyramid import SpatialPyramidPool, check_levels
from ..settings import cache_root
from ..split import stage_at_stride
from .data import DetectionImage
from .detector import DetectorConfig
from .proposals import proposals
from .windows import rcnn_mode, spp_mode

FEATURE_CACHE = cache_root() / "detection"
DETECTION_STRIDE = 16  # the paper's conv5 stride; the backbone is cut at its last stage with this stride
WINDOW_MODES = ("spp", "rcnn")


def detection_backbone(model: SPPNet, levels: Sequence[int] = (4, 2, 1)) -> SPPNet:
    """The model's conv layers up to the last stage with stride <= 16, a max pyramid, and no classifier.

    Shares the model's layers (read only, nothing is copied or changed). For timm's EfficientNet the cut is inside
    ``blocks``; a timm or torchvision network by name is cut at the stage ``external.stage_at_stride`` finds, its
    geometry measured (``footprint.measure``); other models (ZF-5, AlexNet, Lab networks) keep all their conv layers.
    """
    full = model.features
    features, stage, footprint = full, "features", None
    external = stage_at_stride(full, DETECTION_STRIDE) if model.footprint is not None else None
    if external is not None:
        features, stage = external
        footprint = measure(features)
        stride = footprint.stride[1]
    else:
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
    backbone.footprint = footprint
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
    """Window boxes and float16 features per (image, settings) on disk; None keeps them in memory (tests).

    While it lives it holds its folder in use (``files.in_use``), so the cache folder's trimmer removes none of the
    features a training reads (memory mapped); ``close`` (or its end) lets go. On a full disk, what cannot be
    written is kept in memory for this run instead, and ``disk_full`` says so.
    """

    def __init__(self, root: str | Path | None = FEATURE_CACHE) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, tuple[dict, np.ndarray, np.ndarray]] = {}
        self._held: list[int] = []
        self.disk_full = False
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._held = hold(self.root)

    def close(self) -> None:
        while self._held:
            os.close(self._held.pop())

    def __del__(self) -> None:
        self.close()

    @staticmethod
    def key(**parts) -> str:
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """(meta, boxes, features) or None; features are memory-mapped, read only when used."""
        if self.root is None or key in self._memory:
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
        if self.root is None or key in self._memory:
            return self._memory[key][2]
        return np.load(self.root / f"{key}.feats.npy")

    def put(self, key: str, meta: dict, boxes: np.ndarray, feats: np.ndarray) -> None:
        if self.root is None:
            self._memory[key] = (meta, boxes, feats)
            return
        # The meta file is written last and renamed into place: an interrupted run never leaves an entry that looks
        # complete, and the next run resumes from the images already done.
        # Each writer (another app server on the same cache folder, another thread) writes a file of its own name.
        try:
            for suffix, arr in (("boxes.npy", boxes), ("feats.npy", feats)):
                write_atomically(self.root / f"{key}.{suffix}", lambda tmp, arr=arr: np.save(tmp, arr))
            write_atomically(self.root / f"{key}.json", lambda tmp: tmp.write_text(json.dumps(meta)))
        except DiskFull:
            self.disk_full = True
            self._memory[key] = (meta, boxes, np.asarray(feats))


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
    if mode not in WINDOW_MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(WINDOW_MODES)}")
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
