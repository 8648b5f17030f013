"""The receptive field and stride of any CNN's conv5, measured by its gradient footprint, not read off a table.

``geometry.layer_geometry`` walks a chain of layers; a ResNet's branches or a timm block's "same" padding need
more than that. Here a copy of the conv layers is made transparent to gradient: every weight positive (1 / fan-in),
biases 0, normalisations and activations the identity, max pooling an average over the same window. One conv5 cell
(its channels summed) is back-propagated to an input of ones: every path from it to a pixel then carries a positive
product, so the pixels with a non-zero gradient are exactly the pixels the cell depends on, its receptive field. The
stride is the shift between the footprints of two neighbouring cells (or, where every cell sees the whole image,
the growth of conv5 with the input). The shared model is never touched: the copy is made per measurement.

Squeeze-and-excitation and attention pool the whole map into every cell: the footprint then covers the image at
any size, and ``Footprint.global_field`` says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .geometry import AxisGeometry, FeatureGeometry

MAX_SIDE = 1024  # the largest input tried while a footprint still reaches the image's border
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
PASS_THROUGH = (nn.Dropout, nn.Dropout2d, nn.Identity)


@dataclass(frozen=True)
class Footprint:
    """conv5's geometry as measured: per axis (y, x) the receptive field, the stride and the centre of cell 0."""

    rf: tuple[int, int]  # input pixels one interior cell depends on; the input's size when ``global_field``
    stride: tuple[int, int]
    start: tuple[float, float]  # centre of cell (0, 0) in input pixels (negative when padding shifts it)
    input_hw: tuple[int, int]  # the input size the field was measured at (the field did not reach its border)
    # "": the field was measured. "global": a corner cell sees the opposite corner, at every size tried (global
    # pooling inside: squeeze-and-excitation, attention). "wider": the field outgrew MAX_SIDE pixels.
    covers: str = ""

    @property
    def global_field(self) -> bool:
        return self.covers == "global"

    def describe(self) -> str:
        """The receptive field in words, for the pages and the CLI."""
        if self.covers == "global":
            return "every conv5 cell sees the whole image (global pooling inside the network: squeeze-and-excitation)"
        if self.covers == "wider":
            return f"wider than {self.input_hw[1]} pixels: at any usual size, every conv5 cell sees the whole image"
        return f"{self.rf[1]} x {self.rf[0]} pixels (W x H), stride {self.stride[1]}"

    def geometry(self, input_hw: tuple[int, int], conv5_hw: tuple[int, int]) -> FeatureGeometry:
        """``geometry.FeatureGeometry`` for an input of ``input_hw`` whose conv5 is ``conv5_hw``."""
        axes = [
            AxisGeometry(rf=max(self.rf[i], input_hw[i]) if self.covers else self.rf[i], jump=self.stride[i],
                         start=self.start[i], size=conv5_hw[i])
            for i in range(2)
        ]  # fmt: skip
        return FeatureGeometry(y=axes[0], x=axes[1], input_hw=tuple(input_hw))


def transparent_copy(features: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A copy of ``features`` through which every path from an output to an input pixel carries gradient.

    Its layers are new, its weights are not copies: each is one number broadcast to the weight's shape (a view of
    no memory), so measuring a 500 MB network does not hold a second 500 MB (or, in float64, 1 GB) beside it.
    """
    constants = {id(p): _constant(name, p, dtype) for name, p in features.named_parameters()}
    probe = copy.deepcopy(features, memo=dict(constants)).to("cpu", dtype).eval()  # measured on the CPU
    for parent in list(probe.modules()):
        for name, child in list(parent.named_children()):
            swap = _transparent(child)
            if swap is not None:
                setattr(parent, name, swap)
    for graph in [m for m in probe.modules() if isinstance(m, torch.fx.GraphModule)]:
        _transparent_graph(graph)
    return probe.requires_grad_(False)


def _constant(name: str, p: Tensor, dtype: torch.dtype) -> nn.Parameter:
    """The transparent value of parameter ``p``, broadcast to its shape: an average over a weight's window (values
    stay near 1 through any depth); layer scales and the like pass (1), biases add nothing (0)."""
    value = 1.0 / p[0].numel() if p.ndim >= 2 else (0.0 if name.endswith("bias") else 1.0)
    return nn.Parameter(torch.tensor(value, dtype=dtype).expand(p.shape), requires_grad=False)


class Rescale(nn.Module):
    """A normalisation made transparent: divided by its input's mean (a constant to the gradient), so values stay
    near 1 where residual sums and squeeze-and-excitation products would otherwise overflow (EfficientNet-B0's 16
    gated blocks left even float64's range)."""

    def forward(self, x: Tensor) -> Tensor:
        return x / x.detach().abs().mean().clamp_min(1e-30)


class _InputGradConv(torch.autograd.Function):
    """conv2d whose backward gives the input's gradient only, from the weight alone: autograd's own conv keeps its
    input for the weight's gradient, which for a 1,024-pixel probe of ResNet-50 was 1 GB of activations."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, stride, padding, dilation, groups: int) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(weight)
        ctx.conf = (x.shape, stride, padding, dilation, groups)
        return torch.nn.functional.conv2d(x, weight, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        (weight,) = ctx.saved_tensors
        shape, stride, padding, dilation, groups = ctx.conf
        return torch.nn.grad.conv2d_input(shape, weight, grad, stride, padding, dilation, groups), *[None] * 5


class _InputGradLinear(torch.autograd.Function):
    """A linear layer's ``_InputGradConv``: the input's gradient from the weight alone."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(weight)
        return x @ weight.T

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        (weight,) = ctx.saved_tensors
        return grad @ weight, None


class PlainConv(nn.Module):
    """A conv of the transparent copy: plain (a weight-standardised conv, timm's StdConv2d and ScaledStdConv2d in
    NFNets and BiT, would standardise the copy's constant weights to zero, and no gradient would reach the input),
    with TensorFlow's "same" padding where the layer has it, and keeping no activation for its backward pass
    (``_InputGradConv``). Its bias is 0 in the copy, and left out."""

    def __init__(self, conv: nn.Conv2d, same: bool = False) -> None:
        super().__init__()
        self.conv = conv
        self.same = same or bool(getattr(conv, "same_pad", False))

    def forward(self, x: Tensor) -> Tensor:
        c = self.conv
        if self.same:  # TensorFlow's "same" padding, computed for this input's size
            from timm.layers.padding import pad_same

            x = pad_same(x, c.kernel_size, c.stride, c.dilation)
        padding = (0, 0) if type(c).__name__ == "Conv2dSame" else c.padding
        if isinstance(padding, str) or c.padding_mode != "zeros":  # "same" or "valid" by name, reflect ...: autograd's
            return torch.nn.functional.conv2d(x, c.weight, None, c.stride, padding, c.dilation, c.groups)
        return _InputGradConv.apply(x, c.weight, c.stride, padding, c.dilation, c.groups)


class PlainLinear(nn.Module):
    """A linear layer of the transparent copy, keeping no activation for its backward pass; its bias (0) left out."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        return _InputGradLinear.apply(x, self.linear.weight)


def _transparent(m: nn.Module) -> nn.Module | None:
    """What replaces ``m`` in the transparent copy, or None to keep it (and look inside it)."""
    kind = type(m).__name__
    if isinstance(m, nn.Conv2d) and ("StdConv" in kind or type(m) is nn.Conv2d or kind == "Conv2dSame"):
        return PlainConv(m, same=kind == "Conv2dSame")
    if type(m) is nn.Linear:
        return PlainLinear(m)
    if isinstance(m, nn.MaxPool2d):
        if kind == "MaxPool2dSame":  # timm's TensorFlow "same" padding, kept for the average
            from timm.layers import AvgPool2dSame

            return AvgPool2dSame(m.kernel_size, m.stride, ceil_mode=m.ceil_mode)
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AdaptiveMaxPool2d):
        return nn.AdaptiveAvgPool2d(m.output_size)
    if isinstance(m, NORMS):
        return Rescale()  # timm's BatchNormAct2d (norm + activation) included
    if isinstance(m, PASS_THROUGH):
        return nn.Identity()
    activation = type(m).__module__ in ("torch.nn.modules.activation",) or ".activations" in type(m).__module__
    if activation and not isinstance(m, nn.MultiheadAttention):
        return nn.Identity()
    return None


def _transparent_graph(graph: torch.fx.GraphModule) -> None:
    """A traced network's max poolings written as functions (Inception-v3's blocks) made averages, in place: a max
    passes gradient to one pixel of its window only, and the footprint would miss the rest."""
    import torch.nn.functional as F

    changed = False
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target not in (F.max_pool2d, torch.max_pool2d, F._max_pool2d):
            continue
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
        given = dict(zip(names, node.args, strict=False)) | dict(node.kwargs)
        node.target = F.avg_pool2d
        node.args = (given["input"], given["kernel_size"])
        node.kwargs = {k: given[k] for k in ("stride", "padding", "ceil_mode") if k in given}
        changed = True
    if changed:
        graph.recompile()


def _field(x: Tensor, conv5: Tensor, row: int, col: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), inclusive: the pixels whose gradient from conv5 cell (row, col) is non-zero."""
    (grad,) = torch.autograd.grad(conv5[0, :, row, col].sum(), x, retain_graph=True)
    if not torch.isfinite(grad).all():
        raise FloatingPointError("the footprint's gradient overflowed")
    hit = grad[0].abs().sum(0) > 0  # (H, W)
    rows, cols = hit.any(1).nonzero().flatten(), hit.any(0).nonzero().flatten()
    if len(rows) == 0:
        raise FloatingPointError("the footprint's gradient underflowed to zero")
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def measure(features: nn.Module, input_hw: tuple[int, int] = (224, 224), max_side: int = MAX_SIDE) -> Footprint:
    """See ``_measure``: in float32 first (Lite0 in 6 s instead of 20 s in float64, one thread beside two busy
    processes), in float64 where float32's range is not enough (MobileNetV3's gradient left it)."""
    try:
        return _measure(features, input_hw, torch.float32, max_side)
    except FloatingPointError:
        return _measure(features, input_hw, torch.float64, max_side)


def _measure(features: nn.Module, input_hw: tuple[int, int], dtype: torch.dtype, max_side: int) -> Footprint:
    """The footprint of ``features`` (Tensor[N, 3, H, W] -> conv5 Tensor[N, C, H5, W5]), from ``input_hw`` up: the
    input doubles (up to ``max_side``; a DenseNet takes seconds at 1,024) while the middle cell's field reaches the
    image's border.

    Raises:
        ValueError: when conv5 is not a 4-D map or has fewer than 2 x 2 cells.
    """
    probe = transparent_copy(features, dtype)
    h, w = input_hw
    while True:
        x = torch.ones(1, 3, h, w, dtype=dtype, requires_grad=True)
        with torch.enable_grad():
            conv5 = probe(x)
        if conv5.ndim != 4:
            raise ValueError(f"conv5 must be a map Tensor[N, C, H, W]; this network gives {tuple(conv5.shape)}")
        h5, w5 = conv5.shape[-2:]
        if min(h5, w5) >= 2:
            r, c = h5 // 2, w5 // 2
            mid = _field(x, conv5, r, c)
            if not _touches_border(mid, h, w):
                break
        if max(h, w) >= max_side:
            break
        grow = min(2.0, max_side / max(h, w))  # doubling, the last step to max_side itself
        h, w = round(h * grow), round(w * grow)
    if min(h5, w5) < 2:
        raise ValueError(f"conv5 is {h5} x {w5} even at {h} x {w} pixels: no neighbouring cells to measure")
    if _touches_border(mid, h, w):
        # The corner cell sees the opposite corner: global pooling inside. Else the field is just wider than h x w.
        covers = "global" if _field(x, conv5, 0, 0) == (0, h - 1, 0, w - 1) else "wider"
        small = probe(torch.ones(1, 3, h // 2, w // 2, dtype=dtype)).shape[-2:]
        stride = (round((h - h // 2) / max(1, h5 - small[0])), round((w - w // 2) / max(1, w5 - small[1])))
        return Footprint((h, w), stride, ((stride[0] - 1) / 2, (stride[1] - 1) / 2), (h, w), covers)
    below, right = _field(x, conv5, r + 1, c), _field(x, conv5, r, c + 1)
    stride = (below[0] - mid[0], right[2] - mid[2])
    rf = (mid[1] - mid[0] + 1, mid[3] - mid[2] + 1)
    start = ((mid[0] + mid[1]) / 2 - r * stride[0], (mid[2] + mid[3]) / 2 - c * stride[1])
    return Footprint(rf, stride, start, (h, w))


def _touches_border(field: tuple[int, int, int, int], h: int, w: int) -> bool:
    return field[0] == 0 or field[1] == h - 1 or field[2] == 0 or field[3] == w - 1
