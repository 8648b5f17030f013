"""A views bench's result summed up (accuracy per view, paired differences), read back from its JSON, and what it
says in sentences and table rows: what the Crop/warp/SPP page and the CLI show."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import paper, verdicts
from ..i18n import N_, _, percent
from ..provenance import entry as provenance_entry
from ..settings import DEFAULT_MODEL
from ..stats import mcnemar, paired_bootstrap
from .views import MULTI_SCALES, view_title

VIEW_WORDS = {  # a view in the middle of a sentence, in the reader's language (view_words)
    "crop": N_("centre crop"),
    "warp": N_("warp"),
    "full": N_("full image"),
    "multi": N_("full images at {count} scales"),
}


def view_words(view: str) -> str:
    return _(VIEW_WORDS[view]).format(count=len(MULTI_SCALES))


@dataclass(frozen=True)
class PairedDiff:
    """One view against another on the same photos: the accuracy difference (a fraction) with its 95% bootstrap
    interval, McNemar's p, and how many photos only this view or only the other got right."""

    diff: float
    low: float
    high: float
    mcnemar_p: float
    only_this_view: int
    only_other: int

    def json(self, other: str) -> dict:
        return {
            "diff": self.diff,
            "low": self.low,
            "high": self.high,
            "mcnemar_p": self.mcnemar_p,
            "only_this_view": self.only_this_view,
            f"only_{other}": self.only_other,
        }

    @classmethod
    def from_json(cls, d: dict, other: str) -> PairedDiff:
        return cls(
            diff=d["diff"], low=d["low"], high=d["high"], mcnemar_p=d["mcnemar_p"],
            only_this_view=d["only_this_view"], only_other=d[f"only_{other}"],
        )  # fmt: skip


@dataclass(frozen=True)
class ViewsSummary:
    """A views bench's result (``ViewsReport.summary``, or read back from its JSON): top-1 / top-5 per view, and each
    view against the crop (and the full views against the warp), per ``"top1"`` / ``"top5"``."""

    n: int
    model: str
    short_side: int
    accuracy: dict[str, dict[str, float]]  # view -> {"top1", "top5"}
    against_crop: dict[str, dict[str, PairedDiff]]  # view -> "top1" / "top5" -> the difference
    against_warp: dict[str, dict[str, PairedDiff]]
    unlabeled: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float | None = None
    names: list[str] = field(default_factory=list)  # the photos, in the order of ``hits``
    hits: dict[str, str] = field(default_factory=dict)  # view -> per photo "1" (top-1 right) or "0"
    held_out: bool = False  # each photo scored by a head that was not trained on it (``distill --fold-heads``)
    provenance: dict | None = None  # how it was made (spp_viz.provenance); None in files that never recorded it

    def top1_hits(self, view: str) -> dict[str, bool]:
        """Photo name -> whether ``view``'s top-1 was right (empty for JSON written before the hits were kept)."""
        return {n: h == "1" for n, h in zip(self.names, self.hits.get(view, ""), strict=False)}

    def json(self) -> dict:
        def pairs(table: dict[str, dict[str, PairedDiff]], other: str) -> dict:
            return {v: {k: d.json(other) for k, d in by_k.items()} for v, by_k in table.items()}

        return {
            "n": self.n,
            "model": self.model,
            "short_side": self.short_side,
            "views": self.accuracy,
            "paired": pairs(self.against_crop, "crop"),
            "paired_with_warp": pairs(self.against_warp, "warp"),
            "unlabeled": [list(u) for u in self.unlabeled],
            "skipped": [list(s) for s in self.skipped],
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "names": self.names,
            "hits": self.hits,
            "held_out": self.held_out,
            **provenance_entry(self.provenance),
        }

    @classmethod
    def from_json(cls, d: dict) -> ViewsSummary:
        def pairs(table: dict, other: str) -> dict[str, dict[str, PairedDiff]]:
            return {v: {k: PairedDiff.from_json(x, other) for k, x in by_k.items()} for v, by_k in table.items()}

        return cls(
            n=d["n"],
            model=d["model"],
            short_side=d.get("short_side", 256),
            accuracy=d["views"],
            against_crop=pairs(d.get("paired", {}), "crop"),
            against_warp=pairs(d.get("paired_with_warp", {}), "warp"),
            unlabeled=[tuple(u) for u in d.get("unlabeled", [])],
            skipped=[tuple(s) for s in d.get("skipped", [])],
            seconds=d.get("seconds", 0.0),
            images_per_second=d.get("images_per_second"),
            names=list(d.get("names", [])),
            hits=dict(d.get("hits", {})),
            held_out=bool(d.get("held_out", False)),
            provenance=d.get("provenance"),
        )


def across_models(a: ViewsSummary, view_a: str, b: ViewsSummary, view_b: str) -> PairedDiff | None:
    """``a``'s ``view_a`` against ``b``'s ``view_b`` on the photos both measured (paired by name): the top-1
    difference with its 95% bootstrap interval and McNemar's test; None when the two share no photo."""
    hits_a, hits_b = a.top1_hits(view_a), b.top1_hits(view_b)
    common = [n for n in hits_a if n in hits_b]
    if not common:
        return None
    x, y = [hits_a[n] for n in common], [hits_b[n] for n in common]
    diff, test = paired_bootstrap(x, y), mcnemar(x, y)
    return PairedDiff(diff.value, diff.low, diff.high, test.p_value, test.only_a, test.only_b)


# ----------------------------------------------------------------------------- what the numbers say


def _verdict(d: PairedDiff, other: str) -> str:
    return verdicts.paired(d.diff, d.low, d.high, d.mcnemar_p, other)


def how_trained(model: str) -> str:
    """One sentence on how ``model`` was trained, for the findings that depend on it."""
    if model == DEFAULT_MODEL:
        return _(
            "this one has Lite0's conv layers, trained on 224 x 224 crops, and a {{6,3,2,1}} head distilled from "
            "Lite0's own head on 500 photos (full images at three sizes and random crops), so its conv layers still "
            "know objects at the crop's scale and framing."
        ).format()
    return _(
        "this one ({model}) was trained on 224 x 224 crops (its head is global average pooling), so it knows objects "
        "at the crop's scale and framing."
    ).format(model=model)


def findings(result: ViewsSummary, where: str | None = None) -> list[str]:
    """Sentences computed from a views bench's summary: each view against the crop (and the full image against the
    warp), with its interval, and how that compares with the paper's direction. ``where`` names the photos ("these
    photos" by default)."""
    acc = ", ".join(f"{view_words(v)} {percent(a['top1'], 1)}" for v, a in result.accuracy.items())
    out = [_("Over {n} {where} this network's top-1 accuracy is: {accuracy} (top-5 in the table).").format(
        n=result.n, where=where or _("these photos"), accuracy=acc)]  # fmt: skip
    if result.held_out:
        out.append(_("Each photo was scored by a head distilled without it (distill --fold-heads, bench --held-out)."))
    for v, paired in result.against_crop.items():
        d = paired["top1"]
        out.append(_("{view} {verdict}; right only this way: {only_this} photo(s), only with the crop: {only_crop}.")
                   .format(view=view_title(v), verdict=_verdict(d, view_words("crop")), only_this=d.only_this_view,
                           only_crop=d.only_other))  # fmt: skip
    trained = _("The paper's networks were trained with SPP at several input sizes; {how}").format(
        how=how_trained(result.model))  # fmt: skip
    warp = result.against_warp.get("full", {}).get("top1")
    if warp is not None:
        claim = (_("{verdict}: the paper's direction (Caltech101: full {full} against warped {warped}).")
                 if warp.low > 0 else
                 _("{verdict}: the paper's direction (Caltech101: full {full} against warped {warped}) does not "
                   "show clearly here."))  # fmt: skip
        verdict = view_title("full") + " " + _verdict(warp, view_words("warp"))
        out.append(claim.format(verdict=verdict, full=f"{paper.CALTECH101_FULL}%", warped=f"{paper.CALTECH101_WARP}%"))
    full = result.against_crop.get("full", {}).get("top1")
    if full is not None:
        if full.low > 0:
            out.append(_("The full image beats the crop here too: the direction the paper reports (VOC 2007)."))
        elif full.high >= 0:
            out.append(_("The paper's gain of the full image over the crop (VOC 2007: {full} against {crop} mAP) does "
                         "not show clearly here. {trained}").format(full=paper.VOC07_FULL, crop=paper.VOC07_CROP,
                                                                    trained=trained))  # fmt: skip
        else:
            out.append(_("The full image loses against the crop here, the opposite of the paper. {trained}").format(
                trained=trained))  # fmt: skip
    return out


def table_rows(result: ViewsSummary) -> list[dict[str, str]]:
    """One row per view of a views bench's summary, as the page and the README show them."""
    rows = []
    for v, acc in result.accuracy.items():
        row = {_("view"): view_title(v), "top-1": percent(acc["top1"], 1), "top-5": percent(acc["top5"], 1)}
        for key, label in (("top1", "top-1"), ("top5", "top-5")):
            d = result.against_crop.get(v, {}).get(key)
            row[_("{label} minus crop ({percent} interval)").format(label=label, percent="95%")] = (
                _("reference") if d is None else _("{diff} ({low} to {high}) points").format(
                    diff=f"{100 * d.diff:+.1f}", low=f"{100 * d.low:+.1f}", high=f"{100 * d.high:+.1f}")
            )  # fmt: skip
        d = result.against_crop.get(v, {}).get("top1")
        row["McNemar p, top-1"] = "" if d is None else f"{d.mcnemar_p:.2g}"
        rows.append(row)
    return rows


# The pairs a two-model comparison reports: (view of the second model, view of the first).
HEAD_PAIRS = (("full", "full"), ("full", "crop"), ("multi", "crop"), ("crop", "crop"))


def side_by_side(a: ViewsSummary, b: ViewsSummary) -> list[dict[str, str]]:
    """One row per view both measured: each model's top-1, and b minus a on the same photos (95% interval)."""
    rows = []
    for v in (v for v in a.accuracy if v in b.accuracy):
        d = across_models(b, v, a, v)
        rows.append({
            _("view"): view_title(v), f"{a.model} top-1": percent(a.accuracy[v]["top1"], 1),
            f"{b.model} top-1": percent(b.accuracy[v]["top1"], 1),
            _("difference ({percent} interval)").format(percent="95%"): "" if d is None else
            _("{diff} ({low} to {high}) points, McNemar p = {p}").format(
                diff=f"{100 * d.diff:+.1f}", low=f"{100 * d.low:+.1f}", high=f"{100 * d.high:+.1f}",
                p=f"{d.mcnemar_p:.2g}"),
        })  # fmt: skip
    return rows


def head_findings(a: ViewsSummary, b: ViewsSummary) -> list[str]:
    """Sentences on ``b`` (a pyramid head) against ``a`` (the one-level head) on the same photos, for each of
    ``HEAD_PAIRS``: the goal (b's full image at least a's) and the paper's claim (a whole image does as well as a
    crop)."""
    out = []
    for vb, va in HEAD_PAIRS:
        d = across_models(b, vb, a, va)
        if d is None or vb not in b.accuracy or va not in a.accuracy:
            continue
        other = f"{a.model} {view_words(va)} ({percent(a.accuracy[va]['top1'], 1)})"
        out.append(f"{b.model}, {view_words(vb)} ({percent(b.accuracy[vb]['top1'], 1)}) {_verdict(d, other)}.")
    return out
