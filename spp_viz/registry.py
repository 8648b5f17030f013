"""Every model name the UI and the command line accept: the zoo's, the pretrained networks with a distilled pyramid
head (``efficientnet_lite0_spp``), and "lab:PATH" for a model saved by the Lab.

``models.load_model`` knows the zoo only; this module sits above the distillation and the Lab, so none of them
imports another. A new kind of name (a user's own architecture, say) is one more branch in ``load`` and ``title``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .devices import resolve_device
from .distill import load_head, with_pyramid_head
from .external import build_external, is_external
from .models import BASE_MODEL, ZOO, SPPNet, load_model
from .settings import ASSETS
from .weights import UploadedWeights, Weights

LAB_PREFIX = "lab:"
# The network the app and the command line open on: an SPP-net, whose classifier reads the pyramid the pages draw.
# Its accuracy shows no clear difference from its teacher Lite0 (docs/model-card.md); Lite0 stays in the menu as the
# one-level contrast.
DEFAULT_MODEL = "efficientnet_lite0_spp"

__all__ = [
    "DEFAULT_MODEL", "LAB_PREFIX", "PYRAMID_MODELS", "base_of", "fine_tune_base", "is_zoo", "load", "names", "title",
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
            "efficientnet_lite0_spp",
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


def load(
    name: str, device: str | torch.device | None = None, weights: Weights = None, base: SPPNet | None = None
) -> SPPNet:
    """Build any model by name, in eval mode on a device.

    Args:
        name: a zoo name, a ``PYRAMID_MODELS`` name, "lab:PATH", or "timm:NAME" / "torchvision:NAME" (any CNN
            the library lists that ``external.check_name`` accepts).
        device: see ``devices.resolve_device``.
        weights: a zoo model's weights file; for a pyramid-head model, a head file from ``distill`` (default: the
            shipped one); for timm and torchvision models, a state dict file, ``external.PRETRAINED`` for the
            library's own weights, or None for random ones (the model then says "untrained").
        base: for a pyramid-head model, the already loaded ``base_of(name)`` model to share (loaded when None).

    Raises:
        ValueError: for an unknown name or device.
        WeightsError: when weights are missing, unreadable or of another architecture.
    """
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
        return build_external(name, weights).to(resolve_device(device))
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
