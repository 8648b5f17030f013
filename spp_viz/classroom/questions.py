"""The questions a class can test on its own photos, each from the app's own comparisons.

- ``views``: the centre crop, the warp and the full image through SPP (the Crop, warp or SPP page).
- ``heads``: the {6,3,2,1} pyramid head against the one-level head on the same conv layers and the same full image
  (the two heads the app ships: ``efficientnet_lite0_spp`` and its teacher ``efficientnet_lite0``).
- ``shuffle``: the bag-of-words test (the Pyramid pooling page): the photo's k x k tiles shuffled, for each k of
  ``SHUFFLE_TILES``; the measure is the smallest k at which the top-1 changes.

Each photo goes through the question's *arms*; an entry keeps each arm's top-5 and probability of the true class, so
every question is stored the same way and summed up by ``results``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..explain.bag_of_words import SHUFFLE_SHORT_SIDE, SHUFFLE_TILES, shuffle_tiles, tile_grid
from ..explain.views import full_view, probabilities
from ..i18n import N_, filled, translate
from ..images import resize_short_side
from ..models import SPPNet

SHORT_SIDE = 256  # the paper's full-image view, as the Crop, warp or SPP page uses it (its compare_views: the views)
# The shuffle question cuts the photo once to a multiple of every k (2, 3, 4, 6, 8 -> 24 pixels), so that one
# unshuffled photo is the reference for every k (the Pyramid page cuts it to each k's grid: at most k - 1 pixels).
SHUFFLE_GRID = int(np.lcm.reduce(SHUFFLE_TILES))
SHUFFLE_SEED = 0  # the Pyramid page's default shuffle and the shipped bench's
LARGEST = SHUFFLE_TILES[-1]
NEVER = "never"  # the shuffle poll's answer when no k up to the largest changes the top-1


@dataclass(frozen=True)
class Question:
    """One comparison a class can run: what each photo goes through, and what students are asked beforehand."""

    key: str
    title: str  # the teacher's menu
    arms: tuple[str, ...]  # what each photo goes through, in the order the teacher's table shows them
    arm_titles: Mapping[str, str]
    prompt: str  # the poll's question, asked before the reveal
    poll: tuple[str, ...]  # its answers
    poll_words: Mapping[str, str]
    compared: str  # what the class compares, in a sentence's words ("the views", "the heads")

    def answers(self) -> dict[str, str]:
        """The poll's answers in the reader's language (``poll_words`` stays English, as the exports write it)."""
        return {k: translate(v) for k, v in self.poll_words.items()}


VIEWS = ("crop", "warp", "full")
HEAD_ARMS = ("spp", "one_level")
SHUFFLE_ARMS = ("original", *(f"k{k}" for k in SHUFFLE_TILES))

# Every text in English, marked for the catalogs: ``i18n.translate`` reads one in the reader's language.
QUESTIONS: dict[str, Question] = {
    q.key: q
    for q in (
        Question(
            "views", N_("Crop vs warp vs full image (SPP)"), VIEWS,
            {"crop": N_("Centre crop"), "warp": N_("Warp"), "full": N_("Full image (SPP)")},
            N_("Before the reveal: which view will be right?"), (*VIEWS, "none"),
            {"crop": N_("the centre crop"), "warp": N_("the warp"), "full": N_("the full image (SPP)"),
             "none": N_("none of them")},
            N_("the views"),
        ),
        Question(
            "heads", N_("{6,3,2,1} pyramid head vs one-level head"), HEAD_ARMS,
            {"spp": N_("{6,3,2,1} head (SPP-net)"), "one_level": N_("One-level head (Lite0)")},
            N_("Before the reveal: which head will be right?"), (*HEAD_ARMS, "none"),
            {"spp": N_("the {6,3,2,1} head"), "one_level": N_("the one-level head"), "none": N_("neither")},
            N_("the heads"),
        ),
        Question(
            "shuffle", N_("Shuffled tiles: at which k does the top-1 change?"), SHUFFLE_ARMS,
            {"original": N_("Unshuffled"),
             **{f"k{k}": filled(N_("{k}x{k} tiles shuffled"), k=k) for k in SHUFFLE_TILES}},
            N_("Before the reveal: from how many tiles a side on will the top-1 change?"),
            (*(str(k) for k in SHUFFLE_TILES), NEVER),
            {**{str(k): f"{k}x{k}" for k in SHUFFLE_TILES}, NEVER: filled(N_("not up to {k}x{k}"), k=LARGEST)},
            N_("the shuffles"),
        ),
    )
}  # fmt: skip
DEFAULT_QUESTION = "views"


def question(key: str) -> Question:
    """The question named ``key``; a ValueError names the ones there are."""
    if key not in QUESTIONS:
        raise ValueError(f"no class question {key!r}; there are {', '.join(QUESTIONS)}")
    return QUESTIONS[key]


def head_probs(pyramid: SPPNet, one_level: SPPNet, img: Image.Image) -> dict[str, np.ndarray]:
    """``heads``: each head's class probabilities on the same full image (shorter side 256)."""
    full = full_view(img, SHORT_SIDE).image
    return {"spp": probabilities(pyramid, full), "one_level": probabilities(one_level, full)}


def shuffle_probs(model: SPPNet, img: Image.Image) -> dict[str, np.ndarray]:
    """``shuffle``: the class probabilities of the photo (shorter side 256, cut to ``SHUFFLE_GRID``) and of its k x k
    tiles shuffled, for each k of ``SHUFFLE_TILES`` (the same seed as the Pyramid page)."""
    base = tile_grid(resize_short_side(img, SHUFFLE_SHORT_SIDE), SHUFFLE_GRID)
    out = {"original": probabilities(model, base)}
    for k in SHUFFLE_TILES:
        out[f"k{k}"] = probabilities(model, shuffle_tiles(base, k, SHUFFLE_SEED)[1])
    return out


def first_change(top1: Mapping[str, int]) -> str:
    """The smallest k (as the poll writes it) whose shuffled photo's top-1 differs from the unshuffled one's, or
    ``NEVER``; ``top1`` maps each shuffle arm to its top-1 class."""
    return next((str(k) for k in SHUFFLE_TILES if top1[f"k{k}"] != top1["original"]), NEVER)
