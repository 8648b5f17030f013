"""The one place that caches: models for the server's life (shared by every session), per-image results keyed on
the image's bytes, and the bytes of files the pages offer for download.

Every per-image function takes a ``Subject`` (the model choice and the image, frozen and hashable) instead of loose
arguments, and the ``cached_*`` helpers fill it in from this session's sidebar.
"""

from __future__ import annotations

import collections
import io
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from spp_viz import i18n, registry
from spp_viz.explain import shipped
from spp_viz.explain.attribution import Attribution, LevelShare, level_contributions
from spp_viz.explain.attribution import run as run_attribution
from spp_viz.explain.bag_of_words import ShuffleResult, shuffle_test
from spp_viz.explain.feature_maps import FeatureMaps, compute_feature_maps
from spp_viz.explain.level_views import SizeRow, fixed_length_rows
from spp_viz.explain.view_summary import ViewsSummary, head_findings, side_by_side
from spp_viz.explain.views import Comparison, View, compare_views, make_views
from spp_viz.gallery import GalleryItem
from spp_viz.i18n import N_
from spp_viz.images import load_image, to_tensor
from spp_viz.models import SPPNet
from spp_viz.plots.exports import npy_bytes, png_bytes
from spp_viz.plots.views import crop_warp_spp, view_picture
from spp_viz.progress import Progress
from spp_viz.pyramid import vector_csv
from spp_viz.weights import Weights

from . import spinner
from .job_queue import current_job
from .model_shelf import ModelShelf
from .session import UPLOAD_PREFIX, ImageChoice, ModelChoice, Subject, context, session_weights

if TYPE_CHECKING:  # the detection and Lab code is imported where it is used: the home page needs neither
    from spp_viz.detection.data import DetectionSet
    from spp_viz.detection.windows import ModeResult


@st.cache_resource(show_spinner=False)
def model_shelf() -> ModelShelf:
    return ModelShelf()


def get_model(choice: ModelChoice) -> SPPNet:
    """One model per choice, shared by every session (read only: nothing may change it or hook it).

    A model the server does not hold is built on the heavy-work queue, never on a page's own thread; a session that
    asks while it is built waits for the same build. The sidebar asks first and shows the build's place and progress
    (``ui.heavy.build_model``); a later ask here (after the shelf dropped the model) waits without drawing.
    """
    if model_shelf().held(choice) or current_job() is not None or get_script_run_ctx() is None:
        return shelved(choice)  # held; or on a worker already; or the server's own warm-up
    from .builds import build_model  # it imports this module

    return build_model(choice, show=False)


def shelved(choice: ModelChoice, progress: Progress | None = None, weights: Weights = None) -> SPPNet:
    """The model from the shelf, loaded here (on this thread) when it is not held; ``weights`` are the choice's own,
    read on the page's thread beforehand (``choice_weights``) when this runs on a worker."""
    base_name = registry.base_of(choice.name)
    if base_name is None:
        return model_shelf().get(choice, lambda: _load(choice, progress=progress, weights=weights))
    # A pyramid-head model reads the cached base network's conv layers: one copy of Lite0 for both menu entries.
    # The base is asked for again after the head, so that it is the more recently used of the two: the shelf drops
    # the head (50 MB in memory, rebuilt from its file) before the base, never the base while a head still holds
    # its layers (a later ask for Lite0 would then load a second copy).
    base_choice = ModelChoice(base_name, choice.device)
    model = model_shelf().get(choice, lambda: _load(choice, shelved(base_choice), progress))
    shelved(base_choice)
    return model


def choice_weights(choice: ModelChoice) -> Weights:
    """The weights ``choice`` names: a path, or this session's upload (only its digest is hashed as the key; the
    bytes come from this session, never from the server's disk). Read on the page's own thread."""
    if choice.weights is not None and choice.weights.startswith(UPLOAD_PREFIX):
        return session_weights(choice.weights)
    return choice.weights


def _load(
    choice: ModelChoice, base: SPPNet | None = None, progress: Progress | None = None, weights: Weights = None
) -> SPPNet:
    weights = weights if weights is not None else choice_weights(choice)
    return registry.load(choice.name, device=choice.device, weights=weights, base=base, progress=progress)


def loaded_models() -> tuple[int, list[SPPNet]]:
    """(model loads in this process, the models held now), for the server panel."""
    shelf = model_shelf()
    return shelf.loads, [m for _key, m in shelf.models()]


@st.cache_data(max_entries=64, show_spinner=False)
def decode_image(data: bytes, name: str | None = None) -> Image.Image:
    """load_image, cached on the bytes (not on the UploadedFile object)."""
    return load_image(data, name=name)


def model_and_image(subject: Subject) -> tuple[SPPNet, Image.Image]:
    return get_model(subject.model), decode_image(subject.image.data, subject.image.name)


@spinner.cache_data(N_("Running the network ..."), max_entries=32)
def feature_maps(subject: Subject, short_side: int | None) -> FeatureMaps:
    """conv5, ranking and predictions for one image at one size."""
    model, img = model_and_image(subject)
    return compute_feature_maps(model, img, short_side)


@spinner.cache_data(N_("Running the conv layers at several sizes ..."), max_entries=32)
def fixed_length(subject: Subject, levels: tuple[int, ...], lang: str = "en") -> list[SizeRow]:
    """conv5 grids and SPP lengths of one image at several sizes (each size named in ``lang``: part of the key)."""
    model, img = model_and_image(subject)
    with i18n.use(lang):
        return fixed_length_rows(model, img, levels)


@spinner.cache_data(N_("Running the three views ..."), max_entries=32)
def comparison(subject: Subject, short_side: int, multi: bool) -> Comparison:
    """Crop / warp / full-image predictions of one image."""
    model, img = model_and_image(subject)
    return compare_views(model, img, short_side, multi)


@spinner.cache_data(N_("Shuffling the tiles and running both pictures ..."), max_entries=32)
def shuffle(subject: Subject, k: int, seed: int) -> ShuffleResult:
    """The bag-of-words shuffle test on one image: two forward passes."""
    model, img = model_and_image(subject)
    return shuffle_test(model, img, k, seed)


@st.cache_data(max_entries=48, show_spinner=False)
def attributions(
    subject: Subject, short_side: int, method: str, target: int, noise_tunnel: bool
) -> dict[str, Attribution]:
    """One attribution method on the three views, in the page's own run (GradCAM: ui.heavy.attributions sends the slow
    methods through the queue); none holds a lock, none leaves a hook on the shared model."""
    model, img = model_and_image(subject)
    views = make_views(img, model.input_size, short_side)
    return {
        view: run_attribution(method, model, to_tensor(v.image), target, noise_tunnel=noise_tunnel)
        for view, v in views.items()
    }


KEPT_FEATURES = 256  # SPP feature rows a cached detection result keeps: those R-CNN's cosine is compared on


@spinner.cache_data(N_("Proposals and one conv pass ..."), max_entries=16)
def spp_detection(subject: Subject, mode: str, windows: int, scales: tuple[int, ...]) -> ModeResult:
    """classify_windows (timed proposals, then SPP-net mode), keeping the first windows' feature vectors only: all
    2,000 are 64,000 numbers each, 520 MB that st.cache_data pickled in 0.7 s on every first visit."""
    from spp_viz.detection.classify import classify_windows

    model, img = model_and_image(subject)
    return classify_windows(model, img, mode, windows, scales, keep_features=KEPT_FEATURES)


@spinner.cache_resource(N_("Reading the detection data ..."), max_entries=4)
def detection_sets(data: str, counts: tuple[int, int]) -> tuple[DetectionSet, DetectionSet]:
    """(training, test) sets: the built-in scenes (counts = their sizes) or a VOC folder (the teacher's, with server
    paths). Read only by every session; images are drawn or read when used."""
    from spp_viz.detection.data import load_data, synthetic_scenes

    if data == "synthetic":
        return synthetic_scenes("train", counts[0]), synthetic_scenes("test", counts[1])
    train, test = load_data(data, max_images=max(counts))
    return train.limit(counts[0]), test.limit(counts[1])


@spinner.cache_data(N_("Reading the archive ..."), max_entries=2, ttl=600)
def class_zip(data: bytes, lang: str = "en") -> tuple[dict[str, list[GalleryItem]], list[tuple[str, str]]]:
    """read_class_zip, cached on the archive's bytes (each rerun of the Lab page would read it again) and on the
    language its skipped files' reasons are written in."""
    from spp_viz.lab.data import read_class_zip

    with i18n.use(lang):
        return read_class_zip(data)


def cached_class_zip(data: bytes) -> tuple[dict[str, list[GalleryItem]], list[tuple[str, str]]]:
    return class_zip(data, i18n.language())


@dataclass(frozen=True)
class ShippedViews:
    """The shipped views runs as the Crop, warp or SPP page shows them: the sidebar network's run first (else the
    SPP-net's), and the two heads side by side with what their paired differences say."""

    first: ViewsSummary
    one: ViewsSummary | None  # Lite0's one-level head
    four: ViewsSummary | None  # the distilled {6,3,2,1} head
    side: list[dict[str, str]]  # side_by_side(one, four), [] without both
    heads: list[str]  # head_findings(one, four)


@st.cache_resource(show_spinner=False)
def shipped_views(model_name: str, lang: str = "en") -> ShippedViews | None:
    """Read and worked out once per server and language (its table and sentences are in ``lang``), shared read-only:
    the paired bootstraps between the two heads took a fifth of the server's time when 30 students opened the page at
    once."""
    one, four = shipped.heads("views")
    first = shipped.first_of(one, four, model_name)
    if first is None:
        return None
    both = one is not None and four is not None
    with i18n.use(lang):
        return ShippedViews(first, one, four, side_by_side(one, four) if both else [],
                            head_findings(one, four) if both else [])  # fmt: skip


# Download buttons get bytes, not callables. A callable's file is made on the click and belongs to no session, so
# Streamlit deletes it at the end of the next two script runs of any session: with a class working at once, the
# browser's fetch then finds no file and the download fails (seen in tests/test_load.py). Costly encodings are
# cached here instead, so a redraw does not pay for them again.


@st.cache_data(max_entries=32, show_spinner=False)
def vector_files(vector: np.ndarray, levels: tuple[int, ...], channels: int) -> tuple[bytes, bytes]:
    """CSV and .npy bytes of an SPP vector (the CSV has k x M rows), cached on the vector."""
    return vector_csv(vector, levels, channels).encode(), npy_bytes(vector)


# Pictures encoded once per photo and setting, at the size they are shown: st.image would encode a picture again on
# every run (resizing and PNG encoding took a tenth of the server's time under a burst of 30 students).


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def approaches_picture(image: ImageChoice) -> bytes:
    """The home page's strip: what crop, warp and SPP feed the network, for this photo, labelled in this session's
    language."""
    return _approaches_picture(image, i18n.language())


@st.cache_data(max_entries=32, show_spinner=False)
def _approaches_picture(image: ImageChoice, lang: str) -> bytes:  # the language is part of the key: its labels
    with i18n.use(lang):
        return jpeg_bytes(crop_warp_spp(decode_image(image.data, image.name)))


@st.cache_data(max_entries=32, show_spinner=False)
def views_shown(subject: Subject, short_side: int) -> tuple[dict[str, View], dict[str, bytes]]:
    """The three views of the photo at ``short_side`` and their pictures (what each keeps, drawn on the photo)."""
    model, img = model_and_image(subject)
    views = make_views(img, model.input_size, short_side)
    return views, {name: jpeg_bytes(view_picture(view, img)) for name, view in views.items()}


@spinner.cache_data(N_("Zeroing each pyramid level in turn ..."), max_entries=32)
def level_shares(subject: Subject, short_side: int, target: int) -> list[LevelShare]:
    """How much ``target``'s logit falls when each pyramid level is zeroed, on the full-image view at ``short_side``."""
    views, _pictures = views_shown(subject, short_side)
    return level_contributions(get_model(subject.model), to_tensor(views["full"].image), target)


@st.cache_data(max_entries=64, show_spinner=False)
def channel_overlay(subject: Subject, short_side: int | None, clipped: bool, channel: int, alpha: float) -> bytes:
    """One conv5 channel stretched over the input (PNG: shown, and offered as the download)."""
    from spp_viz.plots.maps import overlay  # matplotlib's colour maps: not for the home page

    fm = feature_maps(subject, short_side)
    _model, img = model_and_image(subject)
    maps = fm.conv5 if clipped else fm.responses
    return png_bytes(overlay(img.resize((fm.input_hw[1], fm.input_hw[0])), maps[channel], alpha))


@st.cache_data(max_entries=16, show_spinner=False)
def maps_npy(subject: Subject, short_side: int | None, clipped: bool) -> bytes:
    """All of conv5 (or the maps before its clip) as .npy bytes, for the download."""
    fm = feature_maps(subject, short_side)
    return npy_bytes(fm.conv5 if clipped else fm.responses)


# For this session's model and image (call ui.current_image() first).


def cached_feature_maps(short_side: int | None) -> FeatureMaps:
    return feature_maps(context().subject, short_side)


def cached_channel_overlay(short_side: int | None, clipped: bool, channel: int, alpha: float) -> bytes:
    return channel_overlay(context().subject, short_side, clipped, channel, alpha)


def cached_maps_npy(short_side: int | None, clipped: bool) -> bytes:
    return maps_npy(context().subject, short_side, clipped)


def cached_views_shown(short_side: int) -> tuple[dict[str, View], dict[str, bytes]]:
    return views_shown(context().subject, short_side)


def cached_level_shares(short_side: int, target: int) -> list[LevelShare]:
    return level_shares(context().subject, short_side, target)


def cached_comparison(short_side: int = 256, multi: bool = False) -> Comparison:
    return comparison(context().subject, short_side, multi)


def cached_shuffle(k: int, seed: int) -> ShuffleResult:
    return shuffle(context().subject, k, seed)


def cached_spp_detection(mode: str, windows: int, scales: tuple[int, ...]) -> ModeResult:
    return spp_detection(context().subject, mode, windows, tuple(scales))


def cached_fixed_length(levels: tuple[int, ...]) -> list[SizeRow]:
    return fixed_length(context().subject, tuple(levels), i18n.language())


# Results of heavy jobs (ui.jobs), which run on worker threads where st.cache_data cannot record them.


class SharedResults:
    """Results of heavy jobs that any session may reuse (keyed by what they depend on), the oldest dropped first."""

    def __init__(self, max_entries: int = 48) -> None:
        self._items: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def shared_results() -> SharedResults:
    return SharedResults()
