"""Crop, warp or SPP: the paper's argument in one screen."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui
from spp_viz import i18n, paper
from spp_viz.explain.labels import LabelReader, labelled_items
from spp_viz.explain.view_summary import ViewsSummary, findings, table_rows
from spp_viz.explain.views import (
    MULTI_SCALES,
    Comparison,
    View,
    candidate_classes,
    predictions_csv,
    view_title,
)
from spp_viz.gallery import folder_items
from spp_viz.i18n import _, percent, pgettext
from spp_viz.models import SPPNet
from spp_viz.plots.maps import predictions_bar
from spp_viz.plots.views import sweep_figure, view_differences
from spp_viz.provenance import sentence as made_by

SWEEP_SIDES = tuple(range(128, 801, 64))


def describe(view: View) -> str:
    if view.name == "crop":
        return _("keeps {share} of the image; the shaded part never reaches the network").format(
            share=percent(view.kept_fraction)
        )
    if view.name == "warp":
        return _("keeps everything, but stretches width against height by {change}: squares bend").format(
            change=f"{view.aspect_change:.2f}"
        )
    return _("everything, shape kept: {w} x {h} pixels through SPP").format(w=view.image.width, h=view.image.height)


def views_panel(views: dict[str, View], pictures: dict[str, bytes], comp: Comparison) -> None:
    """The views side by side (their pictures drawn once per photo and size), each with its top-5, and whether they
    agree."""
    cols = st.columns(len(comp.top5))
    for col, name in zip(cols, comp.top5, strict=True):
        with col:
            st.markdown(f"**{view_title(name)}**")
            if name in views:
                st.image(pictures[name], caption=describe(views[name]))
            else:
                st.caption(
                    _(
                        "softmax averaged over full-image views at shorter sides {sides} (the paper's test scales; it "
                        "also averages 18 crops per scale, not done here)"
                    ).format(sides=", ".join(map(str, MULTI_SCALES)))
                )
            st.plotly_chart(predictions_bar(comp.top5[name]), width="stretch", key=f"top5-{name}")
    top1 = {name: comp.top5[name][0].name for name in comp.top5}
    if comp.agree:
        st.success(_("All views agree: **{name}**.").format(name=next(iter(top1.values()))))
    else:
        said = "; ".join(f"{view_title(v)}: {n}" for v, n in top1.items())
        st.warning(_("**The views disagree:** {said}.").format(said=said))


def sweep_panel(model: SPPNet, img, comp: Comparison) -> None:
    """Probability of one class against the input size, for the three views."""
    options = candidate_classes(comp)
    cls = st.selectbox(
        pgettext("a category of images", "Class"),
        options,
        format_func=lambda i: model.class_names[i],
        key=f"sweep_class-{ui.image_key()}",
    )
    sweep = ui.heavy.scale_sweep(cls, SWEEP_SIDES, start=False)  # kept from an earlier run, of any session
    if sweep is None:
        st.caption(
            _("{passes} forward passes, the largest at shorter side {side}.").format(
                passes=len(SWEEP_SIDES) * 3, side=SWEEP_SIDES[-1]
            )
        )
        if not st.button(_("Run the scale sweep"), key="sweep_run"):
            return
        sweep = ui.heavy.scale_sweep(cls, SWEEP_SIDES)
    st.plotly_chart(sweep_figure(SWEEP_SIDES, sweep, model.class_names[cls]), width="stretch")
    st.caption(
        _(
            "At shorter side s: the crop is the centre 224 x 224 of the image resized to s (so it sees less of the "
            "image as s grows), the warp squeezes the whole image to s x s, and SPP takes the whole image at s with "
            "its shape. Where a curve peaks is the scale this network prefers for this photo. The paper tests full "
            "images at shorter side 256, not at their native size: a network trained on 224 crops sees objects at "
            "about that scale (see the notes)."
        )
    )


def results_panel(result: ViewsSummary, where: str, key: str) -> None:
    """A views bench result: the table, the differences from the crop with their intervals, and what they say."""
    st.dataframe(pd.DataFrame(table_rows(result)), hide_index=True)
    st.plotly_chart(view_differences(result), width="stretch", key=f"{key}-diff")
    for line in findings(result, where):
        st.markdown("- " + line)
    st.download_button(
        _("Download these results (JSON)"),
        json.dumps(result.json(), indent=2),
        f"{key}.json",
        "application/json",
        key=f"{key}-download",
        on_click="ignore",
    )


def shipped_panel(model_name: str) -> None:
    """The runs over 500 ImageNet photos shipped with the app: the sidebar network's first (else the SPP-net's), then
    the two heads side by side."""
    shipped = ui.cache.shipped_views(model_name, i18n.language())
    if shipped is None:
        return
    first = shipped.first
    held = _("; each photo scored by a head distilled without it") if first.held_out else ""
    st.caption(
        _(
            "Shipped with the app: {model}, {n} ImageNet photos (one for each even class index, the public "
            "imagenet-sample-images set), shorter side {side}, {seconds} s on a 2-core CPU{held}. The paper's numbers "
            "(VOC 2007 and Caltech101, ZF-5 trained with SPP) are quoted above."
        ).format(model=first.model, n=first.n, side=first.short_side, seconds=f"{first.seconds:.0f}", held=held)
        + " "
        + made_by(first.provenance)
    )
    results_panel(first, _("ImageNet photos"), "view_accuracy")
    if shipped.four is not None and shipped.side:
        heads_panel(shipped)


def heads_panel(shipped: ui.cache.ShippedViews) -> None:
    """Lite0's one-level head and the distilled {6,3,2,1} head on the same photos."""
    four = shipped.four
    st.markdown(_("**The one-level head against the four-level head**, on the same {n} photos:").format(n=four.n))
    st.dataframe(pd.DataFrame(shipped.side), hide_index=True, width="stretch")
    for sentence in shipped.heads:
        st.markdown("- " + sentence)
    held = _(
        "Each photo here was scored by a head distilled without it (two heads, each trained on the other half), so "
        "these are held-out figures; the head the app loads was trained on all 500."
    )
    st.caption(
        _(
            "{model}: Lite0's conv layers with a {{6,3,2,1}} max pyramid and fully connected layers distilled from "
            "Lite0's own head on these 500 photos (see the model card in the docs)."
        ).format(model=four.model)
        + (" " + held if four.held_out else "")
        + " "
        + _(
            "Differences are paired by photo; a {percent} interval that spans zero is no clear difference. The paper's "
            "networks were trained on ImageNet with SPP from the start; ours learned only its head, from Lite0."
        ).format(percent="95%")
        + " "
        + made_by(four.provenance)
    )


def folder_panel(model: SPPNet, short_side: int, multi: bool) -> None:
    """The same measurement on the sidebar's gallery folder (where the teacher allows server paths)."""
    folder = ui.context().gallery_folder
    if not ui.server_paths():
        return
    st.markdown(_("**Your own photos.** The same measurement on the sidebar's gallery folder."))
    if not folder:
        st.info(_("Name a folder in the sidebar (Gallery folder) to measure the views on it."))
        return
    try:
        items = folder_items(folder)
    except ValueError as e:
        st.error(_("**The gallery folder cannot be used:** {why}").format(why=ui.md(e)))
        return
    keep, _labels, unlabeled = labelled_items(items, LabelReader.for_model(model))
    megabytes = sum(i.path.stat().st_size for i in items if i.path) / 1e6
    st.write(
        _(
            "{folder}: {files} image files ({mb} MB), {labelled} with a label read from the name (each runs {passes} "
            "forward passes)."
        ).format(
            folder=ui.md(folder),
            files=len(items),
            mb=f"{megabytes:.1f}",
            labelled=len(keep),
            passes=3 + (len(MULTI_SCALES) if multi else 0),
        )  # fmt: skip
    )
    if unlabeled:
        with st.expander(_("{count} file(s) without a readable label: left out").format(count=len(unlabeled))):
            st.write("\n".join(f"- **{ui.md(n)}**: {ui.md(why)}" for n, why in unlabeled[:200]))
    if not keep:
        st.warning(
            _(
                "No file here has a label: name files with a WordNet id (n01440764_1.JPEG), a class index and id "
                "(000_n01440764_tench.JPEG), or put them in folders named by class."
            )
        )
        return
    measure_folder(model, keep, (folder, short_side, multi))


def measure_folder(model: SPPNet, keep: list, run: tuple[str, int, bool]) -> None:
    """The views bench on the folder's labelled photos, once asked for (and again while the settings stay)."""
    _folder, short_side, multi = run
    clicked = st.button(_("Measure the views on this folder"), key="cw_folder_run")
    if clicked or st.session_state.get("cw_folder") == run:
        st.session_state["cw_folder"] = run
        result = ui.heavy.views_bench(model, keep, short_side, multi)
        if result.skipped:
            st.warning(_("{count} file(s) could not be read and were left out.").format(count=len(result.skipped)))
        if result.n:
            results_panel(result, _("of your photos"), "view_accuracy_folder")


def intro() -> None:
    st.title(_("Crop, warp or SPP"))
    st.markdown(
        _(
            "A network with fully connected layers needs a fixed input, so before SPP-net images were **cropped** "
            "(losing content) or **warped** (distorting shape) to 224 x 224. SPP-net takes **the whole image as it "
            "is**. The paper reports full images beating 224 crops (VOC 2007 classification mAP {voc_full} against "
            "{voc_crop}) and warped images (Caltech101: {caltech_full} against {caltech_warp}); see {notes}."
        ).format(
            voc_full=paper.VOC07_FULL,
            voc_crop=paper.VOC07_CROP,
            caltech_full=paper.CALTECH101_FULL,
            caltech_warp=paper.CALTECH101_WARP,
            notes=ui.NOTES,
        )  # fmt: skip
    )


def main() -> None:
    ui.start_page()
    intro()
    model = ui.current_model()
    img, _bytes = ui.current_image()
    a, b = st.columns(2)
    short_side = a.slider(
        _("Full image: shorter side"),
        128,
        640,
        256,
        32,
        key="cw_side",
        help=_("The paper's full-image view uses 256. The crop is taken from this size too."),
    )
    multi = b.checkbox(
        _("Also full images at the paper's {count} test scales, averaged").format(count=len(MULTI_SCALES)),
        key="cw_multi",
        help=_("The paper's multi-view test also adds 18 crops and flips per scale; this averages full images only."),
    )
    comp = ui.cached_comparison(short_side, multi)
    views, pictures = ui.cached_views_shown(short_side)
    views_panel(views, pictures, comp)
    st.download_button(
        _("Download the predictions (CSV)"), predictions_csv(comp), "predictions.csv", "text/csv", on_click="ignore"
    )
    st.subheader(_("Scale sweep"))
    sweep_panel(model, img, comp)
    st.subheader(_("Over many photos"))
    shipped_panel(model.name)
    folder_panel(model, short_side, multi)


main()
