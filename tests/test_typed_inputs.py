"""Every free-text levels box, fed Hypothesis-generated strings: a drawing or an error message, never an exception.

Digits, commas, braces, signs, spaces, other scripts' digits and very long strings go into the levels boxes of the
Pyramid page and of the SPP Lab, through AppTest (the real pages, the real widgets).
"""

from __future__ import annotations

from functools import cache

import pytest
import streamlit as st
from conftest import ROOT, fuzz_examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs
from streamlit.testing.v1 import AppTest

from spp_viz.pyramid import parse_levels

TIMEOUT = 300
LEVEL_TEXT = hs.one_of(
    hs.text(alphabet="0123456789,{}()[] +-.", max_size=24),
    hs.text(alphabet=hs.characters(codec="utf-8"), max_size=12),
    hs.lists(hs.integers(-3, 70), max_size=8).map(lambda xs: ",".join(map(str, xs))),
    hs.integers(1, 5000).map(lambda n: "1," * n),  # very long
    hs.sampled_from(["6,6", "1,1,1", "64,64,64", "{6, 3, 2, 1}", "٣,٢,١", "+4,2,1", " 1_0 ,1"]),
)


@cache
def app(page: str) -> AppTest:
    """One AppTest per page, reused by every example (building the model and conv5 once)."""
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    return at.switch_page(page).run()


def valid(text: str) -> bool:
    try:
        parse_levels(text)
    except ValueError:
        return False
    return True


def outcome(at: AppTest) -> str:
    assert not at.exception, [e.value for e in at.exception]
    if any("These levels cannot be used" in e.value for e in at.error):
        return "refused"
    return "drawn"


BOXES = {
    "pyramid": ("pages/2_Pyramid_pooling.py", "pyramid_preset", "custom levels", "pyramid_custom"),
    "lab": ("pages/7_SPP_Lab.py", "lab_preset", "custom", "lab_custom"),
}


@pytest.mark.fuzz
@pytest.mark.parametrize("box", sorted(BOXES))
@settings(max_examples=fuzz_examples(40, 8), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=LEVEL_TEXT)
@example(text="6,6")
@example(text="1,1,1")
@example(text="64,64,64")
@example(text="1," * 5000)
def test_levels_box(box, text):
    page, preset_key, custom, text_key = BOXES[box]
    at = app(page)
    at.selectbox(key=preset_key).set_value(custom).run()
    at.text_input(key=text_key).set_value(text).run()
    result = outcome(at)
    assert result == ("drawn" if valid(text) else "refused"), text
    if result == "drawn" and box == "pyramid":
        m = sum(n * n for n in parse_levels(text))
        assert any(x.label == "Output length k x M" and x.value.endswith(f"{1280 * m:,}") for x in at.metric)
