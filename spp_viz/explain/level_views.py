"""What the pyramid page draws: each level of one channel, with its bins, pooled values and winning cells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..geometry import Bin, FeatureGeometry, level_bins
from ..i18n import N_, _, ngettext, number
from ..images import resize_short_side, to_tensor
from ..models import SPPNet
from ..pyramid import bin_winners, pool_level, spatial_pyramid_pool

# Keys are kept as they are (a session's choice); a menu shows each as _(key).
PRESETS: dict[str, tuple[int, ...]] = {
    N_("{6,3,2,1}: 50 bins, the paper's ZF-5 pyramid"): (6, 3, 2, 1),
    N_("{4,3,2,1}: 30 bins"): (4, 3, 2, 1),
    N_("{4,2,1}: 21 bins, the paper's Figure 3"): (4, 2, 1),
    N_("{3,2,1}: 14 bins"): (3, 2, 1),
}


@dataclass(frozen=True)
class LevelView:
    """One n x n level over one conv5 channel."""

    n: int
    bins: list[Bin]  # row by row
    values: np.ndarray  # [n, n] pooled value of each bin
    winners: np.ndarray | None  # [n, n, 2] (row, col) of the cell that won each bin's max; None for avg


def level_view(fmap: np.ndarray, geom: FeatureGeometry, n: int, mode: str = "max", rule: str = "adaptive") -> LevelView:
    """Bins, pooled values and (for max) winners of one level over fmap: [H5, W5].

    Raises:
        ValueError: when the training rule cannot give n bins for this map (the message says why).
    """
    t = torch.from_numpy(np.ascontiguousarray(fmap))
    bins = level_bins(geom, n, rule)
    if mode == "max":
        values, rows, cols = bin_winners(t, n, rule)
        winners = torch.stack([rows, cols], dim=-1).numpy()  # (n, n) + (n, n) -> (n, n, 2)
    else:
        values, winners = pool_level(t, n, mode, rule), None
    return LevelView(n=n, bins=bins, values=values.numpy(), winners=winners)


def spp_vector(conv5: np.ndarray, levels: Sequence[int], mode: str = "max", rule: str = "adaptive") -> np.ndarray:
    """The SPP vector of conv5: [C, H5, W5] -> [C * sum(n*n)], in the op's layout (level, channel, bin)."""
    return spatial_pyramid_pool(torch.from_numpy(conv5)[None], levels, mode, rule)[0].numpy()


@dataclass(frozen=True)
class SizeRow:
    """One input size of the fixed-length table."""

    view: str
    input_hw: tuple[int, int]
    conv5_hw: tuple[int, int]
    spp_length: int


def fixed_length_rows(model: SPPNet, img: Image.Image, levels: Sequence[int]) -> list[SizeRow]:
    """Run the conv layers on the image at several sizes and aspect ratios; SPP with ``levels`` on each.

    The conv5 grid changes with every view; the SPP length never does.
    """
    s = model.input_size
    views = [(_("shorter side {side}").format(side=side), resize_short_side(img, side)) for side in (128, s, 256, 384)]
    views += [
        (_("warped to {w} x {h}").format(w=s, h=s), img.resize((s, s), Image.Resampling.BILINEAR)),
        (_("stretched wide, {w} x {h}").format(w=2 * s, h=s), img.resize((2 * s, s), Image.Resampling.BILINEAR)),
        (_("stretched tall, {w} x {h}").format(w=s, h=2 * s), img.resize((s, 2 * s), Image.Resampling.BILINEAR)),
    ]
    rows = []
    for label, view in views:
        x = to_tensor(view, model.device)
        with torch.inference_mode():
            conv5 = model.forward_features(x)
            length = spatial_pyramid_pool(conv5, levels).shape[1]
        rows.append(SizeRow(label, (x.shape[-2], x.shape[-1]), (conv5.shape[-2], conv5.shape[-1]), length))
    return rows


def classifier_reads(model: SPPNet) -> str:
    """One sentence: which pyramid levels ``model``'s classifier reads, and how many numbers that is."""
    levels, mode = tuple(model.spp.levels), model.spp.mode
    values = {
        "model": model.name,
        "mode": mode,
        "pyramid": "{" + ",".join(map(str, levels)) + "}",
        "channels": number(model.channels),
        "bins": sum(n * n for n in levels),
        "length": number(model.spp_length),
    }
    if levels == (1,):
        return (
            _(
                "{model}'s classifier reads a one-level pyramid ({mode} pooling over all of conv5: global average "
                "pooling, {channels} numbers). The paper's {{6,3,2,1}} levels that the Pyramid page draws are read by "
                "no trained layer of this network; the SPP-net entry of the Network menu has a classifier that reads "
                "them."
            )
            if mode == "avg"
            else _(
                "{model}'s classifier reads a one-level pyramid ({mode} pooling over all of conv5: global max "
                "pooling, {channels} numbers). The paper's {{6,3,2,1}} levels that the Pyramid page draws are read by "
                "no trained layer of this network; the SPP-net entry of the Network menu has a classifier that reads "
                "them."
            )
        ).format(**values)
    sentence = _(
        "{model}'s classifier reads the {pyramid} pyramid ({mode} pooling): {channels} channels x {bins} bins = "
        "{length} numbers."
    ).format(**values)
    if not model.pretrained:
        sentence += " " + _("Its weights are random: it shows the mechanism, not what was learned.")
    return sentence


_COUNTS = {1: N_("one"), 2: N_("two"), 3: N_("three"), 4: N_("four"), 5: N_("five"), 6: N_("six")}


def reads_pyramid(model: SPPNet, levels: tuple[int, ...], mode: str) -> str:
    """One sentence: whether ``model``'s own classifier reads the pyramid ``levels`` with ``mode`` pooling."""
    own = "{" + ",".join(map(str, model.spp.levels)) + "}"
    if tuple(model.spp.levels) == tuple(levels) and model.spp.mode == mode:
        n = len(levels)
        count = _(_COUNTS[n]) if n in _COUNTS else str(n)
        return ngettext(
            "{model}'s classifier reads this {count} level ({mode} pooling): the vector below is what its classifier "
            "takes.",
            "{model}'s classifier reads these {count} levels ({mode} pooling): the vector below is what its "
            "classifier takes.",
            n,
        ).format(model=model.name, count=count, mode=mode)
    return _(
        "{model}'s classifier reads {own} ({mode} pooling), not the pyramid drawn here: no trained layer of this "
        "network reads this vector."
    ).format(model=model.name, own=own, mode=model.spp.mode)
