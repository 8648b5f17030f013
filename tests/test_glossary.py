"""The Korean catalog uses the glossary's terms (docs/glossary.md): every message that contains one of a term's English
forms is translated with the term's Korean form, so a student who learnt the terms from a Korean review or lecture
recognises each of them on every page."""

from __future__ import annotations

import re

from babel.messages.pofile import read_po
from conftest import ROOT

PO = ROOT / "spp_viz" / "locales" / "ko" / "LC_MESSAGES" / "spp_viz.po"


def glossary() -> list[tuple[list[str], str]]:
    """The table's rows: the English forms and the Korean term."""
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("English", "---"):
            rows.append(([f.strip() for f in cells[0].split(" / ")], cells[1]))
    return rows


def form_pattern(form: str) -> re.Pattern:
    """A whole-word, any-case match of an English form, across a line break (a long message wraps)."""
    words = r"\s+".join(re.escape(w) for w in form.split())
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", re.I)


def misses(messages: list[tuple[str, str]], rows: list[tuple[list[str], str]]) -> list[tuple[str, str, str]]:
    out = []
    for english, korean in rows:
        patterns = [form_pattern(f) for f in english]
        for msgid, msgstr in messages:
            words = re.sub(r"%?\{[^{}]*\}", " ", msgid)  # a placeholder's name ({pyramid}) is not a word of the text
            if any(p.search(words) for p in patterns) and korean.lower() not in msgstr.lower():
                out.append((english[0], korean, msgid[:80]))
    return out


def catalog_messages() -> list[tuple[str, str]]:
    with open(PO, "rb") as f:
        return [(m.id, m.string) for m in read_po(f) if m.id and isinstance(m.id, str)]


def test_the_glossary_has_the_terms_of_a_korean_review():
    rows = dict((e[0], k) for e, k in glossary())
    assert len(rows) >= 25
    assert rows["bin"] == "영역" and rows["filter"] == "필터" and rows["feature map"] == "feature map"
    assert rows["fixed length"] == "고정된 크기" and rows["pyramid"] == "피라미드"


def test_every_message_with_a_glossary_term_uses_its_korean_term():
    assert misses(catalog_messages(), glossary()) == []


def test_the_glossary_check_can_fail():
    rows = [(["bin", "bins"], "영역"), (["fixed length"], "고정된 크기")]
    messages = [("{n} bins per level", "층마다 빈 {n}개"), ("a vector of fixed\nlength", "고정된 크기의 벡터"),
                ("a binary file", "바이너리 파일"), ("{bins} of {n}", "{n}개 중 {bins}")]  # fmt: skip
    assert misses(messages, rows) == [("bin", "영역", "{n} bins per level")]
