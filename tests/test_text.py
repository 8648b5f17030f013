"""ui.md: whatever a user typed reads as typed inside a Markdown sentence, checked with a second Markdown reader
(markdown-it-py: CommonMark, autolinks found as GitHub's are), on Hypothesis's texts and on the issue's examples."""

from __future__ import annotations

import html
import re

import pytest
from conftest import fuzz_examples, plain
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from ui.text import JOINER, md

READER = MarkdownIt("commonmark", {"linkify": True}).enable(["linkify", "table", "strikethrough"])
TRICKS = ["[x](http://a)", "![i](http://a)", "<b>bold</b>", "**not bold**", "http://127.0.0.1:9/a", "www.a.com",
          "a@b.com", "# heading", "- item", "1. item", "> quote", "`code`", "~~gone~~", "&amp; &lt;", "a | b",
          ":red[alert] :smile:", "$x^2$", "\\[x\\]", "line\nbreak", "_i_ __b__"]  # fmt: skip


def reads(markdown: str) -> str:
    """The text a reader shows for ``markdown`` inside a sentence: its HTML, or its text when it is one paragraph."""
    out = READER.render(f"The name **{markdown}** was given.").strip()
    match = re.fullmatch(r"<p>The name <strong>(.*)</strong> was given\.</p>", out, re.S)
    return html.unescape(match.group(1)) if match else out


@pytest.mark.parametrize("typed", TRICKS)
def test_markdown_links_pictures_and_html_read_as_typed(typed):
    shown = reads(md(typed))
    assert "<" not in READER.render(md(typed)).replace("<p>", "").replace("</p>", "")  # no tag of any kind
    assert shown.replace(JOINER, "") == " ".join(typed.split())
    assert plain(md(typed)) == " ".join(typed.split())  # what the tests read back is what was typed


@settings(max_examples=fuzz_examples(2000, 200), deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_any_text_reads_as_typed(typed):
    assume(typed.strip())  # an empty name is never shown in bold
    shown = reads(md(typed))
    assert shown.replace(JOINER, "") == " ".join(typed.replace("\0", "\ufffd").split())
