"""The Lab's networks: their settings (``LabConfig``), the small SPP-net and its fixed-size twin (``FixedPool``), and
a new pyramid head on a pretrained zoo model's conv layers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..models import NetSpec, SPPNet
from ..pyramid import SpatialPyramidPool, check_levels
from .data import CLASSES

REGIMES = ("crop", "warp", "single-size", "multi-size", "random-size")
NORMS = ("group", "batch")
GROUPS = 8  # GroupNorm's groups (fewer where a layer's channels do not divide into 8)


@dataclass(frozen=True)
class LabConfig:
    levels: tuple[int, ...] = (4, 2, 1)  # the pyramid (SPP regimes)
    regime: str = "multi-size"  # one of REGIMES
    size: int = 64  # the fixed network's input side, and the crop / warp test views' side
    second_scale: float = 180 / 224  # multi-size: the other scale, as in the paper (180 against 224)
    epochs: int = 12  # at most: early stopping (patience) may end training sooner
    batch_size: int = 32
    lr: float = 1e-3  # Adam; 3e-3 collapsed to the uniform prediction on SPP runs
    width: int = 32  # channels of the first conv blocks; conv5 has 2 * width
    seed: int = 0  # data, initialisation and order: the same seed gives the same model
    train_count: int = 800
    val_count: int = 200
    test_count: int = 400
    # A new set of train_count generated images every epoch (the shapes are unlimited): the networks cannot learn
    # their training images by heart, which the fixed 800 did within 10 epochs (training loss near 0, validation flat).
    fresh_data: bool = False
    # Early stopping: end after this many epochs without a better validation accuracy on the view trained for, and
    # keep the best epoch's weights. 0: train every epoch, keep the last.
    patience: int = 0
    # How conv activations are normalised. "batch" (BatchNorm) learns fastest from few images (GroupNorm at full rate
    # from the first step stayed at chance on 400 images). "group" (GroupNorm, 8 groups) normalises each image alone,
    # the same in training and test: full images train in batches of one size each, and BatchNorm's running
    # averages then fit no size well (an SPP network at 96% with each batch's own statistics fell to 92% in eval).
    norm: str = "batch"

    @classmethod
    def sized(cls, train_count: int, **changes) -> LabConfig:
        """A config whose validation and test sets grow with the training set (a quarter and a half of it)."""
        return cls(
            train_count=train_count,
            val_count=max(40, train_count // 4),
            test_count=max(40, train_count // 2),
            **changes,
        )

    def validate(self) -> LabConfig:
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}: use one of {', '.join(REGIMES)}")
        check_levels(self.levels)
        if self.epochs < 1 or self.batch_size < 1 or self.train_count < len(CLASSES):
            raise ValueError("epochs and batch size must be at least 1, and the training set at least one per class")
        if self.norm not in NORMS:
            raise ValueError(f"unknown normalisation {self.norm!r}: use one of {', '.join(NORMS)}")
        if self.patience < 0:
            raise ValueError(f"patience must be 0 (off) or a number of epochs, not {self.patience}")
        return self

    @property
    def uses_spp(self) -> bool:
        return self.regime not in ("crop", "warp")


class FixedPool(nn.Module):
    """pool5 of a fixed-size network: a 2x2 max pool and a flatten, for one conv5 size only."""

    def __init__(self, conv5_side: int) -> None:
        super().__init__()
        self.conv5_side = conv5_side
        self.levels = (conv5_side // 2,)  # what it amounts to: one n x n level, for the pages that ask
        self.mode = "max"

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.conv5_side, self.conv5_side):
            raise ValueError(
                f"a network without SPP only takes inputs whose conv5 is {self.conv5_side} x {self.conv5_side}; "
                f"this one's is {x.shape[-2]} x {x.shape[-1]}"
            )
        return F.max_pool2d(x, 2).flatten(1)  # (N, C, s, s) -> (N, C, s/2, s/2) -> (N, C*s*s/4)

    def output_length(self, channels: int) -> int:
        return channels * (self.conv5_side // 2) ** 2


def lab_features(width: int, norm: str = "batch") -> nn.Sequential:
    """Four conv blocks with a normalisation (``LabConfig.norm``), total stride 8: small enough to train in seconds
    on a CPU."""
    chans = [3, width // 2, width, 2 * width, 2 * width]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for k in range(1, 5):
        layers[f"conv{k}"] = nn.Conv2d(chans[k - 1], chans[k], 3, padding=1, bias=False)
        # Named bn{k} either way: the saved files of both kinds keep one layout of names.
        norm_layer = nn.BatchNorm2d(chans[k]) if norm == "batch" else nn.GroupNorm(math.gcd(GROUPS, chans[k]), chans[k])
        layers[f"bn{k}"] = norm_layer
        layers[f"relu{k}"] = nn.ReLU(inplace=True)
        if k < 4:
            layers[f"pool{k}"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


def build_lab_model(config: LabConfig, class_names: Sequence[str] = CLASSES) -> SPPNet:
    """A small SPP-net (or, for the crop and warp regimes, a fixed-size network) as the config describes."""
    channels = 2 * config.width
    spp = SpatialPyramidPool(config.levels, "max") if config.uses_spp else FixedPool(config.size // 8)
    classifier = nn.Sequential(
        OrderedDict(
            fc6=nn.Linear(spp.output_length(channels), 128),
            relu6=nn.ReLU(inplace=True),
            drop6=nn.Dropout(0.2),
            fc7=nn.Linear(128, len(class_names)),
        )
    )
    spec = NetSpec(
        name=f"lab-{config.regime}",
        stride=8,
        channels=channels,
        class_names=tuple(class_names),
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        input_size=config.size,
        pretrained=True,
    )
    return SPPNet(lab_features(config.width, config.norm), spp, classifier, spec)


def head_on(base: SPPNet, spp: SpatialPyramidPool, classifier: nn.Module, class_names: Sequence[str]) -> SPPNet:
    """A new SPP head and classifier on a zoo model's (frozen) conv layers, with its normalisation and geometry."""
    return base.with_head(spp, classifier, class_names, f"lab-{base.name}")
