"""Detection: window -> conv5 mapping, SPP-mode features against SPP on the hand-cropped map, R-CNN mode, NMS,
bad boxes, proposals."""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import pytest
import torch
from badfiles import photo
from torch import nn

from spp_viz.detection.boxes import clean_boxes
from spp_viz.detection.classify import label_windows
from spp_viz.detection.proposals import proposals, sliding_windows
from spp_viz.detection.windows import (
    RCNN_BATCH,
    ModeResult,
    _warped_windows,
    agreement,
    assign_scales,
    pool_windows,
    rcnn_mode,
    spp_mode,
)
from spp_viz.geometry import feature_geometry
from spp_viz.images import resize_short_side, to_tensor
from spp_viz.models import NetSpec, SPPNet, load_model
from spp_viz.pyramid import SpatialPyramidPool, spatial_pyramid_pool

BOXES = np.array(
    [[0, 0, 120, 90], [40, 30, 300, 200], [200, 10, 250, 60], [5, 5, 15, 15], [0, 0, 320, 240]], dtype=np.float32
)


def avg_pyramid_model() -> SPPNet:
    torch.manual_seed(0)
    features = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 4, 3, stride=2, padding=1), relu=nn.ReLU(), conv2=nn.Conv2d(4, 5, 3, stride=2, padding=1)
        )
    )
    spec = NetSpec("avgnet", 4, 5, tuple("abcdef"), (0.5,) * 3, (0.5,) * 3)
    model = SPPNet(features, SpatialPyramidPool((3, 2, 1), "avg"), nn.Linear(5 * 14, 6), spec)
    return model.eval().requires_grad_(False)


def test_windows_to_cells_known_boxes_and_vectorised_equals_scalar():
    geom = feature_geometry(load_model("zf5", device="cpu"), (224, 224))  # stride 16, cell 0 centred on pixel 20
    cells = geom.windows_to_cells(np.array([[12, 12, 44, 44], [0, 0, 224, 224], [100, 100, 104, 104]]))
    assert cells[0].tolist() == [0, 2, 0, 2]  # pixels 12..43: the cells centred on 20 and 36
    assert cells[1].tolist() == [0, 13, 0, 13]
    assert cells[2].tolist() == [5, 6, 5, 6]  # smaller than a stride: the middle cell
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(-20, 250, (50, 2, 2)), axis=2).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    for box, row in zip(boxes, geom.windows_to_cells(boxes), strict=True):
        (r0, r1), (c0, c1) = geom.window_to_cells(box)
        assert [r0, r1, c0, c1] == row.tolist()


@pytest.mark.parametrize("name", ["zf5", "efficientnet_lite0", "avg"])
def test_spp_mode_features_equal_spp_on_the_cropped_map(name, default_model):
    model = {
        "zf5": lambda: load_model("zf5", device="cpu"),
        "efficientnet_lite0": lambda: default_model,
        "avg": avg_pyramid_model,
    }[name]()
    img = photo(320, 240)
    start = time.perf_counter()
    result = spp_mode(model, img, BOXES, scales=(300,))
    wall = time.perf_counter() - start
    view = resize_short_side(img, 300)
    with torch.inference_mode():
        conv5 = model.forward_features(to_tensor(view))
    geom = feature_geometry(model, (view.height, view.width))
    scale = view.width / img.width
    for i, box in enumerate(BOXES):
        (r0, r1), (c0, c1) = geom.window_to_cells(box * scale)
        expected = spatial_pyramid_pool(conv5[:, :, r0:r1, c0:c1], model.spp.levels, model.spp.mode)[0]
        torch.testing.assert_close(result.features[i], expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(result.logits[i], model.classifier(expected[None])[0], rtol=1e-4, atol=1e-4)
    # Each stage was timed inside this call: together they fit in its wall time (no stage left at zero).
    assert min(result.timing.warp, result.timing.conv, result.timing.head) > 0 and result.timing.run <= wall


def test_rcnn_mode_runs_the_network_on_each_warped_window():
    model = load_model("zf5", device="cpu")
    img = photo(320, 240)
    calls = []
    result = rcnn_mode(model, img, BOXES[:3], batch_size=2, progress=lambda f, t: calls.append((f, t)))
    assert result.logits.shape == (3, 1000) and result.features.shape == (3, 12_800)
    assert calls == [(2 / 3, "2 of 3 windows"), (1.0, "3 of 3 windows")]
    x0, y0, x1, y1 = BOXES[1].astype(int)
    warped = img.crop((x0, y0, x1, y1)).resize((224, 224), resample=2)  # bilinear, as R-CNN warps
    with torch.inference_mode():
        direct = model(to_tensor(warped))[0]
    cos = torch.nn.functional.cosine_similarity(direct, result.logits[1], dim=0)
    assert cos > 0.98  # roi_align's warp and PIL's agree up to resampling details
    spp = spp_mode(model, img, BOXES[:3], scales=(240,))
    agree = agreement(result, spp)
    assert agree.windows == agree.compared == 3 and -1 <= agree.mean_cosine <= 1 and 0 <= agree.top1_agreement <= 1
    # A cached SPP result keeps the first rows of its features only (ui.cache.KEPT_FEATURES): the cosine is then the
    # one over those rows, computed by hand here; the top-1 agreement still counts every window.
    from dataclasses import replace

    kept = agreement(result, replace(spp, features=spp.features[:2]))
    by_hand = torch.nn.functional.cosine_similarity(result.features[:2], spp.features[:2], dim=1).mean()
    assert (kept.windows, kept.compared, kept.top1_agreement) == (3, 2, agree.top1_agreement)
    assert abs(kept.mean_cosine - float(by_hand)) < 1e-6


def test_many_windows_pooled_on_threads_and_in_chunks_equal_the_cropped_maps(monkeypatch):
    """Enough windows that pool_windows splits them among threads (and, below, that spp_mode pools them a few at a
    time): every window still equals SPP on its own cropped map, the slow reference, in the right row."""
    from spp_viz.detection import windows as win

    torch.manual_seed(2)
    conv5 = torch.randn(1, 5, 20, 24)
    rng = np.random.default_rng(3)
    r0, c0 = rng.integers(0, 19, 300), rng.integers(0, 23, 300)
    r1, c1 = r0 + 1 + rng.integers(0, 20 - r0), c0 + 1 + rng.integers(0, 24 - c0)
    windows = torch.as_tensor(np.stack([r0, r1, c0, c1], axis=1))
    model = avg_pyramid_model()
    model.spp = SpatialPyramidPool((3, 2, 1), "max")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two workers whatever the machine
    try:
        got = pool_windows(model, conv5, windows)
    finally:
        torch.set_num_threads(threads)
    for k, (a, b, c, d) in enumerate(windows.tolist()):
        torch.testing.assert_close(got[k], spatial_pyramid_pool(conv5[:, :, a:b, c:d], (3, 2, 1))[0])

    zf5 = load_model("zf5", device="cpu")
    img, boxes = photo(320, 240), np.concatenate([BOXES, BOXES[::-1] / 2])
    whole = spp_mode(zf5, img, boxes, scales=(240, 300))
    monkeypatch.setattr(win, "WINDOW_CHUNK", 3)  # 10 windows over two scales: several chunks each
    few = spp_mode(zf5, img, boxes, scales=(240, 300), keep_features=4)
    torch.testing.assert_close(few.logits, whole.logits)
    assert few.features.shape == (4, zf5.spp_length)
    torch.testing.assert_close(few.features, whole.features[:4])


def test_multi_scale_assignment_follows_the_paper_rule():
    boxes = np.array([[0, 0, 50, 50], [0, 0, 400, 400]], dtype=np.float32)
    chosen = assign_scales(boxes, (800, 600), (480, 688, 1200))
    assert chosen.tolist() == [1200, 480]  # small windows are seen at a large scale, big ones at a small scale
    result = spp_mode(load_model("zf5", device="cpu"), photo(400, 300), boxes / 2, scales=(240, 600))
    assert sorted(set(result.scales.tolist())) == [240, 600]


def test_bad_boxes_are_clipped_or_dropped():
    boxes = np.array(
        [
            [10, 10, 50, 50],  # fine
            [-30, -30, 40, 40],  # partly outside: clipped
            [500, 500, 600, 600],  # wholly outside: dropped
            [20, 20, 20, 60],  # zero width: dropped
            [60, 60, 30, 30],  # inverted: dropped
            [np.nan, 0, 10, 10],  # not a number: dropped
            [0, 0, 1e9, 1e9],  # huge: clipped to the image
        ]
    )
    kept, idx = clean_boxes(boxes, (320, 240))
    assert idx.tolist() == [0, 1, 6]
    assert kept[1].tolist() == [0, 0, 40, 40] and kept[2].tolist() == [0, 0, 320, 240]
    model = load_model("zf5", device="cpu")
    empty = spp_mode(model, photo(320, 240), np.zeros((0, 4), np.float32))
    assert empty.logits.shape[0] == 0 and label_windows(empty, model.class_names) == []


def test_nms_keeps_the_best_of_overlapping_same_class_windows():
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [0, 0, 100, 100], [200, 200, 260, 260]], np.float32)
    logits = torch.full((4, 3), -1.0)
    logits[0, 1], logits[1, 1], logits[2, 2], logits[3, 1] = 5.0, 6.0, 4.0, 1.0
    result = ModeResult("spp", boxes, logits, torch.zeros(4, 1))
    dets = label_windows(result, ["a", "b", "c"], score_threshold=0.5, iou=0.3)
    assert [(d.label, d.box[0]) for d in dets] == [(1, 5.0), (2, 0.0), (1, 200.0)]  # box 0 suppressed by box 1
    assert [d.label for d in label_windows(result, ["a", "b", "c"], score_threshold=0.5, classes=[2])] == [2]
    assert label_windows(result, ["a", "b", "c"], score_threshold=0.999) == []


def test_proposals_are_deterministic_capped_and_inside():
    img = photo(400, 300, seed=3)
    a = proposals(img, "fast", max_windows=150)
    b = proposals(img, "fast", max_windows=150)
    assert np.array_equal(a, b) and 0 < len(a) <= 150
    assert (a[:, 0] >= 0).all() and (a[:, 2] <= 400).all() and (a[:, 3] <= 300).all()
    assert (a[:, 2] > a[:, 0]).all()
    slide = proposals(img, "sliding", max_windows=50)
    assert len(slide) == 50 and len(sliding_windows((40, 30))) == 1  # too small for any size: the whole image
    with pytest.raises(ValueError, match="at least 1"):
        proposals(img, "fast", max_windows=0)
    with pytest.raises(ValueError, match="proposal mode"):
        proposals(img, "edge-boxes")


def test_speedup_scales_rcnn_per_window_but_not_spp():
    from spp_viz.detection.windows import Timing, speedup

    rcnn = Timing(proposals=1.0, warp=0.1, conv=2.0, head=0.1)  # on 10 windows
    spp = Timing(proposals=1.0, warp=0.01, conv=0.5, head=0.09)  # on 100 windows
    s = speedup(rcnn, 10, spp, 100)
    assert s.scaled and s.rcnn.conv == pytest.approx(20.0) and s.rcnn.proposals == 1.0
    assert s.conv == pytest.approx(40.0) and s.run == pytest.approx(22.0 / 0.6)
    assert not speedup(rcnn, 100, spp, 100).scaled


def test_spp_detect_times_its_proposals():
    from spp_viz.detection.classify import classify_windows

    model = load_model("zf5", device="cpu")
    start = time.perf_counter()
    result = classify_windows(model, photo(200, 150), "sliding", 20, (150,))
    wall = time.perf_counter() - start
    n = len(result.boxes)
    assert 0 < n <= 20 and result.logits.shape == (n, 1000)
    # The proposals' time is part of the call's own time and of the total the page shows.
    assert 0 < result.timing.proposals <= result.timing.total <= wall


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_hot_loops_make_no_host_copies_on_cuda():
    """The per-window work of both modes stays on the GPU: CUDA's sync debug mode raises on any copy to the host."""
    model = load_model(device="cuda")
    img = resize_short_side(photo(640, 480, seed=3), 480)
    boxes = sliding_windows(img.size)[:64]
    geom = feature_geometry(model, (img.height, img.width))
    with torch.inference_mode():
        image = to_tensor(img, model.device)
        cells = torch.as_tensor(geom.windows_to_cells(boxes), device=model.device)
        t_boxes = torch.as_tensor(boxes, dtype=torch.float32, device=model.device)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            conv5 = model.forward_features(image)
            spp_logits = model.classifier(pool_windows(model, conv5, cells))  # SPP-net: the pyramid per window
            crops = _warped_windows(model, image, t_boxes[:RCNN_BATCH])  # R-CNN: one batch of warped windows
            rcnn_logits = model.classifier(model.spp(model.forward_features(crops)))
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert spp_logits.device.type == rcnn_logits.device.type == "cuda"
    assert spp_logits.shape == (len(boxes), len(model.class_names))


def test_parts_of_larger_windows_by_hand():
    from spp_viz.detection.classify import WindowLabel, parts_of_larger

    whole = WindowLabel((0, 0, 100, 100), 1, "elephant", 0.9)
    part = WindowLabel((10, 10, 50, 50), 1, "elephant", 0.99)  # inside the whole
    half_out = WindowLabel((80, 80, 140, 140), 1, "elephant", 0.5)  # a quarter inside: not a part
    other_class = WindowLabel((20, 20, 40, 40), 2, "tusker", 0.8)  # inside, but another class
    pairs = parts_of_larger([whole, part, half_out, other_class])
    assert pairs == [(part, whole)]
    assert parts_of_larger([]) == []


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_windows_honours_the_pyramids_rule(mode):
    """Each window's pooled features are SPP on its cropped map under the pyramid's own rule: Appendix A's bins (the
    fast roi_pool / summed-area paths) or the training rule, which refuses a window it cannot split into n bins."""
    torch.manual_seed(1)
    conv5 = torch.randn(1, 5, 20, 24)
    windows = torch.tensor([[0, 13, 0, 13], [2, 20, 3, 21], [4, 10, 0, 24], [0, 20, 0, 24]])  # (r0, r1, c0, c1)
    for rule in ("adaptive", "paper"):
        model = avg_pyramid_model()
        model.spp = SpatialPyramidPool((3, 2, 1), mode, rule)
        got = pool_windows(model, conv5, windows)
        for k, (r0, r1, c0, c1) in enumerate(windows.tolist()):
            expected = spatial_pyramid_pool(conv5[:, :, r0:r1, c0:c1], (3, 2, 1), mode, rule)[0]
            torch.testing.assert_close(got[k], expected, rtol=1e-5, atol=1e-5)
    # The training rule on a 5-cell side and 3 bins: window ceil(5/3) = 2, stride 1, so 4 windows: refused.
    model.spp = SpatialPyramidPool((3, 2, 1), mode, "paper")
    with pytest.raises(ValueError, match="the training rule gives 4 bins, not 3"):
        pool_windows(model, conv5, torch.tensor([[0, 5, 0, 5]]))
