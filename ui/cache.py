"""The one place that caches: models for the server's life (shared by every session), per-image results keyed on
the image's bytes, and the bytes of files the pages offer for download.

Every per-image function takes a ``Subject`` (the model choice and the image, frozen and hashable) instead of loose
arguments, and the ``cached_*`` helpers fill it in from this session's sidebar.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import streamlit as st
from PIL import Image

from spp_viz import registry
from spp_viz.attribution import Attribution
from spp_viz.attribution import run as run_attribution
from spp_viz.detection import ModeResult, spp_detect
from spp_viz.features import FeatureMaps, compute_feature_maps
from spp_viz.images import load_image, to_tensor
from spp_viz.levels import SizeRow, fixed_length_rows
from spp_viz.models import SPPNet
from spp_viz.plots.exports import npy_bytes
from spp_viz.pyramid import vector_csv
from spp_viz.views import Comparison, compare_views, make_views

from .session import ModelChoice, Subject, context

# What this server process has loaded, for the sidebar's server panel: a count of loads (each model should load
# once per process) and weak references to the models still cached (to count hooks left on them).
_LOADS = {"count": 0}
_LOADED: weakref.WeakSet[SPPNet] = weakref.WeakSet()
_LOADS_LOCK = threading.Lock()


@st.cache_resource(max_entries=4, show_spinner="Loading the model (once per server) ...")
def get_model(choice: ModelChoice) -> tuple[SPPNet, threading.Lock]:
    """One model per choice, shared by every session; the lock guards hook-based tools."""
    model = registry.load(choice.name, device=choice.device, weights=choice.weights)
    with _LOADS_LOCK:
        _LOADS["count"] += 1
        _LOADED.add(model)
    return model, threading.Lock()


def loaded_models() -> tuple[int, list[SPPNet]]:
    """(model loads in this process, the models still cached), for the server panel."""
    with _LOADS_LOCK:
        return _LOADS["count"], list(_LOADED)


@st.cache_data(max_entries=64, show_spinner=False)
def decode_image(data: bytes, name: str | None = None) -> Image.Image:
    """load_image, cached on the bytes (not on the UploadedFile object)."""
    return load_image(data, name=name)


def _model_and_image(subject: Subject) -> tuple[SPPNet, threading.Lock, Image.Image]:
    model, lock = get_model(subject.model)
    return model, lock, decode_image(subject.image.data, subject.image.name)


@st.cache_data(max_entries=32, show_spinner="Running the network ...")
def feature_maps(subject: Subject, short_side: int | None) -> FeatureMaps:
    """conv5, ranking and predictions for one image at one size."""
    model, _, img = _model_and_image(subject)
    return compute_feature_maps(model, img, short_side)


@st.cache_data(max_entries=32, show_spinner="Running the conv layers at several sizes ...")
def fixed_length(subject: Subject, levels: tuple[int, ...]) -> list[SizeRow]:
    """conv5 grids and SPP lengths of one image at several sizes."""
    model, _, img = _model_and_image(subject)
    return fixed_length_rows(model, img, levels)


@st.cache_data(max_entries=32, show_spinner="Running the three views ...")
def comparison(subject: Subject, short_side: int, multi: bool) -> Comparison:
    """Crop / warp / full-image predictions of one image."""
    model, _, img = _model_and_image(subject)
    return compare_views(model, img, short_side, multi)


@st.cache_data(max_entries=48, show_spinner=False)
def attributions(
    subject: Subject, short_side: int, method: str, target: int, noise_tunnel: bool
) -> dict[str, Attribution]:
    """One attribution method on the three views; Captum runs under the shared model's lock."""
    model, lock, img = _model_and_image(subject)
    views = make_views(img, model.input_size, short_side)
    return {
        view: run_attribution(method, model, to_tensor(v.image), target, lock=lock, noise_tunnel=noise_tunnel)
        for view, v in views.items()
    }


@st.cache_data(max_entries=16, show_spinner="Proposals and one conv pass ...")
def spp_detection(subject: Subject, mode: str, windows: int, scales: tuple[int, ...]) -> ModeResult:
    """spp_detect (timed proposals, then SPP-net mode)."""
    model, _, img = _model_and_image(subject)
    return spp_detect(model, img, mode, windows, scales)


# Download buttons get bytes, not callables. A callable's file is made on the click and belongs to no session, so
# Streamlit deletes it at the end of the next two script runs of any session: with a class working at once, the
# browser's fetch then finds no file and the download fails (seen in tests/test_load.py). Costly encodings are
# cached here instead, so a redraw does not pay for them again.


@st.cache_data(max_entries=32, show_spinner=False)
def vector_files(vector: np.ndarray, levels: tuple[int, ...], channels: int) -> tuple[bytes, bytes]:
    """CSV and .npy bytes of an SPP vector (the CSV has k x M rows), cached on the vector."""
    return vector_csv(vector, levels, channels).encode(), npy_bytes(vector)


# For this session's model and image (call ui.current_image() first).


def cached_feature_maps(short_side: int | None) -> FeatureMaps:
    return feature_maps(context().subject, short_side)


def cached_comparison(short_side: int = 256, multi: bool = False) -> Comparison:
    return comparison(context().subject, short_side, multi)


def cached_attributions(method: str, target: int, noise_tunnel: bool, short_side: int = 256) -> dict[str, Attribution]:
    return attributions(context().subject, short_side, method, target, noise_tunnel)


def cached_spp_detection(mode: str, windows: int, scales: tuple[int, ...]) -> ModeResult:
    return spp_detection(context().subject, mode, windows, tuple(scales))


def cached_fixed_length(levels: tuple[int, ...]) -> list[SizeRow]:
    return fixed_length(context().subject, tuple(levels))


def current_lock() -> threading.Lock:
    """The shared model's lock, for the hook-based tools a page runs itself."""
    return get_model(context().model)[1]
