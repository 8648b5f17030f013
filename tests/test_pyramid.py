"""The SPP op against a slow loop reference, autograd, odd shapes and the training rule's known failures."""

from __future__ import annotations

import math

import pytest
import torch

from spp_viz import paper
from spp_viz.pyramid import (
    SpatialPyramidPool,
    bin_edges,
    check_levels,
    num_bins,
    output_length,
    paper_rule_check,
    paper_rule_failures,
    parse_levels,
    spatial_pyramid_pool,
)

# The notes' list (paper.py; tests/test_paper.py checks it against the notes' own line).
PAPER_WRONG_COUNTS = set(paper.TRAINING_RULE_WRONG_COUNTS)


def loop_reference(x: torch.Tensor, levels, mode: str, rule: str) -> torch.Tensor:
    """Slow, obvious SPP: one bin at a time over bin_edges."""
    n_batch, channels, h, w = x.shape
    out = []
    for n in levels:
        level = torch.empty(n_batch, channels, n, n, dtype=x.dtype)
        for i, (y0, y1) in enumerate(bin_edges(h, n, rule)):
            for j, (x0, x1) in enumerate(bin_edges(w, n, rule)):
                cell = x[:, :, y0:y1, x0:x1]
                level[:, :, i, j] = cell.amax(dim=(2, 3)) if mode == "max" else cell.mean(dim=(2, 3))
        out.append(level.reshape(n_batch, -1))
    return torch.cat(out, dim=1)


def test_adaptive_edges_formula():
    assert bin_edges(13, 6) == [(0, 3), (2, 5), (4, 7), (6, 9), (8, 11), (10, 13)]
    assert bin_edges(2, 6) == [(0, 1), (0, 1), (0, 1), (1, 2), (1, 2), (1, 2)]  # smaller than the level
    for size in range(1, 50):
        for n in (1, 2, 3, 4, 6, 7):
            edges = bin_edges(size, n)
            assert len(edges) == n
            for i, (a, b) in enumerate(edges):
                assert a == math.floor(i * size / n) and b == math.ceil((i + 1) * size / n)


@pytest.mark.parametrize("size", range(1, 41))
def test_adaptive_bins_cover_map_without_gaps(size):
    for n in (1, 2, 3, 4, 6):
        edges = bin_edges(size, n)
        assert edges[0][0] == 0 and edges[-1][1] == size
        for (a0, a1), (b0, _b1) in zip(edges, edges[1:], strict=False):
            assert a1 > a0 and b0 <= a1  # non-empty, and the next bin starts before this one ends: no gap


def test_paper_rule_at_13_matches_notes():
    # With a = 13 every level of {6,3,2,1} is right: window/stride 3/2, 5/4, 7/6, 13/13.
    for n, (window, stride) in {6: (3, 2), 3: (5, 4), 2: (7, 6), 1: (13, 13)}.items():
        edges = bin_edges(13, n, "paper")
        assert len(edges) == n
        assert all(b - a == window for a, b in edges)
        assert [a for a, _ in edges] == [i * stride for i in range(n)]
    assert all(c.ok for c in paper_rule_check(13))


def test_paper_rule_wrong_counts_are_exactly_the_notes_list():
    found = {(c.size, c.n) for c in paper_rule_failures(30, (1, 2, 3, 4, 6)) if c.count != c.n and c.stride > 0}
    assert found == PAPER_WRONG_COUNTS
    for a, n in PAPER_WRONG_COUNTS:
        with pytest.raises(ValueError, match=f"gives \\d+ bins, not {n}"):
            bin_edges(a, n, "paper")


def test_paper_rule_tails_and_stride_zero():
    tails = {(c.size, c.n): c.tail for c in paper_rule_failures(30, (1, 2, 3, 4, 6)) if c.tail}
    for n in (3, 4, 6):
        assert tails[(14, n)] > 0  # a = 14 leaves a tail with n = 3, 4 or 6
    assert tails[(10, 4)] == 1
    assert "never pooled" in paper_rule_check(14, (3,))[0].problem
    with pytest.raises(ValueError, match="stride floor\\(4/6\\) = 0"):
        bin_edges(4, 6, "paper")
    assert paper_rule_check(4, (6,))[0].problem.startswith("map of 4 smaller than 6 bins")


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("hw", [(13, 13), (10, 10), (1, 1), (2, 5), (7, 3), (13, 20), (31, 17)])
def test_adaptive_equals_loop_reference(mode, hw):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    levels = (6, 3, 2, 1)
    out = spatial_pyramid_pool(x, levels, mode)
    assert out.shape == (2, 3 * 50)
    torch.testing.assert_close(out, loop_reference(x, levels, mode, "adaptive"))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("hw", [(13, 13), (10, 10), (13, 10), (24, 18)])
def test_paper_rule_equals_loop_reference(mode, hw):
    torch.manual_seed(1)
    x = torch.randn(1, 4, *hw, dtype=torch.float64)
    levels = (3, 2, 1)
    torch.testing.assert_close(spatial_pyramid_pool(x, levels, mode, "paper"), loop_reference(x, levels, mode, "paper"))


def test_paper_rule_raises_with_reason_on_op():
    with pytest.raises(ValueError, match="not 4"):
        spatial_pyramid_pool(torch.randn(1, 1, 7, 7), (4,), rule="paper")


def test_layout_is_level_then_channel_then_bin():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    out = spatial_pyramid_pool(x, (2, 1), "max")
    # level 2: channel 0's four bins, then channel 1's; then level 1: one value per channel.
    expected = [5, 7, 13, 15, 21, 23, 29, 31, 15, 31]
    assert out[0].tolist() == expected


def test_non_contiguous_input():
    torch.manual_seed(2)
    base = torch.randn(2, 9, 11, 3)
    x = base.permute(0, 3, 1, 2)  # (N, C, H, W) view, not contiguous
    assert not x.is_contiguous()
    torch.testing.assert_close(spatial_pyramid_pool(x), spatial_pyramid_pool(x.contiguous()))
    torch.testing.assert_close(
        spatial_pyramid_pool(x[:, :, ::2, 1:]), loop_reference(x[:, :, ::2, 1:], (6, 3, 2, 1), "max", "adaptive")
    )


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("rule", ["adaptive", "paper"])
def test_gradcheck(mode, rule):
    torch.manual_seed(3)
    # Distinct values so max pooling is differentiable at the sample point.
    x = (torch.randperm(2 * 2 * 13 * 13).reshape(2, 2, 13, 13).double() / 100).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spatial_pyramid_pool(t, (6, 3, 2, 1), mode, rule), (x,))


def test_gradcheck_small_map_smaller_than_level():
    x = (torch.randperm(1 * 2 * 2 * 3).reshape(1, 2, 2, 3).double()).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spatial_pyramid_pool(t, (4, 2, 1)), (x,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x = torch.randn(2, 8, 17, 23)
    torch.testing.assert_close(spatial_pyramid_pool(x.cuda()).cpu(), spatial_pyramid_pool(x))


def test_module_repr_and_lengths():
    spp = SpatialPyramidPool((4, 2, 1), mode="avg")
    assert "levels=(4, 2, 1)" in repr(spp) and "mode='avg'" in repr(spp)
    assert spp.num_bins == 21
    assert spp(torch.randn(3, 5, 9, 14)).shape == (3, 5 * 21)
    assert num_bins((6, 3, 2, 1)) == 50 and num_bins((4, 3, 2, 1)) == 30
    assert output_length(256, (6, 3, 2, 1)) == 12_800


@pytest.mark.parametrize(
    "levels, message",
    [((), "at least one level"), ((0,), "n >= 1"), ((-2, 1), "n >= 1"), ((1000,), "too fine"), ((2.5,), "whole")],
)
def test_bad_levels(levels, message):
    with pytest.raises(ValueError, match=message):
        check_levels(levels)
    with pytest.raises(ValueError, match=message):
        spatial_pyramid_pool(torch.randn(1, 1, 4, 4), levels)


def test_parse_levels():
    assert parse_levels("6,3,2,1") == (6, 3, 2, 1)
    assert parse_levels(" {4, 2, 1} ") == (4, 2, 1)
    for bad in ("", "a,b", "0", "3,,-1"):
        with pytest.raises(ValueError):
            parse_levels(bad)


def test_bad_mode_rule_and_shape():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="mode"):
        spatial_pyramid_pool(x, mode="median")
    with pytest.raises(ValueError, match="rule"):
        spatial_pyramid_pool(x, rule="fancy")
    with pytest.raises(ValueError, match="N, C, H, W"):
        spatial_pyramid_pool(torch.randn(4, 4))
