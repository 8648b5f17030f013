"""The detector's estimators (Sec. 4.1, as in R-CNN): window labels, per-class linear SVMs with hard negative
mining, and ridge regression for the boxes.

Estimators follow scikit-learn's shape: ``fit`` returns the estimator, ``decision_function`` / ``predict`` apply it.
Window labels follow R-CNN: a class's positives are its ground-truth boxes; its negatives are windows whose IoU with
every box of that class is below 0.3; windows in between are left out of that class's training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .boxes import box_iou, encode_boxes

NEGATIVE_IOU = 0.3  # below this IoU with every box of a class, a window is a negative for that class
REGRESSION_IOU = 0.6  # box regression learns from windows at least this close to a ground-truth box
HARD_THRESHOLD = -1.0  # mining adds negatives that score above this (inside the margin or wrong)
EVICT_THRESHOLD = -1.2  # after retraining, negatives that score below this are dropped (R-CNN's easy negatives)


# ----------------------------------------------------------------------------- labels


def assign_labels(
    boxes: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray,
    num_classes: int,
    gt_rows: int,
    negative_iou: float = NEGATIVE_IOU,
) -> np.ndarray:
    """Each window's role in each class's SVM: +1 positive, -1 negative, 0 left out. Returns int8 [N, C].

    The first ``gt_rows`` windows are the ground-truth boxes themselves, in order (R-CNN adds them to the proposals).
    A difficult box is neither a positive, nor may windows overlapping it become negatives of its class.
    """
    n = len(boxes)
    out = np.zeros((n, num_classes), dtype=np.int8)
    overlaps = box_iou(boxes, gt_boxes) if len(gt_boxes) else np.zeros((n, 0))  # [N, K]
    for c in range(num_classes):
        of_class = gt_labels == c
        best = overlaps[:, of_class].max(axis=1) if of_class.any() else np.zeros(n)
        out[best < negative_iou, c] = -1
    for k in range(gt_rows):
        if not gt_difficult[k]:
            out[k, gt_labels[k]] = 1
    return out


def hard_negatives(scores: np.ndarray, labels: np.ndarray, threshold: float = HARD_THRESHOLD) -> np.ndarray:
    """Indices of the negatives (label -1) that violate the margin: score above ``threshold`` (one class's column)."""
    return np.nonzero((np.asarray(labels) == -1) & (np.asarray(scores) > threshold))[0]


# ----------------------------------------------------------------------------- SVMs


@dataclass
class LinearSVMs:
    """One linear SVM per class, trained together: squared hinge loss with L2 regularisation (liblinear's L2-loss SVM).

    For each class c, with its examples (label y = +1 or -1, 0 = not in this class's training set):
    ``lam / 2 * |w_c|^2 + mean over examples of cost * max(0, 1 - y * (w_c . x + b_c))^2``, where ``cost`` is
    ``positive_weight`` for positives (R-CNN weights them 2) and 1 for negatives. Solved by L-BFGS in torch, all
    classes at once (the objective is a sum of independent per-class terms). Refitting starts from the last solution.
    """

    lam: float = 1e-3  # L2 strength, relative to the mean loss
    positive_weight: float = 2.0
    max_iter: int = 200
    weight: Tensor | None = None  # [D, C]
    bias: Tensor | None = None  # [C]
    history: list[float] = field(default_factory=list)  # the objective after each L-BFGS evaluation of the last fit

    def objective(self, x: Tensor, y: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """The summed per-class objective at (weight, bias), or at the fitted parameters."""
        weight = self.weight if weight is None else weight
        bias = self.bias if bias is None else bias
        y = y.to(x.dtype)
        used = (y != 0).to(x.dtype)  # [M, C]
        cost = torch.where(y > 0, self.positive_weight, 1.0) * used
        margin = (1 - y * (x @ weight + bias)).clamp(min=0)  # [M, C]
        loss = (cost * margin**2).sum(0) / used.sum(0).clamp(min=1)
        return (0.5 * self.lam * (weight**2).sum(0) + loss).sum()

    def fit(self, x: Tensor, y: Tensor) -> LinearSVMs:
        """x: Tensor[M, D] features; y: Tensor[M, C] in {+1, -1, 0}."""
        x = x.float()
        d, c = x.shape[1], y.shape[1]
        w0 = self.weight if self.weight is not None and self.weight.shape == (d, c) else torch.zeros(d, c)
        b0 = self.bias if self.bias is not None and self.bias.shape == (c,) else torch.zeros(c)
        weight, bias = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [weight, bias], lr=1, max_iter=self.max_iter, history_size=20, line_search_fn="strong_wolfe",
            tolerance_grad=1e-7, tolerance_change=1e-10,
        )  # fmt: skip
        history: list[float] = []

        def closure() -> Tensor:
            opt.zero_grad()
            value = self.objective(x, y, weight, bias)
            value.backward()
            history.append(float(value.detach()))
            return value

        with torch.enable_grad():
            opt.step(closure)
        self.weight, self.bias = weight.detach(), bias.detach()
        self.history = history
        return self

    def decision_function(self, x: Tensor) -> Tensor:
        """Scores Tensor[N, C]: positive on the class's side of the margin."""
        if self.weight is None or self.bias is None:
            raise RuntimeError("the SVMs are not trained yet: call fit first")
        return x.float() @ self.weight + self.bias

    def predict(self, x: Tensor) -> Tensor:
        """Tensor[N, C] of +1 / -1."""
        return torch.where(self.decision_function(x) > 0, 1, -1)


def regression_pairs(
    boxes: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray, min_iou: float = REGRESSION_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows close enough to a box to learn from: (rows, their box's class, targets [R, 4])."""
    if len(gt_boxes) == 0 or len(boxes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4))
    overlaps = box_iou(boxes, gt_boxes)
    best, which = overlaps.max(axis=1), overlaps.argmax(axis=1)
    rows = np.nonzero(best >= min_iou)[0]
    return rows, gt_labels[which[rows]], encode_boxes(boxes[rows], gt_boxes[which[rows]])


@dataclass
class RidgeRegressor:
    """Ridge regression, closed form: ``min |X W + b - Y|^2 + lam |W|^2`` (the intercept is not penalised)."""

    lam: float = 1000.0
    weight: np.ndarray | None = None  # [D, T]
    bias: np.ndarray | None = None  # [T]

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeRegressor:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        mx, my = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - mx, y - my  # centring takes the intercept out of the penalty
        d = x.shape[1]
        if x.shape[0] < d:  # fewer examples than features: the dual form solves an M x M system instead of D x D
            self.weight = xc.T @ np.linalg.solve(xc @ xc.T + self.lam * np.eye(x.shape[0]), yc)
        else:
            self.weight = np.linalg.solve(xc.T @ xc + self.lam * np.eye(d), xc.T @ yc)
        self.bias = my - mx @ self.weight
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.weight is None or self.bias is None:
            raise RuntimeError("the regressor is not trained yet: call fit first")
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias


def choose_ridge_lambda(
    x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, lambdas: Sequence[float]
) -> tuple[float, dict[float, float]]:
    """The lambda with the lowest mean squared error on held-out pairs, and every lambda's error."""
    errors = {}
    for lam in lambdas:
        errors[lam] = float(np.mean((RidgeRegressor(lam).fit(x_fit, y_fit).predict(x_val) - y_val) ** 2))
    return min(errors, key=errors.get), errors
