"""Crop, warp or SPP: the paper's argument in one screen."""

from __future__ import annotations

import streamlit as st

import ui
from spp_viz.models import SPPNet
from spp_viz.plots.maps import predictions_bar
from spp_viz.plots.views import sweep_figure, view_picture
from spp_viz.views import (
    MULTI_SCALES,
    VIEW_TITLES,
    Comparison,
    View,
    candidate_classes,
    make_views,
    predictions_csv,
)

SWEEP_SIDES = tuple(range(128, 801, 64))


def describe(view: View) -> str:
    if view.name == "crop":
        return f"keeps {view.kept_fraction:.0%} of the image; the shaded part never reaches the network"
    if view.name == "warp":
        return f"keeps everything, but stretches width against height by {view.aspect_change:.2f}: squares bend"
    return f"everything, shape kept: {view.image.width} x {view.image.height} pixels through SPP"


def views_panel(img, views: dict[str, View], comp: Comparison) -> None:
    """The views side by side, each with its top-5, and whether they agree."""
    cols = st.columns(len(comp.top5))
    for col, name in zip(cols, comp.top5, strict=True):
        with col:
            st.markdown(f"**{VIEW_TITLES[name]}**")
            if name in views:
                st.image(view_picture(views[name], img), caption=describe(views[name]))
            else:
                st.caption(
                    f"softmax averaged over full-image views at shorter sides {', '.join(map(str, MULTI_SCALES))}"
                )
            st.plotly_chart(predictions_bar(comp.top5[name]), width="stretch", key=f"top5-{name}")
    top1 = {name: comp.top5[name][0].name for name in comp.top5}
    if comp.agree:
        st.success(f"All views agree: **{next(iter(top1.values()))}**.")
    else:
        st.warning("**The views disagree:** " + "; ".join(f"{VIEW_TITLES[v]}: {n}" for v, n in top1.items()) + ".")


def sweep_panel(model: SPPNet, img, comp: Comparison) -> None:
    """Probability of one class against the input size, for the three views."""
    options = candidate_classes(comp)
    cls = st.selectbox(
        "Class", options, format_func=lambda i: model.class_names[i], key=f"sweep_class-{ui.image_key()}"
    )
    key = ("sweep", ui.image_key(), cls)
    if key not in st.session_state:
        st.caption(f"{len(SWEEP_SIDES) * 3} forward passes, the largest at shorter side {SWEEP_SIDES[-1]}.")
        if not st.button("Run the scale sweep", key="sweep_run"):
            return
        st.session_state[key] = ui.heavy.scale_sweep(cls, SWEEP_SIDES)
    st.plotly_chart(sweep_figure(SWEEP_SIDES, st.session_state[key], model.class_names[cls]), width="stretch")
    st.caption(
        "At shorter side s: the crop is the centre 224 x 224 of the image resized to s (so it sees less of the "
        "image as s grows), the warp squeezes the whole image to s x s, and SPP takes the whole image at s with its "
        "shape. Where a curve peaks is the scale this network prefers for this photo. The paper tests full images at "
        "shorter side 256, not at their native size: a network trained on 224 crops sees objects at about that "
        "scale (see the notes)."
    )


def main() -> None:
    st.title("Crop, warp or SPP")
    st.markdown(
        "A network with fully connected layers needs a fixed input, so before SPP-net images were **cropped** (losing "
        "content) or **warped** (distorting shape) to 224 x 224. SPP-net takes **the whole image as it is**. The paper "
        "reports full images beating 224 crops (VOC 2007 classification mAP 78.39 against 76.45) and warped images "
        "(Caltech101: 91.44 against 89.91); see " + ui.NOTES + "."
    )
    model = ui.current_model()
    img, _ = ui.current_image()
    a, b = st.columns(2)
    short_side = a.slider(
        "Full image: shorter side",
        128,
        640,
        256,
        32,
        key="cw_side",
        help="The paper's full-image view uses 256. The crop is taken from this size too.",
    )
    multi = b.checkbox("Also the paper's multi-scale test (SPP at 5 sizes, averaged)", key="cw_multi")
    comp = ui.cached_comparison(short_side, multi)
    views = make_views(img, model.input_size, short_side)
    views_panel(img, views, comp)
    st.download_button(
        "Download the predictions (CSV)", predictions_csv(comp), "predictions.csv", "text/csv", on_click="ignore"
    )
    st.subheader("Scale sweep")
    sweep_panel(model, img, comp)


main()
