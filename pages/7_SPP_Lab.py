"""The SPP Lab: train a small SPP-net (or a fixed-size baseline) and watch it learn."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from spp_viz import registry
from spp_viz.explain.level_views import PRESETS
from spp_viz.lab.data import CLASSES, ZIP_MAX_UNPACKED_MB, make_split
from spp_viz.lab.models import REGIMES, LabConfig
from spp_viz.lab.train import DATASETS, FINE_TUNE_SIDES, TEST_VIEWS, EpochLog
from spp_viz.plots.lab import training_curves
from spp_viz.pyramid import parse_levels
from spp_viz.weights import WeightsError

ZIP_MAX_MB = 100
REGIME_TITLES = {
    "crop": "no SPP, trained on crops",
    "warp": "no SPP, trained on warps",
    "single-size": "SPP, single-size",
    "multi-size": "SPP, multi-size (1 and 180/224, alternating)",
    "random-size": "SPP, random size each epoch",
}


def settings() -> tuple[str, LabConfig, tuple[str | dict, str]]:
    a, b = st.columns(2)
    dataset = a.radio(
        "Data",
        DATASETS,
        horizontal=True,
        key="lab_data",
        format_func={"synthetic": "built-in shapes", "folder": "your images (fine-tune)"}.get,
    )
    regimes = REGIMES if dataset == "synthetic" else tuple(FINE_TUNE_SIDES)
    regime = b.selectbox(
        "Regime", regimes, index=regimes.index("multi-size"), format_func=REGIME_TITLES.get, key=f"lab_regime-{dataset}"
    )
    c, d, e = st.columns(3)
    preset = c.selectbox(
        "Pyramid", [*PRESETS, "custom"], index=2, key="lab_preset", disabled=regime in ("crop", "warp")
    )
    levels = PRESETS.get(preset, (4, 2, 1))
    if preset == "custom":
        try:
            levels = parse_levels(c.text_input("Levels", "4,2,1", key="lab_custom"))
        except ValueError as err:
            st.error(f"**These levels cannot be used:** {err}")
            st.stop()
    epochs = d.slider("Epochs", 1, 40, 12, key="lab_epochs")
    train_count = e.select_slider(
        "Training images", [40, 200, 400, 800, 1600], 800, key="lab_count", disabled=dataset != "synthetic"
    )
    patience, fresh = training_options(dataset)
    source = folder_source() if dataset == "folder" else ("", "")
    config = LabConfig.sized(
        train_count, levels=levels, regime=regime, epochs=epochs, patience=patience, fresh_data=fresh
    )
    return dataset, config, source


def training_options(dataset: str) -> tuple[int, bool]:
    """Early stopping's patience and fresh data every epoch (the built-in shapes only)."""
    f, g = st.columns(2)
    patience = f.slider(
        "Patience (early stopping)", 0, 10, 4, key="lab_patience", disabled=dataset != "synthetic",
        help="Stop after this many passes over the data without a better validation accuracy, and keep the best "
        "pass's weights (0: never stop early, keep the last).",
    )  # fmt: skip
    fresh = g.checkbox(
        "New training images every epoch", True, key="lab_fresh", disabled=dataset != "synthetic",
        help="The shapes are generated: a new set each epoch, so the network cannot learn its images by heart.",
    )  # fmt: skip
    return patience, fresh


def folder_source() -> tuple[str | dict, str]:
    """Your images to fine-tune on: a .zip of class folders (in your session only) or, where the teacher allows it,
    a folder on the server. Returns (the source, its name); a message and a stop when nothing usable is given."""
    base = registry.title(registry.fine_tune_base(ui.context().model_name)[0])
    st.caption(f"Fine-tuned on the frozen conv layers of **{ui.md(base)}**: the sidebar's network (the default one "
               "when the sidebar holds a Lab or pyramid-head model).")  # fmt: skip
    archive = st.file_uploader(
        "Your images: a .zip with one folder per class",
        type=["zip"],
        key="lab_zip",
        max_upload_size=ZIP_MAX_MB,
        help=f"At most {ZIP_MAX_MB} MB, unpacking to at most {ZIP_MAX_UNPACKED_MB} MB; it is read in your session "
        "and never written to the server's disk.",
    )
    if archive is not None:
        try:
            classes, skipped = ui.cached_class_zip(archive.getvalue())
        except ValueError as err:
            st.error(f"**This archive cannot be used:** {ui.md(err)}")
            st.stop()
        st.caption(", ".join(f"{ui.md(name)}: {len(items)} files" for name, items in sorted(classes.items())))
        if skipped:
            with st.expander(f"{len(skipped)} file(s) skipped"):
                st.write("\n".join(f"- **{ui.md(name)}**: {ui.md(why)}" for name, why in skipped))
        return classes, archive.name
    if ui.server_paths():
        folder = st.text_input("or an image folder on this computer (one subfolder per class)", key="lab_folder")
        if folder.strip():
            return folder.strip(), folder.strip()
    st.info("Upload a .zip of your images, one folder per class, to fine-tune on them.")
    st.stop()


def run_training(dataset: str, config: LabConfig, source: tuple[str | dict, str]) -> None:
    chart = st.empty()

    def draw(history: list[EpochLog]) -> None:
        chart.plotly_chart(training_curves(history), width="stretch", key=f"live-{len(history)}")

    base, weights = registry.fine_tune_base(ui.context().model_name, ui.context().weights)
    try:
        ui.heavy.lab_training(
            dataset, config, source=source, base=base, base_weights=weights, lab_dir=ui.PRIVATE_LAB_DIR,
            on_update=draw
        )
    except (ValueError, WeightsError) as err:
        st.error(f"**Fine-tuning cannot run:** {err}")
    finally:
        chart.empty()  # the result panel draws the final curves: the live chart would show them a second time


def result_panel(run: ui.heavy.LabRun) -> None:
    history, kept, planned, path = run.history, run.best_epoch, run.epochs, Path(run.path)
    st.plotly_chart(training_curves(history, kept), width="stretch", key="lab-final")
    if kept:
        stop = f"stopped at epoch {len(history)} of {planned}" if len(history) < planned else "ran every epoch"
        st.caption(
            f"Early stopping kept epoch {kept} (validation accuracy {history[kept - 1].val_accuracy:.1%}, the best "
            f"of {len(history)}) and {stop}; the test accuracies below are that epoch's network's."
        )
    if run.test:
        cols = st.columns(len(TEST_VIEWS))
        for col, v in zip(cols, TEST_VIEWS, strict=True):
            col.metric(
                f"test accuracy, {v} view",
                "n/a" if run.test[v] is None else f"{run.test[v]:.1%}",
                help="a network without SPP cannot take the full image" if run.test[v] is None else None,
            )
    if run.unsaved is not None:
        st.error(
            f"**The server's disk is full: {ui.md(path.name)} could not be saved there** ({run.seconds:.1f} s of "
            "training kept). Download it now: it stays in your session only, and the sidebar cannot offer it."
        )
        st.download_button("Download the model (.safetensors)", run.unsaved, path.name, "application/octet-stream",
                           on_click="ignore", key="lab_unsaved")  # fmt: skip
        return
    saved_panel(run, path)


def saved_panel(run: ui.heavy.LabRun, path: Path) -> None:
    """Where the model went, who sees it in the sidebar, the teacher's share form, its download."""
    shared = path.parent == ui.LAB_DIR
    st.success(
        f"Saved as **{ui.md(path.name)}** ({run.seconds:.1f} s of training). Every page can now use it: pick "
        f"*Lab: {ui.md(path.stem)}* as the network in the sidebar. "
        + ("The teacher shared it: every student's sidebar lists it." if shared else
           "Only your session lists it (what a student trains stays theirs, and a zip's photos with it). The "
           "teacher can share it with the class.")
    )  # fmt: skip
    if not shared and path.exists():
        share_form(path)
    if path.exists():
        st.download_button(
            "Download the model (.safetensors)",
            path.read_bytes(),
            path.name,
            "application/octet-stream",
            on_click="ignore",
        )
    else:
        st.warning(f"{ui.md(path.name)} is no longer on this server, so it cannot be downloaded.")


def share_form(path) -> None:
    """The teacher shares a student's Lab model with the class (every sidebar then lists it)."""
    with st.expander("Share it with the class (the teacher's passphrase)"):
        key = st.text_input("Teacher's passphrase", type="password", key="lab_share_key")
        if st.button("Share", key="lab_share") and key:
            try:
                ui.heavy.share_lab_model(path, key, ui.LAB_DIR)
            except ValueError as e:
                st.error(f"**Not shared:** {ui.md(e)}.")
                return
            st.rerun()


def main() -> None:
    ui.start_page()
    st.title("SPP Lab: train your own")
    st.markdown(
        "Train a small SPP-net on shapes where a crop loses objects near the border and a warp changes the shapes "
        "that tell the classes apart (circle or ellipse? square or rectangle?), or fine-tune an SPP head on the frozen "
        "conv layers of a pretrained network on your own folder of images. The paper trains with two sizes (224 and "
        "180) sharing all parameters, switching every epoch (Sec. 2.3; see " + ui.NOTES + ")."
    )
    with st.expander("What the built-in images look like"):
        samples = make_split("train", 8, seed=0)
        st.image([s.image for s in samples], caption=[CLASSES[s.label] for s in samples])
    dataset, config, source = settings()
    if st.session_state.get("lab_stop"):
        st.info("Training stopped; nothing was saved. Press Train to start again.")
    if st.button("Train", type="primary", key="lab_train"):
        with ui.stop_button("Stop training", "lab_stop"):
            run_training(dataset, config, source)
    if (run := ui.heavy.last_lab_training()) is not None:  # this session's last run, from this click or before
        result_panel(run)


main()
