"""Trust in class mode and the Lab, through the pages (AppTest): a student is the server's session, not an id in the
link; the passphrase cannot be guessed at speed; an expired class is gone; a teacher's reload keeps the dashboard;
a student's Lab model stays in that student's session until the teacher shares it. The database's own rules are in
tests/test_class_mode.py (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, said
from streamlit.testing.v1 import AppTest
from test_class_page import KEY, PAGE, metrics, session, teacher_opens

from spp_viz import classroom

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


@pytest.fixture(autouse=True)
def class_database(tmp_path, monkeypatch):
    monkeypatch.setenv(classroom.TEACHER_KEY_ENV, KEY)
    monkeypatch.setenv(classroom.DATABASE_ENV, f"sqlite:///{tmp_path / 'classes.sqlite'}")


def test_one_session_with_fifty_made_up_ids_makes_one_entry_and_six_submissions_a_minute():
    """Each run sets ?you= to a new id of the browser's making: none is taken (the id is the server's, signed), so the
    session keeps one entry, replaced at each Submit, and its seventh Submit within the minute is refused."""
    _, code = teacher_opens()
    s = session("chelsea.jpg")
    s.text_input(key="class_code").set_value(code).run()
    s.selectbox(key="class_label").set_value(281).run()
    s.radio(key="class_vote").set_value("full").run()
    sent, refused = 0, 0
    for i in range(50):
        s.query_params["you"] = f"{i:016x}"  # made up: unsigned
        s.button(key="class_submit").click().run()
        assert not s.exception
        sent += any(x.startswith("Sent.") for x in said(s)) and not s.error
        refused += any("at most 6 submissions a minute" in x for x in said(s))
    store = classroom.ClassStore()
    assert len(store.entries(code)) == 1  # one student: the session
    assert refused == 50 - 6 and sent == 6
    assert s.query_params["you"] != f"{49:016x}"  # the page put its own signed id back


def test_twenty_wrong_passphrases_are_throttled():
    t = session()
    t.radio(key="class_role").set_value("teacher").run()
    told = []
    for _ in range(20):
        t.text_input(key="class_key").set_value("guess")
        t.button[0].click().run()
        told += said(t)
    assert sum("not the teacher's passphrase" in s for s in told) == 5
    assert sum("too many passphrase attempts in a minute: try again in" in s for s in told) == 15
    t.text_input(key="class_key").set_value(KEY)  # the right one, within the minute: still throttled
    t.button[0].click().run()
    assert any("too many passphrase attempts" in x for x in said(t)) and not t.metric


def test_a_teachers_reload_reopens_the_dashboard_and_closing_ends_it():
    t, code = teacher_opens("Period 4")
    token = t.query_params["teacher"]
    reloaded = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    reloaded.query_params["teacher"] = token  # the same address, in a new session: a reload
    reloaded.run()
    reloaded.switch_page(PAGE).run()
    assert metrics(reloaded)["Class code"] == code and not reloaded.error
    reloaded.button(key="class_close").click().run()
    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    again.query_params["teacher"] = token
    again.run()
    again.switch_page(PAGE).run()
    assert "Class code" not in metrics(again)
    assert any("no longer opens a class" in x for x in said(again))


def test_an_expired_class_is_gone_from_the_page_before_the_purge():
    t, code = teacher_opens()
    store = classroom.ClassStore()
    with store.engine.begin() as conn:  # its retention ended a moment ago; nothing purged yet
        conn.execute(classroom.CLASSES.update().values(delete_after=1.0))
    s = session("chelsea.jpg")
    s.text_input(key="class_code").set_value(code).run()
    assert any(f"there is no open class with the code {code}" in e for e in said(s))
    t.run()
    assert "Class code" not in metrics(t) and any("no longer opens a class" in w for w in said(t))


def test_a_students_lab_model_stays_in_that_session_until_the_teacher_shares_it():
    a = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    a.switch_page("pages/7_SPP_Lab.py").run()
    a.slider(key="lab_epochs").set_value(1).run()
    a.button(key="lab_train").click().run()
    assert not a.exception and any("Only your session lists it" in x for x in said(a))
    (path,) = a.session_state["ui.heavy.lab_own"]  # what this session's sidebar adds to the Network menu
    b = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert "Lab:" not in " ".join(b.selectbox(key="model_name").options)  # another student's session: not listed
    a.text_input(key="lab_share_key").set_value("guess")
    a.button(key="lab_share").click().run()
    assert any("Not shared:" in x for x in said(a))
    a.text_input(key="lab_share_key").set_value(KEY)
    a.button(key="lab_share").click().run()
    assert any("The teacher shared it" in x for x in said(a))
    b = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    shared = [o for o in b.selectbox(key="model_name").options if o.startswith("Lab:")]  # the menu's titles
    assert shared == [f"Lab: {Path(path).stem}"]  # now every session lists it
    assert not Path(path).exists()  # moved out of the session's own folder
    assert re.search(r"-[0-9a-f]{12}$", shared[0])  # named by its content
