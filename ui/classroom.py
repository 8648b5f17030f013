"""The Class page's glue: one class database per server (its expired classes purged at start and every hour), the
student's id made by the server (``spp_viz.classroom.access``), the throttles on joining and on the passphrase, and a
student's photo through the class's network (cached on the photo's bytes)."""

from __future__ import annotations

import io
import secrets

import numpy as np
import streamlit as st

from spp_viz import registry
from spp_viz.classroom import ClassInfo, ClassStore, database_url, head_probs, shuffle_probs
from spp_viz.classroom.access import Throttle, new_student, signed, verified
from spp_viz.classroom.retention import keep_retention
from spp_viz.i18n import N_
from spp_viz.models import ZOO
from spp_viz.settings import teacher_key

from . import spinner
from .cache import comparison, decode_image, get_model
from .language import link_query
from .session import ModelChoice, Subject, context

BROWSER_PARAM = "you"  # the student's id, signed by the server, in the page's address: a reconnect keeps the entry
CLASS_PARAM = "class"  # the class code, in the link the teacher shares
TEACHER_PARAM = "teacher"  # the teacher's token, in the teacher's own address: a reload reopens the dashboard


@spinner.cache_resource(N_("Opening the class database ..."))
def _store(url: str) -> ClassStore:
    store = ClassStore(url)  # raises DatabaseDown: nothing is cached then, and the next run tries again
    keep_retention(store)  # the server's hourly sweep (at start too: ui.warmup)
    return store


def class_store() -> ClassStore:
    """The server's class database (``SPP_VIZ_DATABASE_URL``, else SQLite in the cache folder)."""
    return _store(database_url())


def student_id() -> str:
    """This student's id in a class: made by the server once per session and kept in the page's address signed
    (``?you=...``), so that a reconnect (a new session) gets its own entry back; an id the browser made up is not
    taken, and every new session still has its own limits (``session_key``)."""
    s = st.session_state
    if "class_student" not in s:
        s["class_student"] = verified(st.query_params.get(BROWSER_PARAM, ""), teacher_key()) or new_student()
    link = signed(s["class_student"], teacher_key())
    if st.query_params.get(BROWSER_PARAM) != link:
        st.query_params[BROWSER_PARAM] = link
    return s["class_student"]


def session_key() -> str:
    """The server's own id of this browser session: what the per-minute limits and the throttles count. Made by the
    server and held in the session's state (a browser cannot choose it; a reload is a new session, as it would be
    with Streamlit's own session id, which AppTest's sessions all share)."""
    s = st.session_state
    if "class_session" not in s:
        s["class_session"] = f"session:{secrets.token_hex(12)}"
    return s["class_session"]


@st.cache_resource(show_spinner=False)
def throttles() -> dict[str, Throttle]:
    """Per session, 5 a minute: joining a class with a code, trying the teacher's passphrase."""
    return {"join": Throttle(), "passphrase": Throttle()}


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


@spinner.cache_data(N_("Running both heads ..."), max_entries=32)
def _heads(subject: Subject) -> dict[str, np.ndarray]:
    one_level = ModelChoice(registry.base_of(subject.model.name), subject.model.device)
    img = decode_image(subject.image.data, subject.image.name)
    return head_probs(get_model(subject.model), get_model(one_level), img)


@spinner.cache_data(N_("Shuffling the tiles at each k ..."), max_entries=32)
def _shuffles(subject: Subject) -> dict[str, np.ndarray]:
    return shuffle_probs(get_model(subject.model), decode_image(subject.image.data, subject.image.name))


def class_names(info: ClassInfo) -> list[str]:
    """The class's network's class names (the network is on the server's shelf already, or is loaded now)."""
    return get_model(ModelChoice(info.model, context().device)).class_names


def share_link(code: str) -> str:
    """The page's own address with the class's code in it (what the teacher shares), and the teacher's language where
    it is not the server's default: the students' link and QR code open in it."""
    here = (st.context.url or "http://localhost:8501/Class").split("?")[0]
    lang = "".join(f"&{k}={v}" for k, v in link_query().items())
    return f"{here}?{CLASS_PARAM}={code}{lang}"


def qr_png(link: str) -> bytes:
    """The link as a QR code, for the projector."""
    import qrcode

    buf = io.BytesIO()
    qrcode.make(link, box_size=8, border=2).save(buf)
    return buf.getvalue()
