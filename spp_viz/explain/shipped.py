"""The analyses' results shipped with the app (``assets/*.json``), in one place: which file holds which network's run
of which analysis, reading one, and which run a page shows first for the sidebar's network. Each file records the
command that made it (its provenance); the commands are also written beside each file below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..settings import ASSETS, DEFAULT_MODEL
from .folder_analyses import ANALYSES

# The pyramid head's teacher, the one-level contrast the shipped runs compare the default network with.
ONE_LEVEL = "efficientnet_lite0"
# FOLDS below: python -m spp_viz distill ../shared/imagenet-sample ... --fold-heads FOLDS (docs/model-card.md).
FILES: dict[tuple[str, str], Path] = {
    # python -m spp_viz bench views ../shared/imagenet-sample --multi --model efficientnet_lite0 --json
    ("views", ONE_LEVEL): ASSETS / "view_accuracy.json",
    # python -m spp_viz bench views ../shared/imagenet-sample --model efficientnet_lite0_spp --held-out FOLDS --multi
    #   --json
    ("views", DEFAULT_MODEL): ASSETS / "view_accuracy_spp.json",
    # python -m spp_viz bench shuffle ../shared/imagenet-sample --model efficientnet_lite0 --json
    ("shuffle", ONE_LEVEL): ASSETS / "bag_of_words.json",
    # python -m spp_viz bench shuffle ../shared/imagenet-sample --model efficientnet_lite0_spp --held-out FOLDS --json
    ("shuffle", DEFAULT_MODEL): ASSETS / "bag_of_words_spp.json",
    # python -m spp_viz bench levels ../shared/imagenet-sample --model efficientnet_lite0_spp --held-out FOLDS --json
    ("levels", DEFAULT_MODEL): ASSETS / "level_importance.json",
}


def path(analysis: str, model: str) -> Path | None:
    """The shipped file of ``analysis`` ("views", "shuffle", "levels") run with ``model``; None when none ships."""
    found = FILES.get((analysis, model))
    return found if found is not None and found.is_file() else None


def load(analysis: str, model: str) -> Any:
    """That run's summary (``ANALYSES[analysis].summary``), or None when none ships."""
    found = path(analysis, model)
    return ANALYSES[analysis].summary.from_json(json.loads(found.read_text())) if found is not None else None


def heads(analysis: str) -> tuple[Any, Any]:
    """The one-level head's run and the pyramid head's (the default network's), each None when it does not ship."""
    return load(analysis, ONE_LEVEL), load(analysis, DEFAULT_MODEL)


def first(analysis: str, model: str) -> Any:
    """The run a page shows first for the sidebar's ``model``: its own, else the default network's, else any."""
    return first_of(*heads(analysis), model)


def first_of(one: Any, four: Any, model: str) -> Any:
    """``first`` on runs already read (``heads``)."""
    return one if one is not None and one.model == model else four or one
