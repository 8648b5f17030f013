"""The paper's three views drawn for a student: what a crop throws away, how a warp bends, the scale sweep."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from PIL import Image, ImageDraw

from ..explain.attribution import LevelShare
from ..explain.level_importance import LevelSummary
from ..explain.view_summary import ViewsSummary
from ..explain.views import VIEWS, View, make_views, view_title
from ..i18n import _, font


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
    labels = [
        _("crop: the grey part is lost"),
        _("warp: the squares are squashed"),
        _("SPP: the whole image, as it is"),
    ]
    canvas = Image.new("RGB", (panel * 3 + 40, panel + 30), "white")
    draw = ImageDraw.Draw(canvas)
    label_font = font(13)  # with Hangul: the labels are in the reader's language
    for i, (p, label) in enumerate(zip(panels, labels, strict=True)):
        p = p.copy()
        p.thumbnail((panel, panel))
        x = 10 + i * (panel + 10)
        canvas.paste(p, (x + (panel - p.width) // 2, (panel - p.height) // 2))
        draw.text((x + 4, panel + 6), label, fill=(20, 20, 20), font=label_font)
    return canvas


def sweep_figure(sides: Sequence[int], sweep: dict[str, list[float]], class_name: str) -> go.Figure:
    """Probability of one class against the input's shorter side, one line per view."""
    fig = go.Figure()
    for name, probs in sweep.items():
        fig.add_trace(go.Scatter(x=list(sides), y=probs, mode="lines+markers", name=view_title(name)))
    fig.update_layout(
        title=_("p({name}) against input size").format(name=class_name),
        xaxis_title=_("input shorter side (pixels)"),
        yaxis={"title": _("probability"), "range": [0, 1], "tickformat": ".0%"},
        height=360,
        margin={"t": 40, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


def level_shares_bar(shares: Sequence[LevelShare]) -> go.Figure:
    """How much each pyramid level carried the decision (``attribution.LevelShare`` list)."""
    fig = go.Figure(
        go.Bar(
            x=[f"{s.level}x{s.level}" for s in shares],
            y=[s.drop for s in shares],
            text=[f"{s.share:.0%}" for s in shares],
            textposition="auto",
            hovertemplate=_("level %{x}<br>logit drop when zeroed: %{y:.3f}") + "<extra></extra>",
        )
    )
    fig.update_layout(
        title=_("Target logit lost when one level is zeroed"),
        xaxis_title=_("pyramid level"),
        yaxis_title=_("logit drop"),
        height=300,
        margin={"t": 40, "b": 10},
    )
    return fig


def level_means_bar(summary: LevelSummary) -> go.Figure:
    """Each level's mean share of the top class's logit drop over a folder (whiskers: 2 standard errors), with
    the number of photos whose top-1 changes without it (``level_importance.LevelSummary``)."""
    rows = summary.rows
    fig = go.Figure(
        go.Bar(
            x=[f"{r.level}x{r.level}" for r in rows],
            y=[100 * r.share.mean for r in rows],
            error_y={"type": "data", "array": [200 * r.share.se for r in rows]},
            text=[_("top-1 changes on {changed} of {n}").format(changed=r.changed, n=summary.n) for r in rows],
            textposition="outside",
            hovertemplate=_("level %{x}<br>mean share %{y:.1f}%") + "<extra></extra>",
        )
    )
    fig.update_layout(
        title=_("Share of the top class's logit drop, mean over {n} photos").format(n=summary.n),
        xaxis_title=_("pyramid level zeroed"),
        yaxis_title=_("share (%)"),
        yaxis_range=[0, 115],
        height=320,
        margin={"t": 40, "b": 10},
    )
    return fig


def view_differences(result: ViewsSummary) -> go.Figure:
    """Each view's accuracy minus the centre crop's on the same photos, with its 95% bootstrap interval (a views
    bench's summary): a bar whose whisker crosses zero is no clear difference."""
    fig = go.Figure()
    views = list(result.against_crop)
    for key, label in (("top1", "top-1"), ("top5", "top-5")):
        ds = [result.against_crop[v][key] for v in views]
        fig.add_trace(
            go.Bar(
                x=[view_title(v) for v in views],
                y=[100 * d.diff for d in ds],
                name=label,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [100 * (d.high - d.diff) for d in ds],
                    "arrayminus": [100 * (d.diff - d.low) for d in ds],
                },
                customdata=[[100 * d.low, 100 * d.high, d.mcnemar_p] for d in ds],
                hovertemplate=_(
                    "%{{x}}, {label}: %{{y:+.1f}} points vs crop<br>{percent} interval %{{customdata[0]:+.1f}} to "
                    "%{{customdata[1]:+.1f}}<br>McNemar p = %{{customdata[2]:.2g}}"
                ).format(label=label, percent="95%")
                + "<extra></extra>",
            )
        )
    fig.add_hline(y=0, line_color="#888")
    fig.update_layout(
        barmode="group",
        yaxis={"title": _("accuracy minus the crop's (points)")},
        height=320,
        margin={"t": 20, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


def poll_figure(poll: dict[str, int], happened: dict[str, int], words: Mapping[str, str], came_true: str) -> go.Figure:
    """The class's poll beside what happened: per answer, the students who gave it and the photos for which it came
    true (``came_true`` names that bar: "right (top-1, of 5 labelled)", "first changed here (of 6)")."""
    choices = list(poll)
    names = [words.get(c, c) for c in choices]
    fig = go.Figure(
        [
            go.Bar(name=_("voted for it"), x=names, y=[poll[c] for c in choices]),
            go.Bar(name=came_true, x=names, y=[happened.get(c, 0) for c in choices]),
        ]
    )
    fig.update_layout(barmode="group", height=280, margin={"t": 30, "b": 10}, yaxis={"title": _("photos")},
                      title=_("The poll against what happened"))  # fmt: skip
    return fig
