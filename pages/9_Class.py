"""Class: the class's own photos become the experiment. The teacher opens a class; students join with its code,
submit what the three views made of their photo, and the teacher's screen pools them live."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

import ui
from spp_viz import i18n, paper
from spp_viz.classroom import (
    DEFAULT_QUESTION,
    MAX_TITLE,
    NEVER,
    NONE_OF_THESE,
    QUESTIONS,
    ClassError,
    ClassInfo,
    ClassStore,
    DatabaseDown,
    Entry,
    class_results,
    entry_from_probs,
    export,
    export_csv,
    first_change,
    thumbnail,
)
from spp_viz.classroom.access import Throttled
from spp_viz.classroom.results import ClassResults, shipped_findings
from spp_viz.i18n import N_, _, pgettext, translate
from spp_viz.plots.views import poll_figure

DOWN = N_("Your own exploration on the other pages keeps working.")
PASSPHRASE_HELP = N_(
    "{env}, or the one the server made: the line \"Class mode: the teacher's passphrase is ...\" in the server's log "
    "(the terminal that runs it: printed at start by spp-viz app and spp-viz serve, at the first student's visit "
    "under streamlit run app.py; docker compose logs app; kubectl logs deploy/spp-viz)"
)
ROLES = {"student": N_("a student"), "teacher": N_("the teacher")}


def down(e: Exception) -> str:
    """The database cannot be reached: what went wrong, and that the rest of the app still works."""
    return f"**{ui.md(e)}.** {_(DOWN)}"


def not_sent(e: Exception) -> str:
    """A Submit that could not reach the database: the answer waits in the session."""
    return _("**Not sent yet: {why}.** Your answer is kept; it is sent again on your next click. {rest}").format(
        why=ui.md(e), rest=_(DOWN)
    )


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def main() -> None:
    ui.start_page()
    st.title(pgettext("a group of students", "Class"))
    st.markdown(
        _(
            "Does the whole image through SPP beat the centre crop and the warp? The paper says so for its networks "
            "({voc}, mAP; {caltech}, accuracy in %; see {notes}). Here the class tests it on the photos it brought: "
            "each student's photo goes through the three views (or the two heads, or the shuffles: the teacher picks "
            "the question), and the teacher's screen pools them."
        ).format(voc=translate(paper.VOC07_CLAIM), caltech=translate(paper.CALTECH101_CLAIM), notes=ui.NOTES)
    )
    token = st.query_params.get(ui.classroom.TEACHER_PARAM)
    role = st.radio(_("You are"), list(ROLES), horizontal=True, key="class_role", index=1 if token else 0,
                    format_func={k: _(v) for k, v in ROLES.items()}.get)  # fmt: skip
    said = st.session_state.pop("class_message", None)  # what a button's callback could not do
    if said:
        st.error(f"**{ui.md(said)}.**")
    try:
        store = ui.classroom.class_store()
    except DatabaseDown as e:
        st.error(down(e))
        return
    if role == "teacher":
        teacher(store)
    else:
        student(store)


def teacher(store: ClassStore) -> None:
    """The dashboard of the class the teacher's token (in this page's address) opens, else the form to open one."""
    token = st.query_params.get(ui.classroom.TEACHER_PARAM)
    try:
        info = store.teacher_class(token) if token else None
    except DatabaseDown as e:
        st.error(down(e))
        return
    if info is None:
        if token:
            st.warning(_("This teacher's link no longer opens a class: it was closed, or deleted after its retention."))
        open_form(store)
        return
    share_panel(info)
    st.caption(_("This page's address holds your teacher's token (a reload keeps the dashboard): keep the address "
                 "bar off the projector. Closing the class ends the token."))  # fmt: skip
    if info.is_open():
        st.button(_("Close the class now"), key="class_close", on_click=close_class, args=(store, token, info.code))
    live_results(store, info.code)


def open_form(store: ClassStore) -> None:
    # Buttons act in callbacks, which run before the script: a click that lands while a run reruns is not lost.
    with st.form("class_open"):
        st.text_input(
            _("Teacher's passphrase"),
            type="password",
            key="class_key",
            help=_(PASSPHRASE_HELP).format(env="SPP_VIZ_TEACHER_KEY"),
        )
        st.text_input(_("Title (shown to the class)"), max_chars=MAX_TITLE, key="class_title")
        st.selectbox(
            _("The question"),
            list(QUESTIONS),
            format_func={k: translate(q.title) for k, q in QUESTIONS.items()}.get,
            key="class_question",
            index=list(QUESTIONS).index(DEFAULT_QUESTION),
            help=_("The app's own comparisons"),
        )
        a, b = st.columns(2)
        a.number_input(_("Open for (hours)"), 0.25, 24.0, 2.0, 0.25, key="class_hours")
        b.number_input(_("Rows deleted after (days)"), 1, 90, 7, key="class_days")
        st.form_submit_button(_("Open a class"), type="primary", on_click=open_class, args=(store,))


def run_callback(what, *args, **kwargs) -> None:
    """A button's callback: ``what(*args, **kwargs)``, its failure kept for the run that follows to say."""
    try:
        what(*args, **kwargs)
    except (ClassError, DatabaseDown, Throttled) as e:
        st.session_state["class_message"] = str(e)


def close_class(store: ClassStore, token: str, code: str) -> None:
    run_callback(store.close_class, token, code)
    st.query_params.pop(ui.classroom.TEACHER_PARAM, None)


def open_class(store: ClassStore) -> None:
    """The form's callback: the passphrase (5 tries a minute per session), the class, the teacher's token."""
    s = st.session_state
    try:
        ui.classroom.throttles()["passphrase"].attempt(ui.classroom.session_key(), _("passphrase attempts"))
        asks = s.class_question
        info = store.open_class(s.class_key, s.class_title, s.class_hours, s.class_days,
                                ui.classroom.class_network(asks), asks)  # fmt: skip
        st.query_params[ui.classroom.TEACHER_PARAM] = store.teacher_token(s.class_key, info.code)
    except (ClassError, DatabaseDown, Throttled) as e:
        s["class_message"] = str(e)


def share_panel(info: ClassInfo) -> None:
    link = ui.classroom.share_link(info.code)
    a, b = st.columns([2, 1])
    a.metric(_("Class code"), info.code)
    if info.title:
        a.text(info.title)  # as typed: never read as Markdown or HTML
    a.code(link, language=None)
    closes = i18n.time_of_day(datetime.fromtimestamp(info.closes_at, UTC)) + " UTC"
    kept = i18n.date(datetime.fromtimestamp(info.delete_after, UTC))
    until = (_("Open until {time}") if info.is_open() else _("Closed at {time}")).format(time=closes)
    a.caption(
        _(
            "Question: {question}. Network: {model}. {until}; its rows are deleted on {date}. No photo is stored "
            "unless a student shares a 128-pixel thumbnail."
        ).format(question=translate(info.asks.title), model=info.model, until=until, date=kept)
    )
    b.image(ui.classroom.qr_png(link), caption=_("The link, for phones"), width=180)


@st.fragment(run_every=3)
def live_results(store: ClassStore, code: str) -> None:
    """Redrawn every 3 seconds as entries arrive, without reloading the page."""
    try:
        info, entries = store.find(code, open_only=False), store.entries(code)
    except (ClassError, DatabaseDown) as e:
        st.error(f"**{ui.md(e)}.**")
        return
    r = class_results(entries, info)
    a, b, c = st.columns(3)
    a.metric(_("Photos"), r.count)
    b.metric(_("Showing one of ImageNet's classes"), r.labelled)
    c.metric(_("{compared} disagree on").format(compared=capitalized(translate(info.asks.compared))),
             len(r.disagreements))  # fmt: skip
    if r.table:
        st.table(pd.DataFrame(r.table).set_index(next(iter(r.table[0]))))  # a plain table: readable from the back row
    for line in r.findings:
        st.markdown(f"- {line}")
    came_true = (_("first changed here") if info.question == "shuffle" else
                 _("right (top-1, of {n} labelled)").format(n=r.labelled))  # fmt: skip
    st.plotly_chart(poll_figure(r.poll, r.happened, info.asks.answers(), came_true), key="class_poll_chart")
    st.caption(tally(r, info))
    for line in shipped_findings(info.question):
        st.caption(line)
    disagreements(r.disagreements, info)
    d1, d2 = st.columns(2)
    d1.download_button(_("Download CSV"), export_csv(entries), f"class-{code}.csv", "text/csv", key="class_csv")
    d2.download_button(_("Download JSON"), json.dumps(export(entries, info), indent=2), f"class-{code}.json",
                       "application/json", key="class_json")  # fmt: skip


def tally(r: ClassResults, info: ClassInfo) -> str:
    """The poll and what happened, in words (the chart's numbers, for the back row)."""
    words = info.asks.answers()
    poll = _("Poll: {answers}.").format(answers=", ".join(f"{words[c]} {n}" for c, n in r.poll.items()))
    if info.question == "shuffle":
        changed = ", ".join(f"{words[c]} {n}" for c, n in r.happened.items())
        return poll + " " + _("First changed at: {answers}.").format(answers=changed)
    right = ", ".join(f"{words[a]} {r.happened[a]}" for a in info.asks.arms)
    return (
        poll
        + " "
        + _("Right (top-1): {answers}, {none} {n}.").format(answers=right, none=words["none"], n=r.happened["none"])
    )


def disagreements(entries: list[Entry], info: ClassInfo) -> None:
    if not entries:
        return
    st.subheader(_("Where {compared} disagree").format(compared=translate(info.asks.compared)))
    names = ui.classroom.class_names(info)
    cols = st.columns(6)
    for i, e in enumerate(entries[:24]):
        tops = "; ".join(f"{translate(info.asks.arm_titles[a])}: {names[t]}" for a, t in e.top1.items())
        truth = _("none of ImageNet's") if e.true_class == NONE_OF_THESE else names[e.true_class]
        with cols[i % 6]:
            if e.thumbnail:
                st.image(e.thumbnail, width=110)
            st.caption(_("shows {truth}. {tops}").format(truth=truth, tops=tops))


def student(store: ClassStore) -> None:
    img, _name = ui.current_image()  # the sidebar's photo: a file that cannot be read says so here, first
    st.image(img, caption=_("Your photo (the sidebar's)"), width=240)
    pending = st.session_state.get("class_pending")  # an answer not sent yet keeps its class's code on the page
    default = st.query_params.get(ui.classroom.CLASS_PARAM, "") or (pending[0] if pending else "")
    code = st.text_input(_("Class code"), value=default, key="class_code")
    if not code.strip():
        st.info(_("Type the code on the teacher's screen, or follow the teacher's link."))
        return
    try:
        info = find_class(store, code)
    except DatabaseDown as e:
        if "class_pending" in st.session_state:  # a Submit that could not reach the database
            st.error(not_sent(e))
        else:
            st.error(down(e))
        return
    except (ClassError, Throttled) as e:
        st.error(f"**{ui.md(e)}.**")
        return
    if info.title:
        st.text(_("Class {code}: {title}").format(code=info.code, title=info.title))  # never read as Markdown
    names = ui.classroom.class_names(info)
    label = st.selectbox(_("What does your photo show?"), [NONE_OF_THESE, *range(len(names))], index=None,
                         format_func={NONE_OF_THESE: _("none of these"), **dict(enumerate(names))}.get,
                         placeholder=_("type to search ImageNet's classes"), key="class_label")  # fmt: skip
    answers = info.asks.answers()
    poll = st.radio(translate(info.asks.prompt), info.asks.poll, index=None, format_func=answers.get, key="class_vote")
    st.checkbox(_("Share a 128-pixel thumbnail with the class"), key="class_share")
    if label is not None and poll is not None:
        st.button(_("Submit"), type="primary", key="class_submit", on_click=submit, args=(info, img))
    send_pending(store)
    mine_panel(store, info, names)


def find_class(store: ClassStore, code: str) -> ClassInfo:
    """The open class of a code: each new code a session tries counts against its 5 a minute (a rerun of the same
    code does not), so codes cannot be guessed at speed; a closed class and a wrong code read the same."""
    s = st.session_state
    if s.get("class_tried") != code:
        ui.classroom.throttles()["join"].attempt(ui.classroom.session_key(), _("class codes tried"))
        s["class_tried"] = code
    return store.find(code)


def submit(info: ClassInfo, img) -> None:
    """The Submit button's callback: the photo through the question's arms, kept as this session's pending entry."""
    s = st.session_state
    probs = ui.classroom.class_probs(info)
    thumb = thumbnail(img) if s.class_share else None
    try:
        entry = entry_from_probs(ui.classroom.student_id(), s.class_label, probs, s.class_vote, thumb, info.question)
    except ClassError as e:
        s["class_message"] = str(e)
        return
    s["class_pending"] = (info.code, entry)


def send_pending(store: ClassStore) -> None:
    """A submission waits in the session until the database has it: never lost silently."""
    pending = st.session_state.get("class_pending")
    if pending is None:
        return
    try:
        store.submit(*pending, session=ui.classroom.session_key())
    except DatabaseDown as e:
        st.error(not_sent(e))
        return
    except ClassError as e:
        st.error(f"**{ui.md(e)}.**")
    del st.session_state["class_pending"]


def mine_panel(store: ClassStore, info: ClassInfo, names: list[str]) -> None:
    try:
        mine = store.mine(info.code, ui.classroom.student_id())
    except DatabaseDown as e:
        st.error(down(e))
        return
    if mine is None:
        return
    q = info.asks
    said = _("none of these") if mine.true_class == NONE_OF_THESE else names[mine.true_class]
    tops = "; ".join(f"{translate(q.arm_titles[a])}: {names[t]}" for a, t in mine.top1.items())
    if q.key == "shuffle":
        k = first_change(mine.top1)
        came = (_("The top-1 never changed.") if k == NEVER else
                _("The top-1 first changed at {k}x{k} tiles.").format(k=k))  # fmt: skip
    else:
        right = [translate(q.arm_titles[a]) for a in q.arms if mine.right(a)]
        none = _("None of {compared} has your class as its top-1.").format(compared=translate(q.compared))
        came = _("Right: {arms}.").format(arms=", ".join(right)) if right else none
    st.success(
        _("Sent. You said your photo shows {said} and voted for {vote}. {tops}. {came}").format(
            said=said, vote=q.answers()[mine.poll], tops=tops, came=came
        )
    )
    st.button(_("Withdraw my entry"), key="class_withdraw", on_click=run_callback,
              args=(store.withdraw, info.code, mine.browser),
              kwargs={"session": ui.classroom.session_key()})  # fmt: skip


main()
