"""Any CNN of timm or torchvision as an SPPNet: the names "timm:NAME" and "torchvision:NAME".

conv5 is the network's last spatial map before its global pooling: timm's ``forward_features``; for torchvision,
the node its traced graph pools (``split.find_cut``). The network's own head (the pooling, one level, and its fully
connected layers) gives the predictions: its pooling becomes a one-level pyramid, and the wrapped network is checked
against the original on a probe image before it is used. Stride and receptive field are measured
(``footprint.measure``).

Only names the libraries list are built, and which of them are accepted is decided from the network (``check_name``,
``split``), not from a list of names; nothing from a user is unpickled: weights are read by
``weights.read_state_dict`` (safetensors, or a .pth read with ``weights_only``).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from . import split
from .budgets import check_built, check_model_size, check_weights_file
from .files import trim
from .footprint import measure
from .i18n import _
from .models import IMAGENET_MEAN, IMAGENET_STD, NetSpec, SPPNet, imagenet_classes
from .pretrained import PRETRAINED, Progress, Source, fetch, refuse_offline, source, timm_net, torchvision_net
from .progress import Progress as ProgressFn
from .progress import report, span
from .pyramid import SpatialPyramidPool
from .split import TimmFeatures, TimmHead
from .weights import Weights, file_bytes, load_into, read_state_dict

PREFIXES = ("timm:", "torchvision:")
SUGGESTIONS = (
    "torchvision:vgg16",
    "torchvision:resnet50",
    "torchvision:mobilenet_v2",
    "torchvision:densenet121",
    "torchvision:mobilenet_v3_large",
    "torchvision:convnext_tiny",
    "torchvision:efficientnet_b0",
    "timm:resnet50",
    "timm:mobilenetv3_large_100",
    "timm:efficientnet_b0",
    "timm:convnext_tiny",
)
WHY_NO_TRANSFORMER = (
    "attend over positions: the cells of its last map are not local (no stride, no receptive field of a conv "
    "cell), so there is no conv5 map for the pages to pool; choose a CNN"
)
# Attention over positions, as the libraries name their layers: timm's Attention, Attention2d, TalkingHeadAttn,
# WindowAttention, MultiQueryAttention2d, HaloAttn, NonLocalAttn ..., torchvision's ShiftedWindowAttention and
# nn.MultiheadAttention, and LambdaLayer (a linear attention). Channel and local gating keeps each cell's
# locality and is accepted: squeeze-and-excitation, ECA (EfficientChannelAttn), CBAM (ChannelAttn, SpatialAttn: a
# 7 x 7 conv), ResNeSt's SplitAttn, SKNet's SelectiveKernelAttn, coordinate attention (CoordAttn), StripAttn.
POSITION_ATTENTION = re.compile(r"Attention|Attn|^LambdaLayer$")
LOCAL_GATING = re.compile(r"Channel|Spatial|Split|SelectiveKernel|Coord|Strip")


def is_external(name: str) -> bool:
    return name.startswith(PREFIXES)


def check_name(name: str) -> tuple[str, str]:
    """(library, architecture) of a name the library lists whose network this app can split at conv5.

    Decided from the network, not from a list: it is built on PyTorch's meta device (no memory, no weights) and
    refused when its layers attend over positions or no global pooling of a map feeds its classifier. The split
    itself is checked against the network's own logits when it is built (``build_external``).

    Raises:
        ValueError: an unknown library or name (with the nearest listed names), or a refused network, with why.
    """
    library, _colon, arch = name.partition(":")
    if library not in ("timm", "torchvision") or not arch:
        raise ValueError(
            _("{name}: write timm:NAME or torchvision:NAME (e.g. {example})").format(
                name=repr(name), example=SUGGESTIONS[0]
            )
        )
    known = listed(library)
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=5, cutoff=0.6) or [k for k in known if k.startswith(arch[:4])]
        hint = _("; the nearest it lists: {names}").format(names=", ".join(close[:5])) if close else ""
        raise ValueError(
            _("{library} has no classification model named {name}{hint}").format(
                library=library, name=repr(arch), hint=hint
            )
        )
    reason = refusal(library, arch)
    if reason:
        raise ValueError(f"{name} {reason}")
    return library, arch


@functools.cache
def listed(library: str) -> tuple[str, ...]:
    """Every classification model the library lists (``timm.list_models()``, torchvision's ``list_models``)."""
    if library == "timm":
        import timm

        return tuple(timm.list_models())
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def meta_net(library: str, arch: str) -> nn.Module:
    """The architecture built on PyTorch's meta device: its layers and shapes, no memory and no weights."""
    with torch.device("meta"):
        if library == "timm":
            import timm

            return timm.create_model(arch, pretrained=False).eval()
        import torchvision

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torchvision.models.get_model(arch, weights=None).eval()


def attention_at(net: nn.Module) -> tuple[str, str] | None:
    """(path, class) of the first layer that attends over positions, or None for a CNN."""
    for path, m in net.named_modules():
        kind = type(m).__name__
        if isinstance(m, nn.MultiheadAttention) or (POSITION_ATTENTION.search(kind) and not LOCAL_GATING.search(kind)):
            return path, kind
    return None


@dataclass(frozen=True)
class MetaFacts:
    """What a listed network's build on the meta device says, before any memory or weights are spent on it."""

    refused: str  # why the app cannot split it at conv5; "" when it can (or when only the real build can tell)
    params: int | None  # parameters; None when neither the meta device nor the library's metadata says
    nbytes: int | None  # parameters and buffers in bytes: what building it costs at the least


@functools.cache
def meta_facts(library: str, arch: str) -> MetaFacts:
    """``MetaFacts`` of a listed architecture, from one build on PyTorch's meta device (cached per name)."""
    params = nbytes = None
    try:
        net = meta_net(library, arch)
    except (NotImplementedError, RuntimeError):  # it reads a tensor's values while it builds (RegNet): undecided here,
        refused = ""  # the real build decides
    except Exception as e:  # a listed name the library cannot build with its defaults
        return MetaFacts(f"cannot be built by {library} with its defaults ({type(e).__name__}: {e})", None, None)
    else:
        refused = refusal_of(library, net)
        params = sum(p.numel() for p in net.parameters())
        nbytes = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    if params is None and library == "torchvision":  # the weights' own metadata: float32 parameters
        import torchvision

        params = torchvision.models.get_model_weights(arch).DEFAULT.meta["num_params"]
        nbytes = params * 4
    return MetaFacts(refused, params, nbytes)


def refusal(library: str, arch: str) -> str:
    """Why the app cannot split this listed network at conv5 ("" when it can), read from its meta-device build."""
    return meta_facts(library, arch).refused


def network_bytes(name: str) -> int | None:
    """The parameters and buffers of a listed, accepted network in bytes (``check_name``'s errors for others)."""
    return meta_facts(*check_name(name)).nbytes


def refusal_of(library: str, net: nn.Module) -> str:
    """``refusal`` of a network built on the meta device."""
    found = attention_at(net)
    if found is not None:
        return f"has layers that {WHY_NO_TRANSFORMER} (from {found[0] or 'the top'}: {found[1]})"
    if library == "torchvision":
        try:
            split.find_cut(split.trace(net, torch.zeros(1, 3, 224, 224, device="meta")))
        except ValueError as e:
            return f"cannot be split at conv5: {e}"
        except Exception:  # noqa: BLE001  an op the meta device lacks: the real build decides, and says why
            return ""
    return ""


def build_external(name: str, weights: Weights = None, progress: ProgressFn | None = None) -> SPPNet:
    """A timm or torchvision network as an SPPNet, checked against the original on a probe image.

    Args:
        weights: None for random weights (the model says "untrained"); ``PRETRAINED`` for the library's own; or a
            state dict file of the original architecture (its keys as the library names them).
        progress: told each step (the layers, the weights, the split, the receptive field).

    Raises:
        ValueError: for a name that is refused (``check_name``) or a network this split does not reproduce.
        WeightsError: for weights that are unreadable, of another architecture, or cannot be downloaded.
    """
    library, arch = check_name(name)
    facts = meta_facts(library, arch)
    check_model_size(name, facts.nbytes, facts.params)  # before a layer is built: ConvNeXt-XXLarge took 228 s, 12 GB
    if weights not in (None, PRETRAINED) and (given := file_bytes(weights)) is not None:
        check_weights_file(name, given, facts.nbytes)
    if weights == PRETRAINED:
        refuse_offline(library, arch, f"{library} could not fetch the pretrained weights of {arch}")
    report(progress, 0.05, f"building {name}'s layers" + (" with its pretrained weights" if weights else ""))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random weights: the same on every load, so results cached under the name stay true
        net = timm_net(arch, weights) if library == "timm" else torchvision_net(arch, weights)
    if facts.nbytes is None:  # no metadata gave its size beforehand
        check_built(name, net)
    if weights is not None and weights != PRETRAINED:
        report(progress, 0.4, "reading the weights file")
        load_into(net, read_state_dict(weights), name)
    model = split_network(name, net.eval(), pretrained=weights is not None, progress=span(progress, 0.5, 1.0))
    return model.requires_grad_(False)


def split_network(
    name: str, net: nn.Module, pretrained: bool = False, field: bool = True, progress: ProgressFn | None = None
) -> SPPNet:
    """``net``, the timm or torchvision classification model ``name`` (in eval mode), as an SPPNet split at conv5:
    checked against ``net``'s own logits on a probe image, sharing its layers.

    Args:
        field: measure conv5's receptive field (``footprint.measure``, up to 1,024 pixels: seconds for a DenseNet);
            without it the stride is the map's growth and ``footprint`` is None.

    Raises:
        ValueError: when the network has no conv5 map to split at, or the split does not give its logits.
    """
    library = name.partition(":")[0]
    report(progress, 0.0, "finding conv5")
    try:
        features, spp, head, spec = (_split_timm if library == "timm" else _split_torchvision)(name, net)
    except (AttributeError, TypeError, RuntimeError) as e:  # a network of a shape the split has not met: say so
        raise ValueError(f"{name} could not be split at conv5 ({type(e).__name__}: {e})") from e
    _takes_any_size(name, features)
    report(progress, 0.3, "measuring conv5's receptive field")
    try:
        footprint = measure(features) if field else None  # the stride and receptive field, measured on a copy
    except FloatingPointError as e:  # its gradient left float64's range: no field to draw boxes with
        raise ValueError(f"{name}: conv5's receptive field could not be measured ({e})") from e
    stride = footprint.stride[1] if footprint is not None else split.growth_stride(features)
    spec = replace(spec, stride=stride, pretrained=pretrained, min_side=split.smallest_side(features))
    report(progress, 0.8, "checking the split against the network's own logits")
    model = _checked(name, SPPNet(features, spp, head, spec), net)
    model.footprint = footprint
    return model.eval()


def pretrained_source(name: str) -> Source:
    """Where ``name``'s pretrained weights come from and their size (``pretrained.source``), asking no server."""
    return source(*check_name(name))


def download_pretrained(name: str, progress: Progress | None = None) -> None:
    """Download ``name``'s pretrained weights into the library's own cache, telling ``progress`` the bytes so far.
    Capped like a build: a network over ``SPP_VIZ_MAX_MODEL_MB`` is refused before a byte is fetched. The cache
    folder is trimmed to its budget afterwards (when the library's cache is inside it, as the app sets it).

    Raises:
        budgets.TooLarge: for a network over the cap.
        WeightsError: when the download fails (offline, say, or a full disk).
    """
    library, arch = check_name(name)
    facts = meta_facts(library, arch)
    check_model_size(name, facts.nbytes, facts.params)
    where = pretrained_source(name)
    if where.kind != "download":
        return
    refuse_offline(library, arch, "the download failed")
    if library == "torchvision":
        file = Path(where.where) / os.path.basename(where.url)
        file.parent.mkdir(parents=True, exist_ok=True)
        digest = torch.hub.HASH_REGEX.search(file.name)
        fetch(lambda: torch.hub.download_url_to_file(where.url, str(file), digest.group(1) if digest else None,
                                                     progress=False), where.where, where.size, progress)  # fmt: skip
    else:
        from huggingface_hub import hf_hub_download

        repo = where.url.removeprefix("https://huggingface.co/")
        fetch(lambda: hf_hub_download(repo, "model.safetensors", cache_dir=where.where), where.where, where.size,
              progress)  # fmt: skip
    trim(keep=[pretrained_source(name).file])


def _classes(n: int) -> tuple[str, ...]:
    return imagenet_classes() if n == 1000 else tuple(f"class {i}" for i in range(n))


def _split_timm(name: str, net: nn.Module) -> tuple[nn.Module, SpatialPyramidPool, nn.Module, NetSpec]:
    """timm's own split: ``forward_features`` (conv5) and ``forward_head`` (its pooling, then its classifier)."""
    with torch.no_grad():
        conv5 = net.forward_features(torch.zeros(1, 3, 224, 224, device=next(net.parameters()).device))
    if not isinstance(conv5, Tensor):
        raise ValueError(f"{name}'s forward_features gives a {type(conv5).__name__}, not one map Tensor[N, C, H, W]")
    if conv5.ndim != 4:
        what = " (a sequence of tokens)" if conv5.ndim == 3 else ""
        raise ValueError(f"{name}'s forward_features gives {tuple(conv5.shape)}{what}, not a map Tensor[N, C, H, W]")
    nhwc = conv5.shape[1] != net.num_features and conv5.shape[-1] == net.num_features
    pools = [m for m in net.modules() if type(m).__name__ == "SelectAdaptivePool2d"]
    pool_type = getattr(pools[-1], "pool_type", "avg") if pools else "avg"
    if "avgmax" in pool_type or not pool_type:
        what = "the mean of average and max pooling" if "avgmax" in pool_type else "no pooling: it reads the whole map"
        raise ValueError(f"{name}'s head pools with {pool_type!r} ({what}): not one level of a max or average pyramid")
    mode = "max" if pool_type.endswith("max") else "avg"  # timm's "fast" and "fastavg" are averages
    cfg = net.pretrained_cfg or {}
    spec = NetSpec(name, 32, conv5.shape[-1 if nhwc else 1], _classes(net.num_classes),
                   tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)),
                   int(cfg.get("input_size", (3, 224))[1]))  # fmt: skip
    features: nn.Module = TimmFeatures(net, nhwc)
    if type(net).__name__ == "EfficientNet":  # EfficientNets and MobileNetV2: their layers by name, as the zoo's Lite0,
        # so that a final ReLU6 is found and ranked before (``SPPNet.forward_responses``); ``_checked`` confirms it
        features = nn.Sequential(OrderedDict((k, getattr(net, k)) for k in ("conv_stem", "bn1", "blocks", "conv_head",
                                                                          "bn2")))  # fmt: skip
    return features, SpatialPyramidPool((1,), mode), TimmHead(net, nhwc), spec


def _split_torchvision(name: str, net: nn.Module) -> tuple[nn.Module, SpatialPyramidPool, nn.Module, NetSpec]:
    """The network's graph cut at its last global pooling of a map (``split.find_cut``): conv5 is that map."""
    graph = split.trace(net, torch.zeros(1, 3, 224, 224, device=next(net.parameters()).device))
    cut = split.find_cut(graph)
    clip = dict(graph.named_modules()).get(cut.conv5.target) if cut.conv5.op == "call_module" else None
    if isinstance(clip, nn.Hardtanh):  # MobileNetV2's ReLU6 as a layer of its own: found and ranked before
        features: nn.Module = nn.Sequential(OrderedDict(body=split.cut_features(graph, cut.conv5.args[0]), clip=clip))
    else:
        features = split.cut_features(graph, cut.conv5)
    outputs = split.shape(split.output_of(graph))
    spec = NetSpec(name, 32, cut.channels, _classes(outputs[-1] if outputs else 1000), *_torchvision_input(name))
    return features, SpatialPyramidPool((cut.side,), cut.mode), split.head(cut), spec


def _torchvision_input(name: str) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(mean, std, crop size) of the architecture's pretrained weights (their ``transforms``, read offline)."""
    import torchvision

    try:
        t = torchvision.models.get_model_weights(name.partition(":")[2]).DEFAULT.transforms()
    except (ValueError, AttributeError):  # no pretrained weights known for it: ImageNet's
        return IMAGENET_MEAN, IMAGENET_STD, 224
    return tuple(t.mean), tuple(t.std), int(t.crop_size[0])


def _checked(name: str, model: SPPNet, net: nn.Module) -> SPPNet:
    """``model`` when it gives the original network's logits on a probe image (so the split changed nothing)."""
    probe = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model.eval()(probe), net(model.normalize(probe))
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-3, atol=1e-4):
        apart = f"up to {(ours - theirs).abs().max():.2g} apart" if ours.shape == theirs.shape else "another shape"
        raise ValueError(
            f"{name}: split at conv5 ({model.channels} channels, pooled by {model.spp.mode} to "
            f"{model.spp.levels[0]} x {model.spp.levels[0]}), it does not give the network's own logits ({apart}): "
            f"its head after the pooling is {_layer_names(model.classifier)}, which this split does not read"
        )
    model.name = name
    return model


ODD_SIZE = (237, 251)  # (H, W): no power of two divides either, as few photos' sizes are


def _takes_any_size(name: str, features: nn.Module) -> None:
    """Raise ValueError when the conv layers take 224 x 224 but not an odd size (HRNet fuses its branches by
    upsampling, which only lines up for multiples of 32): the pages resize photos to any size."""
    try:
        with torch.no_grad():
            features(torch.zeros(1, 3, *ODD_SIZE, device=next(features.parameters()).device))
    except RuntimeError as e:
        raise ValueError(
            f"{name} takes only some input sizes (224 x 224 works, {ODD_SIZE[1]} x {ODD_SIZE[0]} fails: {e}); the "
            "pages resize each photo to any size, the point of a pyramid, so it cannot be used here"
        ) from e


def _layer_names(head: nn.Module) -> str:
    """The head's layers in words: "SelectAdaptivePool2d, Linear" (at most six kinds)."""
    kinds = list(dict.fromkeys(type(m).__name__ for m in head.modules() if not list(m.children())))
    return ", ".join(kinds[:6]) + (" ..." if len(kinds) > 6 else "") if kinds else type(head).__name__
