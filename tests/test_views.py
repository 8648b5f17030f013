"""Crop / warp / full views: what each keeps and how it distorts; predictions per view; the scale sweep."""

from __future__ import annotations

import numpy as np
import pytest
from badfiles import photo

from spp_viz.explain.views import (
    compare_views,
    crop_view,
    full_view,
    make_views,
    predictions_csv,
    scale_sweep,
    warp_view,
)
from spp_viz.images import load_image, samples


def test_crop_keeps_the_centre_and_loses_the_rest():
    img = photo(451, 300)
    v = crop_view(img)  # 451 x 300 -> 385 x 256 -> centre 224 x 224
    assert v.image.size == (224, 224)
    x0, y0, x1, y1 = v.kept
    assert x0 == pytest.approx(80 * 451 / 385) and x1 == pytest.approx(304 * 451 / 385)
    assert y0 == pytest.approx(16 * 300 / 256) and y1 == pytest.approx(240 * 300 / 256)
    assert v.kept_fraction == pytest.approx(224 * 224 / (385 * 256), rel=1e-3)
    assert v.aspect_change == pytest.approx(1.0, abs=0.01)


def test_warp_keeps_everything_and_changes_the_aspect():
    v = warp_view(photo(451, 300))
    assert v.image.size == (224, 224) and v.kept_fraction == 1.0
    assert v.aspect_change == pytest.approx((224 / 451) / (224 / 300))  # width squeezed to 0.67 of height


def test_full_view_keeps_shape_and_content():
    v = full_view(photo(451, 300))
    assert v.image.size == (385, 256) and v.kept_fraction == 1.0 and v.aspect_change == pytest.approx(1.0, abs=0.01)
    assert set(make_views(photo(451, 300))) == {"crop", "warp", "full"}
    small = crop_view(photo(150, 100), 224, 100)  # smaller than the crop: the centre square
    assert small.image.size == (100, 100)


def test_compare_views_on_a_sample(default_model):
    cat = next(s for s in samples() if s.file == "chelsea.jpg")
    comp = compare_views(default_model, load_image(cat.path), multi_scale=True)
    assert set(comp.top5) == {"crop", "warp", "full", "multi"}
    for preds in comp.top5.values():
        assert len(preds) == 5 and preds[0].prob >= preds[-1].prob
    assert comp.top1["full"] in cat.classes
    assert comp.agree == (len(set(comp.top1.values())) == 1)
    assert np.isclose(comp.probs["multi"].sum(), 1.0, atol=1e-4)
    csv = predictions_csv(comp).splitlines()
    assert csv[0] == "view,rank,class_index,class_name,probability" and len(csv) == 1 + 4 * 5


def test_scale_sweep_shapes_and_progress(default_model):
    calls = []
    sweep = scale_sweep(
        default_model, photo(300, 200), 281, sides=(128, 224, 320), progress=lambda f, t: calls.append((f, t))
    )
    assert set(sweep) == {"crop", "warp", "full"} and all(len(v) == 3 for v in sweep.values())
    assert all(0.0 <= p <= 1.0 for v in sweep.values() for p in v)
    assert calls == [(1 / 3, "1 of 3 sizes"), (2 / 3, "2 of 3 sizes"), (1.0, "3 of 3 sizes")]
