"""Strongest activations: the paper's Figure 2 on the student's photo, and over a gallery."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from spp_viz.explain.activations import default_patch_kind, patch_box, peaks, top_patches
from spp_viz.explain.feature_maps import FeatureMaps
from spp_viz.gallery import INDEX_SHORT_SIDE, GalleryItem, folder_items
from spp_viz.geometry import FeatureGeometry, feature_geometry
from spp_viz.images import samples
from spp_viz.models import SPPNet
from spp_viz.plots.activations import boxes_on_image, patch_grid, peaks_on_map
from spp_viz.plots.base import encode_image

AUTO_BUILD = 32  # galleries up to this size are indexed without asking; larger ones wait for the button
SOURCES = ("Sample images", "Images uploaded in this session", "The gallery folder (sidebar)")


KIND_LABELS = {"field": "the receptive field", "context": "3 strides around the cell"}


def channel_row(
    fm: FeatureMaps, drawn: np.ndarray, geom: FeatureGeometry, enc, channel: int, count: int, kind: str, key: str
) -> None:
    """One channel: its map (``drawn``: before or after the clip) with arrows at the strongest responses, and their
    boxes on the image."""
    # Peaks on the responses before any clip: after ReLU6 the strongest cells are ties at 6.0, arbitrary to pick.
    found = peaks(fm.responses[channel], count)
    left, right = st.columns(2)
    title = f"channel {channel}: max {fm.channel_max[channel]:.2f}" + (f" (before {fm.clip})" if fm.clip else "")
    left.plotly_chart(peaks_on_map(drawn[channel], found, title), width="stretch", key=f"{key}-map")
    boxes = [patch_box(geom, r, c, kind) for r, c, _ in found]
    right.plotly_chart(
        boxes_on_image(enc, boxes, f"the arrows' cells: {KIND_LABELS[kind]}"), width="stretch", key=f"{key}-image"
    )


def box_kind(geom: FeatureGeometry) -> str:
    """Receptive field or close-up, for the boxes and the gallery's patches alike."""
    kinds = list(KIND_LABELS)
    default = default_patch_kind(geom)
    kind = st.radio(
        "Boxes and patches show",
        kinds,
        index=kinds.index(default),
        horizontal=True,
        format_func=KIND_LABELS.get,
        key=f"act_kind-{default}",
    )
    if kind == "field" and default == "context":
        st.caption(
            f"A conv5 cell's theoretical receptive field here is {geom.x.rf} pixels, larger than the input: every "
            "box is the whole image. Most of a cell's input comes from near its centre, so the close-up is the "
            "better picture of what it responds to."
        )
    return kind


def image_panel(fm: FeatureMaps, drawn: np.ndarray, geom: FeatureGeometry, enc, kind: str) -> None:
    """The channels that respond most to this image."""
    a, b = st.columns(2)
    shown = a.slider("Channels", 1, 8, 4, key="act_channels")
    count = b.slider("Arrows per map", 1, 5, 3, key="act_arrows")
    for channel in fm.ranking[:shown]:
        channel_row(fm, drawn, geom, enc, int(channel), count, kind, key=f"top-{channel}")


def gallery_sources() -> list[str]:
    """Which images make the gallery; this session's uploads can grow here, several photos at once."""
    offered = SOURCES if ui.server_paths() else SOURCES[:2]  # a folder on the server only where the teacher allows
    sources = st.multiselect("Gallery", offered, default=[SOURCES[0]], key="act_sources")
    if SOURCES[1] in sources:
        ui.add_gallery_uploads(
            st.file_uploader(
                "Add photos to this session's gallery",
                type=ui.IMAGE_TYPES,
                accept_multiple_files=True,
                key="act_gallery_upload",
                help=f"They stay in your session (the last {ui.MAX_REMEMBERED_UPLOADS}, at most "
                f"{ui.MAX_SESSION_UPLOAD_MB} MB together).",
            )
        )
    return sources


def gallery_items(sources: list[str], folder: str) -> list[GalleryItem]:
    items = []
    if SOURCES[0] in sources:
        items += [GalleryItem(s.file, path=s.path) for s in samples()]
    if SOURCES[1] in sources:
        items += [GalleryItem(name, data=data) for name, data in ui.session_uploads().values()]
    if SOURCES[2] in sources:
        if not folder:
            st.info("Name a folder in the sidebar (Gallery folder) to index it.")
        else:
            try:
                items += folder_items(folder)
            except ValueError as e:
                st.error(f"**The gallery folder cannot be used:** {e}")
    return items


def gallery_panel(model: SPPNet, channel: int, fm224: FeatureMaps, kind: str) -> None:
    """The top-9 patches of a channel over a gallery, and where this image would rank."""
    items = gallery_items(gallery_sources(), ui.context().gallery_folder)
    if not items:
        st.info("Choose at least one gallery source with images.")
        return
    key = (ui.context().model, tuple(sorted((i.name, str(i.path)) for i in items)))  # the weights too
    built = st.session_state.setdefault("act_built", set())
    if len(items) > AUTO_BUILD and key not in built:
        st.write(f"{len(items)} images: indexing runs each through the network once, then the index is stored.")
        if not st.button("Build the index", key="act_build"):
            return
    report = ui.heavy.gallery_index(model, items)
    built.add(key)
    index = report.index
    how = "read from the cache" if report.from_cache else f"built now ({report.computed} run, {report.reused} reused)"
    clip = f" Responses before {model.clip}, so the strongest ones are not ties at its ceiling." if model.clip else ""
    st.caption(f"Index of {len(index.hashes)} images at shorter side {index.short_side}, {how}.{clip}")
    if report.skipped:
        with st.expander(f"{len(report.skipped)} file(s) skipped: they could not be read as images"):
            for name, reason in report.skipped:
                st.write(f"- **{ui.md(name)}**: {ui.md(reason)}")
    extra = {h: data for h, (_, data) in ui.session_uploads().items()}
    patches = top_patches(index, channel, model, extra, kind)
    if not patches:
        st.info("No image in the gallery gives this channel a response.")
        return
    st.image(patch_grid(patches), caption=f"channel {channel}: the {len(patches)} strongest responses in the gallery")
    rank = index.rank_of(channel, float(fm224.channel_max[channel]))
    st.markdown(
        f"**Your image** gives channel {channel} a peak of {fm224.channel_max[channel]:.2f} at shorter side "
        f"{INDEX_SHORT_SIDE}: it would rank **#{rank}** among these {len(patches)}."
    )


def main() -> None:
    ui.start_page()
    st.title("Strongest activations")
    st.markdown(
        "The paper's Figure 2 shows conv5 maps with arrows at their strongest responses, and beside them the "
        "images that excite those filters most: conv5 filters respond to parts (a wheel, a face, text) at any "
        "position and image size (He et al., Sec. 2.1; see " + ui.NOTES + ")."
    )
    model = ui.current_model()
    img, _ = ui.current_image()
    fm = ui.cached_feature_maps(256)
    enc = encode_image(img.resize((fm.input_hw[1], fm.input_hw[0])))
    geom = feature_geometry(model, fm.input_hw, fm.conv5.shape[-2:])
    ui.measured_field_note(model)
    kind = box_kind(geom)
    st.subheader("The channels that respond most to your image")
    drawn, _ = ui.response_maps(fm, key="act_clipped")
    image_panel(fm, drawn, geom, enc, kind)
    st.subheader("Any channel")
    c = fm.conv5.shape[0]
    channel = int(
        st.number_input(f"Channel (0 to {c - 1})", 0, c - 1, int(fm.ranking[0]), key=f"act_channel-{ui.image_key()}")
    )
    channel_row(fm, drawn, geom, enc, channel, 3, kind, key="picked")
    st.subheader(f"What excites channel {channel} most, over a gallery")
    gallery_panel(model, channel, ui.cached_feature_maps(INDEX_SHORT_SIDE), kind)


main()
