"""Every model name the UI and the command line accept: the zoo's, and "lab:PATH" for a model saved by the Lab.

``models.load_model`` knows the zoo only; this module sits above the Lab (``train``), so the two never import each
other. A new kind of name (a user's own architecture, say) is one more branch in ``load`` and ``title``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .lab.store import lab_models, load_trained
from .models import DEFAULT_MODEL, ZOO, SPPNet, load_model
from .weights import Weights

LAB_PREFIX = "lab:"

__all__ = ["DEFAULT_MODEL", "LAB_PREFIX", "is_zoo", "load", "names", "title"]


def is_zoo(name: str) -> bool:
    """True for a zoo model (which takes an optional weights file); False for a Lab model."""
    return name in ZOO


def load(name: str, device: str | torch.device | None = None, weights: Weights = None) -> SPPNet:
    """Build any model by name, in eval mode on a device.

    Raises:
        ValueError: for an unknown name or device.
        WeightsError: when weights are missing, unreadable or of another architecture.
    """
    if name.startswith(LAB_PREFIX):
        if weights is not None:
            raise ValueError("a Lab model carries its own weights: give no weights file with it")
        return load_trained(name[len(LAB_PREFIX) :], device=device)
    return load_model(name, device=device, weights=weights)


def names(lab_dir: str | Path | None = None) -> list[str]:
    """The zoo's names, then the Lab models saved in ``lab_dir`` (newest first) as "lab:PATH"."""
    lab = lab_models(lab_dir) if lab_dir is not None else []
    return [*ZOO, *(f"{LAB_PREFIX}{p}" for p in lab)]


def title(name: str) -> str:
    """How a menu names a model: the zoo's title, or "Lab: STEM"."""
    if name.startswith(LAB_PREFIX):
        return f"Lab: {Path(name[len(LAB_PREFIX) :]).stem}"
    return ZOO[name].title if name in ZOO else name
