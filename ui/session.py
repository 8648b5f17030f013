"""This session's choices: the model and image every page uses, the session's uploads, and Streamlit's legacy mode.

``Subject`` is the one frozen, hashable description of "this model on this image" that the cached functions in
``ui.cache`` take: hashing it hashes the image's bytes, never an UploadedFile object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import streamlit as st

from spp_viz.weights import UploadedWeights, WeightsError

MAX_REMEMBERED_UPLOADS = 20
MAX_SESSION_UPLOAD_MB = 100  # all the photos one session keeps, together: 30 students stay within a few GB


@dataclass(frozen=True)
class ModelChoice:
    """A model as the sidebar names it: any registry name, the resolved device, an optional weights file."""

    name: str
    device: str  # resolved: "cpu", "cuda", ...
    weights: str | None = None  # a path on the server, or "upload:SHA1:FILE" for this session's upload


@dataclass(frozen=True)
class ImageChoice:
    """An image as its bytes (the cache key) and its file name (for messages)."""

    name: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.data).hexdigest()


@dataclass(frozen=True)
class Subject:
    """This model on this image: what every per-image cached result depends on."""

    model: ModelChoice
    image: ImageChoice


@dataclass(frozen=True)
class Context:
    """What the sidebar chose, for every page of this run."""

    model: ModelChoice
    image: ImageChoice | None  # a sample until a photo is uploaded
    gallery_folder: str  # for the strongest-activations page; "" when none

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def weights(self) -> str | None:
        return self.model.weights

    @property
    def image_name(self) -> str:
        return self.image.name if self.image else ""

    @property
    def image_bytes(self) -> bytes | None:
        return self.image.data if self.image else None

    @property
    def subject(self) -> Subject:
        """The model and image together; only once there is an image."""
        if self.image is None:
            raise RuntimeError("call current_image() first: there is no image yet")
        return Subject(self.model, self.image)


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


def image_key() -> str:
    """Identifies the current model and image, for widgets whose sensible default depends on both."""
    ctx = context()
    digest = ctx.image.digest[:12] if ctx.image else hashlib.sha1(b"").hexdigest()[:12]
    return f"{ctx.model_name}-{digest}"


def remember_upload(name: str, data: bytes) -> None:
    """Keep this session's uploads for the gallery of the strongest-activations page: the latest, within
    ``MAX_REMEMBERED_UPLOADS`` photos and ``MAX_SESSION_UPLOAD_MB`` together (the oldest go first)."""
    uploads: dict[str, tuple[str, bytes]] = st.session_state.setdefault("uploads", {})
    digest = hashlib.sha1(data).hexdigest()
    uploads.pop(digest, None)  # an upload seen again becomes the newest
    uploads[digest] = (name, data)
    cap = MAX_SESSION_UPLOAD_MB * 1024 * 1024
    while len(uploads) > 1 and (
        len(uploads) > MAX_REMEMBERED_UPLOADS or sum(len(d) for _, d in uploads.values()) > cap
    ):
        uploads.pop(next(iter(uploads)))


def add_gallery_uploads(files) -> None:
    """Photos uploaded for the gallery (a list of UploadedFile, or None)."""
    for f in files or []:
        remember_upload(f.name, f.getvalue())


def upload_key(base: str) -> str:
    """The key of the uploader ``base``: a new one after ``refuse_upload``, so the browser shows it empty."""
    generation = st.session_state.get(f"{base}.generation", 0)
    return f"{base}-{generation}" if generation else base


def refuse_upload(base: str, up, message: str) -> None:
    """Refuse an upload (``st.file_uploader``'s file) of the uploader ``base``: its bytes leave the server's memory
    now, not when the session ends, the uploader comes back empty, and ``refused`` keeps ``message`` until the next
    upload is taken."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None and hasattr(ctx.uploaded_file_mgr, "remove_file"):  # as st.chat_input drops its files
        ctx.uploaded_file_mgr.remove_file(ctx.session_id, up.file_id)
    st.session_state[f"{base}.generation"] = st.session_state.get(f"{base}.generation", 0) + 1
    st.session_state[f"{base}.refused"] = message


def refused(base: str, taken: bool = False) -> str | None:
    """The message of the uploader ``base``'s last refused file; ``taken``: a new file was taken, forget it."""
    if taken:
        st.session_state.pop(f"{base}.refused", None)
    return st.session_state.get(f"{base}.refused")


UPLOAD_PREFIX = "upload:"


def remember_weights(weights: UploadedWeights) -> str:
    """Keep an uploaded weights file in this session (only the latest); returns how a ModelChoice names it."""
    digest = hashlib.sha1(weights.data).hexdigest()
    st.session_state["weights_upload"] = (digest, weights)
    return f"{UPLOAD_PREFIX}{digest}:{weights.name}"


def session_weights(name: str) -> UploadedWeights:
    """The uploaded weights a ModelChoice names ("upload:SHA1:FILE"), from this session."""
    digest = name[len(UPLOAD_PREFIX) :].split(":", 1)[0]
    held = st.session_state.get("weights_upload")
    if held is None or held[0] != digest:
        raise WeightsError("the uploaded weights file is no longer in this session: upload it again")
    return held[1]


def session_uploads() -> dict[str, tuple[str, bytes]]:
    """sha1 -> (name, bytes) of the images uploaded in this session."""
    return st.session_state.get("uploads", {})
