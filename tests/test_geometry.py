"""Receptive fields against input gradients, image <-> conv5 round trips, bins as rectangles, winners."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from spp_viz.geometry import feature_geometry, layer_geometry, level_bins
from spp_viz.models import _alexnet_parts, load_model
from spp_viz.pyramid import bin_edges, bin_winners, pool_level


def linearised(features: nn.Module) -> nn.Module:
    """Same geometry, but every input pixel in the field gets a non-zero gradient: no ReLU, no max, no LRN."""
    f = copy.deepcopy(features)
    for m in list(f.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, (nn.ReLU, nn.LocalResponseNorm)):
                setattr(m, child_name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(m, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
    for p in f.parameters():
        p.data = p.data.abs() + 0.01  # no cancellation
    return f


def gradient_support(features: nn.Module, hw: tuple[int, int], row: int, col: int) -> tuple[int, int, int, int]:
    """(x_min, y_min, x_max, y_max) pixel indices with a non-zero gradient of conv5[:, :, row, col]."""
    x = torch.rand(1, 3, *hw, dtype=torch.float64, requires_grad=True)
    out = features.double()(x)
    out[0, :, row, col].sum().backward()
    ys, xs = np.nonzero(x.grad[0].abs().sum(0).numpy())
    return xs.min(), ys.min(), xs.max(), ys.max()


def expected_field(geom, row: int, col: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = geom.cell_box(row, col)
    return int(x0), int(y0), int(x1) - 1, int(y1) - 1


@pytest.mark.parametrize("hw", [(224, 224), (180, 251)])
@pytest.mark.parametrize("cell", ["centre", "corner"])
def test_zf5_and_alexnet_fields_equal_linearised_gradient_support(hw, cell):
    for features in (load_model("zf5", device="cpu").features, _alexnet_parts()[0]):
        geom = feature_geometry(features, hw)
        row, col = (geom.shape[0] // 2, geom.shape[1] // 2) if cell == "centre" else (0, geom.shape[1] - 1)
        support, field = gradient_support(linearised(features), hw, row, col), expected_field(geom, row, col)
        if cell == "centre":
            assert support == field
        else:
            # At the border the field is an upper bound: floor-mode layers drop trailing pixels no cell sees.
            assert field[0] <= support[0] and field[1] == support[1] == 0 and support[2] <= field[2]
            assert support[3] == field[3]


def test_known_strides_and_fields():
    zf5 = feature_geometry(load_model("zf5", device="cpu"), (224, 224))
    assert (zf5.y.jump, zf5.y.rf, zf5.shape) == (16, 139, (13, 13))
    assert feature_geometry(load_model("zf5", device="cpu"), (180, 180)).shape == (10, 10)
    alex = layer_geometry(_alexnet_parts()[0])[-1]
    assert (alex.y.jump, alex.y.rf, alex.y.size) == (16, 163, 13)


@pytest.mark.parametrize("hw", [(224, 224), (225, 301), (97, 64)])
def test_efficientnet_geometry_matches_the_real_network(default_model, hw):
    geom = feature_geometry(default_model, hw)
    assert geom.y.jump == 32 == geom.x.jump
    with torch.no_grad():
        assert tuple(default_model.forward_features(torch.rand(1, 3, *hw)).shape[-2:]) == geom.shape
    features = copy.deepcopy(default_model.features).requires_grad_(True)
    row, col = geom.shape[0] // 2, geom.shape[1] // 2
    x0, y0, x1, y1 = gradient_support(features, hw, row, col)
    ex0, ey0, ex1, ey1 = expected_field(geom, row, col)
    assert ex0 <= x0 and ey0 <= y0 and x1 <= ex1 and y1 <= ey1  # the support lies inside the computed field


def test_same_padding_offset_depends_on_size(default_model):
    even, odd = feature_geometry(default_model, (224, 224)), feature_geometry(default_model, (225, 225))
    assert even.y.start != odd.y.start  # TensorFlow "same" pads the odd size on the left too


def test_cell_window_round_trips():
    geom = feature_geometry(load_model("zf5", device="cpu"), (224, 300))
    h5, w5 = geom.shape
    for r in range(h5):
        for c in range(w5):
            assert geom.window_to_cells(geom.cells_footprint((r, r + 1), (c, c + 1))) == ((r, r + 1), (c, c + 1))
    assert (h5, w5) == (13, 17)
    for rows, cols in [((2, 7), (0, 5)), ((0, h5), (3, w5)), ((5, 6), (1, 17))]:
        assert geom.window_to_cells(geom.cells_footprint(rows, cols)) == (rows, cols)
    cx, cy = geom.cell_centre(4, 9)
    assert geom.window_to_cells((cx - 2, cy - 2, cx + 3, cy + 3)) == ((4, 5), (9, 10))  # tiny window: middle cell
    assert geom.window_to_cells((-500, -500, 5000, 5000)) == ((0, h5), (0, w5))  # clamped to the map
    assert geom.window_to_cells((cx + 6, cy + 6, cx - 6, cy - 6)) == ((4, 5), (9, 10))  # inverted: collapsed


@pytest.mark.parametrize("rule", ["adaptive", "paper"])
def test_level_bins_are_rectangles_over_conv5_and_the_image(rule):
    geom = feature_geometry(load_model("zf5", device="cpu"), (224, 224))
    bins = level_bins(geom, 3, rule)
    assert len(bins) == 9
    assert [(b.row, b.col) for b in bins[:4]] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert bins[4].rows == bin_edges(13, 3, rule)[1] and bins[4].cols == bin_edges(13, 3, rule)[1]
    for b in bins:
        fx0, fy0, fx1, fy1 = b.footprint
        rx0, ry0, rx1, ry1 = b.field
        assert 0 <= rx0 <= fx0 < fx1 <= rx1 <= 224 and 0 <= ry0 <= fy0 < fy1 <= ry1 <= 224
    if rule == "adaptive":  # the footprints tile the image: first starts at 0, last ends at the edge
        assert bins[0].footprint[:2] == (0.0, 0.0) and bins[-1].footprint[2:] == (224.0, 224.0)


def test_paper_rule_bins_refuse_bad_sizes():
    geom = feature_geometry(load_model("zf5", device="cpu"), (7 * 16 + 20, 7 * 16 + 20))
    with pytest.raises(ValueError, match="not 4"):
        level_bins(geom, 4, "paper")


@pytest.mark.parametrize("rule", ["adaptive", "paper"])
@pytest.mark.parametrize("hw", [(13, 13), (10, 17), (2, 3)])
def test_winner_equals_brute_force_argmax(rule, hw):
    torch.manual_seed(0)
    fmap = torch.randn(*hw)
    for n in (1, 2, 3, 6):
        try:
            values, rows, cols = bin_winners(fmap, n, rule)
        except ValueError:
            assert rule == "paper"
            continue
        for i, (r0, r1) in enumerate(bin_edges(hw[0], n, rule)):
            for j, (c0, c1) in enumerate(bin_edges(hw[1], n, rule)):
                block = fmap[r0:r1, c0:c1]
                flat = int(block.argmax())
                assert (rows[i, j], cols[i, j]) == (r0 + flat // (c1 - c0), c0 + flat % (c1 - c0))
                assert values[i, j] == block.max() == fmap[rows[i, j], cols[i, j]]
        torch.testing.assert_close(pool_level(fmap, n, "max", rule), values)
