"""Did the Lab's networks converge? Each configuration on the view it trained for, against 95% or that view's
ceiling (``ceiling.py``), in words; and how much less a quick classroom run decides than the shipped results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..i18n import N_, _
from .experiments import EXPERIMENT_CONFIG, ExperimentResults, claims
from .train import TEST_VIEW_TITLES, train_view

CONVERGED = 0.95  # the Lab's goal for a converged network, on the view it was trained for
# How close to its view's ceiling a network counts as there: twice the binomial standard error of one network's
# accuracy on 1,000 test images near 88% (1 point).
CEILING_SLACK = 0.02


@dataclass(frozen=True)
class OwnView:
    """A configuration on the view it was trained for: its test accuracy (mean over seeds) and that view's ceiling
    (``ceiling.view_ceiling``: 1.0 for the full image; None when the results did not record it)."""

    name: str
    view: str
    accuracy: float
    ceiling: float | None

    @property
    def capped(self) -> bool:
        """The view itself keeps any classifier under ``CONVERGED``, and the network is at that ceiling (within
        ``CEILING_SLACK``): not reaching 95% is the view's doing."""
        return (
            self.ceiling is not None
            and self.ceiling < CONVERGED
            and self.accuracy < CONVERGED
            and self.accuracy >= self.ceiling - CEILING_SLACK
        )

    @property
    def under_trained(self) -> bool:
        return self.accuracy < CONVERGED and not self.capped


def own_views(results: ExperimentResults) -> list[OwnView]:
    """Each configuration's accuracy on its own view (crop, warp or full image), with that view's ceiling."""
    out = []
    for r in results.rows:
        view = train_view(replace(EXPERIMENT_CONFIG, **r.changes))
        ceiling = 1.0 if view == "full" else results.ceilings.get(view)
        out.append(OwnView(r.name, view, r.test[view] or 0.0, ceiling))
    return out


def convergence_note(results: ExperimentResults) -> tuple[str, bool] | None:
    """What the networks reached on their own views, in words, and whether that is a warning (some network is
    under-trained: under ``CONVERGED`` on a view that allows more). None when every network reaches it."""
    views = own_views(results)
    low = [v for v in views if v.under_trained]
    parts = []
    if low:
        worst, best = min(v.accuracy for v in low), max(v.accuracy for v in low)
        parts.append(
            _(
                "{low} of {all} networks stay under {goal} on the view each was trained for ({worst}% to {best}%, mean "
                "over seeds), the accuracy the Lab asks of a converged network: they are under-trained, so the "
                "verdicts below rest on under-training and seed noise as much as on the pooling."
            ).format(
                low=len(low),
                all=len(views),
                goal=f"{CONVERGED:.0%}",
                worst=f"{100 * worst:.1f}",
                best=f"{100 * best:.1f}",
            )  # fmt: skip
        )
    for v in views:
        if v.capped:
            parts.append(
                _(
                    "{name} reaches {accuracy} on its {view}, where an ideal observer of the shape's outline in "
                    "that view reaches {ceiling}: the view caps it under {goal}, not the training ({why})."
                ).format(name=_(v.name), accuracy=f"{100 * v.accuracy:.1f}%", view=_(TEST_VIEW_TITLES[v.view]),
                         ceiling=f"{100 * v.ceiling:.1f}%", goal=f"{CONVERGED:.0%}", why=_(VIEW_LOSSES[v.view]))
            )  # fmt: skip
    return (" ".join(parts), bool(low)) if parts else None


VIEW_LOSSES = {
    "warp": N_("a warp to a square makes a lying ellipse in a 2:1 image the picture of a circle in a square one"),
    "crop": N_("a centre crop can cut a shape down to a piece that fits either class"),
}


def classroom_note(run: ExperimentResults, shipped: ExperimentResults) -> str:
    """How much less a quick run here can decide than the shipped results, from both runs' own numbers: the
    accuracies on the networks' own views and the claims' standard errors."""

    def span(values: Sequence[float]) -> str:
        return f"{min(values):.1f}" + ("" if min(values) == max(values) else f" to {max(values):.1f}")

    views = own_views(run)
    mine, theirs = [100 * v.accuracy for v in views], [100 * v.accuracy for v in own_views(shipped)]
    ses = [c.se for c in claims(run) if c.se is not None]
    shipped_ses = [c.se for c in claims(shipped) if c.se is not None]
    converged = not any(v.under_trained for v in views)
    out = (
        _(
            "This run's networks reach {mine} on the views they were trained for ({epochs} epochs, {images} images); "
            "the shipped ones reach {theirs}."
        )
        if converged
        else _(
            "This run's networks are not converged: {mine} on the views they were trained for ({epochs} epochs, "
            "{images} images); the shipped ones reach {theirs}."
        )
    ).format(mine=span(mine) + "%", epochs=run.config.get("epochs"), images=run.config.get("train_count"),
             theirs=span(theirs) + "%")  # fmt: skip
    if not ses or not shipped_ses:
        return (
            out
            + " "
            + _("With one seed its claims have no standard error: its verdicts cannot rule out any difference.")
        )
    return out + " " + _(
        "Its claims' standard errors are {mine} points against the shipped {theirs}: it cannot tell apart differences "
        "under about {limit} points, the shipped results under {shipped_limit}, so its verdicts are the weaker."
    ).format(mine=span(ses), theirs=span(shipped_ses), limit=f"{2 * max(ses):.1f}",
             shipped_limit=f"{2 * max(shipped_ses):.1f}")  # fmt: skip
