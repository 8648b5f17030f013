"""Feature maps: conv5 channels tiled or large, an overlay on the photo, top-k bars, conv5 size against input size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from matplotlib import colormaps
from PIL import Image
from plotly.subplots import make_subplots

from ..i18n import _
from ..models import Prediction
from .base import COLORSCALE, figure


def channel_grid(
    conv5: np.ndarray, channels: Sequence[int], cols: int = 8, values: np.ndarray | None = None
) -> go.Figure:
    """Small maps of the given conv5 channels (conv5: [C, H5, W5]) tiled into one heatmap, titled by channel.

    One trace with a one-cell gap between tiles: an order of magnitude faster to build and draw than a subplot
    per channel, and one shared colour scale shows which channels are strong.
    """
    channels = [int(c) for c in channels]
    h, w = conv5.shape[1:]
    rows = max(1, math.ceil(len(channels) / cols))
    cols = min(cols, max(1, len(channels)))
    gap_y = max(1, round(h / 4))  # room for the next row's titles
    mosaic = np.full((rows * (h + gap_y) - gap_y, cols * (w + 1) - 1), np.nan, dtype=np.float32)
    # customdata per cell: (channel, x, y) of the conv5 cell under the pointer; -1 in the gaps.
    info = np.full((*mosaic.shape, 3), -1, dtype=np.int32)
    ys, xs = np.mgrid[0:h, 0:w]
    annotations = []
    for i, c in enumerate(channels):
        top, left = (i // cols) * (h + gap_y), (i % cols) * (w + 1)
        mosaic[top : top + h, left : left + w] = conv5[c]
        info[top : top + h, left : left + w] = np.stack([np.full_like(xs, c), xs, ys], axis=-1)
        label = f"#{c}" + (" " + _("max {value}").format(value=f"{values[c]:.2f}") if values is not None else "")
        annotations.append(
            {
                "x": left + (w - 1) / 2,
                "y": top - 0.5,
                "text": label,
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"size": 10},
            }
        )
    heatmap = {
        "type": "heatmap",
        "z": mosaic,
        "customdata": info,
        "colorscale": COLORSCALE,
        "hoverongaps": False,
        "hovertemplate": _("channel %{customdata[0]}<br>x %{customdata[1]}, y %{customdata[2]}<br>value %{z:.3f}")
        + "<extra></extra>",
    }
    layout = {
        "xaxis": {"visible": False, "constrain": "domain"},
        "yaxis": {"visible": False, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "annotations": annotations,
        "height": max(200, min(900, 110 * rows * max(1.0, h / w) + 60)),
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    }
    return figure([heatmap], layout)


def channel_heatmap(fmap: np.ndarray, title: str) -> go.Figure:
    """One conv5 channel large, with the value of every cell on hover."""
    heatmap = {
        "type": "heatmap",
        "z": fmap,
        "colorscale": COLORSCALE,
        "hovertemplate": _("x %{x}, y %{y}<br>value %{z:.3f}") + "<extra></extra>",
    }
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": "conv5 x"}, "constrain": "domain"},
        "yaxis": {"title": {"text": "conv5 y"}, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "height": 420,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return figure([heatmap], layout)


def overlay(img: Image.Image, fmap: np.ndarray, alpha: float = 0.5, cmap: str = "viridis") -> Image.Image:
    """Blend a conv5 map, stretched to the image size (bilinear) and coloured, over the image."""
    lo, hi = float(fmap.min()), float(fmap.max())
    norm = (fmap - lo) / (hi - lo) if hi > lo else np.zeros_like(fmap)
    small = Image.fromarray(norm.astype(np.float32), mode="F")
    stretched = np.asarray(small.resize(img.size, Image.Resampling.BILINEAR))
    colored = (colormaps[cmap](np.clip(stretched, 0, 1))[..., :3] * 255).astype(np.uint8)
    return Image.blend(img.convert("RGB"), Image.fromarray(colored), alpha)


def predictions_bar(preds: Sequence[Prediction], title: str = "") -> go.Figure:
    """Horizontal bars of top-k probabilities, best on top."""
    fig = go.Figure(
        go.Bar(
            x=[p.prob for p in preds][::-1],
            y=[p.name for p in preds][::-1],
            orientation="h",
            text=[f"{p.prob:.1%}" for p in preds][::-1],
            textposition="auto",
        )
    )
    fig.update_layout(title=title, xaxis={"range": [0, 1], "tickformat": ".0%"}, height=240, margin={"t": 40, "b": 10})
    return fig


def size_sweep(rows: Sequence[dict]) -> go.Figure:
    """conv5 height and width against the input's shorter side, with the (constant) SPP length on a second axis.

    Each row: {"short_side", "conv5_h", "conv5_w", "spp_length"}.
    """
    rows = sorted(rows, key=lambda r: r["short_side"])
    xs = [r["short_side"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=xs, y=[r["conv5_h"] for r in rows], name=_("conv5 height"), mode="lines+markers"))
    fig.add_trace(go.Scatter(x=xs, y=[r["conv5_w"] for r in rows], name=_("conv5 width"), mode="lines+markers"))
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[r["spp_length"] for r in rows],
            name=_("SPP output length"),
            mode="lines+markers",
            line={"dash": "dash"},
        ),
        secondary_y=True,
    )
    fig.update_xaxes(title=_("input shorter side (pixels)"))
    fig.update_yaxes(title=_("conv5 cells"), secondary_y=False)
    lengths = [r["spp_length"] for r in rows]
    fig.update_yaxes(title=_("SPP length"), secondary_y=True, range=[0, max(lengths) * 1.2 if lengths else 1])
    fig.update_layout(height=320, margin={"t": 30, "b": 10}, legend={"orientation": "h"})
    return fig
