"""Attributions: what each view's prediction rests on (Captum), and how much each pyramid level carried it."""

from __future__ import annotations

import streamlit as st

import ui
from spp_viz.explain import shipped
from spp_viz.explain.attribution import METHOD_TITLES, METHODS, NT_SAMPLES, estimate_views_seconds
from spp_viz.explain.views import VIEWS, candidate_classes, view_title
from spp_viz.i18n import _
from spp_viz.images import to_tensor
from spp_viz.models import SPPNet
from spp_viz.plots.exports import png_bytes
from spp_viz.plots.maps import overlay
from spp_viz.plots.views import level_means_bar, level_shares_bar
from spp_viz.provenance import sentence as made_by

SLOW_SECONDS = 5.0  # ask before running anything estimated to take longer
# Made by: python -m spp_viz bench levels ../shared/imagenet-sample --model efficientnet_lite0_spp --held-out FOLDS


def method_panel(
    model: SPPNet, views, method: str, target: int, noise_tunnel: bool, short_side: int, timing: dict
) -> None:
    """One method's heatmaps on the three views, side by side, with their cost."""
    # A result kept from an earlier run (of any session) shows at once; GradCAM is always computed (it is light).
    results = ui.heavy.attributions(method, target, noise_tunnel, short_side, start=False)
    if results is None:
        # Estimated once per image, method and target (a timed forward pass, shared by the methods of this run).
        biggest = to_tensor(views["full"].image)
        estimate = estimate_views_seconds(method, model, biggest, noise_tunnel, len(views), timing)
        if estimate > SLOW_SECONDS:
            st.warning(
                _("**{method} is slow here:** about {seconds} s for the three views.").format(
                    method=METHOD_TITLES[method], seconds=f"{estimate:.0f}"
                )
            )
            if not st.button(_("Run {method}").format(method=METHOD_TITLES[method]), key=f"run-{method}"):
                return
        results = ui.heavy.attributions(method, target, noise_tunnel, short_side)
    cols = st.columns(len(VIEWS))
    for col, name in zip(cols, VIEWS, strict=True):
        with col:
            res = results[name]
            picture = overlay(views[name].image, res.heatmap, alpha=0.55, cmap="inferno")
            st.image(
                picture,
                caption=_("{view}: {seconds} s, {passes} passes").format(
                    view=view_title(name), seconds=f"{res.seconds:.2f}", passes=res.passes
                ),
            )
            st.download_button(
                "PNG",
                png_bytes(picture),
                f"{method}_{name}.png",
                "image/png",
                key=f"dl-{method}-{name}",
                on_click="ignore",
            )


def levels_panel(model: SPPNet, short_side: int, target: int) -> None:
    """How much each pyramid level carried the decision (models whose classifier reads several levels)."""
    if len(model.spp.levels) < 2:
        st.info(
            _(
                "{model}'s classifier reads one pyramid level ({n}x{n}, {mode}), so there is nothing to split. Pick "
                "the SPP-net entry (Lite0's conv layers with a distilled {{6,3,2,1}} head) to see how a pretrained "
                "network's evidence splits over the levels."
            ).format(model=model.name, n=model.spp.levels[0], mode=model.spp.mode)
        )
        return
    shares = ui.cached_level_shares(short_side, target)
    st.plotly_chart(level_shares_bar(shares), width="stretch")
    st.caption(
        _(
            "Captum FeatureAblation over the SPP vector, one group per level: how much the target's logit falls when "
            "that level's numbers are set to zero. Fine levels keep where things are, the 1x1 level only what: the "
            "Pyramid page's bag-of-words test measures that."
        )
    )
    summary = shipped.load("levels", model.name)
    if summary is not None:
        st.plotly_chart(level_means_bar(summary), width="stretch")
        held = _("; each photo scored by a head distilled without it") if summary.held_out else ""
        st.caption(
            _(
                "The same ablation on {n} ImageNet photos (full image, shorter side {side}{held}). Whiskers: 2 "
                "standard errors. Zeroing the 6x6 level also removes the head's start (Lite0's own fc reads the mean "
                "of the 6x6 bins), so its share is large by construction; the coarser levels enter only through the "
                "learned correction."
            ).format(n=summary.n, side=summary.short_side, held=held)
            + " "
            + made_by(summary.provenance)
        )
        st.download_button(
            _("Download the per-level figures (JSON)"), shipped.path("levels", model.name).read_bytes(),
            "level_importance.json",
            "application/json", key="dl-levels", on_click="ignore",
        )  # fmt: skip


def intro() -> None:
    st.title(_("Attributions"))
    st.markdown(
        _(
            "Which pixels does each view's prediction rest on? A crop cannot use what it cut away; a warp uses the "
            "same content at a distorted shape; SPP sees the whole image as it is (see {notes}). GradCAM weighs "
            "conv5's channels by their gradient; Integrated Gradients adds up gradients from a black image to this "
            "one; Occlusion hides one square at a time and measures the drop."
        ).format(notes=ui.NOTES)
    )


def main() -> None:
    ui.start_page()
    intro()
    model = ui.current_model()
    ui.current_image()  # this session's photo, for the cached views and results below
    short_side = 256
    comp = ui.cached_comparison(short_side)
    options = candidate_classes(comp)
    target = st.selectbox(
        _("Target class (default: the full image's top class)"),
        options,
        format_func=lambda i: model.class_names[i],
        key=f"attr_target-{ui.image_key()}",
    )
    a, b = st.columns([3, 1])
    methods = a.multiselect(
        _("Methods"), METHODS, default=["gradcam"], format_func=METHOD_TITLES.get, key="attr_methods"
    )
    noise_tunnel = b.checkbox(
        _("SmoothGrad (NoiseTunnel) for IG"),
        key="attr_nt",
        help=_("{n} noisy copies: {n}x slower").format(n=NT_SAMPLES),
    )
    views, pictures = ui.cached_views_shown(short_side)
    cols = st.columns(len(VIEWS))
    for col, name in zip(cols, VIEWS, strict=True):
        col.image(pictures[name], caption=view_title(name))
    timing: dict[str, float] = {}
    for method in methods:
        st.subheader(METHOD_TITLES[method])
        method_panel(model, views, method, target, noise_tunnel, short_side, timing)
    st.subheader(_("Which pyramid level carried the decision"))
    levels_panel(model, short_side, target)


main()
