"""The shared sidebar (model, device, image, gallery folder) and the teacher's server panel."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from spp_viz import registry
from spp_viz.devices import available_devices, resolve_device
from spp_viz.explain.activation_index import INDEX_CACHE
from spp_viz.explain.attribution import hook_count
from spp_viz.images import samples
from spp_viz.lab.train import LAB_DIR_NAME
from spp_viz.models import DEFAULT_MODEL, ZOO
from spp_viz.weights import UploadedWeights

from .cache import loaded_models
from .session import Context, ImageChoice, ModelChoice, remember_upload, remember_weights

MAX_UPLOAD_MB = 25  # keep equal to server.maxUploadSize in .streamlit/config.toml
WEIGHTS_MAX_MB = 250  # AlexNet's checkpoint is 233 MB
SERVER_PATHS_ENV = "SPP_VIZ_SERVER_PATHS"
LAB_DIR = INDEX_CACHE.parent / LAB_DIR_NAME  # where the Lab saves models: every page can select them
IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"]


def server_paths() -> bool:
    """Whether students may name files and folders on the server's disk (``SPP_VIZ_SERVER_PATHS=1``).

    Off by default: on a shared server those paths are the teacher's. Not decided by the client's address, since
    behind a reverse proxy every client looks local.
    """
    return os.environ.get(SERVER_PATHS_ENV, "").strip() == "1"


def _weights_box(name: str) -> str | None:
    """A zoo model's optional weights: an upload (kept in this session only) or, where allowed, a server path."""
    st.caption(f"Weights: {ZOO[name].weights}.")
    with st.expander("Your own weights (optional)"):
        up = st.file_uploader(
            "Weights file (.safetensors, .pth)",
            type=["safetensors", "pth", "pt"],
            key=f"weights_upload_{name}",
            max_upload_size=WEIGHTS_MAX_MB,
            help=f"At most {WEIGHTS_MAX_MB} MB, read with weights_only=True; it stays in your session.",
        )
        if up is not None:
            return remember_weights(UploadedWeights(up.name, up.getvalue()))
        if server_paths():
            path = st.text_input(
                "or a weights file on this computer",
                key=f"weights_{name}",
                placeholder="/path/to/weights.pth or .safetensors",
                help="A checkpoint on the computer running the app (allowed by SPP_VIZ_SERVER_PATHS=1).",
            ).strip()
            return path or None
    return None


def _model_box() -> ModelChoice:
    st.header("Model")
    options = registry.names(LAB_DIR)
    name = st.selectbox(
        "Network", options, format_func=registry.title, key="model_name", index=options.index(DEFAULT_MODEL)
    )
    if registry.is_zoo(name):
        weights = _weights_box(name)
    else:
        weights = None
        base = registry.base_of(name)
        st.caption(
            f"{registry.title(base)}'s conv layers (shared with it) and a pyramid head distilled from its own head; "
            "see the README's model card."
            if base is not None
            else "Trained in the SPP Lab; its class names come with it."
        )
    choices = ["auto", *available_devices()]
    wanted = st.selectbox("Device", choices, key="device", help="auto picks CUDA, then Apple MPS, then the CPU.")
    device = str(resolve_device(wanted))
    st.caption(f"Running on **{device}**.")
    return ModelChoice(name, device, weights)


def _image_box() -> ImageChoice:
    st.header("Image")
    up = st.file_uploader(
        "Your photo",
        type=IMAGE_TYPES,
        key="upload",
        help=f"JPEG, PNG, GIF, WebP, BMP or TIFF, at most {MAX_UPLOAD_MB} MB. "
        "Large photos are shrunk to 2048 pixels on the longer side.",
    )
    options = samples()
    pick = st.selectbox(
        "Sample photo (used while nothing is uploaded)",
        range(len(options)),
        format_func=lambda i: options[i].title,
        key="sample",
    )
    if up is not None:
        remember_upload(up.name, up.getvalue())
        st.caption(f"In use: **{up.name}**, your upload (it stays in your session). Remove it to use the sample.")
        return ImageChoice(up.name, up.getvalue())
    sample = options[pick]
    st.caption(f"In use: **{sample.title}**, a sample ({sample.credit}; {sample.licence}).")
    return ImageChoice(sample.file, sample.path.read_bytes())


def sidebar() -> Context:
    """Draw the shared sidebar (model, device, image) and keep its choices in session state."""
    with st.sidebar:
        model = _model_box()
        image = _image_box()
        folder = ""
        if server_paths():
            with st.expander("Gallery folder"):
                folder = st.text_input(
                    "Folder of images on this computer",
                    key="gallery_folder",
                    placeholder="/path/to/photos",
                    help="Indexed on the Strongest activations page: the images that excite each conv5 filter most.",
                ).strip()
        server_panel()
    ctx = Context(model, image, folder)
    st.session_state["ctx"] = ctx
    return ctx


def rss_mb() -> float | None:
    """This process's resident memory in MB (Linux), or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def server_panel() -> None:
    """For a teacher serving a class: what this server process holds, to check it stays healthy."""
    with st.expander("Server"):
        loads, models = loaded_models()
        rss = rss_mb()
        st.markdown(
            f"- Model loads in this process: **{loads}** (each model loads once, then every session shares it)\n"
            f"- Models held: **{len(models)}**; hooks on them now: **{sum(hook_count(m) for m in models)}** "
            "(0 unless an attribution is running)\n"
            + (f"- Memory in use (RSS): **{rss:.0f} MB**" if rss is not None else "- Memory in use: unknown here")
        )
