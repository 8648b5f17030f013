"""One progress callback for the whole library: ``progress(fraction done, what is happening)``.

Every long run (the gallery index, the views and shuffle benches, detection, the Lab, the server's queue) reports
through it, so the CLI's one progress bar and the app's queue serve them all.
"""

from __future__ import annotations

from collections.abc import Callable

from .i18n import N_, _

Progress = Callable[[float, str], None]


def report(progress: Progress | None, fraction: float, text: str) -> None:
    """Call ``progress`` (when there is one) with the fraction clamped to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), text)


def counted(progress: Progress | None, done: int, total: int, what: str) -> None:
    """Report ``done`` of ``total`` things: the fraction, and the text "done of total what"."""
    report(progress, done / max(total, 1), _("{done} of {total} {what}").format(done=done, total=total, what=_(what)))


COUNTED = (N_("images"), N_("photos"), N_("sizes"))  # what ``counted`` counts: the catalogs' words for them


def span(progress: Progress | None, low: float, high: float) -> Progress | None:
    """A callback for one part of a longer run: its fractions 0 -> 1 become low -> high of the whole."""
    if progress is None:
        return None
    return lambda fraction, text: progress(low + (high - low) * fraction, text)
