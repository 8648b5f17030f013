"""The bag-of-words analogy, measured: shuffle a photo's tiles and see which pyramid levels notice.

The paper (see the notes) likens SPP to spatial-pyramid bag-of-words: the 1 x 1 level is a bag of conv5 "visual
words" that ignores where each one is, and the finer levels add the layout. Cutting the photo into k x k tiles and
shuffling them keeps most words and breaks the layout, so the 1 x 1 level should change little and the fine levels
a lot. ``shuffle_test`` measures it on one photo, ``shuffle_bench`` over a folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .. import stats, verdicts
from ..gallery import GalleryItem
from ..i18n import _, percent
from ..images import ImageError, load_image, resize_short_side, to_tensor
from ..models import Prediction, SPPNet, top_predictions
from ..progress import Progress, counted
from ..provenance import entry as provenance_entry
from ..pyramid import spatial_pyramid_pool
from .analysis import merge as merge_parts

SHUFFLE_TILES = (2, 3, 4, 6, 8)  # k: the photo is cut into k x k tiles
SHUFFLE_LEVELS = (1, 2, 4, 6)  # pyramid levels compared, max pooling over the clipped conv5 (what SPP pools)
SHUFFLE_SHORT_SIDE = 256  # the paper's full-image view


def tile_grid(img: Image.Image, k: int) -> Image.Image:
    """The image cut to a multiple of k pixels each way (at most k - 1 pixels dropped at the right and bottom), so
    that its k x k tiles are of equal size."""
    if k < 1 or k > min(img.size):
        raise ValueError(f"tiles per side must be between 1 and {min(img.size)}, got {k}")
    return img.crop((0, 0, img.width - img.width % k, img.height - img.height % k))


def shuffle_tiles(img: Image.Image, k: int, seed: int = 0) -> tuple[Image.Image, Image.Image, np.ndarray]:
    """(original cut to the grid, shuffled, permutation): tile ``perm[j]`` of the original goes to place j.

    Tiles are numbered row by row. For k >= 2 the permutation is never the identity (redrawn with the same
    generator), so the shuffled image always differs; k = 1 gives the image back.
    """
    base = tile_grid(img, k)
    tw, th = base.width // k, base.height // k
    rng = np.random.default_rng(seed)
    perm = rng.permutation(k * k)
    while k > 1 and (perm == np.arange(k * k)).all():
        perm = rng.permutation(k * k)
    out = Image.new(base.mode, base.size)
    for j, src in enumerate(perm):
        sr, sc = divmod(int(src), k)
        dr, dc = divmod(j, k)
        out.paste(base.crop((sc * tw, sr * th, (sc + 1) * tw, (sr + 1) * th)), (dc * tw, dr * th))
    return base, out, perm


def level_vectors(model: SPPNet, img: Image.Image, levels: Sequence[int] = SHUFFLE_LEVELS) -> tuple[dict, Tensor]:
    """One forward pass: ({n: Tensor[C * n * n]} max-pooled levels of the clipped conv5, logits Tensor[classes])."""
    with torch.inference_mode():
        logits, conv5 = model.forward_with_features(to_tensor(img, model.device))
        vecs = {n: spatial_pyramid_pool(conv5, (n,), "max")[0].float().cpu() for n in levels}
    return vecs, logits[0].float().cpu()


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two vectors (1.0 for two zero vectors: nothing changed)."""
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(torch.dot(a.double(), b.double()) / (na * nb))


@dataclass(frozen=True)
class ShuffleResult:
    """The shuffle test on one photo."""

    k: int
    seed: int
    original: Image.Image  # what the network saw: shorter side SHUFFLE_SHORT_SIDE, cut to the grid
    shuffled: Image.Image
    cosines: dict[int, float]  # level n -> cosine between the two photos' n x n level vectors
    top5_original: list[Prediction]
    top5_shuffled: list[Prediction]

    @property
    def same_top1(self) -> bool:
        return self.top5_original[0].index == self.top5_shuffled[0].index

    def sentence(self) -> str:
        """What the numbers say, in words computed from them."""
        coarse, fine = min(self.cosines), max(self.cosines)
        words = []
        for n in (coarse, fine):
            c = self.cosines[n]
            how = (_("the {n}x{n} level barely changed (cosine {cosine})") if c >= 0.9
                   else _("the {n}x{n} level changed somewhat (cosine {cosine})") if c >= 0.7
                   else _("the {n}x{n} level changed a lot (cosine {cosine})"))  # fmt: skip
            words.append(how.format(n=n, cosine=f"{c:.2f}"))
        top, now = self.top5_original[0].name, self.top5_shuffled[0].name
        pred = (_("the prediction stayed ({top})") if self.same_top1
                else _("the prediction changed ({top} -> {now})")).format(top=top, now=now)  # fmt: skip
        return _("With {k}x{k} tiles shuffled, {coarse}, {fine}, and {prediction}.").format(
            k=self.k, coarse=words[0], fine=words[1], prediction=pred
        )


def shuffle_test(
    model: SPPNet,
    img: Image.Image,
    k: int,
    seed: int = 0,
    levels: Sequence[int] = SHUFFLE_LEVELS,
    short_side: int = SHUFFLE_SHORT_SIDE,
) -> ShuffleResult:
    """Shuffle the photo's k x k tiles (at shorter side ``short_side``) and compare each pyramid level and the top-5."""
    original, shuffled, _order = shuffle_tiles(resize_short_side(img, short_side), k, seed)
    (va, la), (vb, lb) = level_vectors(model, original, levels), level_vectors(model, shuffled, levels)
    return ShuffleResult(
        k=k,
        seed=seed,
        original=original,
        shuffled=shuffled,
        cosines={n: cosine(va[n], vb[n]) for n in levels},
        top5_original=top_predictions(la, model.class_names),
        top5_shuffled=top_predictions(lb, model.class_names),
    )


@dataclass
class ShuffleBench:
    """The shuffle test over a folder: per k, each level's cosines and whether top-1 survived, per photo."""

    model: str
    seed: int
    ks: tuple[int, ...]
    levels: tuple[int, ...]
    names: list[str] = field(default_factory=list)
    cosines: dict[int, dict[int, list[float]]] = field(default_factory=dict)  # k -> level -> [N]
    same_top1: dict[int, list[bool]] = field(default_factory=dict)  # k -> [N]
    correct: dict[int, list[bool]] = field(default_factory=dict)  # k (0: the original) -> [N], labelled photos
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    held_out: bool = False  # merged from held-out heads, each scoring photos it was not trained on

    SAME: ClassVar[tuple[str, ...]] = ("seed", "ks", "levels")  # settings every merged part must share

    @classmethod
    def merge(cls, parts: Sequence[ShuffleBench], model: str) -> ShuffleBench:
        """Benches of disjoint photos (one per held-out head) as one, named ``model`` (``analysis.merge``)."""
        return merge_parts(parts, model)

    def summary(self) -> ShuffleSummary:
        """Per k: means and standard errors over the photos, and the paired coarse-minus-fine gap."""
        lo, hi = min(self.levels), max(self.levels)
        rows = []
        for k in self.ks:
            gap = np.asarray(self.cosines[k][lo]) - np.asarray(self.cosines[k][hi])  # [N], paired by photo
            accuracy = None
            if self.correct.get(k):
                accuracy = (MeanSE.of(self.correct[0]), MeanSE.of(self.correct[k]))
            rows.append(
                ShuffleRow(
                    k=k,
                    top1_unchanged=MeanSE.of(self.same_top1[k]),
                    cosine={n: MeanSE.of(self.cosines[k][n]) for n in self.levels},
                    coarse_minus_fine=MeanSE.of(gap),
                    accuracy=accuracy,
                )
            )
        return ShuffleSummary(
            n=len(self.names),
            model=self.model,
            seed=self.seed,
            short_side=SHUFFLE_SHORT_SIDE,
            levels=tuple(self.levels),
            rows=rows,
            labelled=len(self.correct.get(0, [])),
            skipped=list(self.skipped),
            seconds=round(self.seconds, 1),
            held_out=self.held_out,
        )

    def json(self) -> dict:
        return self.summary().json()


@dataclass(frozen=True)
class MeanSE:
    """A mean over photos and its standard error."""

    mean: float
    se: float

    @classmethod
    def of(cls, values: Sequence[float]) -> MeanSE:
        return cls(*stats.mean_se(values))

    def json(self) -> dict[str, float]:
        return {"mean": self.mean, "se": self.se}

    @classmethod
    def from_json(cls, d: dict) -> MeanSE:
        return cls(d["mean"], d["se"])


@dataclass(frozen=True)
class ShuffleRow:
    """One tile count k: how often top-1 survived, each level's cosine, the coarse-minus-fine gap (paired by photo),
    and (labelled photos) the accuracy of the originals and of the shuffled photos."""

    k: int
    top1_unchanged: MeanSE
    cosine: dict[int, MeanSE]
    coarse_minus_fine: MeanSE | None = None
    accuracy: tuple[MeanSE, MeanSE] | None = None

    def json(self) -> dict:
        out = {
            "k": self.k,
            "top1_unchanged": self.top1_unchanged.json(),
            "cosine": {str(n): c.json() for n, c in self.cosine.items()},
        }
        if self.coarse_minus_fine is not None:
            out["coarse_minus_fine"] = self.coarse_minus_fine.json()
        if self.accuracy is not None:
            out["accuracy"] = {"original": self.accuracy[0].json(), "shuffled": self.accuracy[1].json()}
        return out

    @classmethod
    def from_json(cls, d: dict) -> ShuffleRow:
        acc = d.get("accuracy")
        gap = d.get("coarse_minus_fine")
        return cls(
            k=d["k"],
            top1_unchanged=MeanSE.from_json(d["top1_unchanged"]),
            cosine={int(n): MeanSE.from_json(c) for n, c in d["cosine"].items()},
            coarse_minus_fine=MeanSE.from_json(gap) if gap is not None else None,
            accuracy=(MeanSE.from_json(acc["original"]), MeanSE.from_json(acc["shuffled"])) if acc else None,
        )


@dataclass(frozen=True)
class ShuffleSummary:
    """The shuffle test over a folder, summed up (``ShuffleBench.summary``, or read back from its JSON)."""

    n: int
    model: str
    seed: int
    short_side: int
    levels: tuple[int, ...]
    rows: list[ShuffleRow]
    labelled: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    held_out: bool = False
    provenance: dict | None = None  # how it was made (spp_viz.provenance); None in files that never recorded it

    def json(self) -> dict:
        held = {"held_out": True} if self.held_out else {}  # written only when set: older files read back the same
        return {
            **held,
            "n": self.n,
            "model": self.model,
            "seed": self.seed,
            "short_side": self.short_side,
            "levels": list(self.levels),
            "rows": [r.json() for r in self.rows],
            "labelled": self.labelled,
            "skipped": [list(s) for s in self.skipped],
            "seconds": self.seconds, **provenance_entry(self.provenance),
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> ShuffleSummary:
        return cls(
            n=d.get("n", 0),
            model=d.get("model", ""),
            seed=d.get("seed", 0),
            short_side=d.get("short_side", SHUFFLE_SHORT_SIDE),
            levels=tuple(d["levels"]),
            rows=[ShuffleRow.from_json(r) for r in d["rows"]],
            labelled=d.get("labelled", 0),
            skipped=[tuple(s) for s in d.get("skipped", [])],
            seconds=d.get("seconds", 0.0),
            held_out=bool(d.get("held_out", False)),
            provenance=d.get("provenance"),
        )


def shuffle_bench(
    model: SPPNet,
    items: Sequence[GalleryItem],
    ks: Sequence[int] = SHUFFLE_TILES,
    seed: int = 0,
    levels: Sequence[int] = SHUFFLE_LEVELS,
    labels: Callable[[str], int | None] | None = None,
    progress: Progress | None = None,
    only: Collection[str] | None = None,
) -> ShuffleBench:
    """``shuffle_test`` for every photo and every k (photo i shuffled with seed ``seed + i``), one forward pass per
    picture; ``labels`` (a file name -> class index or None) adds accuracy before and after the shuffle. ``only``:
    the names to run (the others are passed over, keeping each photo's seed as in a run over all of them)."""
    start = time.perf_counter()
    bench = ShuffleBench(model.name, seed, tuple(ks), tuple(levels))
    bench.cosines = {k: {n: [] for n in levels} for k in ks}
    bench.same_top1 = {k: [] for k in ks}
    labelled = {k: [] for k in (0, *ks)}
    for i, item in enumerate(items):
        if only is not None and item.name not in only:
            continue
        try:
            img = resize_short_side(load_image(item.read(), name=item.name), SHUFFLE_SHORT_SIDE)
        except ImageError as e:
            bench.skipped.append((item.name, str(e)))
        else:
            label = labels(item.name) if labels else None
            bench.names.append(item.name)
            # One grid that every k divides (at most lcm - 1 pixels dropped), so the original runs once.
            original = tile_grid(img, math.lcm(*ks))
            va, la = level_vectors(model, original, levels)
            if label is not None:
                labelled[0].append(int(la.argmax()) == label)
            for k in ks:
                _original, shuffled, _order = shuffle_tiles(original, k, seed + i)
                vb, lb = level_vectors(model, shuffled, levels)
                for n in levels:
                    bench.cosines[k][n].append(cosine(va[n], vb[n]))
                bench.same_top1[k].append(int(la.argmax()) == int(lb.argmax()))
                if label is not None:
                    labelled[k].append(int(lb.argmax()) == label)
        counted(progress, i + 1, len(items), "photos")
    bench.correct = labelled if labelled[0] else {}
    bench.seconds = time.perf_counter() - start
    return bench


def bench_findings(result: ShuffleSummary) -> list[str]:
    """Sentences computed from the shuffle test's summary: which level keeps its vector as the tiles get smaller, and
    how often the prediction survives."""
    coarse, fine = min(result.levels), max(result.levels)
    out = []
    for row in (result.rows[0], result.rows[-1]):
        k, cos, acc = row.k, row.cosine, row.accuracy
        accuracy = "" if acc is None else _("; accuracy {before} -> {after}").format(
            before=percent(acc[0].mean), after=percent(acc[1].mean))  # fmt: skip
        out.append(_(
            "{k}x{k} tiles: mean cosine {coarse_cosine} at the {coarse}x{coarse} level against {fine_cosine} at "
            "{fine}x{fine}; the top-1 class survives in {survives} of the photos{accuracy}."
        ).format(k=k, coarse=coarse, fine=fine, coarse_cosine=f"{cos[coarse].mean:.2f}", accuracy=accuracy,
                 fine_cosine=f"{cos[fine].mean:.2f}", survives=percent(row.top1_unchanged.mean)))  # fmt: skip
    # Clear only when, at every k, the paired gap (coarse minus fine cosine, per photo) exceeds twice its error.
    gaps = [r.coarse_minus_fine for r in result.rows]
    if all(g is not None and g.mean > 2 * g.se for g in gaps):
        said = _(
            "At every tile size the {coarse}x{coarse} level changes less than the {fine}x{fine} level: position "
            "is largely ignored by the coarse level and kept by the fine ones, as the bag-of-words reading says."
        )
    else:
        said = _(
            "The {coarse}x{coarse} level does not change clearly less than the {fine}x{fine} level at every tile "
            "size here, so these photos do not show the bag-of-words reading cleanly."
        )
    return [*out, said.format(coarse=coarse, fine=fine)]


def heads_findings(one: ShuffleSummary, four: ShuffleSummary) -> list[str]:
    """Per tile count: how often the top-1 survives the shuffle under two heads on the same photos, and whether the
    difference is clear (more than twice its standard error, taken unpaired: the summaries keep no per-photo
    outcome, and pairing would only shrink it)."""
    out = []
    for r1, r4 in zip(one.rows, four.rows, strict=False):
        if r1.k != r4.k:
            continue
        a, b = r1.top1_unchanged, r4.top1_unchanged
        diff, se = b.mean - a.mean, math.hypot(a.se, b.se)
        more = _("{model} notices the shuffle more") if diff < 0 else _("{model} keeps its top-1 more often")
        unclear = stats.verdict(diff - 2 * se, diff + 2 * se) == "unclear"
        said = verdicts.no_clear_difference() if unclear else more.format(model=four.model)
        out.append(_(
            "{k}x{k} tiles: the top-1 class survives in {one_share} (SE {one_se}) of the photos under {one} and "
            "{four_share} (SE {four_se}) under {four}: {diff} points (SE {se}), {verdict}."
        ).format(k=r1.k, one=one.model, four=four.model, one_share=percent(a.mean), one_se=percent(a.se, 1),
                 four_share=percent(b.mean), four_se=percent(b.se, 1), diff=f"{100 * diff:+.1f}",
                 se=f"{100 * se:.1f}", verdict=said))  # fmt: skip
    return out
