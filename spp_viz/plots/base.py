"""What every figure module shares: fast figure building, pixel-edge boxes, pictures embedded once."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from PIL import Image

COLORSCALE = "Viridis"
BIN_COLOURS = ("#ff4b4b", "#ffffff")  # neighbouring bins alternate, so overlapping edges stay readable
PALETTE = ("#ff4b4b", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#bcbd22")


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts, skipping plotly's per-property validation (most of a small figure's build time).

    Only for the figures redrawn on every interaction; their dicts are checked by the tests that render them.
    """
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def pixel_rect(box: tuple[float, float, float, float], colour: str, width: float = 2, dash: str = "solid") -> dict:
    """A plotly rectangle around whole cells or pixels: box (x0, y0, x1, y1) in edge coordinates, x1/y1 exclusive.

    Plotly centres cell i on the coordinate i, so its edges lie at i - 0.5 and i + 0.5.
    """
    x0, y0, x1, y1 = box
    return {
        "type": "rect",
        "x0": x0 - 0.5,
        "y0": y0 - 0.5,
        "x1": x1 - 0.5,
        "y1": y1 - 0.5,
        "line": {"color": colour, "width": width, "dash": dash},
    }


def outlines(
    boxes: Sequence[tuple[float, float, float, float]], colour: str, name: str, width: float = 2, dash: str = "solid"
) -> dict:
    """Rectangles as one line trace: boxes (x0, y0, x1, y1) in edge coordinates, x1/y1 exclusive, as ``pixel_rect``.

    Plotly draws every layout shape as an SVG element of its own and redraws them all on each relayout: a 64 x 64
    level's 4,096 bins took seconds in the browser. One trace is one path however many boxes it holds.
    """
    xs: list[float | None] = []
    ys: list[float | None] = []
    for x0, y0, x1, y1 in boxes:
        left, top, right, bottom = x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5
        xs += [left, right, right, left, left, None]  # None lifts the pen between boxes
        ys += [top, top, bottom, bottom, top, None]
    return {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "mode": "lines",
        "name": name,
        "line": {"color": colour, "width": width, "dash": dash},
        "hoverinfo": "skip",
        "showlegend": False,
    }


def outline_boxes(trace) -> list[tuple[float, float, float, float]]:
    """The boxes an ``outlines`` trace draws, back in edge coordinates (for tests and exports)."""
    xs, ys = list(trace["x"]), list(trace["y"])
    return [(xs[i] + 0.5, ys[i] + 0.5, xs[i + 1] + 0.5, ys[i + 2] + 0.5) for i in range(0, len(xs), 6)]


def checkered_outlines(boxes: Sequence[tuple[int, int, tuple[float, float, float, float]]], name: str) -> list[dict]:
    """Bins (row, col, box) outlined in ``BIN_COLOURS`` alternating like a checkerboard, two traces."""
    return [
        outlines([box for r, c, box in boxes if (r + c) % 2 == parity], BIN_COLOURS[parity], name) for parity in (0, 1)
    ]


def hover_points(xs: list[float], ys: list[float], text: list[str]) -> dict:
    """Invisible markers at the bins' centres: hovering a bin shows its text."""
    return {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "mode": "markers",
        "marker": {"size": 10, "opacity": 0},
        "hovertext": text,
        "hoverinfo": "text",
        "showlegend": False,
    }


@dataclass(frozen=True)
class EncodedImage:
    """A picture encoded once as a JPEG data URI, for figures that show it: far smaller than a pixel array."""

    uri: str
    width: int
    height: int


def encode_image(img: Image.Image, quality: int = 85) -> EncodedImage:
    """Encode a picture for ``level_on_image`` (do it once per redraw, not once per figure)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return EncodedImage("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), *img.size)


def image_layout(
    img: EncodedImage, shapes: list[dict], annotations: list[dict], height: int, title: str | None = None
) -> dict:
    """Layout of a figure showing a picture at its pixel size (pixel i centred on i), shapes drawn over it."""
    layout = {
        "shapes": shapes,
        "annotations": annotations,
        "xaxis": {"visible": False, "range": [-0.5, img.width - 0.5]},
        "yaxis": {"visible": False, "range": [img.height - 0.5, -0.5], "scaleanchor": "x"},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
    }
    if title:
        layout["title"] = {"text": title, "font": {"size": 13}}
    return layout
