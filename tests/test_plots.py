"""Figure builders: the mosaic shows the right channels, figures are valid plotly, pictures have the right size."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from badfiles import photo

from spp_viz.plots.base import outline_boxes
from spp_viz.plots.exports import png_bytes
from spp_viz.plots.maps import channel_grid, channel_heatmap, overlay, size_sweep
from spp_viz.plots.views import crop_warp_spp


def boxes(fig: go.Figure, name: str) -> list[tuple[float, float, float, float]]:
    """Every box the figure's outline traces of that name draw, in edge coordinates."""
    return [b for d in fig.data if d.name == name for b in outline_boxes(d)]


def revalidate(fig: go.Figure) -> go.Figure:
    """Figures built without validation must pass plotly's validator (raises ValueError on a bad property)."""
    return go.Figure(fig.to_dict())


def test_channel_grid_tiles_and_hover_point_to_the_channel():
    rng = np.random.default_rng(0)
    conv5 = rng.random((10, 3, 5)).astype(np.float32)
    fig = channel_grid(conv5, [7, 2, 9], cols=2, values=conv5.max(axis=(1, 2)))
    revalidate(fig)
    z = np.asarray(fig.data[0].z, dtype=float)
    info = np.asarray(fig.data[0].customdata)
    assert z.shape == (2 * 4 - 1, 2 * 6 - 1)  # 3 rows a tile and a 1-row gap; 5 columns and a 1-column gap
    np.testing.assert_allclose(z[0:3, 0:5], conv5[7])
    np.testing.assert_allclose(z[0:3, 6:11], conv5[2])
    np.testing.assert_allclose(z[4:7, 0:5], conv5[9])
    assert np.isnan(z[3]).all() and np.isnan(z[:, 5]).all()  # gaps between tiles
    assert info[5, 3].tolist() == [9, 3, 1]  # channel 9, x 3, y 1
    tall = channel_grid(rng.random((2, 12, 4)), [0, 1], cols=1)
    assert np.isnan(np.asarray(tall.data[0].z)[12:15]).all()  # taller tiles get a taller gap for the titles
    assert [a.text.split()[0] for a in fig.layout.annotations] == ["#7", "#2", "#9"]


def test_heatmap_and_sweep_are_valid():
    fig = revalidate(channel_heatmap(np.ones((4, 6)), "channel 3"))
    assert fig.layout.title.text == "channel 3"
    rows = [{"short_side": s, "conv5_h": s // 32, "conv5_w": s // 20, "spp_length": 1280} for s in (256, 128, 512)]
    sweep = size_sweep(rows)
    assert list(sweep.data[0].x) == [128, 256, 512] and set(sweep.data[2].y) == {1280}


def test_overlay_and_home_picture():
    img = photo(300, 200)
    out = overlay(img, np.arange(12, dtype=np.float32).reshape(3, 4), alpha=1.0)
    assert out.size == img.size
    arr = np.asarray(out)
    assert not np.array_equal(arr[:, 0], arr[:, -1])  # the map's left-right ramp shows through
    assert overlay(img, np.zeros((2, 2), np.float32)).size == img.size  # a flat map does not divide by zero
    panel = crop_warp_spp(img)
    assert panel.width > 3 * 200 and png_bytes(panel).startswith(b"\x89PNG")


def test_pyramid_figures_are_valid_and_small():
    import base64
    import io

    from PIL import Image

    from spp_viz.explain.level_views import level_view, spp_vector
    from spp_viz.geometry import feature_geometry
    from spp_viz.models import load_model
    from spp_viz.plots.base import encode_image
    from spp_viz.plots.pyramid import level_on_image, level_on_map, rule_coverage, vector_strip

    img = photo(300, 224)
    enc = encode_image(img)
    decoded = Image.open(io.BytesIO(base64.b64decode(enc.uri.split(",", 1)[1])))
    assert decoded.size == (enc.width, enc.height) == (300, 224)
    geom = feature_geometry(load_model("zf5", device="cpu"), (224, 300))
    fmap = np.random.default_rng(0).random(geom.shape).astype(np.float32)
    view = level_view(fmap, geom, 3)
    on_map = revalidate(level_on_map(fmap, view, "t"))
    # map, the bins' edges (two colours), hover points, winners; the edges are the bins' own cells
    assert [d.type for d in on_map.data] == ["heatmap", "scatter", "scatter", "scatter", "scatter"]
    edges = boxes(on_map, "bins")
    assert sorted(edges) == sorted((b.cols[0], b.rows[0], b.cols[1], b.rows[1]) for b in view.bins)
    centre = view.bins[4]  # the middle bin of 3 x 3, outlined in the first colour like the corners
    assert (centre.cols[0], centre.rows[0], centre.cols[1], centre.rows[1]) in outline_boxes(on_map.data[1])
    on_img = revalidate(level_on_image(enc, view, "t", geom=geom))
    assert len(boxes(on_img, "bins")) == 9 and len(boxes(on_img, "winners' fields")) == 9
    assert not on_img.layout.shapes  # one path per colour instead of an SVG element per bin
    assert len(on_img.to_json()) < 100_000  # the picture travels as a JPEG, not as a pixel array
    conv5 = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)
    strip = revalidate(vector_strip(spp_vector(conv5, (2, 1)), (2, 1), 4))
    assert [a.text for a in strip.layout.annotations] == ["2x2", "1x1"]
    broken = revalidate(rule_coverage(14, 3))
    assert "never pooled" in broken.layout.title.text
    z = np.asarray(rule_coverage(14, 3).data[0].z)
    assert (z[13] == 0).all() and (z[:13, :13] > 0).all()  # a = 14, n = 3: the last row and column never pooled
    assert len(boxes(broken, "windows")) == 3 * 3  # window 5, stride 4: starts 0, 4, 8 on each axis
    for size in (1, 2):  # a map smaller than its bins: the grid drawn cell by cell, and no window
        empty = revalidate(rule_coverage(size, 6))
        assert "no window exists" in empty.layout.title.text and len(boxes(empty, "cells")) == size * size
        assert list(empty.layout.xaxis.range) == [-0.5, size - 0.5]
        assert np.asarray(rule_coverage(size, 6).data[0].z).shape == (size, size)  # every cell, red
        assert "none is made" in empty.layout.annotations[0].text


def test_lab_bars_and_shuffle_curves_keep_their_legends_off_the_axes():
    """What a browser showed overlapping (test_browser checks the rendered boxes): the Lab's bars with their legend
    above the plot and upright labels outside the bars; the shuffle curves with their legend below the axis title."""
    from spp_viz.explain.bag_of_words import MeanSE, ShuffleRow, ShuffleSummary
    from spp_viz.lab.experiments import ExperimentRow
    from spp_viz.plots.lab import accuracy_bars
    from spp_viz.plots.pyramid import shuffle_curves

    views = {"crop": 0.9, "warp": 0.8, "full": None}
    row = ExperimentRow("no SPP (crop)", {"regime": "crop"}, views, dict.fromkeys(views), dict.fromkeys(views))
    bars = revalidate(accuracy_bars([row]))
    assert bars.layout.legend.y > 1 and bars.layout.legend.yanchor == "bottom"
    assert all(t.textangle == 0 and t.textposition == "inside" for t in bars.data) and bars.layout.xaxis.tickangle == 0
    cell = MeanSE(0.5, 0.01)
    result = ShuffleSummary(10, "m", 0, 256, (1, 6), [ShuffleRow(2, cell, {1: cell, 6: cell})])
    curves = revalidate(shuffle_curves(result))
    assert curves.layout.legend.y < 0 and curves.layout.margin.b >= 80


def test_stopping_curves_mark_the_kept_epoch_on_its_own_curve():
    from spp_viz.lab.experiments import ExperimentRow
    from spp_viz.plots.lab import stopping_curves

    views = {"crop": 0.9, "warp": 0.8, "full": None}
    rows = [
        ExperimentRow(name, {}, views, views, views, val_curves=[curve], kept_epochs=[kept])
        for name, curve, kept in (("a", [0.5, 0.9, 0.8], 2), ("b", [0.3, 0.4, 0.7, 0.6], 3))
    ]
    fig = revalidate(stopping_curves(rows))
    lines, marks = fig.data[0::2], fig.data[1::2]
    assert [list(t.y) for t in lines] == [[0.5, 0.9, 0.8], [0.3, 0.4, 0.7, 0.6]]
    assert [(m.x[0], m.y[0]) for m in marks] == [(2, 0.9), (3, 0.7)]
    assert [m.marker.color for m in marks] == [t.line.color for t in lines]  # each diamond in its curve's colour
    assert not revalidate(stopping_curves([ExperimentRow("c", {}, views, views, views)])).data  # none recorded


def test_detection_figures():
    from spp_viz.detection.classify import WindowLabel
    from spp_viz.plots.base import encode_image
    from spp_viz.plots.detection import detections_figure, timing_figure

    enc = encode_image(photo(200, 100))
    dets = [WindowLabel((10, 10, 50, 60), 3, "x", 0.9), WindowLabel((60, 10, 90, 40), 4, "y", 0.5)]
    fig = revalidate(detections_figure(enc, dets, np.array([[0, 0, 20, 20]] * 5, np.float32)))
    assert len(fig.layout.shapes) == 5 + 2 and [a.text for a in fig.layout.annotations] == ["x 90%", "y 50%"]
    timing = revalidate(timing_figure({"R-CNN": {"conv": 10.0, "warp": 1.0}, "SPP-net": {"conv": 0.1}}))
    assert timing.layout.barmode == "group" and timing.layout.xaxis.type == "log"  # 100-fold apart: log, not stacked


def test_lab_figures():
    from spp_viz.lab.experiments import ExperimentRow
    from spp_viz.lab.train import EpochLog
    from spp_viz.plots.lab import accuracy_bars, training_curves

    history = [EpochLog(1, 1.2, 0.4, 1.0, ((64, 64),)), EpochLog(2, 0.8, 0.6, 0.8, ((51, 51),))]
    curves = revalidate(training_curves(history))
    assert list(curves.data[0].y) == [1.2, 0.8] and list(curves.data[1].y) == [0.4, 0.6]
    assert not curves.layout.shapes
    kept = revalidate(training_curves(history, kept_epoch=2))
    assert [s.x0 for s in kept.layout.shapes] == [2] and kept.layout.annotations[0].text == "kept: epoch 2, 60.0%"
    rows = [{"name": "a", "test": {"crop": 0.5, "warp": 0.6, "full": None}}]
    bars = revalidate(accuracy_bars([ExperimentRow.from_json(r) for r in rows]))
    assert [t.name for t in bars.data] == ["crop view", "warp view", "full view"] and bars.data[2].text == (None,)
    seeded = [
        {
            "name": "a",
            "test": {"crop": 0.5, "warp": 0.6, "full": None},
            "std": {"crop": 0.1, "warp": 0.0, "full": None},
            "per_seed": {"crop": [0.4, 0.6], "warp": [0.6, 0.6], "full": None},
        }
    ]
    bars = revalidate(accuracy_bars([ExperimentRow.from_json(r) for r in seeded]))
    assert list(bars.data[0].error_y.array) == [0.1] and bars.data[0].error_y.visible
    assert bars.data[0].customdata[0] == "seed 0: 40.0%<br>seed 1: 60.0%" and bars.data[2].customdata[0] == "n/a"


def test_shuffle_curves_plot_each_levels_means_with_two_standard_error_whiskers():
    from spp_viz.explain.bag_of_words import ShuffleSummary
    from spp_viz.plots.pyramid import shuffle_curves

    rows = [
        {
            "k": k,
            "top1_unchanged": {"mean": kept, "se": 0.01 * k},
            "cosine": {"1": {"mean": 0.9 - 0.01 * k, "se": 0.001}, "6": {"mean": 0.5 - 0.01 * k, "se": 0.002 * k}},
        }
        for k, kept in ((2, 0.8), (4, 0.5), (8, 0.1))
    ]
    fig = revalidate(shuffle_curves(ShuffleSummary.from_json({"levels": [1, 6], "rows": rows})))
    assert [t.name for t in fig.data] == ["1x1 level", "6x6 level", "top-1 unchanged"]
    for trace in fig.data:
        assert list(trace.x) == [2, 4, 8]
    np.testing.assert_allclose(fig.data[0].y, [0.88, 0.86, 0.82])
    np.testing.assert_allclose(fig.data[1].error_y.array, [0.008, 0.016, 0.032])  # 2 x se
    np.testing.assert_allclose(fig.data[2].y, [0.8, 0.5, 0.1])
    np.testing.assert_allclose(fig.data[2].error_y.array, [0.04, 0.08, 0.16])
    assert fig.data[2].xaxis == "x2" and fig.data[0].xaxis == "x"  # kept on its own panel
