"""Class: the class's own photos become the experiment. The teacher opens a class; students join with its code,
submit what the three views made of their photo, and the teacher's screen pools them live (issue 33)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui
from spp_viz import paper
from spp_viz.classroom import (
    MAX_TITLE,
    NONE_OF_THESE,
    POLL_CHOICES,
    VIEWS,
    ClassError,
    ClassInfo,
    ClassStore,
    DatabaseDown,
    Entry,
    class_results,
    entry_from_probs,
    export,
    export_csv,
    thumbnail,
)
from spp_viz.explain.view_summary import ViewsSummary, table_rows
from spp_viz.plots.views import poll_figure
from spp_viz.settings import ASSETS

POLL_WORDS = {"crop": "the centre crop", "warp": "the warp", "full": "the full image (SPP)", "none": "none of them"}
SHIPPED_SPP = ASSETS / "view_accuracy_spp.json"  # the Crop, warp or SPP page's 500-photo run (its comment: how made)
DOWN = "Your own exploration on the other pages keeps working."


def main() -> None:
    st.title("Class")
    st.markdown(
        "Does the whole image through SPP beat the centre crop and the warp? The paper says so for its networks "
        f"({paper.VOC07_CLAIM}, mAP; {paper.CALTECH101_CLAIM}, accuracy in %; see {ui.NOTES}). Here the class tests "
        "it on the photos it brought: each student's photo goes through the three views, and the teacher's screen "
        "pools them."
    )
    role = st.radio("You are", ["a student", "the teacher"], horizontal=True, key="class_role")
    said = st.session_state.pop("class_message", None)  # what a button's callback could not do
    if said:
        st.error(f"**{said}.**")
    try:
        store = ui.classroom.class_store()
    except DatabaseDown as e:
        st.error(f"**{e}.** {DOWN}")
        return
    if role == "the teacher":
        teacher(store)
    else:
        student(store)


def teacher(store: ClassStore) -> None:
    opened = st.session_state.get("class_teacher")
    if opened is None:
        open_form(store)
        return
    key, code = opened
    try:
        info = store.find(code, open_only=False)
    except (ClassError, DatabaseDown) as e:
        st.error(f"**{e}.**")
        return
    share_panel(info)
    if info.is_open():
        st.button("Close the class now", key="class_close", on_click=act, args=(store.close_class, key, code))
    live_results(store, code)


def open_form(store: ClassStore) -> None:
    # Buttons act in callbacks, which run before the script: a click that lands while a run reruns is not lost.
    with st.form("class_open"):
        st.text_input("Teacher's passphrase", type="password", key="class_key",
                      help="SPP_VIZ_TEACHER_KEY, or the server's log")  # fmt: skip
        st.text_input("Title (shown to the class)", max_chars=MAX_TITLE, key="class_title")
        st.selectbox("The question", ["Crop vs warp vs full image (SPP)"], help="The views the app compares.")
        a, b = st.columns(2)
        a.number_input("Open for (hours)", 0.25, 24.0, 2.0, 0.25, key="class_hours")
        b.number_input("Rows deleted after (days)", 1, 90, 7, key="class_days")
        st.form_submit_button("Open a class", type="primary", on_click=open_class, args=(store,))


def act(what, *args) -> None:
    """A button's callback: ``what(*args)``, its failure kept for the run that follows to say."""
    try:
        what(*args)
    except (ClassError, DatabaseDown) as e:
        st.session_state["class_message"] = str(e)


def open_class(store: ClassStore) -> None:
    s = st.session_state
    try:
        info = store.open_class(s.class_key, s.class_title, s.class_hours, s.class_days, ui.classroom.class_network())
    except (ClassError, DatabaseDown) as e:
        s["class_message"] = str(e)
        return
    s["class_teacher"] = (s.class_key, info.code)


def share_panel(info: ClassInfo) -> None:
    link = ui.classroom.share_link(info.code)
    a, b = st.columns([2, 1])
    a.metric("Class code", info.code)
    if info.title:
        a.text(info.title)  # as typed: never read as Markdown or HTML
    a.code(link, language=None)
    closes = pd.Timestamp(info.closes_at, unit="s", tz="UTC").strftime("%H:%M UTC")
    kept = pd.Timestamp(info.delete_after, unit="s", tz="UTC").strftime("%Y-%m-%d")
    a.caption(
        f"Network: {info.model}. "
        + (f"Open until {closes}" if info.is_open() else f"Closed at {closes}")
        + f"; its rows are deleted on {kept}. No photo is stored unless a student shares a 128-pixel thumbnail."
    )
    b.image(ui.classroom.qr_png(link), caption="The link, for phones", width=180)


@st.fragment(run_every=3)
def live_results(store: ClassStore, code: str) -> None:
    """Redrawn every 3 seconds as entries arrive, without reloading the page."""
    try:
        info, entries = store.find(code, open_only=False), store.entries(code)
    except (ClassError, DatabaseDown) as e:
        st.error(f"**{e}.**")
        return
    r = class_results(entries, info.model)
    a, b, c = st.columns(3)
    a.metric("Photos", r.count)
    b.metric("Showing one of ImageNet's classes", r.labelled)
    c.metric("Views disagree on", len(r.disagreements))
    if r.summary is not None:
        st.table(pd.DataFrame(table_rows(r.summary)).set_index("view"))  # a plain table: readable from the back row
        for line in r.findings:
            st.markdown(f"- {line}")
    st.plotly_chart(poll_figure(r.poll, r.happened, r.labelled), key="class_poll_chart")
    st.caption(
        "Poll: "
        + ", ".join(f"{POLL_WORDS[c]} {n}" for c, n in r.poll.items())
        + ". Right (top-1): "
        + ", ".join(f"{POLL_WORDS[v]} {r.happened[v]}" for v in VIEWS)
        + f", none of them {r.happened['none']}."
    )
    shipped_and_paper()
    disagreements(r.disagreements, info)
    d1, d2 = st.columns(2)
    d1.download_button("Download CSV", export_csv(entries), f"class-{code}.csv", "text/csv", key="class_csv")
    d2.download_button("Download JSON", json.dumps(export(entries, info), indent=2), f"class-{code}.json",
                       "application/json", key="class_json")  # fmt: skip


def shipped_and_paper() -> None:
    if not SHIPPED_SPP.is_file():
        return
    shipped = ViewsSummary.from_json(json.loads(SHIPPED_SPP.read_text()))
    acc = ", ".join(f"{v} {shipped.accuracy[v]['top1']:.1%}" for v in VIEWS)
    st.caption(
        f"Beside it: the app's own run over {shipped.n} ImageNet photos ({shipped.model}, top-1: {acc}; the Crop, warp "
        f"or SPP page has its intervals), and the paper's ({paper.VOC07_CLAIM}, mAP; {paper.CALTECH101_CLAIM}, in %; "
        "ZF-5 trained with SPP). A class's few photos give wide intervals: read the sentences above, not the points."
    )


def disagreements(entries: list[Entry], info: ClassInfo) -> None:
    if not entries:
        return
    st.subheader("Where the views disagree")
    names = ui.classroom.class_names(info)
    cols = st.columns(6)
    for i, e in enumerate(entries[:24]):
        tops = "; ".join(f"{v}: {names[e.top5[v][0]]}" for v in VIEWS)
        truth = "none of ImageNet's" if e.true_class == NONE_OF_THESE else names[e.true_class]
        with cols[i % 6]:
            if e.thumbnail:
                st.image(e.thumbnail, width=110)
            st.caption(f"shows {truth}. {tops}")


def student(store: ClassStore) -> None:
    img, _ = ui.current_image()  # the sidebar's photo: a file that cannot be read says so here, first
    st.image(img, caption="Your photo (the sidebar's)", width=240)
    code = st.text_input("Class code", value=st.query_params.get(ui.classroom.CLASS_PARAM, ""), key="class_code")
    if not code.strip():
        st.info("Type the code on the teacher's screen, or follow the teacher's link.")
        return
    try:
        info = store.find(code)
    except (ClassError, DatabaseDown) as e:
        st.error(f"**{e}.**")
        return
    if info.title:
        st.text(f"Class {info.code}: {info.title}")  # as typed: never read as Markdown or HTML
    names = ui.classroom.class_names(info)
    label = st.selectbox("What does your photo show?", [NONE_OF_THESE, *range(len(names))], index=None,
                         format_func=lambda i: "none of these" if i == NONE_OF_THESE else names[i],
                         placeholder="type to search ImageNet's classes", key="class_label")  # fmt: skip
    poll = st.radio("Before the reveal: which view will be right?", POLL_CHOICES, index=None,
                    format_func=POLL_WORDS.get, key="class_vote")  # fmt: skip
    st.checkbox("Share a 128-pixel thumbnail with the class", key="class_share")
    if label is not None and poll is not None:
        st.button("Submit", type="primary", key="class_submit", on_click=submit, args=(info, img))
    send_pending(store)
    mine_panel(store, info, names)


def submit(info: ClassInfo, img) -> None:
    """The Submit button's callback: the three views of the photo, kept as this session's pending entry."""
    s = st.session_state
    probs = ui.classroom.class_views(info).probs
    thumb = thumbnail(img) if s.class_share else None
    s["class_pending"] = (info.code, entry_from_probs(ui.classroom.browser_id(), s.class_label, probs, s.class_vote,
                                                      thumb))  # fmt: skip


def send_pending(store: ClassStore) -> None:
    """A submission waits in the session until the database has it: never lost silently."""
    pending = st.session_state.get("class_pending")
    if pending is None:
        return
    try:
        store.submit(*pending)
    except DatabaseDown as e:
        st.error(f"**Not sent yet: {e}.** Your answer is kept; it is sent again on your next click. {DOWN}")
        return
    except ClassError as e:
        st.error(f"**{e}.**")
    del st.session_state["class_pending"]


def mine_panel(store: ClassStore, info: ClassInfo, names: list[str]) -> None:
    try:
        mine = store.mine(info.code, ui.classroom.browser_id())
    except DatabaseDown as e:
        st.error(f"**{e}.** {DOWN}")
        return
    if mine is None:
        return
    right = [v for v in VIEWS if mine.right(v)]
    said = "none of these" if mine.true_class == NONE_OF_THESE else names[mine.true_class]
    st.success(
        f"Sent. You said your photo shows {said} and voted for {POLL_WORDS[mine.poll]}. "
        + "; ".join(f"{v}: {names[mine.top5[v][0]]}" for v in VIEWS)
        + ". "
        + (f"Right: {', '.join(right)}." if right else "No view's top-1 is your class.")
    )
    st.button("Withdraw my entry", key="class_withdraw", on_click=act, args=(store.withdraw, info.code, mine.browser))


main()
