"""Figure builders: plotly figures and PIL pictures, with no Streamlit in sight."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from matplotlib import colormaps
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

from .compare import VIEW_TITLES, VIEWS, View, make_views
from .features import Prediction
from .pyramid import paper_window

COLORSCALE = "Viridis"


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts, skipping plotly's per-property validation (most of a small figure's build time).

    Only for the figures redrawn on every interaction; their dicts are checked by the tests that render them.
    """
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def channel_grid(
    conv5: np.ndarray, channels: Sequence[int], cols: int = 8, values: np.ndarray | None = None
) -> go.Figure:
    """Small maps of the given conv5 channels (conv5: [C, H5, W5]) tiled into one heatmap, titled by channel.

    One trace with a one-cell gap between tiles: an order of magnitude faster to build and draw than a subplot
    per channel, and one shared colour scale shows which channels are strong.
    """
    channels = [int(c) for c in channels]
    _, h, w = conv5.shape
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
        label = f"#{c}" + (f" max {values[c]:.2f}" if values is not None else "")
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
        "hovertemplate": "channel %{customdata[0]}<br>x %{customdata[1]}, y %{customdata[2]}"
        "<br>value %{z:.3f}<extra></extra>",
    }
    layout = {
        "xaxis": {"visible": False, "constrain": "domain"},
        "yaxis": {"visible": False, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "annotations": annotations,
        "height": max(200, min(900, 110 * rows * max(1.0, h / w) + 60)),
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    }
    return _figure([heatmap], layout)


def channel_heatmap(fmap: np.ndarray, title: str) -> go.Figure:
    """One conv5 channel large, with the value of every cell on hover."""
    heatmap = {
        "type": "heatmap",
        "z": fmap,
        "colorscale": COLORSCALE,
        "hovertemplate": "x %{x}, y %{y}<br>value %{z:.3f}<extra></extra>",
    }
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": "conv5 x"}, "constrain": "domain"},
        "yaxis": {"title": {"text": "conv5 y"}, "autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "height": 420,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return _figure([heatmap], layout)


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
    fig.add_trace(go.Scatter(x=xs, y=[r["conv5_h"] for r in rows], name="conv5 height", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=xs, y=[r["conv5_w"] for r in rows], name="conv5 width", mode="lines+markers"))
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[r["spp_length"] for r in rows],
            name="SPP output length",
            mode="lines+markers",
            line={"dash": "dash"},
        ),
        secondary_y=True,
    )
    fig.update_xaxes(title="input shorter side (pixels)")
    fig.update_yaxes(title="conv5 cells", secondary_y=False)
    lengths = [r["spp_length"] for r in rows]
    fig.update_yaxes(title="SPP length", secondary_y=True, range=[0, max(lengths) * 1.2 if lengths else 1])
    fig.update_layout(height=320, margin={"t": 30, "b": 10}, legend={"orientation": "h"})
    return fig


def shade_outside(img: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The picture with everything outside ``box`` darkened and the box outlined: what a crop throws away."""
    base = img.convert("RGB")
    x0, y0, x1, y1 = (round(v) for v in box)
    shaded = Image.blend(base, Image.new("RGB", base.size, (40, 40, 40)), 0.65)
    shaded.paste(base.crop((x0, y0, x1, y1)), (x0, y0))
    width = max(2, round(max(base.size) / 150))
    ImageDraw.Draw(shaded).rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 60, 60), width=width)
    return shaded


def bent_grid(img: Image.Image, size: tuple[int, int], cells: int = 6) -> Image.Image:
    """Square grid drawn on the original, then resized with it: a warp turns the squares into rectangles."""
    base = img.convert("RGB").copy()
    draw = ImageDraw.Draw(base)
    step = min(base.size) / cells
    width = max(1, round(min(base.size) / 200))
    for k in range(1, math.ceil(max(base.size) / step)):
        draw.line([(k * step, 0), (k * step, base.height)], fill=(255, 255, 255), width=width)
        draw.line([(0, k * step), (base.width, k * step)], fill=(255, 255, 255), width=width)
    return base.resize(size, Image.Resampling.BILINEAR)


def view_picture(view: View, original: Image.Image) -> Image.Image:
    """How to show a view to a student: the crop's cut-away shaded, the warp's bent grid, the full image as is."""
    if view.name == "crop":
        return shade_outside(original, view.kept)
    if view.name == "warp":
        return bent_grid(original, view.image.size)
    return view.image


def crop_warp_spp(img: Image.Image, size: int = 224, short_side: int = 256, panel: int = 260) -> Image.Image:
    """Three panels, for the Home page: the centre crop (cut-away part shaded), the warp, and the full image."""
    views = make_views(img, size, short_side)
    panels = [view_picture(views[name], img) for name in VIEWS]
    labels = ["crop: the grey part is lost", "warp: the squares are squashed", "SPP: the whole image, as it is"]
    canvas = Image.new("RGB", (panel * 3 + 40, panel + 30), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (p, label) in enumerate(zip(panels, labels, strict=True)):
        p = p.copy()
        p.thumbnail((panel, panel))
        x = 10 + i * (panel + 10)
        canvas.paste(p, (x + (panel - p.width) // 2, (panel - p.height) // 2))
        draw.text((x + 4, panel + 8), label, fill=(20, 20, 20))
    return canvas


def sweep_figure(sides: Sequence[int], sweep: dict[str, list[float]], class_name: str) -> go.Figure:
    """Probability of one class against the input's shorter side, one line per view."""
    fig = go.Figure()
    for name, probs in sweep.items():
        fig.add_trace(go.Scatter(x=list(sides), y=probs, mode="lines+markers", name=VIEW_TITLES[name]))
    fig.update_layout(
        title=f"p({class_name}) against input size",
        xaxis_title="input shorter side (pixels)",
        yaxis={"title": "probability", "range": [0, 1], "tickformat": ".0%"},
        height=360,
        margin={"t": 40, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


def level_shares_bar(shares) -> go.Figure:
    """How much each pyramid level carried the decision (``attribution.LevelShare`` list)."""
    fig = go.Figure(
        go.Bar(
            x=[f"{s.level}x{s.level}" for s in shares],
            y=[s.drop for s in shares],
            text=[f"{s.share:.0%}" for s in shares],
            textposition="auto",
            hovertemplate="level %{x}<br>logit drop when zeroed: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Target logit lost when one level is zeroed",
        xaxis_title="pyramid level",
        yaxis_title="logit drop",
        height=300,
        margin={"t": 40, "b": 10},
    )
    return fig


def png_bytes(img: Image.Image) -> bytes:
    """PNG encoding of a picture, for download buttons."""
    buf = io.BytesIO()
    # Pages encode on every run: level 1 is 5x faster than the default 6 on a 1024-pixel photo, for 17% more bytes.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    """.npy encoding of an array, for download buttons."""
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


# ----------------------------------------------------------------------------- pyramid page

_BIN_COLOURS = ("#ff4b4b", "#ffffff")  # neighbouring bins alternate, so overlapping edges stay readable


def _rect(x0: float, y0: float, x1: float, y1: float, colour: str, width: float = 2, dash: str = "solid") -> dict:
    return {
        "type": "rect",
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "line": {"color": colour, "width": width, "dash": dash},
    }


def _hover_points(xs: list[float], ys: list[float], text: list[str]) -> dict:
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


def level_on_map(fmap: np.ndarray, view, title: str, show_winners: bool = True) -> go.Figure:
    """One channel's conv5 map with an n x n level's bins drawn on it; hover a bin's centre for its pooled value.

    ``view`` is a ``levels.LevelView``. Cells are unit squares centred on integer (x, y).
    """
    shapes, hx, hy, text = [], [], [], []
    for b in view.bins:
        (r0, r1), (c0, c1) = b.rows, b.cols
        shapes.append(_rect(c0 - 0.5, r0 - 0.5, c1 - 0.5, r1 - 0.5, _BIN_COLOURS[(b.row + b.col) % 2]))
        hx.append((c0 + c1 - 1) / 2)
        hy.append((r0 + r1 - 1) / 2)
        text.append(
            f"bin ({b.row}, {b.col}) of {view.n}x{view.n}<br>rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}"
            f"<br>pooled: {view.values[b.row, b.col]:.3f}"
        )
    data = [
        {
            "type": "heatmap",
            "z": fmap,
            "colorscale": COLORSCALE,
            "showscale": False,
            "hovertemplate": "cell x %{x}, y %{y}<br>value %{z:.3f}<extra></extra>",
        },
        _hover_points(hx, hy, text),
    ]
    if show_winners and view.winners is not None:
        win = view.winners.reshape(-1, 2)
        data.append(
            {
                "type": "scatter",
                "x": win[:, 1],
                "y": win[:, 0],
                "mode": "markers",
                "name": "winner",
                "marker": {"symbol": "x", "size": 11, "color": "#ff4b4b", "line": {"width": 2, "color": "white"}},
                "hovertemplate": "winning cell x %{x}, y %{y}<extra></extra>",
                "showlegend": False,
            }
        )
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "shapes": shapes,
        "xaxis": {"constrain": "domain", "range": [-0.5, fmap.shape[1] - 0.5], "title": {"text": "conv5 x"}},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x", "constrain": "domain", "title": {"text": "conv5 y"}},
        "height": 330,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return _figure(data, layout)


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


def _image_layout(
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


def level_on_image(img: EncodedImage, view, title: str, region: str = "footprint", geom=None) -> go.Figure:
    """The image the network saw, with each bin's image region drawn and, given ``geom``, the winners' fields.

    region: "footprint" (the area of the bin's conv5 cells; the bins tile the image) or "field" (the union of their
    receptive fields: everything the bin's max could have looked at). Plotly centres pixel i on i, hence -0.5.
    """
    shapes, hx, hy, text = [], [], [], []
    for b in view.bins:
        x0, y0, x1, y1 = b.footprint if region == "footprint" else b.field
        shapes.append(_rect(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, _BIN_COLOURS[(b.row + b.col) % 2]))
        hx.append((x0 + x1) / 2 - 0.5)
        hy.append((y0 + y1) / 2 - 0.5)
        text.append(
            f"bin ({b.row}, {b.col}) of {view.n}x{view.n}<br>pixels x {x0:.0f}-{x1:.0f}, "
            f"y {y0:.0f}-{y1:.0f}<br>pooled: {view.values[b.row, b.col]:.3f}"
        )
    if geom is not None and view.winners is not None:
        for r, c in view.winners.reshape(-1, 2):
            x0, y0, x1, y1 = geom.cell_box(int(r), int(c))
            shapes.append(_rect(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, "#ffd500", width=1.5, dash="dot"))
    data = [
        {"type": "image", "source": img.uri, "hoverinfo": "skip"},
        _hover_points(hx, hy, text),
    ]
    layout = _image_layout(img, shapes, [], height=330, title=title)
    return _figure(data, layout)


def vector_strip(vector: np.ndarray, levels: Sequence[int], channels: int) -> go.Figure:
    """The SPP vector as one strip, its levels marked: level n holds channels x n x n numbers."""
    shapes, annotations, pos = [], [], 0
    for i, n in enumerate(levels):
        length = channels * n * n
        # Short labels on three staggered rows: the coarse levels are narrow next to the finest one.
        annotations.append(
            {
                "x": pos + length / 2,
                "y": 0.55 + 0.3 * (i % 3),
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"{n}x{n}",
                "font": {"size": 11},
            }
        )
        if pos:
            shapes.append(
                {
                    "type": "line",
                    "x0": pos - 0.5,
                    "x1": pos - 0.5,
                    "y0": -0.5,
                    "y1": 0.5,
                    "line": {"color": "#ff4b4b", "width": 2},
                }
            )
        pos += length
    data = [
        {
            "type": "heatmap",
            "z": vector[None, :],
            "colorscale": COLORSCALE,
            "showscale": True,
            "hovertemplate": "position %{x}<br>value %{z:.3f}<extra></extra>",
        }
    ]
    layout = {
        "shapes": shapes,
        "annotations": annotations,
        "xaxis": {"title": {"text": f"position in the SPP vector (0 to {len(vector) - 1:,})"}},
        "yaxis": {"visible": False, "range": [-0.5, 1.5]},
        "height": 200,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 40},
    }
    return _figure(data, layout)


def rule_coverage(size: int, n: int) -> go.Figure:
    """The training rule on a size x size map: how many windows cover each cell (0: never pooled), windows drawn."""
    window, stride, count = paper_window(size, n)
    cover = np.zeros(size, dtype=int)
    starts = [i * stride for i in range(count)] if stride else []
    for s in starts:
        cover[s : s + window] += 1
    grid = np.minimum.outer(cover, cover)  # a cell is pooled in 2D when both its row and column are
    shapes = []
    for i, sy in enumerate(starts):
        for j, sx in enumerate(starts):
            shapes.append(_rect(sx - 0.5, sy - 0.5, sx + window - 0.5, sy + window - 0.5, _BIN_COLOURS[(i + j) % 2]))
    verdict = f"{count} windows instead of {n}" if count != n else "n windows"
    tail = size - ((count - 1) * stride + window) if count else size
    if count == n and tail:
        verdict += f", last {tail} row(s)/column(s) never pooled"
    title = f"a = {size}, n = {n}: window ceil(a/n) = {window}, stride floor(a/n) = {stride} -> {verdict}"
    data = [
        {
            "type": "heatmap",
            "z": grid,
            "zmin": 0,
            "zmax": max(2, int(grid.max())),
            "colorscale": [[0, "#d62728"], [0.001, "#f4f4f4"], [1, "#1f77b4"]],
            "showscale": False,
            "hovertemplate": "cell x %{x}, y %{y}<br>covered by %{z} window(s) per axis<extra></extra>",
        }
    ]
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "shapes": shapes,
        "xaxis": {"constrain": "domain", "range": [-0.5, size - 0.5], "dtick": 1 if size <= 20 else 5},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "height": 420,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return _figure(data, layout)


# ----------------------------------------------------------------------------- strongest activations


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
        for k, (r, c, _) in enumerate(peaks)
    ]
    data = [
        {
            "type": "heatmap",
            "z": fmap,
            "colorscale": COLORSCALE,
            "showscale": False,
            "hovertemplate": "x %{x}, y %{y}<br>value %{z:.3f}<extra></extra>",
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
    return _figure(data, layout)


def boxes_on_image(img: EncodedImage, boxes: Sequence[tuple[float, float, float, float]], title: str) -> go.Figure:
    """The image with numbered boxes (e.g. receptive fields of the peaks), in pixel-edge coordinates."""
    shapes = [_rect(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, "#ff4b4b") for x0, y0, x1, y1 in boxes]
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
        for k, (x0, y0, _, _) in enumerate(boxes)
    ]
    data = [{"type": "image", "source": img.uri, "hoverinfo": "skip"}]
    layout = _image_layout(img, shapes, labels, height=260, title=title)
    return _figure(data, layout)


def patch_grid(patches: Sequence[tuple[Image.Image, str]], cols: int = 3, side: int = 150) -> Image.Image:
    """Patches in a grid (3 x 3 for the top 9), each scaled to fit ``side`` pixels, captioned underneath."""
    rows = max(1, math.ceil(len(patches) / cols))
    cap = 30
    canvas = Image.new("RGB", (cols * (side + 8) + 8, rows * (side + cap + 8) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (patch, caption) in enumerate(patches):
        p = patch.convert("RGB")
        scale = side / max(p.size)  # large fields shrink, small ones grow so they can be seen
        p = p.resize((max(1, round(p.width * scale)), max(1, round(p.height * scale))), Image.Resampling.LANCZOS)
        x = 8 + (k % cols) * (side + 8)
        y = 8 + (k // cols) * (side + cap + 8)
        canvas.paste(p, (x + (side - p.width) // 2, y + (side - p.height) // 2))
        for i, line in enumerate(caption.split("\n")[:2]):
            draw.text((x + 2, y + side + 2 + 13 * i), line[:28], fill=(30, 30, 30))
    return canvas


# ----------------------------------------------------------------------------- detection

_PALETTE = ("#ff4b4b", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#bcbd22")


def detections_figure(
    img: EncodedImage, detections, proposals: np.ndarray | None = None, max_proposals: int = 300
) -> go.Figure:
    """The image with labelled detection boxes (one colour per class) and, optionally, the proposals faintly."""
    shapes, labels = [], []
    if proposals is not None:
        for x0, y0, x1, y1 in proposals[:max_proposals]:
            shapes.append(
                {
                    "type": "rect",
                    "x0": x0 - 0.5,
                    "y0": y0 - 0.5,
                    "x1": x1 - 0.5,
                    "y1": y1 - 0.5,
                    "line": {"color": "rgba(255,255,255,0.35)", "width": 1},
                }
            )
    colours: dict[int, str] = {}
    for d in detections:
        colour = colours.setdefault(d.label, _PALETTE[len(colours) % len(_PALETTE)])
        x0, y0, x1, y1 = d.box
        shapes.append(_rect(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5, colour, width=3))
        labels.append(
            {
                "x": x0 - 0.5,
                "y": y0 - 0.5,
                "text": f"{d.name} {d.score:.0%}",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "bgcolor": colour,
                "font": {"color": "white", "size": 11},
            }
        )
    layout = _image_layout(img, shapes, labels, height=520)
    return _figure([{"type": "image", "source": img.uri, "hoverinfo": "skip"}], layout)


def timing_figure(stages: dict[str, dict[str, float]]) -> go.Figure:
    """Seconds per stage for each mode ({mode: {stage: seconds}}), side by side on a log axis: they differ 100-fold."""
    fig = go.Figure()
    for stage in ("proposals", "warp", "conv", "head"):
        label = {"head": "pooling + classifier", "warp": "warp / resize"}.get(stage, stage)
        fig.add_trace(
            go.Bar(
                y=list(stages),
                x=[stages[m].get(stage, 0.0) for m in stages],
                name=label,
                orientation="h",
                hovertemplate=f"{label}: %{{x:.3f}} s<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        xaxis={"title": "seconds (log scale)", "type": "log"},
        height=300,
        margin={"t": 10, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


# ----------------------------------------------------------------------------- the Lab


def training_curves(history) -> go.Figure:
    """Training loss and validation accuracy per epoch (``train.EpochLog`` list), live during training."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = [h.epoch for h in history]
    fig.add_trace(go.Scatter(x=epochs, y=[h.loss for h in history], name="training loss", mode="lines+markers"))
    fig.add_trace(
        go.Scatter(x=epochs, y=[h.val_accuracy for h in history], name="validation accuracy", mode="lines+markers"),
        secondary_y=True,
    )
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss", secondary_y=False)
    fig.update_yaxes(title="accuracy", range=[0, 1], tickformat=".0%", secondary_y=True)
    fig.update_layout(height=320, margin={"t": 20, "b": 10}, legend={"orientation": "h"})
    return fig


def accuracy_bars(rows: Sequence[dict]) -> go.Figure:
    """Test accuracy per view for each configuration of the Lab's comparison (rows of ``run_experiments``)."""
    fig = go.Figure()
    for v in VIEWS:
        fig.add_trace(
            go.Bar(
                x=[r["name"] for r in rows],
                y=[r["test"][v] for r in rows],
                name=f"{v} view",
                text=[None if r["test"][v] is None else f"{r['test'][v]:.0%}" for r in rows],
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "test accuracy", "range": [0, 1], "tickformat": ".0%"},
        height=380,
        margin={"t": 20, "b": 10},
        legend={"orientation": "h"},
    )
    return fig
