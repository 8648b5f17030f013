"""Detection: boxes on the image, and the time each mode spends per stage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..detection.classify import WindowLabel
from ..detection.detector import Detections
from ..i18n import _
from .base import PALETTE, EncodedImage, figure, image_layout, pixel_rect


def detections_figure(
    img: EncodedImage, detections: Sequence[WindowLabel], proposals: np.ndarray | None = None, max_proposals: int = 300
) -> go.Figure:
    """The image with labelled detection boxes (one colour per class) and, optionally, the proposals faintly."""
    shapes, labels = [], []
    if proposals is not None:
        for x0, y0, x1, y1 in proposals[:max_proposals]:
            shapes.append(pixel_rect((x0, y0, x1, y1), "rgba(255,255,255,0.35)", width=1))
    colours: dict[int, str] = {}
    for d in detections:
        colour = colours.setdefault(d.label, PALETTE[len(colours) % len(PALETTE)])
        x0, y0, x1, y1 = d.box
        shapes.append(pixel_rect((x0, y0, x1, y1), colour, width=3))
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
    layout = image_layout(img, shapes, labels, height=520)
    return figure([{"type": "image", "source": img.uri, "hoverinfo": "skip"}], layout)


def timing_figure(stages: dict[str, dict[str, float]]) -> go.Figure:
    """Seconds per stage for each mode ({mode: {stage: seconds}}), side by side on a log axis: they differ 100-fold."""
    fig = go.Figure()
    for stage in ("proposals", "warp", "conv", "head"):
        label = {"head": _("pooling + classifier"), "warp": _("warp / resize"), "proposals": _("proposals")}.get(
            stage, stage
        )
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
        xaxis={"title": _("seconds (log scale)"), "type": "log"},
        height=300,
        margin={"t": 10, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


CORRECT, MISSED = "#2ca02c", "#d4a900"  # green: a detection that found an object; dark yellow: an object not found


def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> go.Figure:
    """Precision against recall, one line per mode ({mode: (recall, precision, AP)}), detections by falling score."""
    fig = go.Figure()
    for k, (name, (recall, precision, ap)) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([[0.0], recall]),
                y=np.concatenate([[1.0], precision]),
                mode="lines",
                line={"shape": "hv", "color": PALETTE[k % len(PALETTE)]},
                name=f"{name} (AP {ap:.1%})",
                hovertemplate=_("recall %{x:.2f}, precision %{y:.2f}") + "<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        xaxis={"title": _("recall"), "range": [0, 1.02]},
        yaxis={"title": _("precision"), "range": [0, 1.02]},
        height=330,
        margin={"t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def marked_figure(
    img: EncodedImage,
    shown: Detections,
    ground_truth: np.ndarray,
    missed: np.ndarray,
    classes: Sequence[str],
) -> go.Figure:
    """A test image: ground truth dashed, detections labelled with class and score (correct ones green, false
    positives red with an x), and the objects no detection found marked "missed" (yellow)."""
    shapes, labels = [], []

    def label(x: float, y: float, text: str, colour: str) -> None:
        labels.append(
            {"x": x - 0.5, "y": y - 0.5, "text": text, "showarrow": False, "xanchor": "left", "yanchor": "bottom",
             "bgcolor": colour, "font": {"color": "white", "size": 11}}
        )  # fmt: skip

    for box in ground_truth:
        shapes.append(pixel_rect(tuple(box), "white", width=2, dash="dash"))
    for box in missed:
        shapes.append(pixel_rect(tuple(box), MISSED, width=3, dash="dash"))
        label(box[0], box[3] + 14, _("missed"), MISSED)
    for c, box, score, correct in zip(shown.labels, shown.boxes, shown.scores, shown.correct, strict=True):
        colour = CORRECT if correct else PALETTE[0]
        shapes.append(pixel_rect(tuple(box), colour, width=3))
        label(box[0], box[1], f"{classes[c]} {score:+.2f}" + ("" if correct else " x " + _("false")), colour)
    return figure([{"type": "image", "source": img.uri, "hoverinfo": "skip"}], image_layout(img, shapes, labels, 420))
