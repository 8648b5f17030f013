"""The Class page's glue (issue 33): one class database per server, this browser's anonymous id, the teacher's
passphrase on the server's log, and a student's photo through the class's network (cached on the photo's bytes)."""

from __future__ import annotations

import io
import secrets

import numpy as np
import streamlit as st

from spp_viz import registry
from spp_viz.classroom import ClassInfo, ClassStore, database_url, head_probs, shuffle_probs
from spp_viz.models import ZOO

from .cache import comparison, decode_image, get_model
from .session import ModelChoice, Subject, context

BROWSER_PARAM = "you"  # the anonymous per-browser id, kept in the page's address so that a reload keeps it
CLASS_PARAM = "class"  # the class code, in the link the teacher shares


@st.cache_resource(show_spinner="Opening the class database ...")
def _store(url: str) -> ClassStore:
    return ClassStore(url)  # raises DatabaseDown: nothing is cached then, and the next run tries again


def class_store() -> ClassStore:
    """The server's class database (``SPP_VIZ_DATABASE_URL``, else SQLite in the cache folder)."""
    return _store(database_url())


def browser_id() -> str:
    """This browser's anonymous id: made once, then kept in the page's address (``?you=...``)."""
    you = st.query_params.get(BROWSER_PARAM, "")
    if len(you) != 16 or not all(c in "0123456789abcdef" for c in you):
        you = secrets.token_hex(8)
        st.query_params[BROWSER_PARAM] = you
    return you


def class_network(asks: str = "views") -> str:
    """The network a class opened now would use: the sidebar's, when it is one of the app's own; else the SPP-net
    (every student must be able to load it by name, so no uploaded weights and no network by name). The heads
    question needs a network with a pyramid head (its one-level contrast is the network it was distilled from)."""
    ctx = context()
    if asks == "heads":
        pyramid = ctx.model.name in registry.PYRAMID_MODELS and ctx.model.weights is None
        return ctx.model.name if pyramid else registry.DEFAULT_MODEL
    own = ctx.model.name in ZOO or ctx.model.name in registry.PYRAMID_MODELS
    return ctx.model.name if own and ctx.model.weights is None else registry.DEFAULT_MODEL


def class_probs(info: ClassInfo) -> dict[str, np.ndarray]:
    """This session's photo through the class's question's arms (cached on the photo's bytes): the three views, the
    two heads, or the shuffles."""
    ctx = context()
    subject = Subject(ModelChoice(info.model, ctx.device), ctx.image)
    if info.question == "heads":
        return _heads(subject)
    if info.question == "shuffle":
        return _shuffles(subject)
    return dict(comparison(subject, 256, False).probs)  # the Crop, warp or SPP page's own cached views


@st.cache_data(max_entries=32, show_spinner="Running both heads ...")
def _heads(subject: Subject) -> dict[str, np.ndarray]:
    one_level = ModelChoice(registry.base_of(subject.model.name), subject.model.device)
    img = decode_image(subject.image.data, subject.image.name)
    return head_probs(get_model(subject.model), get_model(one_level), img)


@st.cache_data(max_entries=32, show_spinner="Shuffling the tiles at each k ...")
def _shuffles(subject: Subject) -> dict[str, np.ndarray]:
    return shuffle_probs(get_model(subject.model), decode_image(subject.image.data, subject.image.name))


def class_names(info: ClassInfo) -> list[str]:
    """The class's network's class names (the network is on the server's shelf already, or is loaded now)."""
    return get_model(ModelChoice(info.model, context().device)).class_names


def share_link(code: str) -> str:
    """The page's own address with the class's code in it (what the teacher shares)."""
    here = (st.context.url or "http://localhost:8501/Class").split("?")[0]
    return f"{here}?{CLASS_PARAM}={code}"


def qr_png(link: str) -> bytes:
    """The link as a QR code, for the projector."""
    import qrcode

    buf = io.BytesIO()
    qrcode.make(link, box_size=8, border=2).save(buf)
    return buf.getvalue()
