"""Streamlit glue shared by app.py and the pages: the sidebar, the cached model, per-image cached results.

The library (spp_viz) knows nothing of Streamlit; this module is the only place that caches.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from spp_viz.activations import DEFAULT_CACHE
from spp_viz.attribution import Attribution, hook_count
from spp_viz.attribution import run as run_attribution
from spp_viz.compare import Comparison, compare_views, make_views
from spp_viz.detection import ModeResult, spp_detect
from spp_viz.devices import available_devices, resolve_device
from spp_viz.features import FeatureMaps, compute_feature_maps
from spp_viz.images import ImageError, load_image, samples, to_tensor
from spp_viz.levels import SizeRow, fixed_length_rows, vector_csv
from spp_viz.models import DEFAULT_MODEL, ZOO, SPPNet, WeightsError, load_model
from spp_viz.plots import npy_bytes
from spp_viz.train import LAB_DIR_NAME, lab_models

MAX_UPLOAD_MB = 25  # keep equal to server.maxUploadSize in .streamlit/config.toml
LAB_DIR = DEFAULT_CACHE.parent / LAB_DIR_NAME  # where the Lab saves models: every page can select them
IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"]
NOTES = "the paper notes (He et al., arXiv 1406.4729)"


@dataclass(frozen=True)
class Context:
    """What the sidebar chose, for every page of this run."""

    model_name: str
    device: str  # resolved: "cpu", "cuda", ...
    weights: str | None
    image_name: str
    image_bytes: bytes | None
    gallery_folder: str  # for the strongest-activations page; "" when none


# What this server process has loaded, for the sidebar's server panel: a count of loads (each model should load
# once per process) and weak references to the models still cached (to count hooks left on them).
_LOADS = {"count": 0}
_LOADED: weakref.WeakSet[SPPNet] = weakref.WeakSet()
_LOADS_LOCK = threading.Lock()


@st.cache_resource(max_entries=4, show_spinner="Loading the model (once per server) ...")
def get_model(name: str, device: str, weights: str | None) -> tuple[SPPNet, threading.Lock]:
    """One model per (name, device, weights), shared by every session; the lock guards hook-based tools."""
    model = load_model(name, device=device, weights=weights)
    with _LOADS_LOCK:
        _LOADS["count"] += 1
        _LOADED.add(model)
    return model, threading.Lock()


@st.cache_data(max_entries=64, show_spinner=False)
def decode_image(data: bytes, name: str | None = None) -> Image.Image:
    """load_image, cached on the bytes (not on the UploadedFile object)."""
    return load_image(data, name=name)


@st.cache_data(max_entries=32, show_spinner="Running the network ...")
def feature_maps(
    name: str, device: str, weights: str | None, data: bytes, image_name: str, short_side: int | None
) -> FeatureMaps:
    """conv5, ranking and predictions for one image at one size, cached on the image bytes."""
    model, _ = get_model(name, device, weights)
    return compute_feature_maps(model, decode_image(data, image_name), short_side)


@st.cache_data(max_entries=32, show_spinner="Running the conv layers at several sizes ...")
def fixed_length(
    name: str, device: str, weights: str | None, data: bytes, image_name: str, levels: tuple[int, ...]
) -> list[SizeRow]:
    """conv5 grids and SPP lengths of one image at several sizes, cached on the image bytes."""
    model, _ = get_model(name, device, weights)
    return fixed_length_rows(model, decode_image(data, image_name), levels)


@st.cache_data(max_entries=32, show_spinner="Running the three views ...")
def comparison(
    name: str, device: str, weights: str | None, data: bytes, image_name: str, short_side: int, multi: bool
) -> Comparison:
    """Crop / warp / full-image predictions of one image, cached on the image bytes."""
    model, _ = get_model(name, device, weights)
    return compare_views(model, decode_image(data, image_name), short_side, multi)


@st.cache_data(max_entries=48, show_spinner=False)
def attributions(
    name: str,
    device: str,
    weights: str | None,
    data: bytes,
    image_name: str,
    short_side: int,
    method: str,
    target: int,
    noise_tunnel: bool,
) -> dict[str, Attribution]:
    """One attribution method on the three views, cached; Captum runs under the shared model's lock."""
    model, lock = get_model(name, device, weights)
    views = make_views(decode_image(data, image_name), model.input_size, short_side)
    return {
        view: run_attribution(method, model, to_tensor(v.image), target, lock=lock, noise_tunnel=noise_tunnel)
        for view, v in views.items()
    }


@st.cache_data(max_entries=16, show_spinner="Proposals and one conv pass ...")
def spp_detection(
    name: str,
    device: str,
    weights: str | None,
    data: bytes,
    image_name: str,
    mode: str,
    windows: int,
    scales: tuple[int, ...],
) -> ModeResult:
    """spp_detect (timed proposals, then SPP-net mode), cached on the image bytes."""
    model, _ = get_model(name, device, weights)
    return spp_detect(model, decode_image(data, image_name), mode, windows, scales)


# Download buttons get bytes, not callables. A callable's file is made on the click and belongs to no session, so
# Streamlit deletes it at the end of the next two script runs of any session: with a class working at once, the
# browser's fetch then finds no file and the download fails (seen in tests/test_load.py). Costly encodings are
# cached here instead, so a redraw does not pay for them again.


@st.cache_data(max_entries=32, show_spinner=False)
def vector_files(vector: np.ndarray, levels: tuple[int, ...], channels: int) -> tuple[bytes, bytes]:
    """CSV and .npy bytes of an SPP vector (the CSV has k x M rows), cached on the vector."""
    return vector_csv(vector, levels, channels).encode(), npy_bytes(vector)


def sidebar() -> Context:
    """Draw the shared sidebar (model, device, image) and keep its choices in session state."""
    with st.sidebar:
        st.header("Model")
        options = [*ZOO, *(f"lab:{p}" for p in lab_models(LAB_DIR))]
        name = st.selectbox(
            "Network", options, format_func=model_title, key="model_name", index=options.index(DEFAULT_MODEL)
        )
        weights = None
        if name in ZOO:
            st.caption(f"Weights: {ZOO[name].weights}.")
            weights = (
                st.text_input(
                    "Weights file (optional)",
                    key=f"weights_{name}",
                    placeholder="/path/to/weights.pth or .safetensors",
                    help="A checkpoint on the computer running the app, read with weights_only=True.",
                ).strip()
                or None
            )
        else:
            st.caption("Trained in the SPP Lab; its class names come with it.")
        choices = ["auto", *available_devices()]
        wanted = st.selectbox("Device", choices, key="device", help="auto picks CUDA, then Apple MPS, then the CPU.")
        device = str(resolve_device(wanted))
        st.caption(f"Running on **{device}**.")

        st.header("Image")
        source = st.radio("Source", ["Sample", "Upload"], horizontal=True, key="image_source")
        image_name, image_bytes = "", None
        if source == "Sample":
            options = samples()
            pick = st.selectbox(
                "Sample photo", range(len(options)), format_func=lambda i: options[i].title, key="sample"
            )
            sample = options[pick]
            image_name, image_bytes = sample.file, sample.path.read_bytes()
            st.caption(f"{sample.credit}; {sample.licence}.")
        else:
            up = st.file_uploader(
                "Your photo",
                type=IMAGE_TYPES,
                key="upload",
                help=f"JPEG, PNG, GIF, WebP, BMP or TIFF, at most {MAX_UPLOAD_MB} MB. "
                "Large photos are shrunk to 2048 pixels on the longer side.",
            )
            if up is not None:
                image_name, image_bytes = up.name, up.getvalue()
                remember_upload(image_name, image_bytes)
            st.caption(f"Up to {MAX_UPLOAD_MB} MB; the photo stays on the server that runs this app.")
        with st.expander("Gallery folder"):
            folder = st.text_input(
                "Folder of images on this computer",
                key="gallery_folder",
                placeholder="/path/to/photos",
                help="Indexed on the Strongest activations page: the images that excite each conv5 filter most.",
            ).strip()
        server_panel()
    ctx = Context(name, device, weights, image_name, image_bytes, folder)
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
        with _LOADS_LOCK:
            loads, models = _LOADS["count"], list(_LOADED)
        rss = rss_mb()
        st.markdown(
            f"- Model loads in this process: **{loads}** (each model loads once, then every session shares it)\n"
            f"- Models held: **{len(models)}**; hooks on them now: **{sum(hook_count(m) for m in models)}** "
            "(0 unless an attribution is running)\n"
            + (f"- Memory in use (RSS): **{rss:.0f} MB**" if rss is not None else "- Memory in use: unknown here")
        )


def model_title(name: str) -> str:
    """How the sidebar names a zoo model or a Lab model ("lab:PATH")."""
    return ZOO[name].title if name in ZOO else f"Lab: {Path(name[4:]).stem}"


MAX_REMEMBERED_UPLOADS = 20


def remember_upload(name: str, data: bytes) -> None:
    """Keep this session's uploads (the last 20) for the gallery of the strongest-activations page."""
    uploads: dict[str, tuple[str, bytes]] = st.session_state.setdefault("uploads", {})
    uploads[hashlib.sha1(data).hexdigest()] = (name, data)
    while len(uploads) > MAX_REMEMBERED_UPLOADS:
        uploads.pop(next(iter(uploads)))


def session_uploads() -> dict[str, tuple[str, bytes]]:
    """sha1 -> (name, bytes) of the images uploaded in this session."""
    return st.session_state.get("uploads", {})


def leave_legacy_pages_mode(force: bool = False) -> None:
    """Rerun out of Streamlit's legacy pages/ mode when this run is in it; app.py calls it first.

    A folder named pages/ starts Streamlit in its legacy multipage mode until app.py's st.navigation call turns
    that off for the process. A run in that mode draws the sidebar's widgets under other ids, so a user's first
    click on one of them (say "Upload" on a fresh server's home page) was lost. Each run asks whether it is itself
    in that mode: sessions that open together on a fresh server (a class) start their first runs in it before any
    of them has left it, and AppTest starts every run in it.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState, get_script_run_ctx

    ctx = get_script_run_ctx()
    # In the legacy mode Streamlit runs app.py as a page, under that page's hash instead of the main script's.
    legacy = ctx is not None and ThreadState.get().active_script_hash != ctx.pages_manager.main_script_hash
    if force or legacy:
        PagesManager.uses_pages_directory = False
        st.rerun()


def context() -> Context:
    """The sidebar's choices for this run (app.py draws the sidebar before any page runs)."""
    if "ctx" not in st.session_state:
        # In the legacy pages/ mode a deep link such as /Feature_maps, as a server's first request, runs the page
        # without app.py: leave that mode and rerun, so app.py draws the sidebar and routes here.
        leave_legacy_pages_mode(force=True)
    return st.session_state["ctx"]


def current_model() -> SPPNet:
    """The chosen model, or an error box and a stop when it cannot be loaded."""
    ctx = context()
    try:
        model, _ = get_model(ctx.model_name, ctx.device, ctx.weights)
    except (WeightsError, ValueError) as e:
        st.error(f"**{model_title(ctx.model_name)} could not be loaded.** {e}")
        st.stop()
    if not model.pretrained:
        st.warning(
            f"**{model_title(ctx.model_name)}** has random weights: its conv5 maps and pyramid work, but its "
            "predictions mean nothing. Give a weights file in the sidebar to use trained weights."
        )
    return model


def current_image() -> tuple[Image.Image, bytes]:
    """The chosen image (decoded, checked) and its bytes, or a message and a stop."""
    ctx = context()
    if ctx.image_bytes is None:
        st.info("Upload a photo in the sidebar, or pick a sample, to begin.")
        st.stop()
    try:
        img = decode_image(ctx.image_bytes, ctx.image_name)
    except ImageError as e:
        st.error(f"**This image cannot be used:** {e}")
        st.stop()
    if "downsized_from" in img.info:
        w0, h0 = img.info["downsized_from"]
        st.caption(f"{ctx.image_name} was shrunk from {w0} x {h0} to {img.width} x {img.height} pixels on reading.")
    return img, ctx.image_bytes


def image_key() -> str:
    """Identifies the current model and image, for widgets whose sensible default depends on both."""
    ctx = context()
    digest = hashlib.sha1(ctx.image_bytes or b"").hexdigest()[:12]
    return f"{ctx.model_name}-{digest}"


def _image_context() -> Context:
    ctx = context()
    if ctx.image_bytes is None:
        raise RuntimeError("call current_image() first: there is no image yet")
    return ctx


def cached_feature_maps(short_side: int | None) -> FeatureMaps:
    """feature_maps() for the current model and image."""
    ctx = _image_context()
    return feature_maps(ctx.model_name, ctx.device, ctx.weights, ctx.image_bytes, ctx.image_name, short_side)


def cached_comparison(short_side: int = 256, multi: bool = False) -> Comparison:
    """comparison() for the current model and image."""
    ctx = _image_context()
    return comparison(ctx.model_name, ctx.device, ctx.weights, ctx.image_bytes, ctx.image_name, short_side, multi)


def cached_attributions(method: str, target: int, noise_tunnel: bool, short_side: int = 256) -> dict[str, Attribution]:
    """attributions() for the current model and image."""
    ctx = _image_context()
    return attributions(
        ctx.model_name,
        ctx.device,
        ctx.weights,
        ctx.image_bytes,
        ctx.image_name,
        short_side,
        method,
        target,
        noise_tunnel,
    )


def cached_spp_detection(mode: str, windows: int, scales: tuple[int, ...]) -> ModeResult:
    """spp_detection() for the current model and image."""
    ctx = _image_context()
    return spp_detection(
        ctx.model_name, ctx.device, ctx.weights, ctx.image_bytes, ctx.image_name, mode, windows, tuple(scales)
    )


def cached_fixed_length(levels: tuple[int, ...]) -> list[SizeRow]:
    """fixed_length() for the current model and image."""
    ctx = _image_context()
    return fixed_length(ctx.model_name, ctx.device, ctx.weights, ctx.image_bytes, ctx.image_name, tuple(levels))
