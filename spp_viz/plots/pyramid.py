"""The pyramid page: a level's bins over conv5 and over the image, the SPP vector as a strip, the training rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..explain.bag_of_words import MeanSE, ShuffleSummary
from ..explain.level_views import LevelView
from ..geometry import FeatureGeometry
from ..i18n import _, number
from ..pyramid import paper_window
from .base import (
    BIN_COLOURS,
    COLORSCALE,
    EncodedImage,
    checkered_outlines,
    figure,
    hover_points,
    image_layout,
    outlines,
)


def level_on_map(fmap: np.ndarray, view: LevelView, title: str, show_winners: bool = True) -> go.Figure:
    """One channel's conv5 map with an n x n level's bins drawn on it; hover a bin's centre for its pooled value.

    ``view`` is a ``levels.LevelView``. Cells are unit squares centred on integer (x, y).
    """
    bins, hx, hy, text = [], [], [], []
    for b in view.bins:
        (r0, r1), (c0, c1) = b.rows, b.cols
        bins.append((b.row, b.col, (c0, r0, c1, r1)))
        hx.append((c0 + c1 - 1) / 2)
        hy.append((r0 + r1 - 1) / 2)
        text.append(
            _("bin ({row}, {col}) of {n}x{n}<br>rows {r0}-{r1}, cols {c0}-{c1}<br>pooled: {value}").format(
                row=b.row,
                col=b.col,
                n=view.n,
                r0=r0,
                r1=r1 - 1,
                c0=c0,
                c1=c1 - 1,
                value=f"{view.values[b.row, b.col]:.3f}",
            )
        )
    data = [
        {
            "type": "heatmap",
            "z": fmap,
            "colorscale": COLORSCALE,
            "showscale": False,
            "hovertemplate": _("cell x %{x}, y %{y}<br>value %{z:.3f}") + "<extra></extra>",
        },
        *checkered_outlines(bins, "bins"),
        hover_points(hx, hy, text),
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
                "hovertemplate": _("winning cell x %{x}, y %{y}") + "<extra></extra>",
                "showlegend": False,
            }
        )
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "xaxis": {"constrain": "domain", "range": [-0.5, fmap.shape[1] - 0.5], "title": {"text": "conv5 x"}},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x", "constrain": "domain", "title": {"text": "conv5 y"}},
        "height": 330,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return figure(data, layout)


def level_on_image(
    img: EncodedImage, view: LevelView, title: str, region: str = "footprint", geom: FeatureGeometry | None = None
) -> go.Figure:
    """The image the network saw, with each bin's image region drawn and, given ``geom``, the winners' fields.

    region: "footprint" (the area of the bin's conv5 cells; the bins tile the image) or "field" (the union of their
    receptive fields: everything the bin's max could have looked at). Plotly centres pixel i on i, hence -0.5.
    """
    bins, hx, hy, text = [], [], [], []
    for b in view.bins:
        x0, y0, x1, y1 = b.footprint if region == "footprint" else b.field
        bins.append((b.row, b.col, (x0, y0, x1, y1)))
        hx.append((x0 + x1) / 2 - 0.5)
        hy.append((y0 + y1) / 2 - 0.5)
        text.append(
            _("bin ({row}, {col}) of {n}x{n}<br>pixels x {x0}-{x1}, y {y0}-{y1}<br>pooled: {value}").format(
                row=b.row,
                col=b.col,
                n=view.n,
                x0=f"{x0:.0f}",
                x1=f"{x1:.0f}",
                y0=f"{y0:.0f}",
                y1=f"{y1:.0f}",
                value=f"{view.values[b.row, b.col]:.3f}",
            )
        )
    data = [{"type": "image", "source": img.uri, "hoverinfo": "skip"}, *checkered_outlines(bins, "bins")]
    if geom is not None and view.winners is not None:
        fields = [geom.cell_box(int(r), int(c)) for r, c in view.winners.reshape(-1, 2)]
        data.append(outlines(fields, "#ffd500", _("winners' fields"), width=1.5, dash="dot"))
    data.append(hover_points(hx, hy, text))
    layout = image_layout(img, [], [], height=330, title=title)
    return figure(data, layout)


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
            "hovertemplate": _("position %{x}<br>value %{z:.3f}") + "<extra></extra>",
        }
    ]
    layout = {
        "shapes": shapes,
        "annotations": annotations,
        "xaxis": {
            "title": {"text": _("position in the SPP vector (0 to {last})").format(last=number(len(vector) - 1))}
        },
        "yaxis": {"visible": False, "range": [-0.5, 1.5]},
        "height": 200,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 40},
    }
    return figure(data, layout)


def rule_coverage(size: int, n: int) -> go.Figure:
    """The training rule on a size x size map: how many windows cover each cell (0: never pooled), windows drawn."""
    window, stride, count = paper_window(size, n)
    cover = np.zeros(size, dtype=int)
    starts = [i * stride for i in range(count)] if stride else []
    for s in starts:
        cover[s : s + window] += 1
    grid = np.minimum.outer(cover, cover)  # a cell is pooled in 2D when both its row and column are
    windows = [(i, j, (sx, sy, sx + window, sy + window)) for i, sy in enumerate(starts) for j, sx in enumerate(starts)]
    if not count:  # a map smaller than its bins: stride 0, no window at all; draw the cells so the grid shows
        return _no_window(size, n, window)
    verdict = _("{count} windows instead of {n}").format(count=count, n=n) if count != n else _("n windows")
    tail = size - ((count - 1) * stride + window) if count else size
    if count == n and tail:
        verdict += _(", last {tail} row(s)/column(s) never pooled").format(tail=tail)
    title = _("a = {size}, n = {n}: window ceil(a/n) = {window}, stride floor(a/n) = {stride} -> {verdict}").format(
        size=size, n=n, window=window, stride=stride, verdict=verdict
    )
    data = [
        {
            "type": "heatmap",
            "z": grid,
            "zmin": 0,
            "zmax": max(2, int(grid.max())),
            "colorscale": [[0, "#d62728"], [0.001, "#f4f4f4"], [1, "#1f77b4"]],
            "showscale": False,
            "hovertemplate": _("cell x %{x}, y %{y}<br>covered by %{z} window(s) per axis") + "<extra></extra>",
        },
        *checkered_outlines(windows, "windows"),
    ]
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "xaxis": {"constrain": "domain", "range": [-0.5, size - 0.5], "dtick": 1 if size <= 20 else 5},
        "yaxis": {"autorange": "reversed", "scaleanchor": "x", "constrain": "domain"},
        "height": 420,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return figure(data, layout)


def _no_window(size: int, n: int, window: int) -> go.Figure:
    """The training rule on a map smaller than its bins: every cell outlined and red, and why no window exists."""
    grid = np.zeros((size, size), dtype=int)
    cells = outlines([(x, y, x + 1, y + 1) for y in range(size) for x in range(size)], "#333", "cells", width=1)
    title = _("a = {size}, n = {n}: window ceil(a/n) = {window}, stride floor(a/n) = 0 -> no window exists").format(
        size=size, n=n, window=window
    )
    data = [{
        "type": "heatmap", "z": grid, "zmin": 0, "zmax": 1, "colorscale": [[0, "#d62728"], [1, "#d62728"]],
        "showscale": False, "hovertemplate": _("cell x %{x}, y %{y}<br>never pooled") + "<extra></extra>",
    }, cells]  # fmt: skip
    words = _("{size} x {size} cells, {n} x {n} bins asked:<br>a stride of 0 moves no window, so none is made").format(
        size=size, n=n
    )
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        "annotations": [
            {
                "x": (size - 1) / 2,
                "y": (size - 1) / 2,
                "text": words,
                "showarrow": False,
                "font": {"color": "white", "size": 14},
            }
        ],  # fmt: skip
        "xaxis": {"range": [-0.5, size - 0.5], "dtick": 1, "constrain": "domain"},
        "yaxis": {"range": [size - 0.5, -0.5], "dtick": 1, "scaleanchor": "x", "constrain": "domain"},
        "height": 420,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
    }
    return figure(data, layout)


def shuffle_levels(cosines: dict[int, float], k: int) -> go.Figure:
    """One photo's shuffle test: each pyramid level's cosine between the original and the shuffled picture."""
    levels = sorted(cosines)
    fig = go.Figure(
        go.Bar(
            x=[f"{n}x{n}" for n in levels],
            y=[cosines[n] for n in levels],
            text=[f"{cosines[n]:.2f}" for n in levels],
            hovertemplate=_("%{x} level: cosine %{y:.3f}") + "<extra></extra>",
            marker_color=BIN_COLOURS[0],
        )
    )
    fig.update_layout(
        xaxis={"title": _("pyramid level")},
        yaxis={"title": _("cosine, original vs {k}x{k} shuffled").format(k=k), "range": [0, 1.05]},
        height=300,
        margin={"t": 20, "b": 10},
    )
    return fig


def shuffle_curves(result: ShuffleSummary) -> go.Figure:
    """The shuffle test over a folder (its summary): each level's mean cosine against the number of
    tiles per side (whiskers: 2 standard errors), and how often the top-1 class survives."""
    from plotly.subplots import make_subplots

    ks = [r.k for r in result.rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("level vectors: mean cosine"), _("top-1 class unchanged")))

    def mean_trace(stats: list[MeanSE], name: str, hover: str, **style) -> go.Scatter:
        """One line over k: each point a mean, its whisker 2 standard errors."""
        return go.Scatter(
            x=ks,
            y=[s.mean for s in stats],
            error_y={"type": "data", "array": [2 * s.se for s in stats]},
            mode="lines+markers",
            name=name,
            hovertemplate=hover + "<extra></extra>",
            **style,
        )

    for n in result.levels:
        stats = [r.cosine[n] for r in result.rows]
        hover = _("{n}x{n} level, %{{x}}x%{{x}} tiles: mean cosine %{{y:.3f}}").format(n=n)
        fig.add_trace(mean_trace(stats, _("{n}x{n} level").format(n=n), hover), row=1, col=1)
    kept = [r.top1_unchanged for r in result.rows]
    hover = _("%{x}x%{x} tiles: top-1 unchanged in %{y:.0%}")
    fig.add_trace(mean_trace(kept, _("top-1 unchanged"), hover, line={"color": "#444"}), row=1, col=2)
    fig.update_xaxes(title=_("tiles per side (k)"), tickvals=ks)
    fig.update_yaxes(range=[0, 1.05])
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    # The legend below the axis titles, with room for both (at the default place it covered "tiles per side").
    fig.update_layout(
        height=380,
        margin={"t": 40, "b": 90},
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0},
    )
    return fig
