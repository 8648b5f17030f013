"""Strongest activations: the paper's Figure 2 on the student's photo, and over a gallery."""

from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from spp_viz.explain.activations import default_patch_kind, patch_box, peaks, top_patches
from spp_viz.explain.feature_maps import FeatureMaps
from spp_viz.gallery import INDEX_SHORT_SIDE, GalleryItem, folder_items
from spp_viz.geometry import FeatureGeometry, feature_geometry
from spp_viz.i18n import N_, _
from spp_viz.images import samples
from spp_viz.models import SPPNet
from spp_viz.plots.activations import boxes_on_image, patch_grid, peaks_on_map
from spp_viz.plots.base import encode_image

AUTO_BUILD = 32  # galleries up to this size are indexed without asking; larger ones wait for the button
SOURCES = (N_("Sample images"), N_("Images uploaded in this session"), N_("The gallery folder (sidebar)"))


KIND_LABELS = {"field": N_("the receptive field"), "context": N_("3 strides around the cell")}  # shown as _(label)


def channel_row(
    fm: FeatureMaps, drawn: np.ndarray, geom: FeatureGeometry, enc, channel: int, count: int, kind: str, key: str
) -> None:
    """One channel: its map (``drawn``: before or after the clip) with arrows at the strongest responses, and their
    boxes on the image."""
    # Peaks on the responses before any clip: after ReLU6 the strongest cells are ties at 6.0, arbitrary to pick.
    found = peaks(fm.responses[channel], count)
    left, right = st.columns(2)
    title = _("channel {channel}: max {value}").format(channel=channel, value=f"{fm.channel_max[channel]:.2f}")
    if fm.clip:
        title += " " + _("(before {clip})").format(clip=fm.clip)
    left.plotly_chart(peaks_on_map(drawn[channel], found, title), width="stretch", key=f"{key}-map")
    boxes = [patch_box(geom, r, c, kind) for r, c, _value in found]
    cells = _("the arrows' cells: {what}").format(what=_(KIND_LABELS[kind]))
    right.plotly_chart(boxes_on_image(enc, boxes, cells), width="stretch", key=f"{key}-image")


def box_kind(geom: FeatureGeometry) -> str:
    """Receptive field or close-up, for the boxes and the gallery's patches alike."""
    kinds = list(KIND_LABELS)
    default = default_patch_kind(geom)
    kind = st.radio(
        _("Boxes and patches show"),
        kinds,
        index=kinds.index(default),
        horizontal=True,
        format_func={k: _(v) for k, v in KIND_LABELS.items()}.get,
        key=f"act_kind-{default}",
    )
    if kind == "field" and default == "context":
        st.caption(
            _(
                "A conv5 cell's theoretical receptive field here is {rf} pixels, larger than the input: every box is "
                "the whole image. Most of a cell's input comes from near its centre, so the close-up is the better "
                "picture of what it responds to."
            ).format(rf=geom.x.rf)
        )
    return kind


def image_panel(fm: FeatureMaps, drawn: np.ndarray, geom: FeatureGeometry, enc, kind: str) -> None:
    """The channels that respond most to this image."""
    a, b = st.columns(2)
    shown = a.slider(_("Channels"), 1, 8, 4, key="act_channels")
    count = b.slider(_("Arrows per map"), 1, 5, 3, key="act_arrows")
    for channel in fm.ranking[:shown]:
        channel_row(fm, drawn, geom, enc, int(channel), count, kind, key=f"top-{channel}")


def gallery_sources() -> list[str]:
    """Which images make the gallery; this session's uploads can grow here, several photos at once."""
    offered = SOURCES if ui.server_paths() else SOURCES[:2]  # a folder on the server only where the teacher allows
    sources = st.multiselect(
        _("Gallery"), offered, default=[SOURCES[0]], format_func={s: _(s) for s in offered}.get, key="act_sources"
    )
    if SOURCES[1] in sources:
        ui.add_gallery_uploads(
            st.file_uploader(
                _("Add photos to this session's gallery"),
                type=ui.IMAGE_TYPES,
                accept_multiple_files=True,
                key="act_gallery_upload",
                help=_("They stay in your session (the last {count}, at most {mb} MB together).").format(
                    count=ui.MAX_REMEMBERED_UPLOADS, mb=ui.MAX_SESSION_UPLOAD_MB
                ),
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
            st.info(_("Name a folder in the sidebar (Gallery folder) to index it."))
        else:
            try:
                items += folder_items(folder)
            except ValueError as e:
                st.error(_("**The gallery folder cannot be used:** {why}").format(why=ui.md(e)))
    return items


def gallery_panel(model: SPPNet, channel: int, fm224: FeatureMaps, kind: str) -> None:
    """The top-9 patches of a channel over a gallery, and where this image would rank."""
    items = gallery_items(gallery_sources(), ui.context().gallery_folder)
    if not items:
        st.info(_("Choose at least one gallery source with images."))
        return
    key = (ui.context().model, tuple(sorted((i.name, str(i.path)) for i in items)))  # the weights too
    built = st.session_state.setdefault("act_built", set())
    if len(items) > AUTO_BUILD and key not in built:
        st.write(
            _("{count} images: indexing runs each through the network once, then the index is stored.").format(
                count=len(items)
            )
        )
        if not st.button(_("Build the index"), key="act_build"):
            return
    report = ui.heavy.gallery_index(model, items)
    built.add(key)
    index_note(report, model)
    patches_panel(report.index, model, channel, fm224, kind)


def index_note(report, model: SPPNet) -> None:
    """How the gallery's index came to be, and the files it skipped."""
    index = report.index
    how = (
        _("read from the cache")
        if report.from_cache
        else _("built now ({computed} run, {reused} reused)").format(computed=report.computed, reused=report.reused)
    )
    clip = (
        " " + _("Responses before {clip}, so the strongest ones are not ties at its ceiling.").format(clip=model.clip)
        if model.clip
        else ""
    )
    st.caption(
        _("Index of {count} images at shorter side {side}, {how}.").format(
            count=len(index.hashes), side=index.short_side, how=how
        )
        + clip
    )
    if report.skipped:
        with st.expander(
            _("{count} file(s) skipped: they could not be read as images").format(count=len(report.skipped))
        ):
            for name, reason in report.skipped:
                st.write(f"- **{ui.md(name)}**: {ui.md(reason)}")


def patches_panel(index, model: SPPNet, channel: int, fm224: FeatureMaps, kind: str) -> None:
    """The channel's strongest patches in the gallery, and where this image would rank among them."""
    extra = {h: data for h, (_name, data) in ui.session_uploads().items()}
    patches = top_patches(index, channel, model, extra, kind)
    if not patches:
        st.info(_("No image in the gallery gives this channel a response."))
        return
    st.image(
        patch_grid(patches),
        caption=_("channel {channel}: the {count} strongest responses in the gallery").format(
            channel=channel, count=len(patches)
        ),
    )
    rank = index.rank_of(channel, float(fm224.channel_max[channel]))
    st.markdown(
        _(
            "**Your image** gives channel {channel} a peak of {value} at shorter side {side}: it would rank "
            "**#{rank}** among these {count}."
        ).format(
            channel=channel,
            value=f"{fm224.channel_max[channel]:.2f}",
            side=INDEX_SHORT_SIDE,
            rank=rank,
            count=len(patches),
        )
    )


def main() -> None:
    ui.start_page()
    st.title(_("Strongest activations"))
    st.markdown(
        _(
            "The paper's Figure 2 shows conv5 maps with arrows at their strongest responses, and beside them the "
            "images that excite those filters most: conv5 filters respond to parts (a wheel, a face, text) at any "
            "position and image size (He et al., Sec. 2.1; see {notes})."
        ).format(notes=ui.NOTES)
    )
    model = ui.current_model()
    img, _bytes = ui.current_image()
    fm = ui.cached_feature_maps(256)
    enc = encode_image(img.resize((fm.input_hw[1], fm.input_hw[0])))
    geom = feature_geometry(model, fm.input_hw, fm.conv5.shape[-2:])
    ui.measured_field_note(model)
    kind = box_kind(geom)
    st.subheader(_("The channels that respond most to your image"))
    drawn, _which = ui.response_maps(fm, key="act_clipped")
    image_panel(fm, drawn, geom, enc, kind)
    st.subheader(_("Any channel"))
    c = fm.conv5.shape[0]
    channel = int(
        st.number_input(
            _("Channel (0 to {last})").format(last=c - 1),
            0,
            c - 1,
            int(fm.ranking[0]),
            key=f"act_channel-{ui.image_key()}",
        )
    )
    channel_row(fm, drawn, geom, enc, channel, 3, kind, key="picked")
    st.subheader(_("What excites channel {channel} most, over a gallery").format(channel=channel))
    gallery_panel(model, channel, ui.cached_feature_maps(INDEX_SHORT_SIDE), kind)


main()
