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
from spp_viz.pyramid import num_bins, paper_rule_check, paper_rule_failures, parse_levels

CUSTOM = "custom levels"
SECTIONS = (  # the page's tabs, in teaching order
    "The bins, level by level",
    "Winner map",
    "The output vector",
    "Fixed length, shown",
    "Rule inspector: where the training rule breaks",
    "Position: the bag-of-words test",
)
TAB_WIDGETS = ("pyramid_region", "winner_level", "rule_case", "bow_k", "bow_seed")


def controls() -> tuple[tuple[int, ...], str, str]:
    """Levels (preset or custom), pooling mode and bin rule."""
    a, b, c = st.columns([3, 1, 2])
    preset = a.selectbox("Pyramid", [*PRESETS, CUSTOM], key="pyramid_preset")
    if preset == CUSTOM:
        text = a.text_input("Levels, finest first (n for an n x n grid)", "5,2,1", key="pyramid_custom")
        try:
            levels = parse_levels(text)
        except ValueError as e:
            st.error(f"**These levels cannot be used:** {e}")
            st.stop()
    else:
        levels = PRESETS[preset]
    mode = b.radio("Pooling", ["max", "avg"], key="pyramid_mode", help="The paper max-pools every bin.")
    rule = c.radio(
        "Bin rule",
        ["adaptive", "paper"],
        key="pyramid_rule",
        format_func=lambda r: "Appendix A (adaptive)" if r == "adaptive" else "training rule (Sec. 2.3)",
        help="Appendix A: bin i spans [floor(i*a/n), ceil((i+1)*a/n)), always n bins. Training rule: window "
        "ceil(a/n), stride floor(a/n), which breaks for many map sizes (see the rule inspector below).",
    )
    return levels, mode, rule


def length_panel(fm: FeatureMaps, levels: tuple[int, ...], mode: str, model: SPPNet) -> None:
    h5, w5, k = fm.conv5_shape
    m = num_bins(levels)
    a, b, c = st.columns(3)
    a.metric("conv5 (H x W x C)", f"{h5} x {w5} x {k}")
    b.metric("Bins M", f"{m} = " + " + ".join(f"{n * n}" for n in levels))
    c.metric("Output length k x M", f"{k:,} x {m} = {k * m:,}")
    st.markdown(reads_pyramid(model, levels, mode))
    st.caption(
        f"Whatever the image size, each of the k = {k:,} channels gives M = {m} numbers. The paper's ZF-5 has "
        f"k = {paper.ZF5_CHANNELS} and the {{{','.join(map(str, paper.LEVELS))}}} pyramid, "
        f"M = {num_bins(paper.LEVELS)}: {paper.ZF5_CHANNELS} x {num_bins(paper.LEVELS)} = {paper.ZF5_SPP_LENGTH:,} "
        f"inputs to fc6 (see {ui.NOTES})."
    )


def levels_panel(fm: FeatureMaps, geom: FeatureGeometry, img, channel: int, levels, mode: str, rule: str) -> None:
    """Each level's grid over the channel's conv5 map and over the image."""
    region = st.radio(
        "Bins on the image show",
        ["footprint", "field"],
        horizontal=True,
        key="pyramid_region",
        format_func=lambda r: "where the bin's cells are" if r == "footprint" else "what they see (receptive fields)",
    )
    for n in levels:
        try:
            view = level_view(fm.conv5[channel], geom, n, mode, rule)
        except ValueError as e:
            st.warning(f"**Level {n}x{n}: the training rule fails here.** {e}")
            continue
        left, right = st.columns(2)
        title = f"{n}x{n} level over channel {channel} ({mode} pooling)"
        left.plotly_chart(level_on_map(fm.conv5[channel], view, title, show_winners=False), width="stretch")
        right.plotly_chart(level_on_image(img, view, f"{n}x{n} bins on the image", region), width="stretch")


def winners_panel(fm: FeatureMaps, geom: FeatureGeometry, img, channel: int, levels, rule: str) -> None:
    """Which cell won each bin's max, on the map and as its receptive field on the image."""
    n = st.selectbox("Level", levels, format_func=lambda v: f"{v}x{v}", key="winner_level")
    try:
        view = level_view(fm.conv5[channel], geom, n, "max", rule)
    except ValueError as e:
        st.warning(f"**The training rule fails for this level:** {e}")
        return
    left, right = st.columns(2)
    left.plotly_chart(level_on_map(fm.conv5[channel], view, f"winners of the {n}x{n} bins (x)"), width="stretch")
    right.plotly_chart(
        level_on_image(img, view, "their receptive fields (dotted)", "footprint", geom=geom), width="stretch"
    )
    st.caption(
        "Max pooling keeps one number per bin: the strongest cell's. The winner can sit anywhere in its bin, so the "
        "pyramid records *that* a part was seen in a region, not exactly where. A winner's receptive field "
        f"({geom.x.rf} pixels wide here, stride {geom.x.jump}) is much larger than its cell."
    )


def vector_panel(fm: FeatureMaps, levels, mode: str, rule: str) -> None:
    """The whole SPP vector as a strip, and downloads."""
    try:
        vec = spp_vector(fm.conv5, levels, mode, rule)
    except ValueError as e:
        st.warning(f"**No vector: the training rule cannot pool this map.** {e}")
        return
    k = fm.conv5.shape[0]
    st.plotly_chart(vector_strip(vec, levels, k), width="stretch")
    st.caption(
        "Level by level, channel-major: "
        + "; ".join(f"{n}x{n}: {k:,} x {n * n} = {k * n * n:,}" for n in levels)
        + f". In all {len(vec):,} numbers, the input of the first fully connected layer."
    )
    a, b = st.columns(2)
    csv, npy = ui.vector_files(vec, tuple(levels), k)
    a.download_button(
        "Download the vector (CSV: level, channel, bin)", csv, "spp_vector.csv", "text/csv", on_click="ignore"
    )
    b.download_button(
        "Download the vector (.npy)", npy, "spp_vector.npy", "application/octet-stream", on_click="ignore"
    )


def fixed_length_panel(levels) -> None:
    rows = ui.cached_fixed_length(levels)
    st.dataframe(
        pd.DataFrame(
            {
                "view": [r.view for r in rows],
                "input H x W": [f"{r.input_hw[0]} x {r.input_hw[1]}" for r in rows],
                "conv5 H x W": [f"{r.conv5_hw[0]} x {r.conv5_hw[1]}" for r in rows],
                "SPP output length": [f"{r.spp_length:,}" for r in rows],
            }
        ),
        hide_index=True,
    )
    lengths = {r.spp_length for r in rows}
    st.caption(
        f"{len(rows)} sizes and shapes of the same photo, {len({r.conv5_hw for r in rows})} different conv5 grids, "
        f"{len(lengths)} output length: the fully connected layers always get {rows[0].spp_length:,} numbers."
    )


def rule_panel(fm: FeatureMaps, levels) -> None:
    """Does the training rule work for this conv5 size? Where does it break up to 40?"""
    h5, w5, _ = fm.conv5_shape
    rows = [
        {"axis": axis} | c.row()
        for axis, size in (("height", h5), ("width", w5))
        for c in paper_rule_check(size, levels)
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    failures = paper_rule_failures(40, levels)
    st.markdown(
        f"**Map sizes up to 40 where the training rule breaks for {{{','.join(map(str, levels))}}}** "
        f"({len(failures)} of {40 * len(levels)} size-level pairs). The paper's notes list, for a <= 30 and n in "
        "{1,2,3,4,6}, wrong counts at "
        + " ".join(f"({a},{n})" for a, n in paper.TRAINING_RULE_WRONG_COUNTS)
        + ", and unpooled tails such as a = 14 with n = 3, 4 or 6."
    )
    table = pd.DataFrame([{"a": c.size, "n": c.n, "what goes wrong": c.problem} for c in failures])
    st.dataframe(table, hide_index=True, height=220)
    if failures:
        pick = st.selectbox(
            "Draw a broken case",
            range(len(failures)),
            key="rule_case",
            format_func=lambda i: f"a = {failures[i].size}, n = {failures[i].n}: {failures[i].problem}",
        )
        case = failures[pick]
        st.plotly_chart(rule_coverage(case.size, case.n), width="stretch")
        if case.stride == 0:
            st.warning(
                f"**No window exists here.** A {case.size} x {case.size} map cannot give {case.n} x {case.n} bins "
                f"with window ceil(a/n) and stride floor(a/n): the stride floor({case.size}/{case.n}) is 0, so no "
                "pooling layer can be built and every cell (red) stays unpooled. Appendix A's adaptive bins overlap "
                "instead."
            )
        else:
            st.caption("Red cells are never pooled; rectangles are the windows the training rule produces.")


def shuffle_panel(model_name: str) -> None:
    """The bag-of-words test: shuffle the photo's tiles, compare each level's vector and the top-5."""
    st.markdown(
        "The paper likens SPP to spatial-pyramid **bag-of-words** (see " + ui.NOTES + "): the 1x1 level is a bag of "
        "conv5 *visual words* that ignores where each one is; the finer levels add the layout. The claim tested "
        "here: **position is ignored by the coarse level and kept by the fine ones.** Cut the photo into k x k "
        "tiles and shuffle them: the words mostly stay, the layout breaks."
    )
    a, b = st.columns(2)
    # The default goes in as session state, not as the widgets' value: main() keeps these values while the tab is
    # closed, and a widget given both a value and a state logs a warning.
    st.session_state.setdefault("bow_k", 4)
    k = a.select_slider("Tiles per side (k)", SHUFFLE_TILES, key="bow_k")
    seed = int(b.number_input("Shuffle seed", 0, 9999, "min", key="bow_seed"))
    result = ui.cached_shuffle(k, seed)
    left, right = st.columns(2)
    left.image(result.original, caption=f"original, shorter side {SHUFFLE_SHORT_SIDE}")
    right.image(result.shuffled, caption=f"{k}x{k} tiles shuffled (seed {seed})")
    st.plotly_chart(shuffle_levels(result.cosines, k), width="stretch")
    st.markdown("**" + result.sentence() + "**")
    left, right = st.columns(2)
    left.plotly_chart(predictions_bar(result.top5_original, "Top-5, original"), width="stretch", key="bow-top5-a")
    right.plotly_chart(predictions_bar(result.top5_shuffled, "Top-5, shuffled"), width="stretch", key="bow-top5-b")
    st.caption(
        "Levels are max-pooled over the clipped conv5 (what the pyramid pools), whatever the network's own head; "
        "the top-5 is the network's own prediction."
    )
    shipped_shuffle_panel(model_name)


def shipped_shuffle_panel(model_name: str) -> None:
    """The shuffle test over 500 ImageNet photos, shipped: the sidebar network's curves (else the SPP-net's), then
    both heads' top-1 side by side."""
    one, four = shipped.heads("shuffle")
    first = shipped.first_of(one, four, model_name)
    if first is None:
        return
    st.markdown(f"**Over {first.n} ImageNet photos** ({first.model}, shipped with the app):")
    st.plotly_chart(shuffle_curves(first), width="stretch")
    for line in bench_findings(first):
        st.markdown("- " + line)
    held = "; each photo scored by a head distilled without it" if first.held_out else ""
    st.caption(
        f"Whiskers: 2 standard errors over the photos{held}. {first.seconds:.0f} s. " + made_by(first.provenance)
    )
    if one is None or four is None:
        return
    st.markdown(
        "**Does a classifier that reads the layout notice the shuffle more?** The paper's argument predicts "
        f"that the four-level head ({four.model}) changes its mind more often than the one-level head ({one.model}):"
    )
    for line in heads_findings(one, four):
        st.markdown("- " + line)
    st.caption(
        "Same photos and shuffles for both. "
        + ("Each photo scored by a head distilled without it. " if four.held_out else "")
        + made_by(four.provenance)
        + " FOLDS: the held-out heads of `spp-viz distill --fold-heads` (model card)."
    )


def tabbed(panels) -> None:
    """SECTIONS as tabs, each drawing its panel only while it is open."""
    # One section at a time: only the open tab runs and is drawn (on_change="rerun"), instead of all sixteen figures
    # at once (bench/pages.py measured the page at 3.9 s). A widget that a run does not draw loses its value, so the
    # tabs' settings are kept as plain session state while their tab is closed.
    for key in TAB_WIDGETS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    tabs = st.tabs(list(SECTIONS), key="pyramid_section", on_change="rerun")
    for tab, title, panel in zip(tabs, SECTIONS, panels, strict=True):
        if tab.open:
            with tab:
                st.subheader(title)
                panel()


def main() -> None:
    ui.start_page()
    st.title("Pyramid pooling")
    st.markdown(
        "SPP replaces pool5 with a **pyramid of max-pooling grids** over conv5. A level with n x n bins gives n x n "
        "numbers per channel, whatever conv5's size (He et al., Sec. 2.3 and Fig. 3; see " + ui.NOTES + ")."
    )
    model = ui.current_model()
    img, _ = ui.current_image()
    st.info(classifier_reads(model))
    levels, mode, rule = controls()
    lowest = ui.smallest_short_side(model)
    short_side = st.slider("Input size: shorter side in pixels", lowest, 1024, max(256, lowest), 32, key="pyramid_size")
    fm = ui.cached_feature_maps(short_side)  # cached: changing levels, rule or channel redraws without conv5
    view_img = encode_image(img.resize((fm.input_hw[1], fm.input_hw[0])))
    geom = feature_geometry(model, fm.input_hw, fm.conv5.shape[-2:])
    ui.measured_field_note(model)
    c = fm.conv5.shape[0]
    channel = int(
        st.number_input(
            f"Channel (0 to {c - 1}; default: the strongest)",
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
