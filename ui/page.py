"""What a page asks for first: the chosen model and image, or a clear message and a stop."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from spp_viz import registry
from spp_viz.explain.feature_maps import FeatureMaps
from spp_viz.images import ImageError
from spp_viz.models import SPPNet
from spp_viz.weights import WeightsError

from .cache import decode_image, get_model
from .session import context
from .text import md

NOTES = "the paper notes (He et al., arXiv 1406.4729)"


def start_page() -> None:
    """Every page's first call, before any widget: this run's sidebar choices exist (``context``).

    A deep link as a fresh server's first request (``/Class``, a class opening its link) runs the page in Streamlit's
    legacy ``pages/`` mode, without app.py; ``context`` then leaves that mode with a rerun. Left later, in the run of
    a click, that rerun drops the click. ``ui.session.leave_legacy_pages_mode`` reaches into Streamlit's internals;
    tests/test_layout.py checks them against the pinned Streamlit and that every page starts here.
    """
    context()


@functools.cache
def page_paths(folder: str) -> tuple[st.Page, ...]:
    """One st.Page per pages/NN_Title.py, in file-name order, made once per process: app.py runs on every click,
    and making them (each resolves its file's path) took 8% of the server's time under a burst of 30 students.
    st.navigation marks the page it runs on the object: each run takes copies (``copy.copy``)."""
    return tuple(st.Page(str(p)) for p in sorted(Path(folder).glob("[0-9]*.py")))


def current_model() -> SPPNet:
    """The chosen model, or an error box and a stop when it cannot be loaded."""
    ctx = context()
    try:
        model = get_model(ctx.model)
    except (WeightsError, ValueError) as e:
        st.error(f"**{md(registry.title(ctx.model_name))} could not be loaded.** {md(e)}")
        st.stop()
    if not model.pretrained:
        st.warning(
            f"**{registry.title(ctx.model_name)}** has random weights: its conv5 maps and pyramid work, but its "
            "predictions mean nothing. Give a weights file in the sidebar to use trained weights."
        )
    return model


def current_image() -> tuple[Image.Image, bytes]:
    """The chosen image (decoded, checked) and its bytes, or a message and a stop."""
    ctx = context()
    if ctx.image is None:
        st.info("Upload a photo in the sidebar, or pick a sample, to begin.")
        st.stop()
    try:
        img = decode_image(ctx.image.data, ctx.image.name)
    except ImageError as e:
        st.error(f"**This image cannot be used:** {md(e)}")
        st.stop()
    if "downsized_from" in img.info:
        w0, h0 = img.info["downsized_from"]
        st.caption(f"{md(ctx.image_name)} was shrunk from {w0} x {h0} to {img.width} x {img.height} pixels on reading.")
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
    how = f"{model.name}'s conv5 geometry is measured, not typed in (its cells' gradient footprint, see the README)"
    if not footprint.covers:
        st.caption(f"{how}: receptive field {footprint.describe()}.")  # "W x H pixels (W x H), stride S"
        return
    st.caption(
        f"{how}: {footprint.describe()}; stride {footprint.stride[1]} pixels. The boxes drawn here are each cell's "
        "receptive field cut to the image, so they cover all of it: a cell's place on the grid (one stride step from "
        "the next) still says where its strongest evidence is centred."
    )


def response_maps(fm: FeatureMaps, key: str) -> tuple[np.ndarray, str]:
    """The maps a page draws and their name: before a final clip (the default, and what channels are ranked and
    peaks placed on), or, by a toggle, the clipped map that the pyramid pools."""
    if fm.clip is None:
        return fm.conv5, "conv5"
    ceiling = f"{fm.clip_ceiling:g}"
    if st.toggle(f"Show the clipped map (after {fm.clip}: what the pyramid pools)", key=key):
        st.caption(
            f"After {fm.clip}, values stop at {ceiling}: on this image {fm.saturated_channels} of "
            f"{fm.conv5.shape[0]} channels reach {ceiling} somewhere, so their strongest cells tie."
        )
        return fm.conv5, f"after {fm.clip}"
    st.caption(
        f"Maps **before {fm.clip}** (the batch-norm output): the ranking, the maxima and the arrows use these, "
        f"because after the clip {fm.saturated_channels} of this image's {fm.conv5.shape[0]} channels tie at "
        f"{ceiling}. The pyramid pools the clipped map (the toggle shows it)."
    )
    return fm.responses, f"before {fm.clip}"
