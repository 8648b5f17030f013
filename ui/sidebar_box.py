"""The shared sidebar: the student's choices (model, weights, device, image, gallery folder). The Server panel
(``ui.server_panel``) and the notice for a lost session (``ui.recovery``) live beside it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from spp_viz import i18n, registry
from spp_viz.budgets import TooLarge, check_weights_file
from spp_viz.devices import available_devices, resolve_device
from spp_viz.i18n import _
from spp_viz.images import sample_bytes, samples
from spp_viz.models import ZOO
from spp_viz.settings import (
    LAB_DIR_NAME,
    MAX_UPLOAD_MB,
    cache_root,
    server_paths,
    weights_max_mb,
)
from spp_viz.weights import UploadedWeights, WeightsError

from .builds import BuildStopped, build_model, build_stop_key
from .cache import model_shelf
from .external_box import external_box
from .jobs import restart
from .language import language_switch
from .recovery import moved_notice, session_lost
from .server_panel import server_panel
from .session import (
    Context,
    ImageChoice,
    ModelChoice,
    refuse_upload,
    refused,
    remember_upload,
    remember_weights,
    upload_key,
)
from .text import md

LAB_DIR = cache_root() / LAB_DIR_NAME  # Lab models every session lists: the teacher's (CLI) and the ones shared
PRIVATE_LAB_DIR = LAB_DIR / "private"  # where the Lab page saves a student's model: only that session lists it
IMAGE_TYPES = ["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"]


def _weights_box(name: str) -> str | None:
    """A zoo model's optional weights: an upload (kept in this session only) or, where allowed, a server path."""
    st.caption(_("Weights: {weights}.").format(weights=ZOO[name].weights))
    with st.expander(_("Your own weights (optional)")):
        base = f"weights_upload_{name}"
        up = st.file_uploader(
            _("Weights file (.safetensors, .pth)"),
            type=["safetensors", "pth", "pt"],
            key=upload_key(base),
            max_upload_size=weights_max_mb(),
            help=_("At most {mb} MB, read with weights_only=True; it stays in your session.").format(
                mb=weights_max_mb()
            ),
        )
        if up is None and (why := refused(base)) is not None:
            st.error(_("**That file was not read:** {why}.").format(why=md(why)))
        if up is not None:
            try:  # before the file is read or kept: a huge file leaves the server's memory at once
                check_weights_file(name, up.size, registry.size(name))
            except TooLarge as e:
                refuse_upload(base, up, str(e))
                st.rerun()
            refused(base, taken=True)
            return remember_weights(UploadedWeights(up.name, up.getvalue()))
        if server_paths():
            path = st.text_input(
                _("or a weights file on this computer"),
                key=f"weights_{name}",
                placeholder=_("/path/to/weights.pth or .safetensors"),
                help=_("A checkpoint on the computer running the app (allowed by SPP_VIZ_SERVER_PATHS=1)."),
            ).strip()
            return path or None
    return None


OTHER = "other"  # the Network menu's last entry: any timm or torchvision CNN, typed or suggested


def _title(name: str) -> str:
    return _("Any timm or torchvision CNN ...") if name == OTHER else registry.title(name)


def _model_box() -> ModelChoice | None:
    """The model the sidebar asks for; None while it waits (for a name, a file, a download)."""
    st.header(_("Model"))
    own = [f"{registry.LAB_PREFIX}{p}" for p in st.session_state.get("ui.heavy.lab_own", []) if Path(p).is_file()]
    options = list(dict.fromkeys([*registry.names(LAB_DIR), *own, OTHER]))
    name = st.selectbox(
        _("Network"),
        options,
        format_func={o: _title(o) for o in options}.get,
        key="model_name",
        index=options.index(registry.DEFAULT_MODEL),
    )
    if name == OTHER:
        picked = external_box()
        name, weights = picked if picked else (None, None)
    elif registry.is_zoo(name):
        weights = _weights_box(name)
    else:
        weights = None
        base = registry.base_of(name)
        st.caption(
            _(
                "{base}'s conv layers (shared with it) and a pyramid head distilled from its own head; see the model "
                "card (docs/model-card.md)."
            ).format(base=base)
            if base is not None
            else _("Trained in the SPP Lab; its class names come with it.")
        )
    choices = ["auto", *available_devices()]
    wanted = st.selectbox(_("Device"), choices, key="device", help=_("auto picks CUDA, then Apple MPS, then the CPU."))
    return ModelChoice(name, str(resolve_device(wanted)), weights) if name else None


def _in_use(choice: ModelChoice | None) -> ModelChoice:
    """The model this run uses: ``choice`` once it loads, else the last one that did (the previous model stays)."""
    fallback = st.session_state.get("model_ok") or ModelChoice(registry.DEFAULT_MODEL, str(resolve_device("auto")))
    if choice is None:
        st.caption(_("Still using **{model}** until then.").format(model=md(registry.title(fallback.name))))
        return fallback
    try:
        # Held: a lookup that makes it the most recently used. Not held: a build on the server's queue, its place,
        # size and progress shown here, with a Stop button.
        build_model(choice)
    except BuildStopped as e:
        st.info(_("**{model}** was stopped.").format(model=md(e)))
        st.button(_("Build it again"), key="build_again", on_click=restart, args=(build_stop_key(choice),))
        st.caption(_("Still using **{model}**.").format(model=md(registry.title(fallback.name))))
        return fallback
    except Exception as e:  # a student's network can fail inside timm or torchvision in many ways: none may crash
        if choice == fallback:
            return choice  # nothing loaded before: the page says why
        why = str(e) if isinstance(e, (WeightsError, ValueError)) else f"{type(e).__name__}: {e}"
        title = md(registry.title(choice.name))
        st.error(_("**{model} could not be loaded.** {why}").format(model=title, why=md(why)))
        st.caption(_("Still using **{model}**.").format(model=md(registry.title(fallback.name))))
        return fallback
    seconds = model_shelf().seconds(choice)
    loaded = " " + _("Loaded in {seconds} s.").format(seconds=i18n.number(seconds, 1)) if seconds else ""
    st.caption(_("Running on **{device}**.").format(device=choice.device) + loaded)
    st.session_state["model_ok"] = choice
    return choice


def _image_box() -> ImageChoice:
    st.header(_("Image"))
    base = "upload-again" if session_lost() else "upload"
    up = st.file_uploader(
        _("Your photo"),
        type=IMAGE_TYPES,
        # A lost session's browser still shows the photo it uploaded to the server that is gone, and would not send
        # the same file again: a widget of another key starts empty.
        key=upload_key(base),
        max_upload_size=MAX_UPLOAD_MB,
        help=_(
            "JPEG, PNG, GIF, WebP, BMP or TIFF, at most {mb} MB. Large photos are shrunk to 2048 pixels on the longer "
            "side."
        ).format(mb=MAX_UPLOAD_MB),
    )
    options = samples()
    pick = st.selectbox(
        _("Sample photo (used while nothing is uploaded)"),
        range(len(options)),
        format_func={i: _(s.title) for i, s in enumerate(options)}.get,
        key="sample",
    )
    if up is not None and up.size > MAX_UPLOAD_MB * 2**20:  # the browser refuses it; a hand-made request is not one
        refuse_upload(base, up, _("that file is over {mb} MB, the most a photo may be").format(mb=MAX_UPLOAD_MB))
        st.rerun()
    if up is None and (why := refused(base)) is not None:
        st.error(_("**Your photo was not read:** {why}.").format(why=md(why)))
    if up is not None:
        refused(base, taken=True)
        remember_upload(up.name, up.getvalue())
        st.caption(
            _("In use: **{name}**, your upload (it stays in your session). Remove it to use the sample.").format(
                name=md(up.name)
            )
        )
        return ImageChoice(up.name, up.getvalue())
    sample = options[pick]
    st.caption(
        _("In use: **{name}**, a sample ({credit}; {licence}).").format(
            name=_(sample.title), credit=sample.credit, licence=sample.licence
        )
    )
    return ImageChoice(sample.file, sample_bytes(sample.file))


def sidebar() -> Context:
    """Draw the shared sidebar (model, device, image) and keep its choices in session state."""
    with st.sidebar:
        language_switch()
        moved_notice()
        model = _in_use(_model_box())
        image = _image_box()
        folder = ""
        if server_paths():
            with st.expander(_("Gallery folder")):
                folder = st.text_input(
                    _("Folder of images on this computer"),
                    key="gallery_folder",
                    placeholder=_("/path/to/photos"),
                    help=_("Indexed on the Strongest activations page: the images that excite each conv5 filter most."),
                ).strip()
        server_panel()
    ctx = Context(model, image, folder)
    st.session_state["ctx"] = ctx
    return ctx
