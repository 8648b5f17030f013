"""The detector's estimators on toy data with known answers: labels, SVMs, hard negatives, box regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spp_viz.detection.boxes import decode_boxes, encode_boxes
from spp_viz.detection.svm import (
    LinearSVMs,
    RidgeRegressor,
    assign_labels,
    choose_ridge_lambda,
    hard_negatives,
    regression_pairs,
)


def test_assign_labels_positives_negatives_and_the_ignored_band():
    gt = np.array([[0, 0, 100, 100], [200, 0, 300, 100], [0, 200, 100, 300]], np.float32)
    labels = np.array([0, 1, 0])
    difficult = np.array([False, False, True])
    windows = np.array(
        [
            [0, 0, 100, 40],  # IoU 0.4 with the class-0 box: ignored for class 0, negative for class 1
            [0, 0, 100, 20],  # IoU 0.2: negative for both
            [200, 0, 300, 50],  # IoU 0.5 with the class-1 box: ignored for 1, negative for 0
            [0, 200, 100, 300],  # the difficult class-0 box itself: not a negative of class 0
        ],
        np.float32,
    )
    boxes = np.concatenate([gt, windows])
    out = assign_labels(boxes, gt, labels, difficult, num_classes=2, gt_rows=3)
    assert out.tolist() == [
        [1, -1],  # ground truth, class 0
        [-1, 1],  # ground truth, class 1
        [0, -1],  # the difficult box: no positive, and it overlaps itself (IoU 1) so it is no class-0 negative
        [0, -1],
        [-1, -1],
        [-1, 0],
        [0, -1],
    ]


def test_hard_negatives_are_only_negatives_inside_the_margin():
    scores = np.array([0.5, -0.5, -1.5, 2.0, -0.99, -1.0])
    labels = np.array([-1, -1, -1, 1, -1, -1])
    # 0.5, -0.5 and -0.99 violate the margin; -1.5 does not, -1.0 is on it; the positive (2.0) is never a negative.
    assert hard_negatives(scores, labels).tolist() == [0, 1, 4]


def toy_separable(n: int = 200, seed: int = 0):
    """Two classes in 5-D, separated along a known direction (class 0) and along another (class 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.stack([torch.where(x[:, 0] > 0, 1, -1), torch.where(x[:, 1] - x[:, 2] > 0, 1, -1)], dim=1)
    keep = (x[:, 0].abs() > 0.2) & ((x[:, 1] - x[:, 2]).abs() > 0.2)  # a margin on both
    return x[keep], y[keep]


def test_svm_objective_falls_and_separates_a_separable_set():
    x, y = toy_separable()
    svm = LinearSVMs(lam=1e-4, max_iter=300)
    start = float(svm.objective(x, y, torch.zeros(5, 2), torch.zeros(2)))
    svm.fit(x, y)
    assert svm.history[-1] < 0.05 * start
    assert float(svm.objective(x, y)) == pytest.approx(svm.history[-1], rel=1e-4)
    assert torch.equal(svm.predict(x), y)
    # The learnt directions are the true ones: class 0 reads x0, class 1 reads x1 - x2.
    w = svm.weight / svm.weight.norm(dim=0)
    assert float(w[0, 0]) > 0.95
    assert float(w[1, 1]) > 0.6 and float(w[2, 1]) < -0.6


def test_svm_known_answer_in_one_dimension():
    """Points at -2, -1 (negative) and 1, 2 (positive): the widest margin is w = 1, b = 0 (margins at +-1)."""
    x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    y = torch.tensor([[-1], [-1], [1], [1]])
    svm = LinearSVMs(lam=1e-6, positive_weight=1.0, max_iter=500).fit(x, y)
    assert float(svm.weight[0, 0]) == pytest.approx(1.0, abs=0.01)
    assert float(svm.bias[0]) == pytest.approx(0.0, abs=0.01)


def test_svm_leaves_out_examples_labelled_zero():
    x = torch.tensor([[-1.0], [1.0], [5.0]])
    y = torch.tensor([[-1], [1], [0]])  # the third would be a positive far away: left out, it changes nothing
    a = LinearSVMs(lam=1e-3).fit(x, y)
    b = LinearSVMs(lam=1e-3).fit(x[:2], y[:2])
    assert torch.allclose(a.weight, b.weight, atol=1e-5) and torch.allclose(a.bias, b.bias, atol=1e-5)


def test_svm_must_be_fitted_first():
    with pytest.raises(RuntimeError, match="fit"):
        LinearSVMs().decision_function(torch.zeros(1, 3))


def test_box_targets_round_trip():
    rng = np.random.default_rng(0)
    windows = rng.uniform(0, 200, size=(50, 2))
    windows = np.concatenate([windows, windows + rng.uniform(5, 100, size=(50, 2))], axis=1)
    targets = windows + rng.normal(0, 10, size=(50, 4))
    targets[:, 2:] = np.maximum(targets[:, 2:], targets[:, :2] + 1)
    assert decode_boxes(windows, encode_boxes(windows, targets)) == pytest.approx(targets.astype(np.float32), abs=1e-3)
    # Known values: a window twice as wide and shifted right by half its width.
    t = encode_boxes(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 25, 10]]))
    assert t[0] == pytest.approx([1.0, 0.0, np.log(2), 0.0])


def test_regression_pairs_take_only_close_windows():
    gt = np.array([[0, 0, 100, 100]], np.float32)
    boxes = np.array([[0, 0, 100, 100], [0, 0, 100, 70], [0, 0, 100, 50]], np.float32)  # IoU 1, 0.7, 0.5
    rows, classes, targets = regression_pairs(boxes, gt, np.array([3]))
    assert rows.tolist() == [0, 1] and classes.tolist() == [3, 3]
    assert targets[0] == pytest.approx([0, 0, 0, 0])


def test_ridge_matches_a_closed_form_solve():
    rng = np.random.default_rng(1)
    for m, d in ((80, 10), (6, 10)):  # more examples than features (primal), and fewer (dual)
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, 4))
        lam = 3.0
        reg = RidgeRegressor(lam).fit(x, y)
        # The same problem with an explicit intercept column that is not penalised.
        xa = np.concatenate([x, np.ones((m, 1))], axis=1)
        penalty = lam * np.eye(d + 1)
        penalty[d, d] = 0
        solution = np.linalg.lstsq(xa.T @ xa + penalty, xa.T @ y, rcond=None)[0]
        assert reg.weight == pytest.approx(solution[:d], abs=1e-8)
        assert reg.bias == pytest.approx(solution[d], abs=1e-8)


def test_ridge_lambda_chosen_on_held_out_data():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(20, 4))
    x = rng.normal(size=(300, 20))
    y = x @ w + rng.normal(0, 0.1, size=(300, 4))  # strong signal: a small lambda wins
    best, errors = choose_ridge_lambda(x[:200], y[:200], x[200:], y[200:], [0.1, 1000.0, 1e6])
    assert best == 0.1 and errors[0.1] < errors[1000.0] < errors[1e6]
    noise = rng.normal(size=(300, 4))  # no signal at all: the strongest penalty wins
    best, _ = choose_ridge_lambda(x[:40], noise[:40], x[200:], noise[200:], [0.1, 1000.0, 1e6])
    assert best == 1e6
