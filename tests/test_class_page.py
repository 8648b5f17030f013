"""The Class page in AppTest (issue 33): a teacher session opens a class; student sessions join with its code, upload
their photos, label them and vote; the teacher's screen counts them, its per-view figures are the app's own views of
those photos (computed here again, outside the app), and a withdrawal drops the count. Every mistake: one message."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import ROOT, SAMPLES, plain
from pg_server import postgres_server
from streamlit.testing.v1 import AppTest

from spp_viz import classroom, registry
from spp_viz.explain.views import compare_views, full_view, probabilities
from spp_viz.images import load_image

PAGE = "pages/9_Class.py"
KEY = "a-teachers-key"
pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


@pytest.fixture(autouse=True)
def class_database(tmp_path, monkeypatch):
    monkeypatch.setenv(classroom.TEACHER_KEY_ENV, KEY)
    monkeypatch.setenv(classroom.DATABASE_ENV, f"sqlite:///{tmp_path / 'classes.sqlite'}")


def session(photo: str | None = None, lang: str | None = None) -> AppTest:
    """A new browser session on the Class page (in ``lang``, from the link's ``?lang=``), with ``photo`` uploaded in
    the sidebar first (AppTest shows the sidebar's widgets before a page switch only)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    if lang:
        at.query_params["lang"] = lang
    at.run()
    if photo is not None:
        at.file_uploader(key="upload").upload(photo, (SAMPLES / photo).read_bytes(), "image/jpeg").run()
    return at.switch_page(PAGE).run()


def teacher_opens(title: str = "", asks: str = "views", lang: str | None = None) -> tuple[AppTest, str]:
    t = session(lang=lang)
    t.radio(key="class_role").set_value("teacher").run()
    t.text_input(key="class_key").set_value(KEY)
    t.text_input(key="class_title").set_value(title)
    t.selectbox(key="class_question").set_value(asks)
    t.button[0].click().run()  # the form's "Open a class"
    assert not t.exception and not t.error, [e.value for e in t.error]
    return t, t.metric[0].value  # the class code


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def student_joins(code: str, photo: str, label: int, vote: str, lang: str | None = None) -> AppTest:
    s = session(photo, lang)
    s.text_input(key="class_code").set_value(code.lower()).run()
    s.selectbox(key="class_label").set_value(label).run()
    s.radio(key="class_vote").set_value(vote).run()
    return s


def student_submits(code: str, photo: str, label: int, vote: str) -> AppTest:
    s = student_joins(code, photo, label, vote)
    s.button(key="class_submit").click().run()
    assert not s.exception and not s.error, [e.value for e in s.error]
    assert len(s.success) == 1 and s.success[0].value.startswith("Sent.")
    return s


def test_a_class_pools_its_students_photos_and_a_withdrawal_drops_the_count():
    t, code = teacher_opens("Period 3 <script>alert(1)</script> **bold**")
    assert [x.value for x in t.text] == ["Period 3 <script>alert(1)</script> **bold**"]  # shown as typed, not as HTML
    assert any(code in c.value for c in t.code)  # the link to share carries the code
    photos = {"chelsea.jpg": 281, "coffee.jpg": 504, "rocket.jpg": 812}  # tabby, coffee mug, space shuttle
    students = [student_submits(code, p, c, "full") for p, c in photos.items()]
    t.run()
    assert metrics(t)["Photos"] == "3" and metrics(t)["Showing one of ImageNet's classes"] == "3"
    # The teacher's per-view top-1 equals the app's views of the same photos, computed here outside the app
    model = registry.load(registry.DEFAULT_MODEL)
    right = {v: 0 for v in classroom.VIEWS}
    for photo, label in photos.items():
        comparison = compare_views(model, load_image((SAMPLES / photo).read_bytes()), 256)
        for v in classroom.VIEWS:
            right[v] += comparison.top1[v] == label
    table = t.table[0].value
    for v, title in (("crop", "Centre crop"), ("warp", "Warp"), ("full", "Full image (SPP)")):
        assert table.loc[title, "top-1"] == f"{right[v] / 3:.1%}", (v, table)
    tally = next(c.value for c in t.caption if c.value.startswith("Poll:"))
    assert "the full image (SPP) 3" in tally and f"Right (top-1): the centre crop {right['crop']}," in tally
    students[0].button(key="class_withdraw").click().run()
    t.run()
    assert metrics(t)["Photos"] == "2"


def test_a_class_in_korean_reads_korean_with_the_same_figures():
    """Issue 48: the teacher's screen and a student's reveal in Korean, with no English message, and the figures of
    the same class read in English."""
    from test_i18n_app import english_messages, numbers, texts

    import ui.classroom as classroom_ui

    t, code = teacher_opens(asks="views", lang="ko")
    s = student_joins(code, "chelsea.jpg", 281, "full", lang="ko")
    s.button(key="class_submit").click().run()
    assert not s.exception and not s.error, [e.value for e in s.error]
    assert s.success[0].value.startswith("보냈습니다.") and "전체 이미지 (SPP)" in s.success[0].value
    t.run()
    korean = texts(t)
    patterns = english_messages()
    assert [x for x in korean for p in patterns if p.fullmatch(x.strip())] == []
    assert {m.label: m.value for m in t.metric}["사진"] == "1"
    assert any("에 닫힘" in c.value or "까지 열림" in c.value for c in t.caption)  # the closing time, via Babel
    english = session()  # the same class on the teacher's screen in English: a new session with the teacher's link
    token = t.query_params[classroom_ui.TEACHER_PARAM]
    english.query_params[classroom_ui.TEACHER_PARAM] = token[0] if isinstance(token, list) else token
    english.radio(key="class_role").set_value("teacher").run()
    assert not english.exception and english.metric[1].label == "Photos"

    def figures(at: AppTest) -> Counter:  # every number but the dates (a month is a word in English only)
        return numbers([x for x in texts(at) if "UTC" not in x])

    assert figures(english) == figures(t)


def test_mistakes_each_give_one_message():
    s = session()
    s.text_input(key="class_code").set_value("NOPE42").run()
    wrong = "**there is no open class with the code NOPE42: check it on the teacher's screen.**"
    assert [plain(e.value) for e in s.error] == [wrong]
    t = session()
    t.radio(key="class_role").set_value("teacher").run()
    t.text_input(key="class_key").set_value("a guess")
    t.button[0].click().run()
    assert len(t.error) == 1 and "not the teacher's passphrase" in plain(t.error[0].value)


def test_an_unreachable_database_leaves_the_rest_of_the_app_working(monkeypatch):
    monkeypatch.setenv(classroom.DATABASE_ENV, "postgresql://nobody@127.0.0.1:9/none")
    s = session()
    assert not s.exception
    assert len(s.error) == 1 and "the class database cannot be reached" in s.error[0].value
    s.switch_page("pages/1_Feature_maps.py").run()
    assert not s.exception and not s.error


def test_a_heads_class_compares_the_two_heads_the_app_ships():
    """The {6,3,2,1} head against the one-level head: the teacher's table equals each network's top-1 on the full
    image (shorter side 256), computed here with the two networks loaded outside the app."""
    t, code = teacher_opens(asks="heads")
    assert any("Question: {6,3,2,1} pyramid head vs one-level head" in c.value for c in t.caption)
    photos = {"chelsea.jpg": 281, "coffee.jpg": 504}
    for photo, label in photos.items():
        s = student_submits(code, photo, label, "spp")
        assert "{6,3,2,1} head (SPP-net):" in s.success[0].value
    t.run()
    right = {}
    for arm, name in (("spp", registry.DEFAULT_MODEL), ("one_level", registry.base_of(registry.DEFAULT_MODEL))):
        model = registry.load(name)
        right[arm] = sum(
            int(probabilities(model, full_view(load_image((SAMPLES / p).read_bytes()), 256).image).argmax()) == label
            for p, label in photos.items()
        )
    table = t.table[0].value
    assert table.loc["{6,3,2,1} head (SPP-net)", "top-1"] == f"{right['spp'] / 2:.1%}", table
    assert table.loc["One-level head (Lite0)", "top-1"] == f"{right['one_level'] / 2:.1%}", table
    tally = next(c.value for c in t.caption if c.value.startswith("Poll:"))
    assert tally.startswith("Poll: the {6,3,2,1} head 2, the one-level head 0, neither 0.")
    assert any("distilled from the one-level head" in c.value for c in t.caption)  # beside it: the shipped run


def test_a_shuffle_class_finds_where_each_photos_top1_first_changes():
    t, code = teacher_opens(asks="shuffle")
    s = student_joins(code, "rocket.jpg", 812, "never")
    assert s.radio(key="class_vote").options[-1] == "not up to 8x8"
    s.button(key="class_submit").click().run()
    assert not s.exception and s.success[0].value.startswith("Sent.")
    t.run()
    photo = load_image((SAMPLES / "rocket.jpg").read_bytes())
    probs = classroom.shuffle_probs(registry.load(registry.DEFAULT_MODEL), photo)
    first = classroom.first_change({arm: int(p.argmax()) for arm, p in probs.items()})
    at = {k: int(first == k) for k in ("2", "3", "4", "6", "8")}
    said = f"the top-1 first changed at {', '.join(f'{k}x{k}: {n}' for k, n in at.items())}"
    assert any(said in m.value for m in t.markdown), [m.value for m in t.markdown]
    assert any(c.value.startswith("Poll: 2x2 0, 3x3 0, 4x4 0, 6x6 0, 8x8 0, not up to 8x8 1.") for c in t.caption)


def test_a_submission_made_while_the_database_is_down_is_sent_when_it_is_back(monkeypatch):
    """PostgreSQL stops after the student joined: Submit keeps the answer and says so, the other pages keep
    working, and the next click once the server is back sends it, once."""
    with postgres_server() as pg:
        monkeypatch.setenv(classroom.DATABASE_ENV, pg.url)
        code = classroom.ClassStore(pg.url).open_class(KEY).code
        s = student_joins(code, "coffee.jpg", 504, "warp")
        pg.stop()
        s.button(key="class_submit").click().run()
        assert not s.exception and len(s.error) == 1 and not s.success
        assert s.error[0].value.startswith("**Not sent yet: the class database cannot be reached")
        assert "Your answer is kept; it is sent again on your next click." in s.error[0].value
        s.switch_page("pages/1_Feature_maps.py").run()
        assert not s.exception and not s.error
        pg.start()
        s.switch_page(PAGE).run()
        assert not s.exception and not s.error, [e.value for e in s.error]
        assert s.success[0].value.startswith("Sent. You said your photo shows coffee mug")
        s.run()  # another click: nothing is sent twice
        entries = classroom.ClassStore(pg.url).entries(code)
        assert [(e.true_class, e.poll) for e in entries] == [(504, "warp")]
