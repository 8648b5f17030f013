"""stats.verdict decides, spp_viz.verdicts words: hand values at and around each boundary, and every caller's rule
against the rule it had before it called them (written out here as the reference)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spp_viz import verdicts
from spp_viz.stats import SeedVerdict, verdict


@pytest.mark.parametrize(("low", "high", "threshold", "side"), [
    (0.01, 0.2, 0.0, "above"), (-0.2, -0.01, 0.0, "below"), (-0.1, 0.1, 0.0, "unclear"), (0.0, 0.1, 0.0, "unclear"),
    (-0.1, 0.0, 0.0, "unclear"), (-0.019, 0.05, -0.02, "above"), (-0.05, -0.021, -0.02, "below"),
    (math.nan, math.nan, 0.0, "unclear"),
])  # fmt: skip
def test_verdict_by_hand(low, high, threshold, side):
    assert verdict(low, high, threshold) == side


FINITE = st.floats(-1, 1, allow_nan=False)


@given(FINITE, st.floats(0, 1, allow_nan=False), st.integers(1, 6))
def test_seed_direction_is_the_two_standard_errors_rule(diff, se, seeds):
    reference = "none" if seeds < 2 or abs(diff) <= 2 * se else ("a" if diff > 0 else "b")
    assert SeedVerdict(diff, se, seeds).direction == reference


@given(FINITE, FINITE, FINITE)
def test_the_words_follow_the_decision(value, a, b):
    low, high = min(a, b), max(a, b)
    said = verdicts.paired(value, low, high, 0.5, "crop")
    assert ("no clear difference" in said) == (low <= 0 <= high)
    assert said.startswith("beats") == (low > 0) and said.startswith("falls") == (high < 0)
    between = verdicts.between("A", "B", value, low, high)
    assert between.startswith("No clear difference") == (low <= 0 <= high)
    margin = "holds" if low > -0.02 else "fails" if high < -0.02 else "unclear"
    assert verdicts.within_margin(low, high, 0.02) == margin


def test_the_paper_claim_by_direction():
    assert [verdicts.paper_claim(d) for d in ("a", "b", "none")] == [
        "matches the paper", "the opposite of the paper", "no clear difference on these data"]  # fmt: skip
