"""Streamlit's caches with a spinner in the reader's language.

``st.cache_data(show_spinner="...")`` takes its text once, when the function is decorated at import, before any
session has a language. These wrap the cached function in ``st.spinner`` instead, whose text is translated on each
call; like Streamlit's own, it shows only after half a second, so a cache hit draws nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from spp_viz.i18n import _


def _with_spinner(cached: Callable, text: str) -> Callable:
    @functools.wraps(cached)
    def call(*args: Any, **kwargs: Any) -> Any:
        if get_script_run_ctx() is None:  # a worker thread of the queue: no page to draw on
            return cached(*args, **kwargs)
        with st.spinner(_(text)):
            return cached(*args, **kwargs)

    call.clear = cached.clear  # type: ignore[attr-defined]
    return call


def cache_data(text: str, **options: Any) -> Callable[[Callable], Callable]:
    """``st.cache_data(**options)`` showing ``text`` (an English message marked with ``N_``) while it computes."""
    return lambda fn: _with_spinner(st.cache_data(show_spinner=False, **options)(fn), text)


def cache_resource(text: str, **options: Any) -> Callable[[Callable], Callable]:
    """``st.cache_resource(**options)`` showing ``text`` (an English message marked with ``N_``) while it builds."""
    return lambda fn: _with_spinner(st.cache_resource(show_spinner=False, **options)(fn), text)
