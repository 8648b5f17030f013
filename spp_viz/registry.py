"""Every model name the UI and the command line accept: the zoo's, the pretrained networks with a distilled pyramid
head (``efficientnet_lite0_spp``), and "lab:PATH" for a model saved by the Lab.

``models.load_model`` knows the zoo only; this module sits above the distillation and the Lab, so none of them
imports another. A new kind of name (a user's own architecture, say) is one more branch in ``load`` and ``title``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .budgets import check_model_size, check_weights_file
from .devices import resolve_device
from .distill import head_bytes, load_head, with_pyramid_head
from .external import PRETRAINED, build_external, check_name, is_external, meta_facts
from .models import BASE_MODEL, ZOO, SPPNet, load_model
from .progress import Progress
from .settings import ASSETS, DEFAULT_MODEL
from .weights import UploadedWeights, Weights, file_bytes

LAB_PREFIX = "lab:"

__all__ = [
    "DEFAULT_MODEL", "LAB_PREFIX", "PYRAMID_MODELS", "base_of", "checked_size", "fine_tune_base", "is_zoo", "load",
    "names", "size", "title",
]  # fmt: skip


@dataclass(frozen=True)
class PyramidModel:
    """A zoo network's conv layers (shared with it, not copied) with a distilled pyramid head from ``file``."""

    name: str
    title: str
    base: str  # the zoo model whose conv layers and fc (the head's start) it reads
    file: Path  # the head's fc6 and fc7, made by ``python -m spp_viz distill``


PYRAMID_MODELS: dict[str, PyramidModel] = {
    m.name: m
    for m in (
        PyramidModel(
            DEFAULT_MODEL,
            "SPP-net: Lite0 conv layers + {6,3,2,1} head, distilled from Lite0 (default)",
            "efficientnet_lite0",
            ASSETS / "efficientnet_lite0_spp_head.safetensors",
        ),
    )
}


def is_zoo(name: str) -> bool:
    """True for a zoo model (which takes an optional weights file); False for a pyramid-head or a Lab model."""
    return name in ZOO


def fine_tune_base(name: str, weights: str | None = None) -> tuple[str, str | None]:
    """(base, base weights) the Lab fine-tunes on when the sidebar holds ``name`` with ``weights``: the network
    itself when the Lab can find it again by name (the zoo's, with its own weights; any timm or torchvision CNN, with
    its weights choice), the conv layers' network for a pyramid-head model, else Lite0."""
    if is_external(name):
        return name, weights
    return (name if name in ZOO else base_of(name) or BASE_MODEL), None


def base_of(name: str) -> str | None:
    """The zoo model whose conv layers ``name`` shares (for a pyramid-head model), else None."""
    return PYRAMID_MODELS[name].base if name in PYRAMID_MODELS else None


def zoo_bytes(name: str) -> int:
    """A zoo model's parameters and buffers in bytes, from its layers built on the meta device (no memory)."""
    with torch.device("meta"):
        layers = ZOO[name].layers()
    return sum(t.numel() * t.element_size() for m in layers for t in (*m.parameters(), *m.buffers()))


def size(name: str) -> int | None:
    """What building ``name`` holds in memory, in bytes (parameters and buffers), read without building it: from the
    meta device or the libraries' metadata; a pyramid-head model counts its base network too; a Lab model, its file.
    None where nothing says (the build is then checked once made).

    Raises:
        ValueError: for an unknown or refused name (as ``load`` would).
    """
    if name in PYRAMID_MODELS:
        entry = PYRAMID_MODELS[name]
        return zoo_bytes(entry.base) + head_bytes(entry.file)
    if is_external(name):
        return meta_facts(*check_name(name)).nbytes
    if name.startswith(LAB_PREFIX):
        return file_bytes(name[len(LAB_PREFIX) :])
    if name not in ZOO:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(names())}")
    return zoo_bytes(name)


def checked_size(name: str) -> int | None:
    """``size(name)``, once it is within ``SPP_VIZ_MAX_MODEL_MB``.

    Raises:
        budgets.TooLarge: with the size (and the parameters, where the library says), the cap and its variable.
    """
    nbytes = size(name)
    check_model_size(name, nbytes, meta_facts(*check_name(name)).params if is_external(name) else None)
    return nbytes


def load(
    name: str,
    device: str | torch.device | None = None,
    weights: Weights = None,
    base: SPPNet | None = None,
    progress: Progress | None = None,
) -> SPPNet:
    """Build any model by name, in eval mode on a device, once its size is checked against the server's cap.

    Args:
        name: a zoo name, a ``PYRAMID_MODELS`` name, "lab:PATH", or "timm:NAME" / "torchvision:NAME" (any CNN
            the library lists that ``external.check_name`` accepts).
        device: see ``devices.resolve_device``.
        weights: a zoo model's weights file; for a pyramid-head model, a head file from ``distill`` (default: the
            shipped one); for timm and torchvision models, a state dict file, ``external.PRETRAINED`` for the
            library's own weights, or None for random ones (the model then says "untrained").
        base: for a pyramid-head model, the already loaded ``base_of(name)`` model to share (loaded when None).
        progress: told each step of a long build (networks by name).

    Raises:
        ValueError: for an unknown name or device.
        budgets.TooLarge: (a ValueError) for a network or weights file over ``SPP_VIZ_MAX_MODEL_MB``, before any
            layer is built or any weights are read.
        WeightsError: when weights are missing, unreadable or of another architecture.
    """
    nbytes = checked_size(name)
    if weights is not None and weights != PRETRAINED and (given := file_bytes(weights)) is not None:
        check_weights_file(name, given, nbytes)
    if name in PYRAMID_MODELS:
        entry = PYRAMID_MODELS[name]
        if isinstance(weights, UploadedWeights):
            raise ValueError(f"{entry.title} reads its head from a file on disk (python -m spp_viz distill --out)")
        if base is None:
            base = load_model(entry.base, device=device)
        elif base.name != entry.base:
            raise ValueError(f"{name} shares the conv layers of {entry.base}, not of {base.name}")
        head = load_head(weights if weights is not None else entry.file, base)
        return with_pyramid_head(base, head, name)
    if is_external(name):
        return build_external(name, weights, progress).to(resolve_device(device))
    if name.startswith(LAB_PREFIX):
        if weights is not None:
            raise ValueError("a Lab model carries its own weights: give no weights file with it")
        from .lab.store import load_trained  # here: the home page lists Lab models without importing the Lab

        return load_trained(name[len(LAB_PREFIX) :], device=device)
    return load_model(name, device=device, weights=weights)


def saved_lab_models(folder: str | Path) -> list[Path]:
    """Saved Lab models in a folder, newest first (a file listing: the sidebar needs no torch training code)."""
    folder = Path(folder)
    return (
        sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    )


def names(lab_dir: str | Path | None = None) -> list[str]:
    """The menu's order: the pyramid-head models (the default first), the zoo's names, then the Lab models saved in
    ``lab_dir`` (newest first) as "lab:PATH"."""
    lab = saved_lab_models(lab_dir) if lab_dir is not None else []
    return [*PYRAMID_MODELS, *ZOO, *(f"{LAB_PREFIX}{p}" for p in lab)]


def title(name: str) -> str:
    """How a menu names a model: the zoo's title, or "Lab: STEM"."""
    if name.startswith(LAB_PREFIX):
        return f"Lab: {Path(name[len(LAB_PREFIX) :]).stem}"
    if name in PYRAMID_MODELS:
        return PYRAMID_MODELS[name].title
    return ZOO[name].title if name in ZOO else name
