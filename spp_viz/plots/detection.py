"""Detection: boxes on the image, and the time each mode spends per stage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..detection import Detection
from .base import PALETTE, EncodedImage, figure, image_layout, pixel_rect


def detections_figure(
    img: EncodedImage, detections: Sequence[Detection], proposals: np.ndarray | None = None, max_proposals: int = 300
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
