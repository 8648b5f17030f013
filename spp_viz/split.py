"""A network split where the paper splits it, found in its graph: conv5 (the last map before the global pooling that
feeds the classifier), the pooling (a one-level pyramid), and the layers after it.

torchvision's classification models have no common ``forward_features``: ResNet pools with an ``avgpool`` layer,
MobileNetV2 and DenseNet with ``adaptive_avg_pool2d`` in ``forward`` (DenseNet after one more ReLU), ShuffleNet and
MnasNet with ``x.mean([2, 3])``, SqueezeNet after its classifier's 1 x 1 conv. The network is traced (``torch.fx``,
as torchvision's own ``create_feature_extractor``), every node's shape recorded on a probe, and the graph cut at the
last global pooling of a 4-D map: the nodes before it become ``features``, the nodes after it the head. Both share
the network's layers; nothing is copied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

ADAPTIVE = {nn.AdaptiveAvgPool2d: "avg", nn.AdaptiveMaxPool2d: "max"}
ADAPTIVE_FUNCTIONS = {F.adaptive_avg_pool2d: "avg", F.adaptive_max_pool2d: "max"}
MEAN = {"mean", torch.mean}


@dataclass(frozen=True)
class Cut:
    """Where a traced network is split: its conv5 node, its pooling and what follows."""

    graph: fx.GraphModule
    conv5: fx.Node
    pool: fx.Node
    mode: str  # "avg" or "max"
    side: int  # the pooling's output is side x side per channel
    pooled_shape: tuple[int, ...]  # the pooling's output per image: (C, side, side), (C, 1, 1) or (C,)

    @property
    def channels(self) -> int:
        return int(shape(self.conv5)[1])


class PooledHead(nn.Module):
    """The layers after a network's pooling, on the pyramid's vector put back in the pooling's output shape."""

    def __init__(self, graph: fx.GraphModule, pooled_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.graph = graph
        self.pooled_shape = pooled_shape

    def forward(self, v: Tensor) -> Tensor:
        # (N, C * side * side) -> (N, C, side, side): the one level's bins of each channel in row order, as pooled
        return self.graph(v.view(len(v), *self.pooled_shape))


def shape(node: fx.Node) -> tuple[int, ...] | None:
    """The shape ``ShapeProp`` recorded for a node's output, or None for a node that is not one tensor."""
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


CONTAINERS = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict)


class LayerTracer(fx.Tracer):
    """fx's tracer, keeping subclasses of PyTorch's own layers whole: torchvision's LayerNorm2d stays one call of a
    norm layer (that ``footprint.transparent_copy`` can swap) instead of ``F.layer_norm`` on its weights.

    While it traces, fx replaces ``nn.Module.__call__`` and ``__getattr__`` for the whole process: another thread's
    network (a student's page beside a build on the server's queue) would then be traced into this graph, and fail
    ("module is not installed as a submodule"). Calls from other threads pass straight through.
    """

    def trace(self, root: nn.Module, concrete_args: dict | None = None) -> fx.Graph:
        self._thread = threading.get_ident()
        return super().trace(root, concrete_args)

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        builtin = any(c.__module__.startswith("torch.nn.") and c not in CONTAINERS for c in type(m).__mro__)
        return builtin and not isinstance(m, CONTAINERS[1:])


def trace(net: nn.Module, probe: Tensor) -> fx.GraphModule:
    """``net`` traced, each node's output shape recorded on ``probe``.

    Raises:
        ValueError: when torch.fx cannot trace it (data-dependent control flow), with fx's reason.
    """
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        graph = fx.GraphModule(net, LayerTracer().trace(net), type(net).__name__)
    except Exception as e:  # fx raises TraceError, TypeError, AttributeError ... on untraceable Python
        raise ValueError(f"its forward cannot be traced to find conv5 ({type(e).__name__}: {e})") from e
    with torch.no_grad():
        ShapeProp(graph).propagate(probe)
    return graph


def _pooling(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, int] | None:
    """(mode, side) when ``node`` pools a 4-D map to side x side cells whatever its size, else None."""
    source = node.args[0] if node.args else None
    if not isinstance(source, fx.Node) or shape(source) is None or len(shape(source)) != 4:
        return None
    if node.op == "call_module" and type(modules[node.target]) in ADAPTIVE:
        m = modules[node.target]
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
        return (ADAPTIVE[type(m)], int(size[0])) if size[0] == size[1] and size[0] is not None else None
    if node.op == "call_function" and node.target in ADAPTIVE_FUNCTIONS:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        size = size if isinstance(size, (tuple, list)) else (size, size)
        return (ADAPTIVE_FUNCTIONS[node.target], int(size[0])) if size[0] == size[1] else None
    if (node.op == "call_method" or node.op == "call_function") and node.target in MEAN:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = {d % 4 for d in (dims if isinstance(dims, (tuple, list)) else [dims])} if dims is not None else None
        return ("avg", 1) if dims == {2, 3} else None
    return None


def find_cut(graph: fx.GraphModule) -> Cut:
    """The last global pooling of a 4-D map in ``graph`` (traced with ``trace``) and its input, conv5.

    Raises:
        ValueError: when no node pools a map (a transformer's tokens), saying what the network ends in.
    """
    modules = dict(graph.named_modules())
    found = [(n, p) for n in graph.graph.nodes if (p := _pooling(n, modules)) is not None]
    if not found:
        last_map = [n for n in graph.graph.nodes if shape(n) is not None and len(shape(n)) == 4]
        where = f"its last map is {last_map[-1].name}, " if last_map else "it has no 4-D map at all, "
        raise ValueError(f"no global pooling of a map feeds its classifier ({where}pooled otherwise): no conv5 to pool")
    pool, (mode, side) = found[-1]
    return Cut(graph, pool.args[0], pool, mode, side, shape(pool)[1:])


def _ancestors(out: fx.Node, stop: Iterable[fx.Node]) -> set[fx.Node]:
    seen, todo, stop = set(), [out], set(stop)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n not in stop:
            todo.extend(n.all_input_nodes)
    return seen


def subgraph(graph: fx.GraphModule, inputs: dict[fx.Node, str], out: fx.Node) -> fx.GraphModule:
    """The nodes of ``graph`` from ``inputs`` (each becomes an argument of that name) to ``out``, sharing its layers.

    Raises:
        ValueError: when ``out`` depends on a graph input not among ``inputs`` (the head reads the image again).
    """
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {n: g.placeholder(name) for n, name in inputs.items()}
    needed = _ancestors(out, inputs)
    for n in graph.graph.nodes:
        if n in env or n not in needed:
            continue
        if n.op == "placeholder":
            raise ValueError(f"{out.name} reads the network's input {n.name} besides {', '.join(inputs.values())}")
        env[n] = g.node_copy(n, lambda a: env[a])
    g.output(env[out])
    return fx.GraphModule(graph, g)


def cut_features(graph: fx.GraphModule, out: fx.Node) -> fx.GraphModule:
    """The network's layers from its input to ``out``."""
    (x,) = [n for n in graph.graph.nodes if n.op == "placeholder"][:1]
    return subgraph(graph, {x: "x"}, out)


def head(cut: Cut) -> PooledHead:
    """The network's layers after its pooling, taking the pooled vector."""
    return PooledHead(subgraph(cut.graph, {cut.pool: "pooled"}, output_of(cut.graph)), cut.pooled_shape)


def output_of(graph: fx.GraphModule) -> fx.Node:
    """The node whose value the network returns."""
    return next(n for n in graph.graph.nodes if n.op == "output").args[0]


def map_nodes(graph: fx.GraphModule, sizes: tuple[tuple[int, int], tuple[int, int]]) -> list[tuple[fx.Node, int]]:
    """(node, stride) of every 4-D map of ``graph`` that every later node depends on through it (a cut of the graph:
    block outputs, not a residual branch's inside), its stride measured as the map's growth between two inputs."""
    from torch.fx.passes.shape_prop import ShapeProp

    widths = []
    for h, w in sizes:
        with torch.no_grad():
            ShapeProp(graph).propagate(torch.zeros(1, 3, h, w, device=_device(graph)))
        widths.append({n: shape(n)[-1] for n in graph.graph.nodes if shape(n) is not None and len(shape(n)) == 4})
    nodes = list(graph.graph.nodes)
    position = {n: i for i, n in enumerate(nodes)}
    # A node is a cut when no later node reads a node before it: the earliest input read by any node after i.
    earliest = [len(nodes)] * (len(nodes) + 1)
    for i in range(len(nodes) - 1, -1, -1):
        reads = [position[a] for a in nodes[i].all_input_nodes if a.op != "get_attr"]  # a weight is no branch
        earliest[i] = min([earliest[i + 1], *reads])
    grow = sizes[1][1] - sizes[0][1]
    out = []
    for i, n in enumerate(nodes):
        if n in widths[0] and n in widths[1] and earliest[i + 1] >= i and widths[1][n] > widths[0][n]:
            out.append((n, round(grow / (widths[1][n] - widths[0][n]))))
    return out


def growth_stride(features: nn.Module) -> int:
    """conv5's stride as its growth: the cells 64 more pixels of input add (AlexNet's 13 cells at 224 pixels are at
    stride 16, though 224 is not a multiple of 16)."""
    with torch.no_grad():
        small, large = (features(torch.zeros(1, 3, 224, w, device=_device(features))).shape[-1] for w in (224, 288))
    return round(64 / max(1, large - small))


def smallest_side(features: nn.Module, largest: int = 224) -> int:
    """The smallest square input, in pixels, that ``features`` takes and returns a map of at least 1 x 1 for
    (Inception-v3: 75), found by bisection on probes, not read from a table."""

    def takes(side: int) -> bool:
        try:
            with torch.no_grad():
                return min(features(torch.zeros(1, 3, side, side, device=_device(features))).shape[-2:]) >= 1
        except RuntimeError:  # "Kernel size can't be greater than actual input size" and the like
            return False

    lo, hi = 0, largest  # takes(hi) holds (the probe's size); find the smallest side that still does
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if takes(mid) else (mid, hi)
    return hi


def _device(graph: nn.Module) -> torch.device:
    p = next(graph.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class TimmFeatures(nn.Module):
    """A timm network's conv layers: ``forward_features``, as Tensor[N, C, H, W] (channels-last maps permuted)."""

    def __init__(self, net: nn.Module, nhwc: bool = False) -> None:
        super().__init__()
        self.net = net
        self.nhwc = nhwc  # MambaOut's and some others' forward_features give Tensor[N, H, W, C]

    def forward(self, x: Tensor) -> Tensor:
        y = self.net.forward_features(x)
        return y.permute(0, 3, 1, 2) if self.nhwc else y


class TimmHead(nn.Module):
    """A timm network's head on the pyramid's (global) vector: ``forward_head`` of it as a 1 x 1 map."""

    def __init__(self, net: nn.Module, nhwc: bool = False) -> None:
        super().__init__()
        self.net = net
        self.nhwc = nhwc

    def forward(self, v: Tensor) -> Tensor:
        # (N, C) -> (N, C, 1, 1), or (N, 1, 1, C) channels-last: pooling a 1 x 1 map keeps it
        return self.net.forward_head(v[:, None, None, :] if self.nhwc else v[:, :, None, None])


class TimmStage(nn.Module):
    """A timm network's layers up to one of its ``feature_info`` stages (``forward_intermediates``)."""

    def __init__(self, net: nn.Module, index: int) -> None:
        super().__init__()
        self.net = net
        self.index = index

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_intermediates(x, indices=[self.index], intermediates_only=True, stop_early=True)[0]


STAGES = ("features", "blocks")  # opened one stage at a time: timm's EfficientNet (``blocks``)


def stage_at_stride(features: nn.Module, stride: int) -> tuple[nn.Module, str] | None:
    """(the layers up to the last stage whose stride is at most ``stride``, its name) of an external network's
    conv layers, sharing them; None for other models.

    timm: its ``feature_info`` reductions; torchvision: the last cut of its graph (``map_nodes``) at that stride;
    timm's EfficientNets: the longest prefix of its layers (the stages of ``blocks`` counted one by one) whose map,
    measured, has at most that stride. A map grows by a cell for every ``stride`` pixels more input (AlexNet's conv5,
    13 cells at 224 pixels, is at stride 16: 224 is not a multiple of 16 without padding).
    """
    if isinstance(features, TimmFeatures):
        info = features.net.feature_info
        index = max(i for i, f in enumerate(info) if f["reduction"] <= stride)
        return TimmStage(features.net, index), f"{info[index]['module']} (stage {index}, stride {stride})"
    graph = features if isinstance(features, fx.GraphModule) else getattr(features, "body", None)
    if isinstance(graph, fx.GraphModule):  # torchvision: the last cut of its graph at that stride
        found = [(n, s) for n, s in map_nodes(graph, ((224, 224), (224, 288))) if s <= stride]
        if not found:
            return None
        node, at = found[-1]
        return cut_features(graph, node), f"{node.target if node.op == 'call_module' else node.name} (stride {at})"
    if not isinstance(features, nn.Sequential):
        return None
    layers = [
        (f"{name}.{sub}" if name in STAGES else name, m)
        for name, child in features.named_children()
        for sub, m in (child.named_children() if name in STAGES else [("", child)])
    ]
    device = next(features.parameters()).device
    for end in range(len(layers), 0, -1):
        cut = nn.Sequential(*[m for _, m in layers[:end]])
        with torch.no_grad():  # the stride as the map's growth: 64 more pixels, 64 / stride more cells
            small, large = (cut(torch.zeros(1, 3, 224, side, device=device)).shape[-1] for side in (224, 288))
        if large > small and 64 / (large - small) <= stride:
            return cut, f"{layers[end - 1][0]} (stride {round(64 / (large - small))})"
    return None
