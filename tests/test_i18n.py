"""The app in Korean: the catalog is complete and agrees with the sources, no English string reaches a translated page
without going through ``_()``, the language is per session, numbers and dates follow the language, and Hangul is
drawn (no tofu) in pictures."""

from __future__ import annotations

import ast
import re
import threading
from datetime import datetime

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from spp_viz import i18n

PO = ROOT / "spp_viz" / "locales" / "ko" / "LC_MESSAGES" / "spp_viz.po"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "lazy_gettext": None, "N_": None}
# The modules whose every sentence goes through the catalogs: the home page, the sidebar, the menu, what every page
# asks for first, and every page with the library figures it shows.
TRANSLATED = ["app.py", "ui/page.py", "ui/sidebar_box.py", "ui/language.py", "ui/external_box.py", "ui/server_panel.py",
              "ui/recovery.py", "ui/jobs.py", "ui/builds.py", "pages/1_Feature_maps.py", "pages/2_Pyramid_pooling.py",
              "pages/3_Strongest_activations.py", "pages/4_Crop_warp_SPP.py", "pages/5_Attributions.py",
              "pages/6_Detection.py", "pages/7_SPP_Lab.py", "pages/8_Lab_experiments.py", "pages/9_Class.py",
              "ui/cache.py", "ui/classroom.py", "ui/spinner.py",
              "spp_viz/plots/activations.py", "spp_viz/plots/detection.py", "spp_viz/plots/lab.py",
              "spp_viz/plots/maps.py", "spp_viz/plots/pyramid.py",
              "spp_viz/plots/views.py", "spp_viz/explain/level_views.py"]  # fmt: skip


def catalog():
    with open(PO, "rb") as f:
        return read_po(f)


def extracted() -> dict[str, tuple[str, ...]]:
    """Every message the sources mark (what ``bash run.sh catalogs`` extracts), by msgid."""
    lines = (ROOT / "babel.cfg").read_text().splitlines()
    method_map = [(line.split("python: ")[1].rstrip("]"), "python") for line in lines if line.startswith("[python: ")]
    out = {}
    for _path, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=KEYWORDS, comment_tags=()
    ):
        key = message if isinstance(message, str) else message[0]
        out[key] = message if isinstance(message, tuple) else (message,)
    return out


def placeholders(text: str) -> list[str]:
    """A message's named placeholders ({name}, never {{ or }}) and Plotly's %{...} fields, sorted."""
    text = text.replace("{{", "").replace("}}", "")
    plotly = re.findall(r"%\{[^}]*\}", text)
    text = re.sub(r"%\{[^}]*\}", "", text)
    return sorted(re.findall(r"\{[^{}]*\}", text) + plotly)


def test_the_catalog_holds_every_message_of_the_sources_and_no_other():
    po = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog() if m.id}
    found = set(extracted())
    assert found - po == set(), "new messages: run `bash run.sh catalogs`, then translate them"
    assert po - found == set(), "messages no source uses any more: run `bash run.sh catalogs`"
    assert len(found) > 100


def test_every_message_is_translated_none_fuzzy_and_babels_checks_pass():
    cat = catalog()
    assert str(cat.locale) == "ko" and cat.num_plurals == 1  # Korean: one form for every count
    for m in cat:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(s.strip() for s in strings), f"untranslated: {m.id!r}"
        assert not m.fuzzy, f"fuzzy: {m.id!r}"
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        for s in strings:  # the same named placeholders, in any order: a translator may reorder them
            assert placeholders(s) == placeholders(ids[0]), (m.id, s)
    assert [(m.id, errors) for m, errors in cat.check() if errors] == []  # Babel's own checkers


def test_placeholders_are_named_never_positional():
    for msgid in extracted():
        assert not re.search(r"\{\d*\}|%[sdif]", msgid.replace("{{", "").replace("}}", "")), msgid


def test_the_placeholder_check_can_fail():
    assert placeholders("{a} of {b}") != placeholders("{a} 중 {c}")
    assert placeholders("{{6,3,2,1}} and {n}") == placeholders("{n}과 {{6,3,2,1}}")
    assert placeholders("value %{z:.3f}") != placeholders("값")


# The Streamlit calls whose first argument or label-like keywords a person reads.
READ = {"title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "metric",
        "button", "download_button", "selectbox", "radio", "slider", "select_slider", "number_input", "text_input",
        "file_uploader", "toggle", "checkbox", "expander", "write", "text", "tabs", "spinner", "Page"}  # fmt: skip
# show_spinner: Streamlit fixes its text at import, before a session has a language (ui.spinner translates it).
READ_KEYWORDS = {"help", "caption", "placeholder", "label", "title", "name", "xaxis_title", "yaxis_title",
                 "show_spinner"}  # fmt: skip
# Words in strings that are names, not English: file types, code, units.
CODE_WORDS = {"png", "npy", "jpeg", "jpg", "auto", "conv", "spp", "net", "lite", "stretch", "lines", "markers", "dash"}
NAMES = {"SPP-net Explorer", "Language · 언어"}  # the product's name; the switch's label, in both languages


def english(node: ast.AST) -> bool:
    """Whether a string (or f-string) node holds an English word: three letters or more, not a code name."""
    if isinstance(node, ast.JoinedStr):
        text = " ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    else:
        return False
    if text in NAMES:
        return False
    return any(w.lower() not in CODE_WORDS for w in re.findall(r"(?<![\w.])[A-Za-z]{3,}(?![\w.])", text))


def unwrapped(source: str) -> list[str]:
    """English strings handed straight to a Streamlit element or a figure's label, not through ``_()``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        args = [*(node.args[:1] if name in READ else []), *(k.value for k in node.keywords if k.arg in READ_KEYWORDS)]
        for arg in args:
            for part in [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]:
                if english(part):
                    out.append(f"line {part.lineno}: {ast.unparse(part)[:80]}")
    return out


@pytest.mark.parametrize("module", TRANSLATED)
def test_no_english_string_reaches_a_translated_page_without_the_catalog(module):
    assert unwrapped((ROOT / module).read_text()) == []


def test_the_unwrapped_string_guard_can_fail():
    source = 'st.title("Feature maps")\nst.caption(f"{n} channels")\nx.metric(_("Input"), "3 x 4")\n'
    source += 'st.slider(_("Size"), help="The paper uses 256.")\nst.info(_("ok") if a else "Not ok")\n'
    source += '@st.cache_data(show_spinner="Running the network ...")\ndef f(): pass\n'
    assert len(unwrapped(source)) == 5  # the title, the caption, the help, the else branch, the spinner; not "3 x 4"


def test_every_sample_photo_has_its_title_in_the_catalogs():
    """The sidebar shows ``_(sample.title)``: a sample added to samples.json needs its title in SAMPLE_TITLES."""
    from spp_viz.images import SAMPLE_TITLES, samples

    assert sorted(SAMPLE_TITLES) == sorted(s.title for s in samples())
    with i18n.use("ko"):
        assert all(i18n._(t) != t for t in SAMPLE_TITLES)


def test_translated_modules_never_reuse_the_name_of_the_translation_function():
    """``_`` as a throwaway variable would shadow ``_()`` (a tuple's unused part): a crash on the next message."""
    for module in TRANSLATED:
        tree = ast.parse((ROOT / module).read_text())
        stores = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "_"
                  and isinstance(n.ctx, ast.Store)]  # fmt: skip
        assert stores == [], f"{module}: `_` assigned on lines {stores}"


def test_the_browsers_language_decides_and_the_servers_default_fills_in(monkeypatch):
    monkeypatch.delenv(i18n.LANG_ENV, raising=False)
    assert [i18n.negotiate(x) for x in ["ko-KR", "ko", "KO_kr", "en-US", "fr-FR", "zh-Hans-CN", None, ""]] == [
        "ko", "ko", "ko", "en", "en", "en", "en", "en"]  # fmt: skip
    monkeypatch.setenv(i18n.LANG_ENV, "ko")
    assert i18n.negotiate(None) == "ko" and i18n.negotiate("en-GB") == "en"  # a browser's own language wins
    monkeypatch.setenv(i18n.LANG_ENV, "klingon")
    assert i18n.negotiate(None) == "en"


def test_messages_translate_in_the_contexts_language_and_fall_back_to_english():
    with i18n.use("ko"):
        assert i18n._("Model") == "모델" and str(i18n.lazy_gettext("Image")) == "이미지"
        assert i18n._("A sentence no catalog has") == "A sentence no catalog has"
    with i18n.use("en"):
        assert i18n._("Model") == "Model"
    with pytest.raises(ValueError, match="unknown language"):
        i18n.set_language("xx")


def test_a_lazy_message_is_translated_where_it_is_read():
    title = i18n.lazy_gettext("Feature maps")
    with i18n.use("ko"):
        korean = f"{title}"
    with i18n.use("en"):
        english_text = f"{title}"
    assert (
        english_text == "Feature maps"
        and korean == dict((m.id, m.string) for m in catalog() if m.id == "Feature maps")["Feature maps"]
    )


def test_a_filled_sentence_stays_english_for_files_and_reads_in_the_readers_language():
    """The paper's quoted sentences (and the Lab's stored claims) are English in the CLI and the results files; a page
    shows them in its reader's language with the same numbers."""
    from spp_viz import paper

    assert paper.CALTECH101_CLAIM == "Caltech101: 91.44 full against 89.91 warped"  # the paper's numbers, in English
    with i18n.use("ko"):
        korean = i18n.translate(paper.CALTECH101_CLAIM)
        assert i18n.translate("not a message of the catalog") == "not a message of the catalog"
        assert i18n.translate("matches the paper") == i18n._("matches the paper") != "matches the paper"
    assert korean.startswith("Caltech101: ") and "91.44" in korean and "89.91" in korean and "warp" in korean
    assert "full against" not in korean
    with i18n.use("en"):
        assert i18n.translate(paper.CALTECH101_CLAIM) == paper.CALTECH101_CLAIM


def test_two_sessions_on_two_threads_read_two_languages_at_once():
    """The language is a context variable: each thread (a Streamlit session's run) keeps its own."""
    barrier, seen = threading.Barrier(2), {}

    def session(lang: str) -> None:
        i18n.set_language(lang)
        barrier.wait()  # both set before either reads
        seen[lang] = [i18n._("Model") for _i in range(200)]

    threads = [threading.Thread(target=session, args=(lang,)) for lang in ("ko", "en")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen["ko"]) == {"모델"} and set(seen["en"]) == {"Model"}


def test_numbers_percentages_and_dates_follow_the_language():
    moment = datetime(2026, 3, 9, 15, 4, 5)
    with i18n.use("en"):
        assert i18n.number(1234567.891, 1) == "1,234,567.9" and i18n.percent(0.256) == "26%"
        assert "Mar" in i18n.datetime(moment) and "PM" in i18n.datetime(moment)
    with i18n.use("ko"):
        assert i18n.number(1234567.891, 1) == "1,234,567.9" and i18n.percent(0.256, 1) == "25.6%"
        stamp = i18n.datetime(moment)
        assert "2026" in stamp and "오후" in stamp and "3:04" in stamp  # 15:04 is 오후 3:04 (afternoon)


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1e7, allow_nan=False), st.floats(0, 1, allow_nan=False), st.integers(0, 3))
def test_numbers_round_as_pythons_own_formatting_in_both_languages(value, fraction, digits):
    """A number reads the same on a Korean page, an English page and in the CLI's output (Python's formatting)."""
    for lang in ("en", "ko"):  # both write 1,234.5 and 12.3%
        with i18n.use(lang):
            assert i18n.number(value, digits) == f"{value:,.{digits}f}"
            assert i18n.percent(fraction, digits) == f"{fraction:.{digits}%}"


def glyph(font, char: str) -> bytes:
    img = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(img).text((4, 4), char, fill=255, font=font)
    return img.tobytes()


CAPTION = "crop: 회색 부분을 잃습니다"


def test_pictures_draw_hangul_with_no_tofu_boxes():
    """Each Hangul glyph of a Korean caption differs from the font's missing-glyph box (what an unknown character
    draws) and from blank; the strip's labels use that font."""
    assert i18n.font_path() is not None, "koreanize-matplotlib (its NanumGothic) is missing: pip install -r"
    font = i18n.font(20)
    tofu = glyph(font, "\ue000")  # a private-use character no font draws: its box
    blank = glyph(font, " ")
    for char in {c for c in CAPTION if "\uac00" <= c <= "\ud7a3"}:
        assert glyph(font, char) not in (tofu, blank), char


def test_the_tofu_check_can_fail():
    """PIL's own font has no Hangul: there every syllable draws the same box (the check above would fail)."""
    font = ImageFont.load_default(20)
    drawn = {glyph(font, c) for c in CAPTION if "\uac00" <= c <= "\ud7a3"}
    assert len(drawn) == 1


def test_the_home_pages_strip_is_labelled_in_the_language():
    from spp_viz.plots.views import crop_warp_spp

    img = Image.new("RGB", (320, 240), (90, 140, 200))
    with i18n.use("en"):
        english_strip = crop_warp_spp(img)
    with i18n.use("ko"):
        korean_strip = crop_warp_spp(img)
    assert english_strip.size == korean_strip.size
    labels = (0, english_strip.height - 28, english_strip.width, english_strip.height)
    assert english_strip.crop(labels).tobytes() != korean_strip.crop(labels).tobytes()


def test_the_compiled_catalog_matches_the_po():
    """``python -m spp_viz.i18n`` (and the wheel's build) writes the .mo that the app then prefers to the .po."""
    import gettext
    import io

    mo = i18n.compile_po(PO)
    translations = gettext.GNUTranslations(io.BytesIO(mo))
    for m in catalog():
        if m.id and isinstance(m.id, str):
            found = translations.pgettext(m.context, m.id) if m.context else translations.gettext(m.id)
            assert found == m.string


def test_heavy_work_on_the_servers_queue_speaks_the_language_of_the_session_that_asked():
    from ui.job_queue import JobQueue

    queue = JobQueue(workers=1)
    with i18n.use("ko"):
        korean = queue.submit("t", lambda job: i18n._("Model"))
    with i18n.use("en"):
        english = queue.submit("t", lambda job: i18n._("Model"))
    assert korean.future.result(timeout=30) == "모델" and english.future.result(timeout=30) == "Model"


def test_the_class_link_and_its_qr_code_open_in_the_teachers_language(monkeypatch):
    import ui.classroom

    monkeypatch.delenv(i18n.LANG_ENV, raising=False)
    with i18n.use("ko"):
        korean = ui.classroom.share_link("K7Q2")
    with i18n.use("en"):
        english = ui.classroom.share_link("K7Q2")
    assert korean.endswith(f"?{ui.classroom.CLASS_PARAM}=K7Q2&lang=ko") and english.endswith("=K7Q2")
    monkeypatch.setenv(i18n.LANG_ENV, "ko")  # a Korean server: its default needs no mark, English does
    with i18n.use("ko"):
        assert ui.classroom.share_link("K7Q2").endswith("=K7Q2")
    with i18n.use("en"):
        assert ui.classroom.share_link("K7Q2").endswith("=K7Q2&lang=en")
