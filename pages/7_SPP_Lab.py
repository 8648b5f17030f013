"""The SPP Lab: train a small SPP-net (or a fixed-size baseline) and watch it learn."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from spp_viz import registry
from spp_viz.explain.level_views import PRESETS
from spp_viz.i18n import N_, _, ngettext
from spp_viz.lab.data import CLASSES, ZIP_MAX_UNPACKED_MB, make_split
from spp_viz.lab.models import REGIMES, LabConfig
from spp_viz.lab.train import DATASETS, FINE_TUNE_SIDES, TEST_VIEW_TITLES, TEST_VIEWS, EpochLog
from spp_viz.plots.lab import training_curves
from spp_viz.pyramid import parse_levels
from spp_viz.weights import WeightsError

ZIP_MAX_MB = 100
REGIME_TITLES = {
    "crop": N_("no SPP, trained on crops"),
    "warp": N_("no SPP, trained on warps"),
    "single-size": N_("SPP, single-size"),
    "multi-size": N_("SPP, multi-size (1 and 180/224, alternating)"),
    "random-size": N_("SPP, random size each epoch"),
}


def settings() -> tuple[str, LabConfig, tuple[str | dict, str]]:
    a, b = st.columns(2)
    dataset = a.radio(
        _("Data"),
        DATASETS,
        horizontal=True,
        key="lab_data",
        format_func={"synthetic": _("built-in shapes"), "folder": _("your images (fine-tune)")}.get,
    )
    regimes = REGIMES if dataset == "synthetic" else tuple(FINE_TUNE_SIDES)
    regime = b.selectbox(
        _("Regime"), regimes, index=regimes.index("multi-size"),
        format_func={k: _(v) for k, v in REGIME_TITLES.items()}.get, key=f"lab_regime-{dataset}",
    )  # fmt: skip
    c, d, e = st.columns(3)
    preset = c.selectbox(
        _("Pyramid"), [*PRESETS, "custom"], index=2, key="lab_preset", disabled=regime in ("crop", "warp"),
        format_func={**{k: _(k) for k in PRESETS}, "custom": _("custom")}.get,
    )  # fmt: skip
    levels = PRESETS.get(preset, (4, 2, 1))
    if preset == "custom":
        try:
            levels = parse_levels(c.text_input(_("Levels"), "4,2,1", key="lab_custom"))
        except ValueError as err:
            st.error(_("**These levels cannot be used:** {why}").format(why=ui.md(err)))
            st.stop()
    epochs = d.slider(_("Epochs"), 1, 40, 12, key="lab_epochs")
    train_count = e.select_slider(
        _("Training images"), [40, 200, 400, 800, 1600], 800, key="lab_count", disabled=dataset != "synthetic"
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
        _("Patience (early stopping)"), 0, 10, 4, key="lab_patience", disabled=dataset != "synthetic",
        help=_("Stop after this many passes over the data without a better validation accuracy, and keep the best "
               "pass's weights (0: never stop early, keep the last)."),
    )  # fmt: skip
    fresh = g.checkbox(
        _("New training images every epoch"), True, key="lab_fresh", disabled=dataset != "synthetic",
        help=_("The shapes are generated: a new set each epoch, so the network cannot learn its images by heart."),
    )  # fmt: skip
    return patience, fresh


def folder_source() -> tuple[str | dict, str]:
    """Your images to fine-tune on: a .zip of class folders (in your session only) or, where the teacher allows it,
    a folder on the server. Returns (the source, its name); a message and a stop when nothing usable is given."""
    base = registry.title(registry.fine_tune_base(ui.context().model_name)[0])
    st.caption(_("Fine-tuned on the frozen conv layers of **{model}**: the sidebar's network (the default one "
                 "when the sidebar holds a Lab or pyramid-head model).").format(model=ui.md(base)))  # fmt: skip
    archive = st.file_uploader(
        _("Your images: a .zip with one folder per class"),
        type=["zip"],
        key="lab_zip",
        max_upload_size=ZIP_MAX_MB,
        help=_(
            "At most {mb} MB, unpacking to at most {unpacked} MB; it is read in your session and never written to "
            "the server's disk."
        ).format(mb=ZIP_MAX_MB, unpacked=ZIP_MAX_UNPACKED_MB),
    )
    if archive is not None:
        try:
            classes, skipped = ui.cached_class_zip(archive.getvalue())
        except ValueError as err:
            st.error(_("**This archive cannot be used:** {why}").format(why=ui.md(err)))
            st.stop()
        files = [ngettext("{name}: {n} file", "{name}: {n} files", len(items)).format(name=ui.md(name), n=len(items))
                 for name, items in sorted(classes.items())]  # fmt: skip
        st.caption(", ".join(files))
        if skipped:
            with st.expander(ngettext("{n} file skipped", "{n} files skipped", len(skipped)).format(n=len(skipped))):
                st.write("\n".join(f"- **{ui.md(name)}**: {ui.md(why)}" for name, why in skipped))
        return classes, archive.name
    if ui.server_paths():
        folder = st.text_input(_("or an image folder on this computer (one subfolder per class)"), key="lab_folder")
        if folder.strip():
            return folder.strip(), folder.strip()
    st.info(_("Upload a .zip of your images, one folder per class, to fine-tune on them."))
    st.stop()


def run_training(dataset: str, config: LabConfig, source: tuple[str | dict, str]) -> None:
    chart = st.empty()

    def draw(history: list[EpochLog]) -> None:
        chart.plotly_chart(training_curves(history), width="stretch", key=f"live-{len(history)}")

    base, weights = registry.fine_tune_base(ui.context().model_name, ui.context().weights)
    try:
        ui.heavy.lab_training(
            dataset, config, source=source, base=base, base_weights=weights, lab_dir=ui.PRIVATE_LAB_DIR, on_update=draw
        )
    except (ValueError, WeightsError) as err:
        st.error(_("**Fine-tuning cannot run:** {why}").format(why=ui.md(err)))
    finally:
        chart.empty()  # the result panel draws the final curves: the live chart would show them a second time


def result_panel(run: ui.heavy.LabRun) -> None:
    history, kept, planned, path = run.history, run.best_epoch, run.epochs, Path(run.path)
    st.plotly_chart(training_curves(history, kept), width="stretch", key="lab-final")
    if kept:
        if len(history) < planned:
            stop = _("stopped at epoch {epoch} of {planned}").format(epoch=len(history), planned=planned)
        else:
            stop = _("ran every epoch")
        st.caption(
            _(
                "Early stopping kept epoch {kept} (validation accuracy {accuracy}, the best of {epochs}) and {stop}; "
                "the test accuracies below are that epoch's network's."
            ).format(kept=kept, accuracy=f"{history[kept - 1].val_accuracy:.1%}", epochs=len(history), stop=stop)
        )
    if run.test:
        cols = st.columns(len(TEST_VIEWS))
        for col, v in zip(cols, TEST_VIEWS, strict=True):
            col.metric(
                _("test accuracy, {view}").format(view=_(TEST_VIEW_TITLES[v])),
                "n/a" if run.test[v] is None else f"{run.test[v]:.1%}",
                help=_("a network without SPP cannot take the full image") if run.test[v] is None else None,
            )
    if run.unsaved is not None:
        st.error(
            _(
                "**The server's disk is full: {file} could not be saved there** ({seconds} s of training kept). "
                "Download it now: it stays in your session only, and the sidebar cannot offer it."
            ).format(file=ui.md(path.name), seconds=f"{run.seconds:.1f}")
        )
        st.download_button(_("Download the model (.safetensors)"), run.unsaved, path.name, "application/octet-stream",
                           on_click="ignore", key="lab_unsaved")  # fmt: skip
        return
    saved_panel(run, path)


def saved_panel(run: ui.heavy.LabRun, path: Path) -> None:
    """Where the model went, who sees it in the sidebar, the teacher's share form, its download."""
    shared = path.parent == ui.LAB_DIR
    who = (_("The teacher shared it: every student's sidebar lists it.") if shared else
           _("Only your session lists it (what a student trains stays theirs, and a zip's photos with it). The "
             "teacher can share it with the class."))  # fmt: skip
    st.success(
        _(
            "Saved as **{file}** ({seconds} s of training). Every page can now use it: pick *Lab: {name}* as the "
            "network in the sidebar. {who}"
        ).format(file=ui.md(path.name), seconds=f"{run.seconds:.1f}", name=ui.md(path.stem), who=who)
    )
    if not shared and path.exists():
        share_form(path)
    if path.exists():
        st.download_button(
            _("Download the model (.safetensors)"),
            path.read_bytes(),
            path.name,
            "application/octet-stream",
            on_click="ignore",
        )
    else:
        st.warning(_("{file} is no longer on this server, so it cannot be downloaded.").format(file=ui.md(path.name)))


def share_form(path) -> None:
    """The teacher shares a student's Lab model with the class (every sidebar then lists it)."""
    with st.expander(_("Share it with the class (the teacher's passphrase)")):
        key = st.text_input(_("Teacher's passphrase"), type="password", key="lab_share_key")
        if st.button(_("Share"), key="lab_share") and key:
            try:
                ui.heavy.share_lab_model(path, key, ui.LAB_DIR)
            except ValueError as e:
                st.error(_("**Not shared:** {why}.").format(why=ui.md(e)))
                return
            st.rerun()


def main() -> None:
    ui.start_page()
    st.title(_("SPP Lab: train your own"))
    st.markdown(
        _(
            "Train a small SPP-net on shapes where a crop loses objects near the border and a warp changes the shapes "
            "that tell the classes apart (circle or ellipse? square or rectangle?), or fine-tune an SPP head on the "
            "frozen conv layers of a pretrained network on your own folder of images. The paper trains with two sizes "
            "(224 and 180) sharing all parameters, switching every epoch (Sec. 2.3; see {notes})."
        ).format(notes=ui.NOTES)
    )
    with st.expander(_("What the built-in images look like")):
        samples = make_split("train", 8, seed=0)
        st.image([s.image for s in samples], caption=[_(CLASSES[s.label]) for s in samples])
    dataset, config, source = settings()
    if st.session_state.get("lab_stop"):
        st.info(_("Training stopped; nothing was saved. Press Train to start again."))
    if st.button(_("Train"), type="primary", key="lab_train"):
        with ui.stop_button(_("Stop training"), "lab_stop"):
            run_training(dataset, config, source)
    if (run := ui.heavy.last_lab_training()) is not None:  # this session's last run, from this click or before
        result_panel(run)


main()
