"""The SPP Lab: training curves, and the comparison's accuracy per view."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..explain.views import VIEWS
from ..i18n import _
from ..lab.experiments import ExperimentRow
from ..lab.train import TEST_VIEW_TITLES, EpochLog

COLOURS = qualitative.Plotly


def training_curves(history: Sequence[EpochLog], kept_epoch: int = 0) -> go.Figure:
    """Training loss and validation accuracy per epoch (``train.EpochLog`` list), live during training; a dotted
    line at ``kept_epoch``, the epoch whose weights early stopping kept (0: none)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = [h.epoch for h in history]
    fig.add_trace(go.Scatter(x=epochs, y=[h.loss for h in history], name=_("training loss"), mode="lines+markers"))
    fig.add_trace(
        go.Scatter(x=epochs, y=[h.val_accuracy for h in history], name=_("validation accuracy"), mode="lines+markers"),
        secondary_y=True,
    )
    fig.update_xaxes(title=_("epoch"))
    fig.update_yaxes(title=_("loss"), secondary_y=False)
    fig.update_yaxes(title=_("accuracy"), range=[0, 1], tickformat=".0%", secondary_y=True)
    if kept_epoch:
        kept = history[kept_epoch - 1].val_accuracy
        fig.add_vline(x=kept_epoch, line_dash="dot", line_color="green")
        text = _("kept: epoch {epoch}, {accuracy}").format(epoch=kept_epoch, accuracy=f"{kept:.1%}")
        fig.add_annotation(x=kept_epoch, y=kept, yref="y2", text=text, ay=30)
    fig.update_layout(height=320, margin={"t": 20, "b": 10}, legend={"orientation": "h"})
    return fig


def stopping_curves(rows: Sequence[ExperimentRow], seed_index: int = 0) -> go.Figure:
    """Each configuration's validation accuracy per epoch for one seed (on the view it trained for), a diamond at
    the epoch early stopping kept."""
    fig = go.Figure()
    for i, r in enumerate(rows):
        if len(r.val_curves) <= seed_index:
            continue
        curve, kept = r.val_curves[seed_index], r.kept_epochs[seed_index]
        colour = COLOURS[i % len(COLOURS)]  # the diamond in its curve's colour
        line = go.Scatter(x=list(range(1, len(curve) + 1)), y=curve, name=_(r.name), mode="lines", line_color=colour)
        fig.add_trace(line)
        fig.add_trace(
            go.Scatter(
                x=[kept], y=[curve[kept - 1]], mode="markers",
                marker={"symbol": "diamond", "size": 11, "color": colour},
                showlegend=False, hovertemplate=_("{name}: kept epoch {epoch}, {accuracy}").format(
                    name=_(r.name), epoch=kept, accuracy="%{y:.1%}") + "<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        xaxis={"title": _("epoch")},
        yaxis={"title": _("validation accuracy"), "tickformat": ".0%"},
        height=380,
        margin={"t": 20, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
    )
    return fig


def accuracy_bars(rows: Sequence[ExperimentRow]) -> go.Figure:
    """Test accuracy per view for each configuration of the Lab's comparison (its rows): the
    mean over seeds, the standard deviation as an error bar, each seed's number on hover."""
    fig = go.Figure()
    for v in VIEWS:
        means = [r.test[v] for r in rows]
        stds = [r.std.get(v) for r in rows]
        seeds = [r.per_seed.get(v) for r in rows]
        hover = [
            "n/a"
            if m is None
            else "<br>".join(
                _("seed {seed}: {accuracy}").format(seed=i, accuracy=f"{x:.1%}") for i, x in enumerate(s or [m])
            )
            for m, s in zip(means, seeds, strict=True)
        ]
        fig.add_trace(
            go.Bar(
                # "SPP {4,2,1}<br>single-size": two short lines stay level where one long name was slanted.
                x=[r.name.replace(" ", "<br>", 1) if r.name.startswith("SPP") else _(r.name) for r in rows],
                y=means,
                name=_(TEST_VIEW_TITLES[v]),
                text=[None if m is None else f"{m:.0%}" for m in means],
                # Upright, at the foot of each bar (clear of the whiskers); Plotly had turned them sideways to fit.
                textposition="inside",
                insidetextanchor="start",
                textangle=0,
                textfont={"size": 10, "color": "white"},
                error_y={"type": "data", "array": [s or 0 for s in stds], "visible": any(s for s in stds)},
                customdata=hover,
                hovertemplate=_("{configuration}, {view}: mean {accuracy}").format(
                    configuration="%{x}", view=_(TEST_VIEW_TITLES[v]), accuracy="%{y:.1%}"
                )
                + "<br>%{customdata}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": _("test accuracy"), "range": [0, 1], "tickformat": ".0%"},
        xaxis={"tickangle": 0},
        uniformtext={"minsize": 8, "mode": "hide"},  # a label that cannot fit upright is left to the hover
        height=420,
        # The legend above the plot: below it, it sat on the configurations' names.
        margin={"t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
    )
    return fig
