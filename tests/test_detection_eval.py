"""VOC evaluation: a hand-worked example, and a slow reference kept here (the VOC devkit's voc_eval, as ported to
Python by py-faster-rcnn), on random detections."""

from __future__ import annotations

import numpy as np
import pytest

from spp_viz.detection.boxes import box_iou
from spp_viz.detection.evaluate import average_precision, bootstrap_map, compare_sentence, match_class, mean_ap
from spp_viz.stats import Interval


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 4, 4]], np.float32)
    # Same box; half overlap: 50 / (100 + 100 - 50); touching corner; inside: 4 / 100.
    assert box_iou(a, b)[0] == pytest.approx([1.0, 50 / 150, 0.0, 0.04])


def hand_case():
    """One class, two images. Image 0: boxes G1, G2. Image 1: G3 and a difficult G4.
    Detections by falling score: d1 on G1 (TP), d2 on nothing in image 1 (FP), d3 on G1 again (FP, duplicate),
    d4 on G4 (difficult: neither), d5 on G3 (TP). Three positives (G1, G2, G3).
    """
    g1, g2 = [0, 0, 10, 10], [50, 50, 70, 70]
    g3, g4 = [0, 0, 20, 20], [100, 100, 120, 120]
    det_boxes = [np.array([g1, g1], np.float32), np.array([[200, 200, 210, 210], g4, g3], np.float32)]
    det_scores = [np.array([0.9, 0.7]), np.array([0.8, 0.6, 0.5])]
    gt = [np.array([g1, g2], np.float32), np.array([g3, g4], np.float32)]
    hard = [np.array([False, False]), np.array([False, True])]
    return match_class(det_boxes, det_scores, gt, hard)


def test_matching_and_ap_by_hand():
    marked = hand_case()
    assert marked.scores.tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert marked.tp.tolist() == [True, False, False, False, True]
    assert marked.fp.tolist() == [False, True, True, False, False]
    assert marked.positives.tolist() == [2, 1]
    recall, precision = marked.curve()
    assert recall == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3])
    assert precision == pytest.approx([1, 1 / 2, 1 / 3, 1 / 3, 1 / 2])
    # 11-point: precision 1 for r = 0, .1, .2, .3; 0.5 for r = .4, .5, .6; nothing reaches r >= .7.
    assert marked.ap("11point") == pytest.approx((4 * 1 + 3 * 0.5) / 11)
    # All points: the envelope is 1 up to recall 1/3, then 0.5 up to 2/3: 1/3 + 1/6.
    assert marked.ap("all") == pytest.approx(1 / 3 + 1 / 6)


# ----------------------------------------------------------------------------- the devkit, ported literally


def voc_ap_reference(rec, prec, use_07_metric):
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def voc_eval_reference(dets, gts, ovthresh=0.5, use_07_metric=True):
    """dets: [(image, score, box)]; gts: {image: (boxes, difficult)}. Boxes in pixel edges (no +1)."""
    class_recs = {k: {"bbox": b, "difficult": d, "det": [False] * len(b)} for k, (b, d) in gts.items()}
    npos = sum(int((~d).sum()) for _, d in gts.values())
    image_ids = [d[0] for d in dets]
    confidence = np.array([d[1] for d in dets])
    bb = np.array([d[2] for d in dets]).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="stable")
    bb = bb[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        r = class_recs[image_ids[d]]
        b = bb[d, :].astype(float)
        ovmax = -np.inf
        bbgt = r["bbox"].astype(float)
        if bbgt.size > 0:
            ixmin = np.maximum(bbgt[:, 0], b[0])
            iymin = np.maximum(bbgt[:, 1], b[1])
            ixmax = np.minimum(bbgt[:, 2], b[2])
            iymax = np.minimum(bbgt[:, 3], b[3])
            iw = np.maximum(ixmax - ixmin, 0.0)
            ih = np.maximum(iymax - iymin, 0.0)
            inters = iw * ih
            uni = (b[2] - b[0]) * (b[3] - b[1]) + (bbgt[:, 2] - bbgt[:, 0]) * (bbgt[:, 3] - bbgt[:, 1]) - inters
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh or ovmax == ovthresh:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d] = 1.0
                    r["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap_reference(rec, prec, use_07_metric)


def random_case(rng):
    images = int(rng.integers(1, 6))
    det_boxes, det_scores, gt, hard = [], [], [], []
    for i in range(images):
        k = int(rng.integers(1 if i == 0 else 0, 4))  # the first image has an object, never all difficult
        g = rng.uniform(0, 80, size=(k, 2))
        g = np.concatenate([g, g + rng.uniform(10, 40, size=(k, 2))], axis=1)
        n = int(rng.integers(0, 8))
        # Detections near the ground truth (jittered) and anywhere.
        near = g[rng.integers(0, max(k, 1), size=n)] + rng.normal(0, 4, size=(n, 4)) if k else np.zeros((0, 4))
        anywhere = rng.uniform(0, 80, size=(n, 2))
        anywhere = np.concatenate([anywhere, anywhere + 20], axis=1)
        d = np.where(rng.random((n, 1)) < 0.6, near, anywhere) if k else anywhere
        d = np.concatenate([np.minimum(d[:, :2], d[:, 2:] - 1), np.maximum(d[:, 2:], d[:, :2] + 1)], axis=1)
        det_boxes.append(d.astype(np.float32))
        det_scores.append(rng.random(n))
        gt.append(g.astype(np.float32))
        hard.append((rng.random(k) < 0.2) & (np.arange(k) > 0 if i == 0 else True))
    return det_boxes, det_scores, gt, hard


@pytest.mark.parametrize("seed", range(40))
def test_ap_equals_the_devkit_reference(seed):
    det_boxes, det_scores, gt, hard = random_case(np.random.default_rng(seed))
    pairs = enumerate(zip(det_boxes, det_scores, strict=True))
    dets = [(i, s, b) for i, (bs, ss) in pairs for b, s in zip(bs, ss, strict=True)]
    gts = {i: (g, h) for i, (g, h) in enumerate(zip(gt, hard, strict=True))}
    marked = match_class(det_boxes, det_scores, gt, hard)
    for kind, use_07 in (("11point", True), ("all", False)):
        if not dets:
            assert marked.ap(kind) == 0.0
            continue
        assert marked.ap(kind) == pytest.approx(voc_eval_reference(dets, gts, use_07_metric=use_07), abs=1e-12)


def test_average_precision_rejects_unknown_kind():
    with pytest.raises(ValueError, match="11point"):
        average_precision(np.array([0.5]), np.array([1.0]), kind="coco")


def test_bootstrap_weights_equal_duplicated_images():
    """Counting an image twice in the bootstrap equals evaluating a test set where it appears twice."""
    det_boxes, det_scores, gt, hard = random_case(np.random.default_rng(3))
    marked = match_class(det_boxes, det_scores, gt, hard)
    w = np.zeros(len(gt))
    w[0] = 2
    w[-1] = 1
    pick = [0, 0] + ([len(gt) - 1] if len(gt) > 1 else [0])
    if len(gt) == 1:
        w[0] = 3
    again = match_class(*[[x[i] for i in pick] for x in (det_boxes, det_scores, gt, hard)])
    for kind in ("11point", "all"):
        a, b = marked.ap(kind, w), again.ap(kind)
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b)


def test_bootstrap_interval_and_sentence():
    marked = hand_case()
    same = bootstrap_map([marked], [marked], samples=200)
    assert same.value == 0 and same.low == 0 and same.high == 0
    assert compare_sentence("A", "B", same).startswith("No clear difference")
    band = bootstrap_map([marked], samples=200)
    assert band.low <= mean_ap([marked]) <= band.high
    clear = Interval(0.05, 0.01, 0.03, 0.07)
    assert compare_sentence("SPP-net", "R-CNN", clear).startswith("SPP-net scores 5.0 mAP points above R-CNN")
    assert compare_sentence("SPP-net", "R-CNN", Interval(-0.05, 0.01, -0.07, -0.03)).startswith("R-CNN scores 5.0")


def test_marking_one_image_uses_the_evaluations_matching():
    """The hand case's image 1 as the Detection page draws it: d2 (score 0.8) hits nothing: a false positive; d4
    (0.6) sits on a difficult box: not false; d5 (0.5) takes G3; nothing is missed. Below the threshold, nothing."""
    from spp_viz.detection.data import DetectionImage
    from spp_viz.detection.detector import Detections
    from spp_viz.detection.evaluate import mark_detections

    g3, g4 = [0, 0, 20, 20], [100, 100, 120, 120]
    item = DetectionImage(
        "image 1", np.array([g3, g4], np.float32), np.array([0, 0]), np.array([False, True]), (200, 200),
        _load=lambda: None, _bytes=lambda: b"",
    )  # fmt: skip
    found = Detections(np.array([[200, 200, 210, 210], g4, g3], np.float32), np.array([0.8, 0.6, 0.5]), np.zeros(3))
    shown, missed = mark_detections(found, item)
    assert shown.scores.tolist() == [0.8, 0.6, 0.5] and shown.correct.tolist() == [False, True, True]
    assert len(missed) == 0
    # The same verdicts as the whole-set matching of the hand case (image 1's rows: d2 FP, d4 neither, d5 TP).
    marked = hand_case()
    rows = marked.image == 1
    assert (~marked.fp[rows]).tolist() == shown.correct.tolist()
    shown, missed = mark_detections(found, item, threshold=0.55)
    assert shown.scores.tolist() == [0.8, 0.6] and missed.tolist() == [g3]  # G3's detection is not shown: missed
    # A second class: its boxes match only its own objects.
    other = Detections(np.array([g3], np.float32), np.array([0.9]), np.array([1]))
    shown, missed = mark_detections(Detections.join([found, other]), item)
    assert shown.labels.tolist() == [1, 0, 0, 0] and shown.correct.tolist() == [False, False, True, True]


def test_detection_findings_on_made_up_numbers():
    """The Detection page's sentences, now in the library: box regression per mode, SPP-net against R-CNN with the
    paper's claim (within 2 mAP points), and the feature speed-up."""
    from types import SimpleNamespace

    from spp_viz.detection.compare import CLAIM, findings, paper_claim

    said = {k: v.format(points="2") for k, v in CLAIM.items()}
    assert paper_claim(Interval(0.0, 0.005, -0.01, 0.01)) == said["holds"]  # the whole interval above -2 points
    assert paper_claim(Interval(-0.05, 0.005, -0.06, -0.04)) == said["fails"]
    assert paper_claim(Interval(-0.02, 0.01, -0.04, 0.0)) == said["unclear"]

    def mode(gain: Interval, seconds: float):
        return SimpleNamespace(regression_gain=gain, feature_seconds_per_image=seconds)

    no_gain = Interval(0.0, 0.01, -0.02, 0.02)
    report = SimpleNamespace(
        modes={"spp": mode(Interval(0.04, 0.01, 0.02, 0.06), 0.05), "rcnn": mode(no_gain, 2.0)},
        spp_minus_rcnn=Interval(-0.05, 0.005, -0.06, -0.04),
    )
    lines = findings(report)
    assert lines[0].startswith("**spp, box regression:** with it scores 4.0 mAP points above without it")
    assert lines[1].startswith("**rcnn, box regression:** No clear difference")
    assert "R-CNN scores 5.0 mAP points above SPP-net" in lines[2] and said["fails"] in lines[2]
    assert "0.050 s per image against R-CNN's 2.000 s: 40.0x faster" in lines[2]
    report.spp_minus_rcnn = None  # one mode only: no comparison sentence
    assert len(findings(report)) == 2
