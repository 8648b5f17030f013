"""Pyramid pooling: bin grids on conv5 and on the image, the two bin rules, the fixed-length output."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from spp_viz import paper
from spp_viz.explain import shipped
from spp_viz.explain.bag_of_words import (
    SHUFFLE_SHORT_SIDE,
    SHUFFLE_TILES,
    bench_findings,
    heads_findings,
)
from spp_viz.explain.feature_maps import FeatureMaps
from spp_viz.explain.level_views import PRESETS, classifier_reads, level_view, reads_pyramid, spp_vector
from spp_viz.geometry import FeatureGeometry, feature_geometry
from spp_viz.i18n import N_, _, number
from spp_viz.models import SPPNet
from spp_viz.plots.base import encode_image
from spp_viz.plots.maps import predictions_bar
from spp_viz.plots.pyramid import (
    level_on_image,
    level_on_map,
    rule_coverage,
    shuffle_curves,
    shuffle_levels,
    vector_strip,
)
from spp_viz.provenance import sentence as made_by
from spp_viz.pyramid import RuleCheck, num_bins, paper_rule_check, paper_rule_failures, parse_levels

CUSTOM = N_("custom levels")
SECTIONS = (  # the page's tabs, in teaching order (shown as _(title))
    N_("The bins, level by level"),
    N_("Winner map"),
    N_("The output vector"),
    N_("Fixed length, shown"),
    N_("Rule inspector: where the training rule breaks"),
    N_("Position: the bag-of-words test"),
)
TAB_WIDGETS = ("pyramid_region", "winner_level", "rule_case", "bow_k", "bow_seed")


def controls() -> tuple[tuple[int, ...], str, str]:
    """Levels (preset or custom), pooling mode and bin rule."""
    a, b, c = st.columns([3, 1, 2])
    presets = [*PRESETS, CUSTOM]
    preset = a.selectbox(_("Pyramid"), presets, format_func={k: _(k) for k in presets}.get, key="pyramid_preset")
    if preset == CUSTOM:
        text = a.text_input(_("Levels, finest first (n for an n x n grid)"), "5,2,1", key="pyramid_custom")
        try:
            levels = parse_levels(text)
        except ValueError as e:
            st.error(_("**These levels cannot be used:** {why}").format(why=ui.md(e)))
            st.stop()
    else:
        levels = PRESETS[preset]
    mode = b.radio(_("Pooling"), ["max", "avg"], key="pyramid_mode", help=_("The paper max-pools every bin."))
    rule = c.radio(
        _("Bin rule"),
        ["adaptive", "paper"],
        key="pyramid_rule",
        format_func={"adaptive": _("Appendix A (adaptive)"), "paper": _("training rule (Sec. 2.3)")}.get,
        help=_(
            "Appendix A: bin i spans [floor(i*a/n), ceil((i+1)*a/n)), always n bins. Training rule: window ceil(a/n), "
            "stride floor(a/n), which breaks for many map sizes (see the rule inspector below)."
        ),
    )
    return levels, mode, rule


def length_panel(fm: FeatureMaps, levels: tuple[int, ...], mode: str, model: SPPNet) -> None:
    h5, w5, k = fm.conv5_shape
    m = num_bins(levels)
    a, b, c = st.columns(3)
    a.metric(_("conv5 (H x W x C)"), f"{h5} x {w5} x {k}")
    b.metric(_("Bins M"), f"{m} = " + " + ".join(f"{n * n}" for n in levels))
    c.metric(_("Output length k x M"), f"{number(k)} x {m} = {number(k * m)}")
    st.markdown(reads_pyramid(model, levels, mode))
    st.caption(
        _(
            "Whatever the image size, each of the k = {k} channels gives M = {m} numbers. The paper's ZF-5 has k = "
            "{zf5_k} and the {pyramid} pyramid, M = {zf5_m}: {zf5_k} x {zf5_m} = {zf5_length} inputs to fc6 (see "
            "{notes})."
        ).format(
            k=number(k),
            m=m,
            zf5_k=paper.ZF5_CHANNELS,
            pyramid="{" + ",".join(map(str, paper.LEVELS)) + "}",
            zf5_m=num_bins(paper.LEVELS),
            zf5_length=number(paper.ZF5_SPP_LENGTH),
            notes=ui.NOTES,
        )
    )


def levels_panel(fm: FeatureMaps, geom: FeatureGeometry, img, channel: int, levels, mode: str, rule: str) -> None:
    """Each level's grid over the channel's conv5 map and over the image."""
    region = st.radio(
        _("Bins on the image show"),
        ["footprint", "field"],
        horizontal=True,
        key="pyramid_region",
        format_func={"footprint": _("where the bin's cells are"), "field": _("what they see (receptive fields)")}.get,
    )
    for n in levels:
        try:
            view = level_view(fm.conv5[channel], geom, n, mode, rule)
        except ValueError as e:
            st.warning(_("**Level {n}x{n}: the training rule fails here.** {why}").format(n=n, why=e))
            continue
        left, right = st.columns(2)
        title = _("{n}x{n} level over channel {channel} ({mode} pooling)").format(n=n, channel=channel, mode=mode)
        left.plotly_chart(level_on_map(fm.conv5[channel], view, title, show_winners=False), width="stretch")
        on_image = _("{n}x{n} bins on the image").format(n=n)
        right.plotly_chart(level_on_image(img, view, on_image, region), width="stretch")


def winners_panel(fm: FeatureMaps, geom: FeatureGeometry, img, channel: int, levels, rule: str) -> None:
    """Which cell won each bin's max, on the map and as its receptive field on the image."""
    n = st.selectbox(_("Level"), levels, format_func=lambda v: f"{v}x{v}", key="winner_level")
    try:
        view = level_view(fm.conv5[channel], geom, n, "max", rule)
    except ValueError as e:
        st.warning(_("**The training rule fails for this level:** {why}").format(why=e))
        return
    left, right = st.columns(2)
    winners = _("winners of the {n}x{n} bins (x)").format(n=n)
    left.plotly_chart(level_on_map(fm.conv5[channel], view, winners), width="stretch")
    right.plotly_chart(
        level_on_image(img, view, _("their receptive fields (dotted)"), "footprint", geom=geom), width="stretch"
    )
    st.caption(
        _(
            "Max pooling keeps one number per bin: the strongest cell's. The winner can sit anywhere in its bin, so "
            "the pyramid records *that* a part was seen in a region, not exactly where. A winner's receptive field "
            "({rf} pixels wide here, stride {stride}) is much larger than its cell."
        ).format(rf=geom.x.rf, stride=geom.x.jump)
    )


def vector_panel(fm: FeatureMaps, levels, mode: str, rule: str) -> None:
    """The whole SPP vector as a strip, and downloads."""
    try:
        vec = spp_vector(fm.conv5, levels, mode, rule)
    except ValueError as e:
        st.warning(_("**No vector: the training rule cannot pool this map.** {why}").format(why=e))
        return
    k = fm.conv5.shape[0]
    st.plotly_chart(vector_strip(vec, levels, k), width="stretch")
    st.caption(
        _(
            "Level by level, channel-major: {parts}. In all {total} numbers, the input of the first fully connected "
            "layer."
        ).format(
            parts="; ".join(f"{n}x{n}: {number(k)} x {n * n} = {number(k * n * n)}" for n in levels),
            total=number(len(vec)),
        )
    )
    a, b = st.columns(2)
    csv, npy = ui.vector_files(vec, tuple(levels), k)
    a.download_button(
        _("Download the vector (CSV: level, channel, bin)"), csv, "spp_vector.csv", "text/csv", on_click="ignore"
    )
    b.download_button(
        _("Download the vector (.npy)"), npy, "spp_vector.npy", "application/octet-stream", on_click="ignore"
    )


def fixed_length_panel(levels) -> None:
    rows = ui.cached_fixed_length(levels)
    st.dataframe(
        pd.DataFrame(
            {
                _("view"): [r.view for r in rows],
                _("input H x W"): [f"{r.input_hw[0]} x {r.input_hw[1]}" for r in rows],
                _("conv5 H x W"): [f"{r.conv5_hw[0]} x {r.conv5_hw[1]}" for r in rows],
                _("SPP output length"): [number(r.spp_length) for r in rows],
            }
        ),
        hide_index=True,
    )
    lengths = {r.spp_length for r in rows}
    st.caption(
        _(
            "{sizes} sizes and shapes of the same photo, {grids} different conv5 grids, {lengths} output length: the "
            "fully connected layers always get {length} numbers."
        ).format(
            sizes=len(rows),
            grids=len({r.conv5_hw for r in rows}),
            lengths=len(lengths),
            length=number(rows[0].spp_length),
        )
    )


def rule_panel(fm: FeatureMaps, levels) -> None:
    """Does the training rule work for this conv5 size? Where does it break up to 40?"""
    h5, w5, _channels = fm.conv5_shape
    rows = [
        {_("axis"): axis} | c.row()
        for axis, size in ((_("height"), h5), (_("width"), w5))
        for c in paper_rule_check(size, levels)
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    failures = paper_rule_failures(40, levels)
    st.markdown(
        _(
            "**Map sizes up to 40 where the training rule breaks for {pyramid}** ({failures} of {pairs} size-level "
            "pairs). The paper's notes list, for a <= 30 and n in {{1,2,3,4,6}}, wrong counts at {wrong}, and "
            "unpooled tails such as a = 14 with n = 3, 4 or 6."
        ).format(
            pyramid="{" + ",".join(map(str, levels)) + "}",
            failures=len(failures),
            pairs=40 * len(levels),
            wrong=" ".join(f"({a},{n})" for a, n in paper.TRAINING_RULE_WRONG_COUNTS),
        )
    )
    table = pd.DataFrame([{"a": c.size, "n": c.n, _("what goes wrong"): c.problem} for c in failures])
    st.dataframe(table, hide_index=True, height=220)
    if failures:
        broken_case_panel(failures)


def broken_case_panel(failures: list[RuleCheck]) -> None:
    """One case where the training rule breaks, drawn: its windows, or why no window exists."""
    pick = st.selectbox(
        _("Draw a broken case"),
        range(len(failures)),
        key="rule_case",
        format_func=lambda i: f"a = {failures[i].size}, n = {failures[i].n}: {failures[i].problem}",
    )
    case = failures[pick]
    st.plotly_chart(rule_coverage(case.size, case.n), width="stretch")
    if case.stride == 0:
        st.warning(
            _(
                "**No window exists here.** A {a} x {a} map cannot give {n} x {n} bins with window ceil(a/n) and "
                "stride floor(a/n): the stride floor({a}/{n}) is 0, so no pooling layer can be built and every "
                "cell (red) stays unpooled. Appendix A's adaptive bins overlap instead."
            ).format(a=case.size, n=case.n)
        )
    else:
        st.caption(_("Red cells are never pooled; rectangles are the windows the training rule produces."))


def shuffle_panel(model_name: str) -> None:
    """The bag-of-words test: shuffle the photo's tiles, compare each level's vector and the top-5."""
    st.markdown(
        _(
            "The paper likens SPP to spatial-pyramid **bag-of-words** (see {notes}): the 1x1 level is a bag of conv5 "
            "*visual words* that ignores where each one is; the finer levels add the layout. The claim tested here: "
            "**position is ignored by the coarse level and kept by the fine ones.** Cut the photo into k x k tiles and "
            "shuffle them: the words mostly stay, the layout breaks."
        ).format(notes=ui.NOTES)
    )
    a, b = st.columns(2)
    # The default goes in as session state, not as the widgets' value: main() keeps these values while the tab is
    # closed, and a widget given both a value and a state logs a warning.
    st.session_state.setdefault("bow_k", 4)
    k = a.select_slider(_("Tiles per side (k)"), SHUFFLE_TILES, key="bow_k")
    seed = int(b.number_input(_("Shuffle seed"), 0, 9999, "min", key="bow_seed"))
    result = ui.cached_shuffle(k, seed)
    left, right = st.columns(2)
    left.image(result.original, caption=_("original, shorter side {side}").format(side=SHUFFLE_SHORT_SIDE))
    right.image(result.shuffled, caption=_("{k}x{k} tiles shuffled (seed {seed})").format(k=k, seed=seed))
    st.plotly_chart(shuffle_levels(result.cosines, k), width="stretch")
    st.markdown("**" + result.sentence() + "**")
    left, right = st.columns(2)
    top5_original, top5_shuffled = _("Top-5, original"), _("Top-5, shuffled")
    left.plotly_chart(predictions_bar(result.top5_original, top5_original), width="stretch", key="bow-top5-a")
    right.plotly_chart(predictions_bar(result.top5_shuffled, top5_shuffled), width="stretch", key="bow-top5-b")
    st.caption(
        _(
            "Levels are max-pooled over the clipped conv5 (what the pyramid pools), whatever the network's own head; "
            "the top-5 is the network's own prediction."
        )
    )
    shipped_shuffle_panel(model_name)


def shipped_shuffle_panel(model_name: str) -> None:
    """The shuffle test over 500 ImageNet photos, shipped: the sidebar network's curves (else the SPP-net's), then
    both heads' top-1 side by side."""
    one, four = shipped.heads("shuffle")
    first = shipped.first_of(one, four, model_name)
    if first is None:
        return
    st.markdown(_("**Over {n} ImageNet photos** ({model}, shipped with the app):").format(n=first.n, model=first.model))
    st.plotly_chart(shuffle_curves(first), width="stretch")
    for line in bench_findings(first):
        st.markdown("- " + line)
    held = _("; each photo scored by a head distilled without it") if first.held_out else ""
    st.caption(
        _("Whiskers: 2 standard errors over the photos{held}. {seconds} s.").format(
            held=held, seconds=f"{first.seconds:.0f}"
        )
        + " "
        + made_by(first.provenance)
    )
    if one is None or four is None:
        return
    st.markdown(
        _(
            "**Does a classifier that reads the layout notice the shuffle more?** The paper's argument predicts that "
            "the four-level head ({four}) changes its mind more often than the one-level head ({one}):"
        ).format(four=four.model, one=one.model)
    )
    for line in heads_findings(one, four):
        st.markdown("- " + line)
    st.caption(
        _("Same photos and shuffles for both.")
        + " "
        + (_("Each photo scored by a head distilled without it.") + " " if four.held_out else "")
        + made_by(four.provenance)
        + " "
        + _("FOLDS: the held-out heads of `spp-viz distill --fold-heads` (model card).")
    )


def tabbed(panels) -> None:
    """SECTIONS as tabs, each drawing its panel only while it is open."""
    # One section at a time: only the open tab runs and is drawn (on_change="rerun"), instead of all sixteen figures
    # at once (bench/pages.py measured the page at 3.9 s). A widget that a run does not draw loses its value, so the
    # tabs' settings are kept as plain session state while their tab is closed.
    for key in TAB_WIDGETS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    tabs = st.tabs([_(title) for title in SECTIONS], key="pyramid_section", on_change="rerun")
    for tab, title, panel in zip(tabs, SECTIONS, panels, strict=True):
        if tab.open:
            with tab:
                st.subheader(_(title))
                panel()


def intro() -> None:
    st.title(_("Pyramid pooling"))
    st.markdown(
        _(
            "SPP replaces pool5 with a **pyramid of max-pooling grids** over conv5. A level with n x n bins gives "
            "n x n numbers per channel, whatever conv5's size (He et al., Sec. 2.3 and Fig. 3; see {notes})."
        ).format(notes=ui.NOTES)
    )


def main() -> None:
    ui.start_page()
    intro()
    model = ui.current_model()
    img, _bytes = ui.current_image()
    st.info(classifier_reads(model))
    levels, mode, rule = controls()
    lowest = ui.smallest_short_side(model)
    short_side = st.slider(
        _("Input size: shorter side in pixels"), lowest, 1024, max(256, lowest), 32, key="pyramid_size"
    )
    fm = ui.cached_feature_maps(short_side)  # cached: changing levels, rule or channel redraws without conv5
    view_img = encode_image(img.resize((fm.input_hw[1], fm.input_hw[0])))
    geom = feature_geometry(model, fm.input_hw, fm.conv5.shape[-2:])
    ui.measured_field_note(model)
    c = fm.conv5.shape[0]
    channel = int(
        st.number_input(
            _("Channel (0 to {last}; default: the strongest)").format(last=c - 1),
            0,
            c - 1,
            int(fm.ranking[0]),
            key=f"pyramid_channel-{ui.image_key()}",
        )
    )
    length_panel(fm, levels, mode, model)
    panels = (
        lambda: levels_panel(fm, geom, view_img, channel, levels, mode, rule),
        lambda: winners_panel(fm, geom, view_img, channel, levels, rule),
        lambda: vector_panel(fm, levels, mode, rule),
        lambda: fixed_length_panel(levels),
        lambda: rule_panel(fm, levels),
        lambda: shuffle_panel(model.name),
    )
    tabbed(panels)


main()
