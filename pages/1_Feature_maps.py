"""Feature maps: conv5 of an image of any size, and the SPP vector that keeps its length."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from spp_viz.explain.feature_maps import FeatureMaps
from spp_viz.explain.level_views import classifier_reads
from spp_viz.i18n import _, number
from spp_viz.plots.maps import channel_grid, channel_heatmap, predictions_bar, size_sweep


def sizes_panel(fm: FeatureMaps, short_side: int) -> None:
    """Input size -> conv5 size -> SPP length, and the history of sizes tried in this session."""
    h5, w5, c = fm.conv5_shape
    a, b, d = st.columns(3)
    a.metric(_("Input (H x W)"), f"{fm.input_hw[0]} x {fm.input_hw[1]}")
    b.metric(_("conv5 (H x W x C)"), f"{h5} x {w5} x {c}")
    d.metric(_("SPP output length"), number(fm.spp_length))
    history = st.session_state.setdefault("size_history", {})
    history[short_side] = {"short_side": short_side, "conv5_h": h5, "conv5_w": w5, "spp_length": fm.spp_length}
    if len(history) > 1:
        st.plotly_chart(size_sweep(list(history.values())), width="stretch")
        st.caption(
            _(
                "Every size you tried: the conv5 grid grows with the image, the SPP output length does not. That is "
                "why the fully connected layers can stay as they are."
            )
        )
    else:
        st.caption(_("Move the size slider: conv5's height and width change, the SPP output length stays the same."))


def predictions_panel(fm: FeatureMaps) -> None:
    st.plotly_chart(predictions_bar(fm.top5, _("Top-5 classes (full image)")), width="stretch")


def grid_panel(fm: FeatureMaps, maps: np.ndarray) -> None:
    """A grid of conv5 channels, strongest first or by number."""
    c = fm.conv5.shape[0]
    left, right = st.columns(2)
    count = left.select_slider(_("Channels shown"), options=[8, 16, 32, 64], value=16)
    orders = {"strongest": _("strongest response first"), "number": _("channel number")}
    order = right.radio(_("Order"), list(orders), format_func=orders.get, horizontal=True)
    channels = fm.ranking[:count] if order == "strongest" else np.arange(min(count, c))
    st.plotly_chart(channel_grid(maps, channels, values=maps.max(axis=(1, 2))), width="stretch")
    st.caption(
        _(
            "{shown} of {channels} conv5 channels, one colour scale for all. Each map is one filter's response at "
            "every position. The paper finds conv5 filters that fire on parts (a wheel, a face, text) wherever they "
            "are in the image (its Figure 2; see the Strongest activations page)."
        ).format(shown=len(channels), channels=c)
    )


def channel_panel(fm: FeatureMaps, maps: np.ndarray, which: str, short_side: int) -> None:
    """One channel large, and stretched over the image."""
    c = fm.conv5.shape[0]
    channel = int(
        st.number_input(
            _("Channel (0 to {last})").format(last=c - 1), 0, c - 1, int(fm.ranking[0]), key=f"channel-{ui.image_key()}"
        )
    )
    rank = int(np.where(fm.ranking == channel)[0][0]) + 1
    left, right = st.columns(2)
    left.plotly_chart(
        channel_heatmap(
            maps[channel],
            _("channel {channel} ({which}): max {value} (rank {rank} of {channels})").format(
                channel=channel, which=which, value=f"{maps[channel].max():.3f}", rank=rank, channels=c
            ),
        ),
        width="stretch",
    )
    alpha = right.slider(_("Overlay opacity"), 0.0, 1.0, 0.5, 0.05)
    clipped = maps is fm.conv5
    blended = ui.cached_channel_overlay(short_side, clipped, channel, alpha)
    right.image(
        blended,
        caption=_("channel {channel} stretched over the input ({w} x {h})").format(
            channel=channel, w=fm.input_hw[1], h=fm.input_hw[0]
        ),
    )
    d1, d2 = st.columns(2)
    # Bytes, not callables: see ui.vector_files for why.
    d1.download_button(
        _("Download this overlay (PNG)"), blended, f"conv5_channel{channel}.png", "image/png", on_click="ignore"
    )
    d2.download_button(
        _("Download all of conv5, {which} (.npy, C x H x W)").format(which=which),
        ui.cached_maps_npy(short_side, clipped),
        "conv5.npy" if fm.clip is None else f"conv5_{'after' if clipped else 'before'}_{fm.clip}.npy",
        "application/octet-stream",
        on_click="ignore",
    )


def main() -> None:
    ui.start_page()
    st.title(_("Feature maps"))
    st.markdown(
        _(
            "The conv layers of a CNN take an image of **any size**. Their last map, conv5, has one cell per *stride* "
            "pixels of input, so its height and width follow the image. SPP pools it into a vector of fixed length "
            "(He et al., Sec. 2; see {notes})."
        ).format(notes=ui.NOTES)
    )
    model = ui.current_model()
    ui.current_image()
    st.info(classifier_reads(model))
    lowest = ui.smallest_short_side(model)
    short_side = st.slider(
        _("Input size: shorter side in pixels (aspect ratio kept)"),
        lowest,
        1024,
        max(256, lowest),
        32,
        help=_("The paper's full-image view uses a shorter side of 256."),
    )
    fm = ui.cached_feature_maps(short_side)
    sizes_panel(fm, short_side)
    predictions_panel(fm)
    st.subheader(_("conv5 channels"))
    maps, which = ui.response_maps(fm, key="fm_clipped")
    grid_panel(fm, maps)
    st.subheader(_("One channel"))
    channel_panel(fm, maps, which, short_side)


main()
