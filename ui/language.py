"""This session's language: the sidebar's switch, else the URL's ``?lang=``, else the browser's language
(``st.context.locale``: ``ko-*`` gives Korean, anything else English), else the server's ``SPP_VIZ_LANG``.

app.py calls ``start_run`` first in every run: the language is then this run's (``spp_viz.i18n``'s context variable,
per session, never process-wide). A language chosen by the switch or the URL stays in the URL (``?lang=ko``), so a
link the teacher copies, and the class code's QR code, open in the teacher's language.
"""

from __future__ import annotations

import streamlit as st

from spp_viz import i18n

QUERY = "lang"
KEY = "ui.language"  # the switch's value: this session's language once chosen
CHOSEN = "ui.language_chosen"  # True once the switch or the URL chose it (it is then kept in the URL)


def session_language() -> str:
    """This session's language, decided on its first run and kept in session state."""
    if st.session_state.get(KEY) in i18n.LANGUAGES:
        return st.session_state[KEY]
    from_url = i18n.supported(st.query_params.get(QUERY))
    st.session_state[CHOSEN] = from_url is not None
    lang = from_url or i18n.negotiate(st.context.locale)
    st.session_state[KEY] = lang
    return lang


def start_run() -> str:
    """This run's language set for the run's thread (and the URL kept), before any text is made."""
    lang = session_language()
    i18n.set_language(lang)
    if st.session_state.get(CHOSEN) and st.query_params.get(QUERY) != lang:
        st.query_params[QUERY] = lang  # a page switch drops the query: the language stays in the link
    return lang


def _switched() -> None:
    st.session_state[CHOSEN] = True
    st.query_params[QUERY] = st.session_state[KEY]


def language_switch() -> None:
    """The sidebar's English / 한국어 switch (labelled in both, so that either reader finds it)."""
    st.radio(
        "Language · 언어",
        list(i18n.LANGUAGES),
        format_func=i18n.LANGUAGES.get,
        key=KEY,
        on_change=_switched,
        horizontal=True,
    )


def link_query() -> dict[str, str]:
    """The query that opens a link in this session's language (for links the app makes: the class's link)."""
    lang = i18n.language()
    return {} if lang == i18n.default_language() else {QUERY: lang}
