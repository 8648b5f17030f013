"""Receptive fields and the mapping between image pixels and conv5 cells (He et al. 2014, Appendix A).

Geometry is read from the model's own modules (kernel, stride, padding, dilation, ceil mode, TensorFlow "same"
padding), never hard-coded. Positions are in pixels of the tensor fed to the network: a cell's centre is a pixel
index (0 .. W-1); boxes (x0, y0, x1, y1) are in pixel-edge coordinates, pixel i covering [i, i + 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .pyramid import bin_edges


@dataclass(frozen=True)
class AxisGeometry:
    """Geometry of one layer's output along one axis, in input pixels."""

    rf: int  # receptive field: input pixels one output cell depends on
    jump: int  # distance in input pixels between neighbouring cells (the total stride)
    start: float  # centre of cell 0 in input pixel coordinates (negative when padding shifts it left)
    size: int  # number of cells along this axis for the given input size


@dataclass(frozen=True)
class LayerGeometry:
    """One spatial layer (conv or pool) with the geometry of its output along height and width."""

    name: str
    kind: str  # "conv", "maxpool", "avgpool"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    y: AxisGeometry
    x: AxisGeometry


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _is_tf_same(module: nn.Module) -> bool:
    # timm's Conv2dSame / MaxPool2dSame pad "same" from the input size at run time, as TensorFlow does.
    return type(module).__name__ in ("Conv2dSame", "MaxPool2dSame", "AvgPool2dSame")


def _step(g: AxisGeometry, k: int, s: int, pad: int | None, d: int, ceil_mode: bool, same: bool) -> AxisGeometry:
    """Geometry after a layer with kernel k, stride s, padding pad (before), dilation d along one axis."""
    k_eff = d * (k - 1) + 1
    if same:
        out = math.ceil(g.size / s)
        total = max((out - 1) * s + k_eff - g.size, 0)
        pad_before = total // 2
    else:
        pad_before = pad or 0
        span = g.size + 2 * pad_before - k_eff
        out = (math.ceil(span / s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= g.size + pad_before:
            out -= 1  # PyTorch drops a last window that would start in the right padding
    return AxisGeometry(
        rf=g.rf + (k_eff - 1) * g.jump,
        jump=g.jump * s,
        start=g.start + ((k_eff - 1) / 2 - pad_before) * g.jump,
        size=max(out, 0),
    )


def layer_geometry(features: nn.Module, input_hw: tuple[int, int] = (224, 224)) -> list[LayerGeometry]:
    """Receptive field, jump and offset after every conv and pooling layer of ``features``, in execution order.

    Modules are visited in registration order, which is execution order for the zoo's models (residual branches
    add no spatial layer; their 1x1 convs leave the geometry unchanged).
    """
    gy = AxisGeometry(rf=1, jump=1, start=0.0, size=input_hw[0])
    gx = AxisGeometry(rf=1, jump=1, start=0.0, size=input_hw[1])
    layers = []
    for name, m in features.named_modules():
        if isinstance(m, nn.Conv2d):
            kind, k, s, d, ceil_mode = "conv", m.kernel_size, m.stride, m.dilation, False
            pad = m.padding if isinstance(m.padding, tuple) else None
            if m.padding == "same":  # PyTorch's own "same" (stride 1 only): symmetric up to one pixel
                pad = tuple((m.dilation[i] * (m.kernel_size[i] - 1)) // 2 for i in range(2))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            kind = "maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool"
            k, s, pad = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
            d = _pair(getattr(m, "dilation", 1))
            ceil_mode = m.ceil_mode
        else:
            continue
        k, s, d = _pair(k), _pair(s), _pair(d)
        same = _is_tf_same(m)
        pad = _pair(pad) if pad is not None else (0, 0)
        gy = _step(gy, k[0], s[0], pad[0], d[0], ceil_mode, same)
        gx = _step(gx, k[1], s[1], pad[1], d[1], ceil_mode, same)
        layers.append(LayerGeometry(name=name, kind=kind, kernel=k, stride=s, y=gy, x=gx))
    if not layers:
        raise ValueError("no conv or pooling layer found: cannot compute a receptive field")
    return layers


@dataclass(frozen=True)
class FeatureGeometry:
    """conv5's geometry for one input size: what maps image pixels to conv5 cells and back."""

    y: AxisGeometry
    x: AxisGeometry
    input_hw: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """conv5 (H5, W5)."""
        return self.y.size, self.x.size

    def cell_centre(self, row: int, col: int) -> tuple[float, float]:
        """(x, y) centre of a conv5 cell in input pixels."""
        return self.x.start + col * self.x.jump, self.y.start + row * self.y.jump

    def cell_box(self, row: int, col: int, clamp: bool = True) -> tuple[float, float, float, float]:
        """The receptive field of one conv5 cell as a box (x0, y0, x1, y1), clamped to the image by default."""
        cx, cy = self.cell_centre(row, col)
        box = (cx - (self.x.rf - 1) / 2, cy - (self.y.rf - 1) / 2, cx + (self.x.rf + 1) / 2, cy + (self.y.rf + 1) / 2)
        return self._clamp(box) if clamp else box

    def cell_context(self, row: int, col: int, strides: float = 3.0) -> tuple[float, float, float, float]:
        """A box of ``strides`` x stride pixels centred on a cell, clamped: its neighbourhood, for deep networks
        whose theoretical receptive field covers the whole image."""
        cx, cy = self.cell_centre(row, col)
        hx, hy = strides * self.x.jump / 2, strides * self.y.jump / 2
        return self._clamp((cx + 0.5 - hx, cy + 0.5 - hy, cx + 0.5 + hx, cy + 0.5 + hy))

    def cells_footprint(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[float, float, float, float]:
        """The image area whose nearest conv5 cells are rows [r0, r1) x cols [c0, c1): centres +- half a stride.

        Cells on the map's border reach the image's border, so the footprints of a level's bins tile the image.
        """
        (r0, r1), (c0, c1) = rows, cols
        h, w = self.input_hw
        x0 = 0.0 if c0 == 0 else self.x.start + (c0 - 0.5) * self.x.jump + 0.5
        x1 = float(w) if c1 >= self.x.size else self.x.start + (c1 - 0.5) * self.x.jump + 0.5
        y0 = 0.0 if r0 == 0 else self.y.start + (r0 - 0.5) * self.y.jump + 0.5
        y1 = float(h) if r1 >= self.y.size else self.y.start + (r1 - 0.5) * self.y.jump + 0.5
        return self._clamp((x0, y0, x1, y1))

    def cells_field(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[float, float, float, float]:
        """Union of the receptive fields of rows [r0, r1) x cols [c0, c1), clamped: what those cells see."""
        (r0, r1), (c0, c1) = rows, cols
        a, b = self.cell_box(r0, c0, clamp=False), self.cell_box(r1 - 1, c1 - 1, clamp=False)
        return self._clamp((a[0], a[1], b[2], b[3]))

    def window_to_cells(self, box: Sequence[float]) -> tuple[tuple[int, int], tuple[int, int]]:
        """Appendix A: an image window (x0, y0, x1, y1) to conv5 rows [r0, r1) and cols [c0, c1).

        The released SPP-net code in 0-based form: left/top = floor((x - o)/S + 0.5), right/bottom =
        ceil((x - o)/S - 0.5), with o the centre of cell 0 (the padding offset) and S the stride; clamped to the
        map, and an inverted window collapsed to its middle cell.
        """
        r0, r1, c0, c1 = self.windows_to_cells(np.asarray([box], dtype=np.float64))[0].tolist()
        return (r0, r1), (c0, c1)

    def windows_to_cells(self, boxes: np.ndarray) -> np.ndarray:
        """``window_to_cells`` for many windows at once: boxes [N, 4] (x0, y0, x1, y1) -> [N, 4] (r0, r1, c0, c1)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        c0, c1 = _axis_windows(boxes[:, 0], boxes[:, 2] - 1, self.x)
        r0, r1 = _axis_windows(boxes[:, 1], boxes[:, 3] - 1, self.y)
        return np.stack([r0, r1, c0, c1], axis=1)

    def _clamp(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        h, w = self.input_hw
        x0, y0, x1, y1 = box
        return max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)


def _axis_windows(lo: np.ndarray, hi: np.ndarray, g: AxisGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ranges [lo, hi] (inclusive) to cells [a, b) along one axis (Appendix A), for arrays of windows."""
    a = np.clip(np.floor((lo - g.start) / g.jump + 0.5), 0, g.size - 1)
    b = np.clip(np.ceil((hi - g.start) / g.jump - 0.5), 0, g.size - 1)
    middle = np.clip(np.floor(((lo + hi) / 2 - g.start) / g.jump + 0.5), 0, g.size - 1)
    inverted = a > b  # a window smaller than a stride: keep its middle cell
    a, b = np.where(inverted, middle, a), np.where(inverted, middle, b)
    return a.astype(np.int64), b.astype(np.int64) + 1


def feature_geometry(
    model: nn.Module, input_hw: tuple[int, int], conv5_hw: tuple[int, int] | None = None
) -> FeatureGeometry:
    """conv5's geometry for an input of ``input_hw`` pixels (``model`` is an SPPNet or its ``features``).

    A model with a measured ``footprint`` (``footprint.measure``: any timm or torchvision CNN) uses it, with conv5's
    size ``conv5_hw`` (computed by a forward pass when not given); the zoo's chains are read layer by layer."""
    footprint = getattr(model, "footprint", None)
    if footprint is not None:
        if conv5_hw is None:
            with torch.no_grad():
                probe = torch.zeros(1, 3, *input_hw, device=model.device)
                conv5_hw = tuple(model.forward_features(probe).shape[-2:])
        return footprint.geometry(tuple(input_hw), tuple(conv5_hw))
    features = getattr(model, "features", model)
    last = layer_geometry(features, input_hw)[-1]
    return FeatureGeometry(y=last.y, x=last.x, input_hw=tuple(input_hw))


@dataclass(frozen=True)
class Bin:
    """One bin of a pyramid level: its cells in conv5 and its regions in the image."""

    level: int  # n of the n x n level
    row: int  # bin row, 0..n-1
    col: int  # bin column, 0..n-1
    rows: tuple[int, int]  # conv5 rows [r0, r1)
    cols: tuple[int, int]  # conv5 cols [c0, c1)
    footprint: tuple[float, float, float, float]  # image area of those cells (centres +- half a stride)
    field: tuple[float, float, float, float]  # union of their receptive fields: what the bin sees


def level_bins(geom: FeatureGeometry, n: int, rule: str = "adaptive") -> list[Bin]:
    """Every bin of an n x n level over conv5, row by row, with its cells and image regions.

    Raises:
        ValueError: when ``rule="paper"`` cannot give n bins for this conv5 size.
    """
    h5, w5 = geom.shape
    row_edges, col_edges = bin_edges(h5, n, rule), bin_edges(w5, n, rule)
    return [
        Bin(
            level=n,
            row=i,
            col=j,
            rows=rows,
            cols=cols,
            footprint=geom.cells_footprint(rows, cols),
            field=geom.cells_field(rows, cols),
        )
        for i, rows in enumerate(row_edges)
        for j, cols in enumerate(col_edges)
    ]
