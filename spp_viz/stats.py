"""How sure a comparison is: paired differences of accuracy over images, and of results over training seeds.

Two uses in the app: the three views (crop, warp, full) judged on the same photos, where each photo is a pair of
right/wrong outcomes; and the Lab's networks trained with the same seeds, where each seed is a pair of accuracies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def verdict(low: float, high: float, threshold: float = 0.0) -> str:
    """Where an interval of a difference lies against ``threshold``: "above" when all of it lies above, "below" when
    all of it lies below, "unclear" when it spans the threshold (or is not a number). Every comparison the app puts
    in words is decided here; ``spp_viz.verdicts`` words it."""
    if low > threshold:
        return "above"
    if high < threshold:
        return "below"
    return "unclear"


@dataclass(frozen=True)
class Interval:
    """A bootstrap estimate: the value on the data, its standard error and 95% interval."""

    value: float
    se: float
    low: float
    high: float


def paired_bootstrap(a: Sequence[bool], b: Sequence[bool], samples: int = 2000, seed: int = 0) -> Interval:
    """Accuracy of a minus accuracy of b on the same items, with a 95% interval from resampling the items.

    Args:
        a: [N] whether each item was right under a.
        b: [N] whether each item was right under b (item i is the same item in both).
        samples: bootstrap resamples; each draws N items with replacement and keeps the pairs together.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equally long, non-empty lists of outcomes, got {a.shape} and {b.shape}")
    d = a - b  # [N] in {-1, 0, 1}
    rng = np.random.default_rng(seed)
    draws = d[rng.integers(0, len(d), size=(samples, len(d)))].mean(axis=1)  # [samples]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(float(d.mean()), float(draws.std(ddof=1)), float(lo), float(hi))


def wilson(hits: Sequence[bool], z: float = 1.959964) -> Interval:
    """A proportion with its 95% Wilson score interval (it stays inside [0, 1] and is not empty at 0 or N hits,
    where the normal approximation is, which matters for a class's few photos).

    Args:
        hits: [N] whether each item counts.
    """
    h = np.asarray(hits, dtype=bool)
    if h.ndim != 1 or len(h) == 0:
        raise ValueError(f"need a non-empty list of outcomes, got shape {h.shape}")
    n, p = len(h), float(h.mean())
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, math.sqrt(p * (1 - p) / n), max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on paired outcomes: only the items where a and b disagree count."""

    only_a: int  # right under a, wrong under b
    only_b: int  # right under b, wrong under a
    p_value: float  # two-sided, exact binomial with p = 1/2


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """McNemar's exact test: under "a and b are equally good", each disagreement goes either way with odds 1/2."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"need two equally long lists of outcomes, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return McNemar(only_a, only_b, min(1.0, 2 * tail))


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / sqrt(n)); the error is nan for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError(f"need a non-empty list of numbers, got shape {arr.shape}")
    se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else float("nan")
    return float(arr.mean()), se


@dataclass(frozen=True)
class SeedVerdict:
    """A paired comparison over training seeds: mean of a - b per seed, and its standard error."""

    diff: float  # mean over seeds of a - b
    se: float  # standard deviation of the per-seed differences / sqrt(seeds); nan with one seed
    seeds: int

    @property
    def clear(self) -> bool:
        """True when the difference exceeds twice its standard error (needs at least two seeds)."""
        return self.direction != "none"

    @property
    def direction(self) -> str:
        """ "a" or "b" (the better one, when the difference is clear), or "none"."""
        if self.seeds < 2:
            return "none"
        side = verdict(self.diff - 2 * self.se, self.diff + 2 * self.se)
        return {"above": "a", "below": "b", "unclear": "none"}[side]


def seed_verdict(a: Sequence[float], b: Sequence[float]) -> SeedVerdict:
    """Compare two configurations trained with the same seeds: a[i] and b[i] come from seed i.

    Raises:
        ValueError: when the lists differ in length or are empty.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need one result per seed for both, got {a.shape} and {b.shape}")
    return SeedVerdict(*mean_se(a - b), len(a))
