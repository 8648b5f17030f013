"""AppTest in Korean: every page opens in Korean with the sample photo (no English message, and the same numbers as in
English), the sidebar's switch changes the language and keeps the photo and the URL, and two sessions read two
languages at once."""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest
from babel.messages.pofile import read_po
from conftest import ROOT, SAMPLES, plain
from streamlit.testing.v1 import AppTest

PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("[0-9]*.py"))
TIMEOUT = 300

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


def start(lang: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if lang:
        at.query_params["lang"] = lang
    return at.run()


def texts(at: AppTest) -> list[str]:
    """Every text a person reads on the page: headings, Markdown, notes, metrics, widget labels and options."""
    out = [e.value for kind in (at.title, at.header, at.subheader, at.markdown, at.caption, at.info, at.warning,
                                at.error, at.success) for e in kind]  # fmt: skip
    out += [x for m in at.metric for x in (m.label, m.value)]
    for kind in ("selectbox", "radio", "slider", "select_slider", "number_input", "toggle", "text_input",
                 "file_uploader", "button"):  # fmt: skip
        out += [w.label for w in at.get(kind) if getattr(w, "label", None)]
    out += [w.proto.help for kind in ("slider", "selectbox", "file_uploader") for w in at.get(kind) if w.proto.help]
    return out


def english_messages() -> list[re.Pattern]:
    """Each msgid the catalog translates into something else, as a pattern that matches it once formatted."""
    with open(ROOT / "spp_viz" / "locales" / "ko" / "LC_MESSAGES" / "spp_viz.po", "rb") as f:
        catalog = read_po(f)
    out = []
    for m in catalog:
        if not m.id or not isinstance(m.id, str) or m.string == m.id:
            continue
        parts = re.split(r"\{[^{}]*\}", m.id.replace("{{", "{").replace("}}", "}"))
        if not re.search(r"[A-Za-z]{3,}", "".join(parts)):
            continue  # "{low} to {high}": no English word of its own to find (its pattern would match any "to")
        out.append(re.compile(".*?".join(re.escape(p.strip()) for p in parts), re.S))
    return out


def numbers(values: list[str]) -> Counter:
    return Counter(n for v in values for n in re.findall(r"\d+(?:,\d{3})*(?:\.\d+)?", v))


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_the_home_page_and_sidebar_open_in_korean_with_the_same_numbers():
    english, korean = start(), start("ko")
    no_exception(korean)
    assert [h.value for h in korean.sidebar.header] == ["모델", "이미지"]
    assert korean.sidebar.radio(key="ui.language").value == "ko"
    english_texts, korean_texts = texts(english), texts(korean)
    leaked = [t for t in korean_texts for p in english_messages() if p.fullmatch(t.strip())]
    assert leaked == []
    assert "입력 크기에 관계없이" in " ".join(korean_texts)  # the glossary's phrase, not a word-for-word one
    # The same numbers (12,800 for ZF-5's pyramid, the network's 64,000, the sample's size), only the words differ.
    assert numbers(korean_texts) == numbers(english_texts) and "12,800" in " ".join(korean_texts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_korean(page):
    korean = start("ko").switch_page(page).run()
    no_exception(korean)
    said = texts(korean)
    leaked = [t for t in said for p in english_messages() if p.fullmatch(t.strip())]
    assert leaked == []
    english = start().switch_page(page).run()
    # Once more in Korean, now that both found the same caches (a gallery's index is built by the first visit).
    again = texts(start("ko").switch_page(page).run())
    assert numbers(again) == numbers(texts(english))


def test_the_switch_changes_the_language_and_keeps_the_photo_and_the_url():
    at = start()
    at.file_uploader(key="upload").upload("coffee.jpg", (SAMPLES / "coffee.jpg").read_bytes(), "image/jpeg").run()
    assert at.sidebar.header[0].value == "Model" and "lang" not in at.query_params
    at.sidebar.radio(key="ui.language").set_value("ko").run()
    no_exception(at)
    assert at.sidebar.header[0].value == "모델"
    captions = [plain(c.value) for c in at.sidebar.caption]
    assert any(c.startswith("사용 중: **coffee.jpg**") for c in captions), captions  # the photo stays in use
    assert at.query_params["lang"] in (["ko"], "ko")  # a link copied now opens in Korean
    at.switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    assert at.title[0].value == "Feature maps" and at.metric[0].label == "입력 (H x W)"
    sample = start("ko").switch_page("pages/1_Feature_maps.py").run()
    assert at.metric[0].value != sample.metric[0].value  # the upload's size, not the sample's


def test_two_sessions_at_once_read_their_own_language():
    """Two AppTest sessions run at the same moment, one Korean and one English: each sees its own language."""
    results: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def session(lang: str) -> None:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.query_params["lang"] = lang
        barrier.wait()
        at.run()
        no_exception(at)
        results[lang] = [h.value for h in at.sidebar.header] + [m.value[:40] for m in at.markdown[:1]]

    threads = [threading.Thread(target=session, args=(lang,)) for lang in ("ko", "en")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["en", "ko"]  # both sessions ran to the end
    assert results["ko"][:2] == ["모델", "이미지"] and results["ko"][2].strip().startswith("CNN의")
    assert results["en"][:2] == ["Model", "Image"] and results["en"][2].strip().startswith("A CNN's")
