"""A views bench's result summed up (accuracy per view, paired differences), read back from its JSON, and what it
says in sentences and table rows: what the Crop/warp/SPP page and the CLI show."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import paper
from .views import MULTI_SCALES, VIEW_TITLES

VIEW_WORDS = {
    "crop": "centre crop",
    "warp": "warp",
    "full": "full image",
    "multi": f"full images at {len(MULTI_SCALES)} scales",
}


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
        )


# ----------------------------------------------------------------------------- what the numbers say


def _verdict(d: PairedDiff, other: str) -> str:
    """A paired difference in words: clear only when its 95% interval excludes zero."""
    band = f"95% interval {100 * d.low:+.1f} to {100 * d.high:+.1f}, McNemar p = {d.mcnemar_p:.2g}"
    if d.low > 0:
        return f"beats the {other} by {100 * d.diff:.1f} points ({band})"
    if d.high < 0:
        return f"falls {100 * -d.diff:.1f} points below the {other} ({band})"
    return f"shows no clear difference from the {other}: {100 * d.diff:+.1f} points ({band})"


def findings(result: ViewsSummary, where: str = "these photos") -> list[str]:
    """Sentences computed from a views bench's summary: each view against the crop (and the full image against the
    warp), with its interval, and how that compares with the paper's direction."""
    acc = ", ".join(f"{VIEW_WORDS[v]} {a['top1']:.1%}" for v, a in result.accuracy.items())
    out = [f"Over {result.n} {where} this network's top-1 accuracy is: {acc} (top-5 in the table)."]
    for v, paired in result.against_crop.items():
        d = paired["top1"]
        out.append(
            f"{VIEW_TITLES[v]} {_verdict(d, 'centre crop')}; right only this way: {d.only_this_view} photo(s), "
            f"only with the crop: {d.only_other}."
        )
    trained = (
        f"The paper's networks were trained with SPP at several input sizes; this one ({result.model}) was "
        "trained on 224 x 224 crops (its head is global average pooling), so it knows objects at the crop's scale "
        "and framing."
    )
    warp = result.against_warp.get("full", {}).get("top1")
    if warp is not None:
        claim = (
            f"the paper's direction (Caltech101: full {paper.CALTECH101_FULL}% against warped "
            f"{paper.CALTECH101_WARP}%)"
        )
        out.append(
            f"Full image (SPP) {_verdict(warp, 'warp')}: "
            + (f"{claim}." if warp.low > 0 else f"{claim} does not show clearly here.")
        )
    full = result.against_crop.get("full", {}).get("top1")
    if full is not None:
        if full.low > 0:
            out.append("The full image beats the crop here too: the direction the paper reports (VOC 2007).")
        elif full.high >= 0:
            out.append(
                f"The paper's gain of the full image over the crop (VOC 2007: {paper.VOC07_FULL} against "
                f"{paper.VOC07_CROP} mAP) does not show clearly here. {trained}"
            )
        else:
            out.append(f"The full image loses against the crop here, the opposite of the paper. {trained}")
    return out


def table_rows(result: ViewsSummary) -> list[dict[str, str]]:
    """One row per view of a views bench's summary, as the page and the README show them."""
    rows = []
    for v, acc in result.accuracy.items():
        row = {"view": VIEW_TITLES[v], "top-1": f"{acc['top1']:.1%}", "top-5": f"{acc['top5']:.1%}"}
        for key, label in (("top1", "top-1"), ("top5", "top-5")):
            d = result.against_crop.get(v, {}).get(key)
            row[f"{label} minus crop (95% interval)"] = (
                "reference" if d is None else f"{100 * d.diff:+.1f} ({100 * d.low:+.1f} to {100 * d.high:+.1f}) points"
            )
        d = result.against_crop.get(v, {}).get("top1")
        row["McNemar p, top-1"] = "" if d is None else f"{d.mcnemar_p:.2g}"
        rows.append(row)
    return rows
