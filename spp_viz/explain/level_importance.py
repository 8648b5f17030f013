"""Which pyramid level carries a classifier's decisions over a folder of photos: each level's numbers set to zero in
turn (``attribution.level_contributions``' FeatureAblation, batched: one conv pass and L + 1 head passes per photo),
the fall of the top class's logit, its share, and whether the top-1 class changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from .. import stats, verdicts
from ..gallery import GalleryItem
from ..images import ImageError, load_image, resize_short_side, to_tensor
from ..models import SPPNet
from ..progress import Progress, counted
from ..provenance import entry as provenance_entry
from .analysis import merge as merge_parts
from .bag_of_words import MeanSE

LEVEL_SHORT_SIDE = 256  # the full image's shorter side, as the views bench's full view


def level_drops(model: SPPNet, x: Tensor) -> tuple[int, Tensor, Tensor]:
    """(top-1 class, drops Tensor[L], changed Tensor[L] bool) for one image Tensor[1, 3, H, W]: the top class's
    logit with every level minus with level l zeroed, and whether the top-1 class is another one then."""
    levels, c = model.spp.levels, model.channels
    with torch.inference_mode():
        vec = model.spp(model.forward_features(x.to(model.device)))  # (1, C * M)
        batch = vec.repeat(len(levels) + 1, 1)  # row 0 untouched, row l + 1 with level l zeroed
        start = 0
        for i, n in enumerate(levels):  # the vector's layout: level by level, C * n * n numbers each
            batch[i + 1, start : start + c * n * n] = 0.0
            start += c * n * n
        logits = model.classifier(batch).float()  # (L + 1, classes)
    top = int(logits[0].argmax())
    return top, (logits[0, top] - logits[1:, top]).cpu(), (logits[1:].argmax(1) != top).cpu()


@dataclass(frozen=True)
class LevelRow:
    """One level over the photos: mean drop and share of the top class's logit, and on how many photos the top-1
    class changes without it."""

    level: int
    drop: MeanSE
    share: MeanSE
    changed: int

    def json(self) -> dict:
        return {"level": self.level, "drop": self.drop.json(), "share": self.share.json(), "changed": self.changed}

    @classmethod
    def from_json(cls, d: dict) -> LevelRow:
        return cls(d["level"], MeanSE.from_json(d["drop"]), MeanSE.from_json(d["share"]), int(d["changed"]))


@dataclass(frozen=True)
class LevelSummary:
    """The level bench summed up (``LevelBench.summary``, or read back from its JSON)."""

    n: int
    model: str
    short_side: int
    rows: list[LevelRow]
    held_out: bool = False  # each photo scored by a head that was not trained on it
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    provenance: dict | None = None  # how it was made (spp_viz.provenance); None in files that never recorded it

    def json(self) -> dict:
        return {
            **provenance_entry(self.provenance),
            "n": self.n, "model": self.model, "short_side": self.short_side, "rows": [r.json() for r in self.rows],
            "held_out": self.held_out, "skipped": [list(s) for s in self.skipped], "seconds": self.seconds,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> LevelSummary:
        return cls(
            n=d["n"], model=d["model"], short_side=d["short_side"], rows=[LevelRow.from_json(r) for r in d["rows"]],
            held_out=bool(d.get("held_out", False)), skipped=[tuple(s) for s in d.get("skipped", [])],
            seconds=d.get("seconds", 0.0), provenance=d.get("provenance"),
        )  # fmt: skip


@dataclass
class LevelBench:
    """Per photo and level: the drop of the top class's logit and whether the top-1 class changed."""

    model: str
    levels: tuple[int, ...]
    names: list[str] = field(default_factory=list)
    drops: list[list[float]] = field(default_factory=list)  # [N][L]
    changed: list[list[bool]] = field(default_factory=list)  # [N][L]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    held_out: bool = False

    SAME: ClassVar[tuple[str, ...]] = ("levels",)  # settings every merged part must share

    @classmethod
    def merge(cls, parts: Sequence[LevelBench], model: str) -> LevelBench:
        """Benches of disjoint photos (one per held-out head) as one, named ``model`` (``analysis.merge``)."""
        return merge_parts(parts, model)

    def summary(self) -> LevelSummary:
        drops = np.asarray(self.drops, dtype=float).reshape(-1, len(self.levels))  # (N, L)
        positive = np.clip(drops, 0.0, None)
        total = positive.sum(1, keepdims=True)
        # A level's share of the positive drops, per photo (0 where no level helps), as level_contributions gives.
        shares = np.divide(positive, total, out=np.zeros_like(positive), where=total > 0)
        changed = np.asarray(self.changed, dtype=bool).reshape(-1, len(self.levels))
        rows = [
            LevelRow(n, MeanSE.of(drops[:, i]), MeanSE.of(shares[:, i]), int(changed[:, i].sum()))
            for i, n in enumerate(self.levels)
        ]
        return LevelSummary(
            len(self.names), self.model, LEVEL_SHORT_SIDE, rows, self.held_out, list(self.skipped),
            round(self.seconds, 1),
        )  # fmt: skip


def level_bench(model: SPPNet, items: Sequence[GalleryItem], progress: Progress | None = None) -> LevelBench:
    """``level_drops`` on every photo's full image at shorter side ``LEVEL_SHORT_SIDE``; unreadable files skipped."""
    if len(model.spp.levels) < 2:
        raise ValueError(f"{model.name}'s classifier reads one pyramid level: there is nothing to split")
    start = time.perf_counter()
    bench = LevelBench(model.name, tuple(model.spp.levels))
    for i, item in enumerate(items):
        try:
            img = resize_short_side(load_image(item.read(), name=item.name), LEVEL_SHORT_SIDE)
        except ImageError as e:
            bench.skipped.append((item.name, str(e)))
        else:
            _, drops, changed = level_drops(model, to_tensor(img))
            bench.names.append(item.name)
            bench.drops.append(drops.tolist())
            bench.changed.append(changed.tolist())
        counted(progress, i + 1, len(items), "photos")
    bench.seconds = time.perf_counter() - start
    return bench


def level_findings(result: LevelSummary) -> list[str]:
    """Sentences computed from a levels bench's summary: each level's share of the logit's drop and how often zeroing
    it changed the top-1 class; then whether the largest share is clearly the largest (two standard errors, taken
    unpaired: the summary keeps no per-photo share)."""
    out = [
        f"Zeroing the {r.level}x{r.level} level: {r.share.mean:.1%} (SE {r.share.se:.1%}) of the top class's logit "
        f"drop on average, a drop of {r.drop.mean:.2f} (SE {r.drop.se:.2f}); the top-1 class changed on {r.changed} "
        f"of {result.n} photos."
        for r in result.rows
    ]
    if len(result.rows) >= 2:
        top, second = sorted(result.rows, key=lambda r: -r.share.mean)[:2]
        diff, se = top.share.mean - second.share.mean, math.hypot(top.share.se, second.share.se)
        names = f"the {top.level}x{top.level} level's share and the {second.level}x{second.level} level's"
        clear = stats.verdict(diff - 2 * se, diff + 2 * se) == "above"
        out.append(f"The {top.level}x{top.level} level carried the largest share: {100 * diff:.1f} points more than "
                   f"the {second.level}x{second.level} level (SE {100 * se:.1f})." if clear else
                   f"{verdicts.NO_CLEAR_DIFFERENCE.capitalize()} between {names}: {100 * diff:+.1f} points "
                   f"(SE {100 * se:.1f}).")  # fmt: skip
    return out
