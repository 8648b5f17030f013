"""Strongest activations (the paper's Figure 2): peaks on a channel, their fields on the image, the top patches."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from ..i18n import _, font
from .base import COLORSCALE, EncodedImage, figure, image_layout, pixel_rect


def peaks_on_map(fmap: np.ndarray, peaks: Sequence[tuple[int, int, float]], title: str) -> go.Figure:
    """A conv5 channel with arrows at its strongest responses (the paper's Figure 2, left)."""
    arrows = [
        {
            "x": c,
            "y": r,
            "ax": 28,
            "ay": -28,
            "text": f"{k + 1}",
            "showarrow": True,
            "arrowhead": 2,
            "arrowwidth": 2,
            "arrowcolor": "#ff4b4b",
            "font": {"color": "#ff4b4b", "size": 12},
        }
        for k, (r, c, _value) in enumerate(peaks)
    ]
    data = [
        {
            "type": "heatmap",
            "z": fmap,
            "colorscale": COLORSCALE,
            "showscale": False,
            "hovertemplate": _("x %{x}, y %{y}<br>value %{z:.3f}") + "<extra></extra>",
        }
    ]
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "annotations": arrows,
        "xaxis": {"constrain": "domain", "range": [-0.5, fmap.shape[1] - 0.5]},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "height": 260,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return figure(data, layout)


def boxes_on_image(img: EncodedImage, boxes: Sequence[tuple[float, float, float, float]], title: str) -> go.Figure:
    """The image with numbered boxes (e.g. receptive fields of the peaks), in pixel-edge coordinates."""
    shapes = [pixel_rect((x0, y0, x1, y1), "#ff4b4b") for x0, y0, x1, y1 in boxes]
    labels = [
        {
            "x": x0 - 0.5,
            "y": y0 - 0.5,
            "text": f"{k + 1}",
            "showarrow": False,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"color": "white", "size": 12},
            "bgcolor": "#ff4b4b",
        }
        for k, (x0, y0, _x1, _y1) in enumerate(boxes)
    ]
    data = [{"type": "image", "source": img.uri, "hoverinfo": "skip"}]
    layout = image_layout(img, shapes, labels, height=260, title=title)
    return figure(data, layout)


def patch_grid(patches: Sequence[tuple[Image.Image, str]], cols: int = 3, side: int = 150) -> Image.Image:
    """Patches in a grid (3 x 3 for the top 9), each scaled to fit ``side`` pixels, captioned underneath."""
    rows = max(1, math.ceil(len(patches) / cols))
    cap = 30
    canvas = Image.new("RGB", (cols * (side + 8) + 8, rows * (side + cap + 8) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    label_font = font(11)  # a file's name may be in any script: Hangul drawn too
    for k, (patch, caption) in enumerate(patches):
        p = patch.convert("RGB")
        scale = side / max(p.size)  # large fields shrink, small ones grow so they can be seen
        p = p.resize((max(1, round(p.width * scale)), max(1, round(p.height * scale))), Image.Resampling.LANCZOS)
        x = 8 + (k % cols) * (side + 8)
        y = 8 + (k // cols) * (side + cap + 8)
        canvas.paste(p, (x + (side - p.width) // 2, y + (side - p.height) // 2))
        for i, line in enumerate(caption.split("\n")[:2]):
            draw.text((x + 2, y + side + 2 + 13 * i), line[:28], fill=(30, 30, 30), font=label_font)
    return canvas
