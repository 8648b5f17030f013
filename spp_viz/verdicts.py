"""Every verdict the app puts in words, in one place: a difference is clear only when ``stats.verdict`` says its
interval lies on one side ("no clear difference" otherwise), so a change of wording, or of language, happens here
once. The pages, the CLI, the findings and the class's results all call these."""

from __future__ import annotations

from .i18n import N_, _
from .stats import verdict

NO_CLEAR_DIFFERENCE = N_("no clear difference")


def no_clear_difference() -> str:
    """The words for a difference within its interval, in the reader's language (the sentences made in the app's
    languages use these; the constant stays English for the CLI and the shipped files)."""
    return _(NO_CLEAR_DIFFERENCE)


def paired(diff: float, low: float, high: float, mcnemar_p: float, other: str) -> str:
    """One view against ``other`` on the same photos, as the rest of a sentence that names the view first."""
    band = _("{percent} interval {low} to {high}, McNemar p = {p}").format(
        percent="95%", low=f"{100 * low:+.1f}", high=f"{100 * high:+.1f}", p=f"{mcnemar_p:.2g}"
    )
    side = verdict(low, high)
    if side == "above":
        return _("beats the {other} by {points} points ({band})").format(
            other=other, points=f"{100 * diff:.1f}", band=band
        )
    if side == "below":
        return _("falls {points} points below the {other} ({band})").format(
            other=other, points=f"{100 * -diff:.1f}", band=band
        )
    return _("shows no clear difference from the {other}: {points} points ({band})").format(
        other=other, points=f"{100 * diff:+.1f}", band=band
    )


def between(name_a: str, name_b: str, value: float, low: float, high: float, unit: str | None = None) -> str:
    """A sentence for the difference a - b of two named things (``unit``: "points" unless given)."""
    d, unit = 100 * value, unit or _("points")
    band = _("{low} to {high}").format(low=f"{100 * low:+.1f}", high=f"{100 * high:+.1f}")
    if verdict(low, high) != "unclear":
        better, worse = (name_a, name_b) if d > 0 else (name_b, name_a)
        return _("{better} scores {value} {unit} above {worse} ({percent} interval of {a} - {b}: {band}).").format(
            better=better, value=f"{abs(d):.1f}", unit=unit, worse=worse, percent="95%", a=name_a, b=name_b, band=band
        )
    return _("No clear difference between {a} and {b}: {value} {unit}, {percent} interval {band} includes 0.").format(
        a=name_a, b=name_b, value=f"{d:+.1f}", unit=unit, percent="95%", band=band
    )


def within_margin(low: float, high: float, margin: float) -> str:
    """A claim that a - b stays above -margin: "holds" when the whole interval does, "fails" when the whole interval
    lies below it, "unclear" when it spans -margin."""
    return {"above": "holds", "below": "fails", "unclear": "unclear"}[verdict(low, high, -margin)]


MATCHES, OPPOSITE = N_("matches the paper"), N_("the opposite of the paper")
UNCLEAR_HERE = N_("no clear difference on these data")


def paper_claim(direction: str) -> str:
    """The paper's claim that a beats b, against a comparison's direction ("a", "b" or "none"), in English (it is
    stored in results files): ``_(paper_claim(...))`` gives the reader's language."""
    return {"a": MATCHES, "b": OPPOSITE}.get(direction, UNCLEAR_HERE)
