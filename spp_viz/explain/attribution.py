"""Captum attributions on SPPNet: GradCAM on conv5, Integrated Gradients (optionally smoothed), Occlusion, and how
much each pyramid level carried a decision.

The app shares one cached model between all sessions, so nothing here may change it or leave a hook on it, and
nothing may hold a lock while another session waits. GradCAM takes conv5 from the model's own forward and the
gradient from autograd (no hook); Integrated Gradients, SmoothGrad, Occlusion and FeatureAblation only run the
model forward (and backward to the input). ``hook_guard`` stays around each method as a safety net: it removes in
``finally`` any hook a method might leave, also when the method raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import SPPNet

METHODS = ("gradcam", "integrated_gradients", "occlusion")
IG_STEPS = 24  # Integrated Gradients' steps from the black image
NT_SAMPLES = 4  # SmoothGrad's noisy copies (NoiseTunnel)
NT_STDEV = 0.1
OCCLUSION_MIN_STRIDE = 4
OCCLUSION_BATCH = 16  # grey squares per forward pass
METHOD_TITLES = {"gradcam": "GradCAM (conv5)", "integrated_gradients": "Integrated Gradients", "occlusion": "Occlusion"}
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def hook_count(model: nn.Module) -> int:
    """Hooks registered on the model's modules, all kinds together (0 on a clean model)."""
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in _HOOK_DICTS)


@contextmanager
def hook_guard(model: nn.Module) -> Iterator[None]:
    """Remove, on exit (normal or not), every hook added to any module of ``model`` inside the block."""
    before = {(id(m), d): set(getattr(m, d, {})) for m in model.modules() for d in _HOOK_DICTS}
    try:
        yield
    finally:
        for m in model.modules():
            for d in _HOOK_DICTS:
                hooks = getattr(m, d, None)
                if hooks is None:
                    continue
                for key in set(hooks) - before.get((id(m), d), set()):
                    del hooks[key]


@dataclass(frozen=True)
class Attribution:
    """A heatmap over the input picture and what it cost."""

    method: str
    heatmap: np.ndarray  # [H, W], same size as the input picture; larger = more evidence for the target
    seconds: float
    passes: int  # forward (+ backward) passes it took, for the slow-method warning


def _input(model: SPPNet, x: Tensor) -> Tensor:
    return x.to(model.device, torch.float32)


def gradcam(model: SPPNet, x: Tensor, target: int) -> Attribution:
    """GradCAM on conv5, upsampled (bilinear) to the input, negative evidence clipped to 0.

    Captum's LayerGradCam method without its hook: conv5 comes from the model's own ``forward_features`` and the
    gradient of the target's logit with respect to it from autograd through ``forward_head``. Nothing is registered
    on the shared model, so no lock is needed. x: Tensor[1, 3, H, W] in [0, 1].
    """
    start = time.perf_counter()
    x = _input(model, x)
    with torch.no_grad():
        conv5 = model.forward_features(x)  # Tensor[1, C, H5, W5]; the conv layers need no graph
    with torch.enable_grad():
        conv5 = conv5.detach().requires_grad_(True)
        logit = model.forward_head(conv5)[0, target]
        (grad,) = torch.autograd.grad(logit, conv5)
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1): each channel's weight
    cam = F.relu((alpha * conv5.detach()).sum(dim=1, keepdim=True))  # (1, 1, H5, W5)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear")  # as Captum's LayerAttribution.interpolate
    return Attribution("gradcam", cam[0, 0].cpu().numpy(), time.perf_counter() - start, 2)


def integrated_gradients(
    model: SPPNet,
    x: Tensor,
    target: int,
    steps: int = IG_STEPS,
    noise_tunnel: bool = False,
    nt_samples: int = NT_SAMPLES,
) -> Attribution:
    """Integrated Gradients from a black image, summed over colour channels as |attribution|.

    With ``noise_tunnel``, SmoothGrad over ``nt_samples`` noisy copies (stdev ``NT_STDEV``), which costs that many
    times more.
    """
    start = time.perf_counter()
    attr = integrated_gradients_raw(model, x, target, steps, noise_tunnel, nt_samples)
    heat = attr[0].abs().sum(0).detach().cpu().numpy()
    passes = steps * (nt_samples if noise_tunnel else 1)
    return Attribution("integrated_gradients", heat, time.perf_counter() - start, passes)


def integrated_gradients_raw(
    model: SPPNet,
    x: Tensor,
    target: int,
    steps: int = IG_STEPS,
    noise_tunnel: bool = False,
    nt_samples: int = NT_SAMPLES,
) -> Tensor:
    """The signed attributions Tensor[1, 3, H, W]: without noise they add up to f(x) - f(black) for the target."""
    from captum.attr import IntegratedGradients, NoiseTunnel

    x = _input(model, x)
    with hook_guard(model), torch.enable_grad():
        ig = IntegratedGradients(model)
        kwargs = {"baselines": torch.zeros_like(x), "target": target, "n_steps": steps, "internal_batch_size": 8}
        if noise_tunnel:
            return NoiseTunnel(ig).attribute(x, nt_type="smoothgrad", nt_samples=nt_samples, stdevs=NT_STDEV, **kwargs)
        return ig.attribute(x, **kwargs)


def occlusion(model: SPPNet, x: Tensor, target: int, window: int | None = None) -> Attribution:
    """Occlusion: how much the target's score drops when a grey square hides each part (window ~ 1/7 of the image).

    Captum averages the drop over every window that covers a pixel.
    """
    from captum.attr import Occlusion

    start = time.perf_counter()
    x = _input(model, x)
    h, w = x.shape[-2:]
    window = window or occlusion_window((h, w))
    stride = occlusion_stride(window)
    with hook_guard(model), torch.inference_mode():
        attr = Occlusion(model).attribute(
            x,
            sliding_window_shapes=(3, window, window),
            strides=(3, stride, stride),
            target=target,
            baselines=0.5,
            perturbations_per_eval=OCCLUSION_BATCH,
        )
    passes = occlusion_windows((h, w), window)
    return Attribution("occlusion", attr[0].sum(0).detach().cpu().numpy(), time.perf_counter() - start, passes)


def occlusion_window(hw: tuple[int, int]) -> int:
    """The grey square's side for an input of hw pixels: about 1/7 of the shorter side, at least 8."""
    return max(8, min(hw) // 7)


def occlusion_stride(window: int) -> int:
    return max(OCCLUSION_MIN_STRIDE, window // 2)


def occlusion_windows(hw: tuple[int, int], window: int | None = None) -> int:
    """How many grey squares Occlusion slides over an input of hw pixels (each costs a forward pass)."""
    window = window or occlusion_window(hw)
    stride = occlusion_stride(window)
    return (max(hw[0] - window, 0) // stride + 1) * (max(hw[1] - window, 0) // stride + 1)


def estimate_seconds(method: str, forward_seconds: float, x_hw: tuple[int, int], noise_tunnel: bool = False) -> float:
    """A rough cost of ``method`` from one forward pass's time, for the warning before a slow run."""
    if method == "gradcam":
        return 2 * forward_seconds
    if method == "integrated_gradients":
        return IG_STEPS * (NT_SAMPLES if noise_tunnel else 1) * 2.5 * forward_seconds  # forward + backward per step
    return occlusion_windows(x_hw) * forward_seconds * 0.6  # batched OCCLUSION_BATCH at a time


def forward_seconds(model: SPPNet, x: Tensor, repeats: int = 2) -> float:
    """The time of one forward pass of x: Tensor[1, 3, H, W], the unit of the estimates.

    The fastest of ``repeats`` passes: the first at a new size also pays for allocations, and on a busy server one
    pass can be slowed by another session's work, which would overstate every estimate.
    """
    x = _input(model, x)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return best


def estimate_views_seconds(
    method: str, model: SPPNet, x: Tensor, noise_tunnel: bool = False, views: int = 3, timing: dict | None = None
) -> float:
    """What ``method`` will cost on ``views`` pictures no larger than x, from one timed forward pass of x.

    ``timing`` keeps that pass's time, so that several methods of one page run share it.
    """
    timing = {} if timing is None else timing
    if "forward" not in timing:
        timing["forward"] = forward_seconds(model, x)
    return views * estimate_seconds(method, timing["forward"], tuple(x.shape[-2:]), noise_tunnel)


def run(method: str, model: SPPNet, x: Tensor, target: int, noise_tunnel: bool = False) -> Attribution:
    """One selector over the methods."""
    if method == "gradcam":
        return gradcam(model, x, target)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target, noise_tunnel=noise_tunnel)
    if method == "occlusion":
        return occlusion(model, x, target)
    raise ValueError(f"unknown attribution method {method!r}: use one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class LevelShare:
    """How much one pyramid level carried the decision."""

    level: int
    drop: float  # target logit with every level minus with this level zeroed
    share: float  # drop / sum of positive drops (0 when no level helps)


def level_contributions(model: SPPNet, x: Tensor, target: int) -> list[LevelShare]:
    """FeatureAblation over the SPP vector, one group per pyramid level: the target logit's drop when a level is
    zeroed. Meaningful for classifiers that read several levels (ZF-5, models trained in the Lab)."""
    from captum.attr import FeatureAblation

    x = _input(model, x)
    channels, levels = model.channels, model.spp.levels
    # One mask id per level, repeated over that level's C*n*n positions in the SPP layout.
    mask = torch.cat([torch.full((channels * n * n,), i) for i, n in enumerate(levels)])[None].to(model.device)
    with hook_guard(model), torch.inference_mode():
        vec = model.spp(model.forward_features(x))
        drops = FeatureAblation(model.classifier).attribute(vec, target=target, feature_mask=mask, baselines=0.0)
    per_level = [float(drops[0, mask[0] == i][0]) for i in range(len(levels))]
    total = sum(d for d in per_level if d > 0)
    return [LevelShare(n, d, max(d, 0.0) / total if total > 0 else 0.0) for n, d in zip(levels, per_level, strict=True)]
