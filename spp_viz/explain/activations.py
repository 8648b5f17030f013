"""Strongest conv5 activations: peaks on one image, and what the gallery index shows of a channel (ties, the image
bytes, the receptive-field patches of its top responses: the paper's Figure 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..gallery import gallery_view
from ..geometry import FeatureGeometry, feature_geometry
from ..i18n import _
from ..images import ImageError
from ..models import SPPNet
from .activation_index import ActivationIndex


def peaks(fmap: np.ndarray, count: int = 3, radius: int = 1) -> list[tuple[int, int, float]]:
    """The ``count`` strongest local maxima of fmap: [H5, W5] as (row, col, value), strongest first.

    A cell is taken only if no stronger taken cell lies within ``radius`` cells (greedy non-maximum suppression),
    so the arrows point at different parts rather than at one blob. Cells at or below zero are never peaks.
    """
    order = np.argsort(fmap, axis=None)[::-1]
    taken: list[tuple[int, int, float]] = []
    for flat in order:
        r, c = divmod(int(flat), fmap.shape[1])
        v = float(fmap[r, c])
        if v <= 0 or len(taken) == count:
            break
        if all(max(abs(r - tr), abs(c - tc)) > radius for tr, tc, _value in taken):
            taken.append((r, c, v))
    return taken


def tied_channels(index: ActivationIndex, decimals: int = 3) -> int:
    """How many channels have two equal values (to ``decimals`` places) among their stored top-k: ties make the
    shown patches an arbitrary pick (ReLU6's clipped maps tie at 6.0 almost everywhere)."""
    tied = 0
    for c in range(index.channels):
        values = np.round(index.values[c][index.image[c] >= 0], decimals)
        tied += len(np.unique(values)) < len(values)
    return tied


def image_bytes_of(index: ActivationIndex, i: int, extra: dict[str, bytes] | None = None) -> bytes | None:
    """The bytes of indexed image i: from its path, or from ``extra`` (hash -> bytes) for uploads."""
    if extra and index.hashes[i] in extra:
        return extra[index.hashes[i]]
    if index.paths[i]:
        try:
            return Path(index.paths[i]).read_bytes()
        except OSError:
            return None
    return None


PATCH_KINDS = ("field", "context")


def default_patch_kind(geom: FeatureGeometry) -> str:
    """ "field" when a conv5 cell's receptive field fits in the input, else "context" (it would be the whole image)."""
    return "field" if max(geom.x.rf, geom.y.rf) <= max(geom.input_hw) else "context"


def patch_box(geom: FeatureGeometry, y: int, x: int, kind: str = "field") -> tuple[float, float, float, float]:
    """The image box of conv5 cell (y, x): its receptive field ("field") or 3 strides around it ("context")."""
    if kind == "field":
        return geom.cell_box(y, x)
    if kind == "context":
        return geom.cell_context(y, x)
    raise ValueError(f"unknown patch kind {kind!r}: use one of {PATCH_KINDS}")


def top_patches(
    index: ActivationIndex, channel: int, model: SPPNet, extra: dict[str, bytes] | None = None, kind: str = "field"
) -> list[tuple[Image.Image, str]]:
    """The channel's top-k positive responses as (patch, caption), strongest first; the paper's Figure 2, right.

    ``extra`` maps image hashes to bytes for images indexed from uploads (they have no path). An image that can
    no longer be read gives a grey patch that says so. Zero responses (a ReLU's "nothing here") are left out.
    """
    out = []
    geoms: dict[tuple[int, int], FeatureGeometry] = {}
    for rank, (i, y, x, v) in enumerate(index.entries(channel), 1):
        if v <= 0:
            break
        caption = f"#{rank} {v:.2f}\n{Path(index.names[i]).name}"
        data = image_bytes_of(index, i, extra)
        try:
            view = gallery_view(data, index.names[i], index.short_side) if data is not None else None
        except ImageError:
            view = None
        if view is None:
            out.append((Image.new("RGB", (64, 64), (200, 200, 200)), caption + " " + _("(gone)")))
            continue
        hw = tuple(index.input_hw[i])
        if hw not in geoms:  # not setdefault: it would compute the geometry on every call
            geoms[hw] = feature_geometry(model, hw)
        geom = geoms[hw]
        x0, y0, x1, y1 = patch_box(geom, y, x, kind)
        out.append((view.crop((round(x0), round(y0), round(x1), round(y1))), caption))
    return out
