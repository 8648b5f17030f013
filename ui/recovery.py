"""A browser whose session this server does not have (its app server stopped, or it was away too long): how the
app tells, and the notice that says why its photo is gone."""

from __future__ import annotations

import streamlit as st

from spp_viz.i18n import _
from spp_viz.settings import replica


def session_lost() -> bool:
    """True when this browser asked to resume a session this server does not have (Streamlit's websocket names it)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    protocols = [p.strip() for p in (st.context.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
    had = protocols[2] if len(protocols) > 2 else ""  # the session id the browser asks to resume
    return ctx is not None and bool(had) and had != ctx.session_id


def moved_notice() -> None:
    """Say why the photo is gone when this browser's session was lost: its websocket names the session it had (to
    resume it), and this server does not have it, because its app server stopped (behind ``spp-viz serve``, another
    replica or the same one started again) or the browser was away past ``disconnectedSessionTTL``."""
    from spp_viz.replicas import BEFORE_HEADER

    if not session_lost():
        return
    here, before = replica(), (st.context.headers.get(BEFORE_HEADER) or "").strip()
    if here is not None and before and before != here[0]:
        why = _("The app server you were on ({before}) stopped, so {here} took over").format(
            before=before, here=here[0]
        )
    elif here is not None:
        why = _("The app server you were on ({here}) was started again").format(here=here[0])
    else:
        why = _("This server no longer had your session (it was restarted, or you were away for more than 10 minutes)")
    st.warning(
        _("{why} and the app started again here: upload your photo again. Nothing else is needed.").format(why=why)
    )
