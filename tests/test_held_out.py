"""Benches over held-out heads: each part's photos merged into one result (views, shuffle test, level bench) must
equal one run over all photos; the level bench against Captum's FeatureAblation; two models' views paired by photo
against a hand count."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from spp_viz.explain.attribution import level_contributions
from spp_viz.explain.bag_of_words import ShuffleBench, shuffle_bench
from spp_viz.explain.level_importance import LevelBench, LevelSummary, level_bench, level_drops
from spp_viz.explain.view_accuracy import ViewsReport, view_accuracy
from spp_viz.explain.view_summary import ViewsSummary, across_models
from spp_viz.gallery import GalleryItem
from spp_viz.images import to_tensor

BROKEN = "tench/broken.png"


def _photos(model, count: int = 4) -> list[GalleryItem]:
    """Random photos named by class (so the views bench reads a label), one unreadable file."""
    rng = np.random.default_rng(1)
    items = []
    for i in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (100 + 8 * i, 130, 3), dtype=np.uint8)).save(buf, format="PNG")
        items.append(GalleryItem(f"{model.class_names[3 * i]}/{i}.png", data=buf.getvalue()))
    items.append(GalleryItem(BROKEN, data=b"nope"))  # in a class folder: labelled, so the views bench reads it
    return items


def test_views_merged_from_parts_equal_one_run(zf5_model):
    items = _photos(zf5_model)
    whole = view_accuracy(zf5_model, items, short_side=96)
    parts = [view_accuracy(zf5_model, items[i::2], short_side=96) for i in (0, 1)]
    merged = ViewsReport.merge(parts, "merged")
    assert sorted(merged.names) == sorted(whole.names) and merged.held_out and merged.model == "merged"
    for v in whole.views:
        by_name = dict(zip(merged.names, merged.top1[v], strict=True))
        assert [by_name[n] for n in whole.names] == list(whole.top1[v])
    summary = merged.summary()
    assert summary.accuracy == whole.summary().accuracy and [s[0] for s in summary.skipped] == [BROKEN]
    back = ViewsSummary.from_json(summary.json())
    expected = {n: bool(h) for n, h in zip(merged.names, merged.top1["full"], strict=True)}
    assert back.held_out and back.top1_hits("full") == expected


def test_two_models_paired_by_photo_name():
    """a's full view right on p1, p2, p3; b's crop right on p2, p4 (p5 only in b): on the 4 shared photos, a gets
    2 that b misses (p1, p3), b gets 1 that a misses (p4): +1 photo of 4 = +25 points."""
    a = ViewsSummary(4, "a", 256, {}, {}, {}, names=["p1", "p2", "p3", "p4"], hits={"full": "1110"})
    b = ViewsSummary(5, "b", 256, {}, {}, {}, names=["p5", "p4", "p3", "p2", "p1"], hits={"crop": "11010"})
    d = across_models(a, "full", b, "crop")
    assert d.diff == pytest.approx(0.25) and (d.only_this_view, d.only_other) == (2, 1)
    assert d.low <= 0.25 <= d.high and d.mcnemar_p == pytest.approx(1.0)
    assert across_models(a, "full", ViewsSummary(0, "c", 256, {}, {}, {}), "crop") is None


def test_shuffle_merged_from_parts_keeps_each_photos_seed(zf5_model):
    items = _photos(zf5_model, 3)
    whole = shuffle_bench(zf5_model, items, ks=(2,), seed=5)
    names = [i.name for i in items]
    parts = [shuffle_bench(zf5_model, items, ks=(2,), seed=5, only=set(names[i::2])) for i in (0, 1)]
    merged = ShuffleBench.merge(parts, "merged")
    order = [merged.names.index(n) for n in whole.names]
    assert [merged.cosines[2][6][i] for i in order] == pytest.approx(whole.cosines[2][6])
    assert [merged.same_top1[2][i] for i in order] == whole.same_top1[2]
    assert merged.summary().held_out and [s[0] for s in merged.skipped] == [BROKEN]


def test_level_drops_equal_captums_feature_ablation(zf5_model):
    x = to_tensor(Image.fromarray(np.random.default_rng(2).integers(0, 255, (90, 120, 3), dtype=np.uint8)))
    top, drops, changed = level_drops(zf5_model, x)
    with torch.inference_mode():
        logits = zf5_model(x)[0]
    assert top == int(logits.argmax())
    shares = level_contributions(zf5_model, x, top)
    assert drops.tolist() == pytest.approx([s.drop for s in shares], rel=1e-4, abs=1e-5)
    assert changed.dtype == torch.bool and changed.shape == (4,)


def test_level_bench_summary_by_hand():
    bench = LevelBench("m", (2, 1), names=["a", "b"], drops=[[3.0, 1.0], [-1.0, 2.0]], changed=[[True, False]] * 2)
    s = bench.summary()
    assert [r.level for r in s.rows] == [2, 1] and s.rows[0].changed == 2 and s.rows[1].changed == 0
    assert s.rows[0].share.mean == pytest.approx((0.75 + 0.0) / 2) and s.rows[1].share.mean == pytest.approx(0.625)
    assert s.rows[0].drop.mean == pytest.approx(1.0) and s.rows[0].drop.se == pytest.approx(2.0)  # sd 2.83 / sqrt 2
    assert LevelSummary.from_json(s.json()) == s
    merged = LevelBench.merge([bench, bench], "both")
    assert merged.summary().n == 4 and merged.held_out
    with pytest.raises(ValueError, match="different levels"):
        LevelBench.merge([bench, LevelBench("m", (1,))], "x")


def test_level_bench_runs_over_photos_and_refuses_one_level(zf5_model, default_model):
    items = _photos(zf5_model, 2)
    bench = level_bench(zf5_model, items)
    assert bench.names == [i.name for i in items[:2]] and bench.skipped[0][0] == BROKEN
    assert len(bench.drops[0]) == 4
    with pytest.raises(ValueError, match="one pyramid level"):
        level_bench(default_model, items)
