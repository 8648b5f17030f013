"""Spatial pyramid pooling: bin geometry, the SPP op and its output layout (He et al. 2014, Sec. 2.3, Appendix A).

Two rules place the n x n bins of a pyramid level over a conv5 map of side ``a``:

* ``"adaptive"`` (Appendix A, the rule the authors deploy): bin i spans
  ``[floor(i * a / n), ceil((i + 1) * a / n))``. Always n bins, for any a >= 1. This is exactly PyTorch's
  adaptive pooling.
* ``"paper"`` (Sec. 2.3, the training rule): a sliding window of size ``ceil(a / n)`` and stride
  ``floor(a / n)``. It only gives n bins for some sizes, and can leave a tail of the map unpooled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import paper
from .i18n import _

RULES = ("adaptive", "paper")
POOL_MODES = ("max", "avg")  # max pooling (the paper's) or average pooling in each bin
PAPER_LEVELS = paper.LEVELS
# A level finer than this gives more bins than any conv5 map in the app has cells: refuse it as a typo.
MAX_LEVEL = 64


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown bin rule {rule!r}: use 'adaptive' (Appendix A) or 'paper' (the training rule)")


def _check_mode(mode: str) -> None:
    if mode not in POOL_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}: use 'max' or 'avg'")


def check_levels(levels: Iterable[int]) -> tuple[int, ...]:
    """Validate pyramid levels and return them as a tuple.

    Raises:
        ValueError: if the levels are empty, not whole numbers, below 1 or above ``MAX_LEVEL``.
    """
    try:
        out = tuple(levels)
    except TypeError as e:
        raise ValueError(
            _("pyramid levels must be a list of whole numbers, got {levels}").format(levels=repr(levels))
        ) from e
    if not out:
        raise ValueError(_("a pyramid needs at least one level, e.g. 6,3,2,1"))
    for n in out:
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(_("pyramid level {n} is not a whole number").format(n=repr(n)))
        if n < 1:
            raise ValueError(_("pyramid level {n} is not allowed: a level is an n x n grid with n >= 1").format(n=n))
        if n > MAX_LEVEL:
            raise ValueError(
                _("pyramid level {n} is too fine: at most {most} x {most} bins per level").format(n=n, most=MAX_LEVEL)
            )
    return out


def parse_levels(text: str) -> tuple[int, ...]:
    """Parse levels written as ``"6,3,2,1"`` (spaces and ``{}`` allowed) and validate them."""
    cleaned = text.strip().strip("{}()[]").replace(" ", "")
    if not cleaned:
        raise ValueError(_("a pyramid needs at least one level, e.g. 6,3,2,1"))
    try:
        levels = [int(part) for part in cleaned.split(",") if part != ""]
    except ValueError as e:
        raise ValueError(
            _("could not read pyramid levels from {text}: write whole numbers like 6,3,2,1").format(text=repr(text))
        ) from e
    repeated = sorted({n for n in levels if levels.count(n) > 1})
    if repeated:
        raise ValueError(
            _(
                "level {n} appears more than once: each level is a different grid, and a repeated one would only copy "
                "the same numbers into the vector again"
            ).format(n=repeated[0])
        )
    return check_levels(levels)


def num_bins(levels: Sequence[int]) -> int:
    """M = sum of n*n over the levels, e.g. 50 for {6,3,2,1}."""
    return sum(n * n for n in check_levels(levels))


def output_length(channels: int, levels: Sequence[int]) -> int:
    """Length k*M of the SPP vector for a conv5 map with k channels (ZF-5 with {6,3,2,1}: ``paper.ZF5_SPP_LENGTH``)."""
    return channels * num_bins(levels)


def paper_window(size: int, n: int) -> tuple[int, int, int]:
    """The training rule's (window, stride, number of windows) for n bins over ``size`` cells.

    The number of windows is what a pooling layer with that window and stride really produces; it can differ
    from n. With stride 0 (size < n) no pooling layer exists and the count is 0.
    """
    if size < 1 or n < 1:
        raise ValueError(f"size and n must be >= 1, got size={size}, n={n}")
    window, stride = math.ceil(size / n), size // n
    count = 0 if stride == 0 else (size - window) // stride + 1
    return window, stride, count


def adaptive_edges(size: int | Tensor, n: int) -> tuple[int | Tensor, int | Tensor]:
    """Appendix A's bins of one level: starts floor(i*size/n) and ends ceil((i+1)*size/n), for i = 0..n-1.

    ``size`` is an int (then lists of n ints come back) or a LongTensor[N] of lengths (then Tensor[N, n] each): the
    pyramid op and detection's per-window pooling share this one integer form (no float rounding at large sizes).
    """
    if isinstance(size, Tensor):
        i = torch.arange(n, device=size.device)
        size = size[:, None]  # [N] -> [N, 1], broadcast against the n bins
        return (i * size) // n, -((-(i + 1) * size) // n)
    return [(i * size) // n for i in range(n)], [-((-(i + 1) * size) // n) for i in range(n)]


def bin_edges(size: int, n: int, rule: str = "adaptive") -> list[tuple[int, int]]:
    """Half-open cell ranges ``[start, end)`` of the n bins of one level over a length ``size``.

    Args:
        size: length of the conv5 map along one axis (>= 1).
        n: bins along that axis.
        rule: ``"adaptive"`` (Appendix A) or ``"paper"`` (training rule, window ceil(a/n), stride floor(a/n)).

    Raises:
        ValueError: for an unknown rule, or when the training rule cannot give exactly n bins.
    """
    _check_rule(rule)
    if size < 1 or n < 1:
        raise ValueError(f"size and n must be >= 1, got size={size}, n={n}")
    if rule == "adaptive":
        return list(zip(*adaptive_edges(size, n), strict=True))
    window, stride, count = paper_window(size, n)
    if stride == 0:
        raise ValueError(
            _(
                "the training rule cannot pool {size} cells into {n} bins: stride floor({size}/{n}) = 0 (the map is "
                "smaller than the level)"
            ).format(size=size, n=n)
        )
    if count != n:
        raise ValueError(
            _(
                "the training rule gives {count} bins, not {n}, over {size} cells: window ceil({size}/{n}) = "
                "{window}, stride floor({size}/{n}) = {stride}"
            ).format(count=count, n=n, size=size, window=window, stride=stride)
        )
    return [(i * stride, i * stride + window) for i in range(n)]


@dataclass(frozen=True)
class RuleCheck:
    """How the training rule fares for one level over one map size."""

    size: int  # cells along the axis
    n: int  # bins asked for
    window: int  # ceil(size / n)
    stride: int  # floor(size / n)
    count: int  # windows a pooling layer with that window and stride produces
    tail: int  # cells at the end that no window covers (0 when the count is wrong)

    @property
    def ok(self) -> bool:
        """True when the rule gives exactly n bins and pools every cell."""
        return self.count == self.n and self.tail == 0

    @property
    def problem(self) -> str:
        """A one-line description of what goes wrong, or '' when nothing does (in the reader's language)."""
        if self.stride == 0:
            return _("map of {size} smaller than {n} bins: stride 0").format(size=self.size, n=self.n)
        if self.count != self.n:
            return _("{count} bins instead of {n}").format(count=self.count, n=self.n)
        if self.tail:
            return _("last {tail} cell(s) never pooled").format(tail=self.tail)
        return ""

    def row(self) -> dict[str, int | str]:
        """One table row for a student: the map side, the level, the window and stride, what they give."""
        return {
            _("a (cells)"): self.size,
            _("level n"): self.n,
            _("window ceil(a/n)"): self.window,
            _("stride floor(a/n)"): self.stride,
            _("windows"): self.count,
            _("verdict"): self.problem or _("ok"),
        }


def paper_rule_check(size: int, levels: Sequence[int] = PAPER_LEVELS) -> list[RuleCheck]:
    """For a map side ``size``, what the training rule gives for each level (see ``RuleCheck``)."""
    checks = []
    for n in check_levels(levels):
        window, stride, count = paper_window(size, n)
        covered = (count - 1) * stride + window if count else 0
        tail = size - covered if count == n else 0
        checks.append(RuleCheck(size=size, n=n, window=window, stride=stride, count=count, tail=tail))
    return checks


def paper_rule_failures(max_size: int = 40, levels: Sequence[int] = PAPER_LEVELS) -> list[RuleCheck]:
    """Every (size, level) with size in 1..max_size where the training rule gives a wrong count or a tail."""
    return [c for size in range(1, max_size + 1) for c in paper_rule_check(size, levels) if not c.ok]


def _pool_level(x: Tensor, n: int, mode: str, rule: str) -> Tensor:
    """Pool x: Tensor[N, C, H, W] into Tensor[N, C, n, n] with one rule."""
    if rule == "adaptive":
        return F.adaptive_max_pool2d(x, n) if mode == "max" else F.adaptive_avg_pool2d(x, n)
    h, w = x.shape[-2:]
    bin_edges(h, n, "paper")  # raises with the reason when the rule cannot give n bins
    bin_edges(w, n, "paper")
    kernel = (math.ceil(h / n), math.ceil(w / n))
    stride = (h // n, w // n)
    return F.max_pool2d(x, kernel, stride) if mode == "max" else F.avg_pool2d(x, kernel, stride)


def spatial_pyramid_pool(
    x: Tensor, levels: Sequence[int] = PAPER_LEVELS, mode: str = "max", rule: str = "adaptive"
) -> Tensor:
    """Spatial pyramid pooling of a batch of feature maps.

    Args:
        x: Tensor[N, C, H, W], any H, W >= 1.
        levels: bins per side of each level, e.g. (6, 3, 2, 1).
        mode: ``"max"`` or ``"avg"``.
        rule: ``"adaptive"`` (Appendix A) or ``"paper"`` (training rule; raises for sizes it cannot pool).

    Returns:
        Tensor[N, C * sum(n*n)]: for each level in the given order, the Tensor[N, C, n, n] pooled map
        flattened to Tensor[N, C*n*n], levels concatenated.
    """
    levels = check_levels(levels)
    _check_mode(mode)
    _check_rule(rule)
    if x.dim() != 4:
        raise ValueError(f"expected a Tensor[N, C, H, W], got shape {tuple(x.shape)}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"cannot pool an empty map of shape {tuple(x.shape)}")
    # (N, C, n, n) -> (N, C*n*n) per level, channel-major, then levels side by side.
    return torch.cat([_pool_level(x, n, mode, rule).flatten(1) for n in levels], dim=1)


class SpatialPyramidPool(nn.Module):
    """``spatial_pyramid_pool`` as a module: replaces pool5 so the classifier gets a fixed length."""

    def __init__(self, levels: Sequence[int] = PAPER_LEVELS, mode: str = "max", rule: str = "adaptive") -> None:
        super().__init__()
        _check_mode(mode)
        _check_rule(rule)
        self.levels = check_levels(levels)
        self.mode = mode
        self.rule = rule

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[N, C, H, W] -> Tensor[N, C * sum(n*n)]."""
        return spatial_pyramid_pool(x, self.levels, self.mode, self.rule)

    @property
    def num_bins(self) -> int:
        """M = sum of n*n."""
        return num_bins(self.levels)

    def output_length(self, channels: int) -> int:
        """k*M for k channels."""
        return channels * self.num_bins

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}, rule={self.rule!r}"


def pool_level(fmap: Tensor, n: int, mode: str = "max", rule: str = "adaptive") -> Tensor:
    """One level over one map: Tensor[H, W] -> Tensor[n, n] pooled values (for display and hover text)."""
    _check_mode(mode)
    _check_rule(rule)
    return _pool_level(fmap[None, None], n, mode, rule)[0, 0]


def bin_winners(fmap: Tensor, n: int, rule: str = "adaptive") -> tuple[Tensor, Tensor, Tensor]:
    """Which conv5 cell wins each bin's max: Tensor[H, W] -> (values, rows, cols), each Tensor[n, n].

    Ties go to the first cell in row-major order, as in PyTorch's max pooling.
    """
    _check_rule(rule)
    h, w = fmap.shape
    x = fmap[None, None]
    if rule == "adaptive":
        values, flat = F.adaptive_max_pool2d(x, n, return_indices=True)
    else:
        bin_edges(h, n, "paper")
        bin_edges(w, n, "paper")
        kernel, stride = (math.ceil(h / n), math.ceil(w / n)), (h // n, w // n)
        values, flat = F.max_pool2d(x, kernel, stride, return_indices=True)
    flat = flat[0, 0]  # (n, n) indices into the flattened H*W map
    return values[0, 0], flat // w, flat % w


# ----------------------------------------------------------------------------- the vector's layout


def vector_index(levels: Sequence[int], channels: int) -> np.ndarray:
    """Where each entry of an SPP vector comes from, in the op's layout (level, then channel, then bins row by row).

    Returns an int array [C * sum(n*n), 4] of (level, channel, bin_row, bin_col).
    """
    index = []
    for n in check_levels(levels):
        c, i, j = np.indices((channels, n, n)).reshape(3, -1)  # (3, C, n, n) -> (3, C*n*n)
        index.append(np.stack([np.full_like(c, n), c, i, j], axis=1))
    return np.concatenate(index)


def _fitted_index(vector: np.ndarray, levels: Sequence[int], channels: int) -> np.ndarray:
    index = vector_index(levels, channels)
    if len(index) != len(vector):
        raise ValueError(f"a vector of {len(vector)} numbers does not fit levels {tuple(levels)} x {channels} channels")
    return index


def vector_table(vector: np.ndarray, levels: Sequence[int], channels: int) -> list[tuple[int, int, int, int, float]]:
    """Rows (level, channel, bin_row, bin_col, value) for every entry of an SPP vector, in its order."""
    index = _fitted_index(vector, levels, channels)
    return list(zip(*index.T.tolist(), vector.tolist(), strict=True))


def vector_csv(vector: np.ndarray, levels: Sequence[int], channels: int) -> str:
    """CSV text of ``vector_table`` with a header and a position column, for download (pages build it per run)."""
    index = _fitted_index(vector, levels, channels)
    rows = map("{},{},{},{},{},{:.6g}".format, range(len(vector)), *index.T.tolist(), vector.tolist())
    return "position,level,channel,bin_row,bin_col,value\n" + "\n".join(rows) + "\n"
