"""What a view leaves of the built-in shapes: the best accuracy any classifier can reach on the crop or the warp view.

A warp to a square changes a shape's aspect by the image's (a lying 2:1 ellipse in a 2:1 image becomes a circle the
size of a square image's circles), and a centre crop can cut a shape away: no amount of training gets back what the
view lost. The ceiling here is an ideal observer's: it sees the shape's outline in the view (the family, round or
angular; the box's width and height in ``BIN_PIXELS``-pixel steps; for a crop, which crop edges cut the shape) and
names the class most often seen with that outline. The outline's frequencies come from ``count`` generated boxes,
and the observer is scored on ``count`` others (so it cannot learn the scored boxes by heart). It ignores what the
outline does not carry (resampling blur, colours), so a network could in principle beat it by a little; none of ours
did.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterator, Sequence
from functools import lru_cache

import numpy as np

from .data import CLASSES, SIZES, shape_box

BIN_PIXELS = 4  # the outline's resolution, in pixels of the view
VIEWS_WITH_CEILING = ("crop", "warp")  # the full view keeps the outline: its ceiling is 100%


def _boxes(count: int, seed: int, sizes: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, int, tuple]]:
    """(label, W, H, box) drawn as ``data.make_sample`` draws them: a size, then a box for the class in turn."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        w, h = sizes[int(rng.integers(len(sizes)))]
        label = i % len(CLASSES)
        yield label, w, h, shape_box(rng, w, h, label)


def outline(view: str, label: int, w: int, h: int, box: tuple[int, int, int, int], size: int = 64) -> Hashable:
    """What ``view`` (crop or warp, ``size`` pixels square) shows of the shape in ``box`` of a W x H image."""
    family = "round" if CLASSES[label] in ("circle", "ellipse") else "angular"
    x0, y0, x1, y1 = box
    if view == "warp":  # each axis scaled by its own factor: the image's aspect goes into the shape's
        return family, round((x1 - x0) * size / w / BIN_PIXELS), round((y1 - y0) * size / h / BIN_PIXELS)
    if view != "crop":
        raise ValueError(f"a view ceiling is for crop or warp, not {view!r}")
    side = min(w, h)  # the centre square, scaled by size / side
    cx0, cy0 = (w - side) / 2, (h - side) / 2
    vx0, vx1, vy0, vy1 = max(x0, cx0), min(x1, cx0 + side), max(y0, cy0), min(y1, cy0 + side)
    if vx1 <= vx0 or vy1 <= vy0:
        return family, "cut away"  # nothing of the shape in the crop
    scale = size / side / BIN_PIXELS
    cut = (x0 < cx0, x1 > cx0 + side, y0 < cy0, y1 > cy0 + side)
    return family, round((vx1 - vx0) * scale), round((vy1 - vy0) * scale), cut


@lru_cache(maxsize=16)
def view_ceiling(
    view: str, count: int = 40_000, seed: int = 0, sizes: tuple[tuple[int, int], ...] = SIZES, size: int = 64
) -> float:
    """The ideal observer's accuracy on ``view`` (see the module's docstring): 1.0 for the full view.

    Args:
        count: boxes to learn the outlines' classes from, and as many others to score on.
        sizes: the image sizes (W, H) drawn from, each as likely (the built-in data's by default).
    """
    if view not in VIEWS_WITH_CEILING:
        if view == "full":
            return 1.0
        raise ValueError(f"a view ceiling is for crop, warp or full, not {view!r}")
    seen: defaultdict[Hashable, Counter] = defaultdict(Counter)
    for label, w, h, box in _boxes(count, seed, sizes):
        seen[outline(view, label, w, h, box, size)][label] += 1
    guess = {key: c.most_common(1)[0][0] for key, c in seen.items()}
    scored = [
        guess.get(outline(view, label, w, h, box, size)) == label for label, w, h, box in _boxes(count, seed + 1, sizes)
    ]
    return float(np.mean(scored))


def cut_away(samples: Sequence, size: int = 64) -> int:
    """How many of ``samples`` (``data.LabelledImage``) lose their whole shape in the centre crop."""
    return sum(outline("crop", s.label, *s.image.size, s.box, size)[1] == "cut away" for s in samples)
