"""What a page asks for first: the chosen model and image, or a clear message and a stop."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from spp_viz import i18n, registry
from spp_viz.explain.feature_maps import FeatureMaps
from spp_viz.i18n import _, lazy_gettext
from spp_viz.images import ImageError
from spp_viz.models import SPPNet
from spp_viz.weights import WeightsError

from .cache import decode_image, get_model
from .language import start_run
from .session import context
from .text import md

NOTES = lazy_gettext("the paper notes (He et al., arXiv 1406.4729)")
# Each page's title in the menu, by its file's name (the URL keeps the file's name in every language).
PAGE_TITLES = {
    "1_Feature_maps": lazy_gettext("Feature maps"),
    "2_Pyramid_pooling": lazy_gettext("Pyramid pooling"),
    "3_Strongest_activations": lazy_gettext("Strongest activations"),
    "4_Crop_warp_SPP": lazy_gettext("Crop warp SPP"),
    "5_Attributions": lazy_gettext("Attributions"),
    "6_Detection": lazy_gettext("Detection"),
    "7_SPP_Lab": lazy_gettext("SPP Lab"),
    "8_Lab_experiments": lazy_gettext("Lab experiments"),
    "9_Class": lazy_gettext("Class"),
}


def start_page() -> None:
    """Every page's first call, before any widget: this run's sidebar choices exist (``context``).

    A deep link as a fresh server's first request (``/Class``, a class opening its link) runs the page in Streamlit's
    legacy ``pages/`` mode, without app.py; ``context`` then leaves that mode with a rerun. Left later, in the run of
    a click, that rerun drops the click. ``ui.session.leave_legacy_pages_mode`` reaches into Streamlit's internals;
    tests/test_layout.py checks them against the pinned Streamlit and that every page starts here.
    """
    start_run()  # the session's language (app.py set it already, unless this run is in the legacy mode)
    context()


@functools.cache
def page_paths(folder: str, lang: str = "en") -> tuple[st.Page, ...]:
    """One st.Page per pages/NN_Title.py, in file-name order, titled in ``lang``, made once per process and language:
    app.py runs on every click, and making them (each resolves its file's path) took 8% of the server's time under a
    burst of 30 students. st.navigation marks the page it runs on the object: each run takes copies (``copy.copy``)."""
    with i18n.use(lang):
        return tuple(st.Page(str(p), title=str(PAGE_TITLES.get(p.stem, p.stem.partition("_")[2].replace("_", " "))))
                     for p in sorted(Path(folder).glob("[0-9]*.py")))  # fmt: skip


def current_model() -> SPPNet:
    """The chosen model, or an error box and a stop when it cannot be loaded."""
    ctx = context()
    try:
        model = get_model(ctx.model)
    except (WeightsError, ValueError) as e:
        title = md(registry.title(ctx.model_name))
        st.error(_("**{model} could not be loaded.** {why}").format(model=title, why=md(e)))
        st.stop()
    if not model.pretrained:
        st.warning(
            _(
                "**{model}** has random weights: its conv5 maps and pyramid work, but its predictions mean nothing. "
                "Give a weights file in the sidebar to use trained weights."
            ).format(model=md(registry.title(ctx.model_name)))
        )
    return model


def current_image() -> tuple[Image.Image, bytes]:
    """The chosen image (decoded, checked) and its bytes, or a message and a stop."""
    ctx = context()
    if ctx.image is None:
        st.info(_("Upload a photo in the sidebar, or pick a sample, to begin."))
        st.stop()
    try:
        img = decode_image(ctx.image.data, ctx.image.name)
    except ImageError as e:
        st.error(_("**This image cannot be used:** {why}").format(why=md(e)))
        st.stop()
    if "downsized_from" in img.info:
        w0, h0 = img.info["downsized_from"]
        st.caption(
            _("{name} was shrunk from {w0} x {h0} to {w} x {h} pixels on reading.").format(
                name=md(ctx.image_name), w0=w0, h0=h0, w=img.width, h=img.height
            )
        )
    return img, ctx.image.data


def smallest_short_side(model: SPPNet, step: int = 32) -> int:
    """A size slider's lowest value: ``step`` pixels, or the network's measured smallest input (Inception-v3's 75)
    rounded up to a multiple of ``step``, so that no position of the slider is refused."""
    return step * -(-max(step, model.spec.min_side) // step)


def measured_field_note(model: SPPNet) -> None:
    """For a network by name (timm, torchvision): its conv5 geometry was measured, and what the drawn boxes mean when
    every cell sees the whole image (squeeze-and-excitation) or more than the image."""
    footprint = model.footprint
    if footprint is None:
        return
    how = _("{model}'s conv5 geometry is measured, not typed in (its cells' gradient footprint, see the README)")
    how = how.format(model=model.name)
    if not footprint.covers:
        # "W x H pixels (W x H), stride S"
        st.caption(_("{how}: receptive field {field}.").format(how=how, field=footprint.describe()))
        return
    st.caption(
        _(
            "{how}: {field}; stride {stride} pixels. The boxes drawn here are each cell's receptive field cut to the "
            "image, so they cover all of it: a cell's place on the grid (one stride step from the next) still says "
            "where its strongest evidence is centred."
        ).format(how=how, field=footprint.describe(), stride=footprint.stride[1])
    )


def response_maps(fm: FeatureMaps, key: str) -> tuple[np.ndarray, str]:
    """The maps a page draws and their name: before a final clip (the default, and what channels are ranked and
    peaks placed on), or, by a toggle, the clipped map that the pyramid pools."""
    if fm.clip is None:
        return fm.conv5, "conv5"
    ceiling = f"{fm.clip_ceiling:g}"
    values = {"clip": fm.clip, "ceiling": ceiling, "tied": fm.saturated_channels, "channels": fm.conv5.shape[0]}
    if st.toggle(_("Show the clipped map (after {clip}: what the pyramid pools)").format(**values), key=key):
        st.caption(
            _(
                "After {clip}, values stop at {ceiling}: on this image {tied} of {channels} channels reach {ceiling} "
                "somewhere, so their strongest cells tie."
            ).format(**values)
        )
        return fm.conv5, _("after {clip}").format(**values)
    st.caption(
        _(
            "Maps **before {clip}** (the batch-norm output): the ranking, the maxima and the arrows use these, because "
            "after the clip {tied} of this image's {channels} channels tie at {ceiling}. The pyramid pools the clipped "
            "map (the toggle shows it)."
        ).format(**values)
    )
    return fm.responses, _("before {clip}").format(**values)
