"""The paper's comparisons, reproduced at classroom scale on the built-in shapes."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui
from spp_viz import paper, verdicts
from spp_viz.i18n import _, translate
from spp_viz.lab.convergence import classroom_note, convergence_note
from spp_viz.lab.experiments import (
    EXPERIMENT_CONFIG,
    EXPERIMENT_EPOCHS,
    EXPERIMENT_SEEDS,
    ExperimentResults,
    accuracy_cell,
    paper_verdicts,
    shipped_caption,
)
from spp_viz.lab.models import LabConfig
from spp_viz.lab.train import TEST_VIEW_TITLES, TEST_VIEWS
from spp_viz.plots.lab import accuracy_bars, stopping_curves
from spp_viz.settings import ASSETS

SHIPPED = ASSETS / "lab_results.json"  # made by: python -m spp_viz lab-experiments --out <this file>


def train_seconds() -> str:
    """The table's training-time column, named in the reader's language."""
    return _("train s")


def table(results: ExperimentResults) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                _("configuration"): _(r.name),
                **{_(TEST_VIEW_TITLES[v]): accuracy_cell(r, v) for v in TEST_VIEWS},
                train_seconds(): r.seconds,
            }
            for r in results.rows
        ]
    )


def show(results: ExperimentResults, source: str) -> None:
    st.caption(source)
    left, right = st.columns([3, 2])
    with left:
        st.dataframe(table(results).style.format({train_seconds(): "{:.1f}"}), hide_index=True)
        st.caption(
            _(
                "Test accuracy, mean ± standard deviation over {seeds} seed(s) ({images} test images each); hover a "
                "bar for each seed's number."
            ).format(seeds=len(results.seeds), images=results.config["test_count"])
        )
        st.plotly_chart(accuracy_bars(results.rows), width="stretch")
        if any(r.val_curves for r in results.rows):
            st.plotly_chart(stopping_curves(results.rows), width="stretch")
            st.caption(
                _(
                    "Validation accuracy per epoch, seed {seed}, on the view each network trained for; a diamond where "
                    "training kept the network (early stopping's choice, or the last epoch)."
                ).format(seed=results.seeds[0])
            )
    with right:
        st.markdown(_("**The paper's numbers** (He et al.; see {notes})").format(notes=ui.NOTES))
        rows = [(translate(name), translate(value)) for name, value in paper.CLASSIFICATION_ROWS]
        st.dataframe(pd.DataFrame(rows, columns=[_("result"), _("value")]), hide_index=True)
    note = convergence_note(results)
    if note:
        (st.warning if note[1] else st.info)(note[0])
    st.markdown(
        _(
            "A verdict says **{matches}** only when the mean difference over seeds (each seed trains both networks on "
            "the same data) exceeds twice its standard error. The built-in data were made for the claims (each "
            "sentence says how); a real data set's gains are the paper's, quoted beside each."
        ).format(matches=_(verdicts.MATCHES))
    )
    for line in paper_verdicts(results):
        st.markdown("- " + line)


def main() -> None:
    ui.start_page()
    st.title(_("SPP Lab: the paper's comparisons"))
    st.markdown(
        _(
            "Five networks, the same data, the same number of epochs: no SPP fed by crops, no SPP fed by warps, SPP "
            "{4,2,1} trained at one size, SPP {4,2,1} and {6,3,2,1} trained at two sizes. Each is tested on "
            "crops, warps and full images (a network without SPP cannot take a full image)."
        )
    )
    shipped = ExperimentResults.from_json(json.loads(SHIPPED.read_text())) if SHIPPED.is_file() else None
    if shipped is not None:
        show(shipped, shipped_caption(shipped))
    st.subheader(_("Run it here"))
    a, b, c = st.columns(3)
    epochs = a.slider(_("Epochs per network"), 2, 24, EXPERIMENT_EPOCHS, key="exp_epochs")
    count = b.select_slider(_("Training images"), [40, 200, 400, 800], 800, key="exp_count")
    seeds = tuple(range(c.slider(_("Seeds"), 1, 5, len(EXPERIMENT_SEEDS), key="exp_seeds")))
    config = LabConfig.sized(count, epochs=epochs, fresh_data=EXPERIMENT_CONFIG.fresh_data)
    run = (config, seeds)
    if st.button(_("Run the comparison"), type="primary", key="exp_run") or st.session_state.get("exp_config") == run:
        st.session_state["exp_config"] = run
        results = ui.heavy.lab_comparison(config, seeds)
        said = _("Run here: {seconds} s of training, {networks} networks.")
        show(results, said.format(seconds=f"{results.seconds:.0f}", networks=len(seeds) * 5))
        if shipped is not None:
            st.info(classroom_note(results, shipped))


main()
