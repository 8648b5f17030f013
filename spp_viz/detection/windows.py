"""SPP-net against R-CNN on the same windows: one conv pass and per-window pyramid pooling, against a CNN pass per
window; their timing and the benchmark of both.

Both modes pool the same conv layers; ``classify=True`` also runs the model's classifier on each window's vector.
Boxes are (x0, y0, x1, y1) in pixels of the original image, x1/y1 exclusive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import roi_align, roi_pool

from ..geometry import feature_geometry
from ..images import resize_short_side, to_tensor
from ..models import SPPNet
from ..progress import Progress, counted
from ..pyramid import adaptive_edges, spatial_pyramid_pool
from .proposals import proposals, sliding_windows


@dataclass
class Timing:
    """Seconds per stage."""

    proposals: float = 0.0
    warp: float = 0.0  # preparing the input: R-CNN warps every window, SPP-net resizes the image once per scale
    conv: float = 0.0
    head: float = 0.0  # pooling + classifier

    @property
    def total(self) -> float:
        return self.proposals + self.run

    @property
    def run(self) -> float:
        """Input preparation + conv + pooling/classifier: the paper's overall speed-up (no proposals)."""
        return self.warp + self.conv + self.head


@dataclass
class ModeResult:
    """One mode's output on a set of windows."""

    mode: str  # "rcnn" or "spp"
    boxes: np.ndarray  # [N, 4] the windows scored
    logits: torch.Tensor  # [N, num_classes]
    features: torch.Tensor  # [N, spp_length] the vector each window's classifier read
    timing: Timing = field(default_factory=Timing)
    scales: np.ndarray | None = None  # SPP: the scale each window was pooled at


@dataclass(frozen=True)
class Speedup:
    """R-CNN against SPP-net on the same windows, R-CNN's times scaled per window when it ran on fewer."""

    rcnn: Timing  # scaled to all of SPP's windows
    spp: Timing
    conv: float  # conv time ratio (paper.CONV_SPEEDUP)
    run: float  # input preparation + conv + pooling/fc (paper.RUN_SPEEDUP)
    scaled: bool  # R-CNN ran on fewer windows and its per-window cost was extrapolated


def speedup(rcnn: Timing, rcnn_windows: int, spp: Timing, spp_windows: int) -> Speedup:
    """The speed-ups of SPP-net over R-CNN; R-CNN's cost grows with the windows, SPP-net's conv does not."""
    k = spp_windows / max(rcnn_windows, 1)
    r = Timing(proposals=spp.proposals, warp=rcnn.warp * k, conv=rcnn.conv * k, head=rcnn.head * k)
    run = r.run / max(spp.run, 1e-12)
    return Speedup(r, spp, r.conv / max(spp.conv, 1e-12), run, rcnn_windows < spp_windows)


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _warped_windows(model: SPPNet, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crop and warp windows of image: Tensor[1, 3, H, W] to Tensor[N, 3, S, S] (bilinear, like R-CNN's warp)."""
    s = model.input_size
    rois = torch.cat([torch.zeros(len(boxes), 1, device=boxes.device), boxes], dim=1)
    # One bilinear sample per output pixel: a plain warp, as R-CNN does (more samples would only blur and cost).
    return roi_align(image, rois, output_size=(s, s), spatial_scale=1.0, sampling_ratio=1, aligned=True)


# Windows per R-CNN batch. Measured on the 2-core CPU with EfficientNet-Lite0: 4: 27.1, 8: 25.9, 12: 25.2,
# 16: 25.2, 24: 34.3, 32: 40.0 ms per window (larger batches fall out of the cache). R-CNN is timed at its best.
RCNN_BATCH = 16


def rcnn_mode(
    model: SPPNet,
    img: Image.Image,
    boxes: np.ndarray,
    batch_size: int = RCNN_BATCH,
    progress: Progress | None = None,
    classify: bool = True,
) -> ModeResult:
    """R-CNN: warp every window to the training size and run the whole network on each, batched.

    With ``classify=False`` only the pooled features are computed (logits are Tensor[N, 0]): a detector's SVMs read
    them instead of the classifier.
    """
    dev = model.device
    timing = Timing()
    image = to_tensor(img, dev)
    t_boxes = torch.as_tensor(boxes, dtype=torch.float32, device=dev)
    logits, feats = [], []
    with torch.inference_mode():
        for start in range(0, len(boxes), batch_size):
            t0 = _now(dev)
            crops = _warped_windows(model, image, t_boxes[start : start + batch_size])
            t1 = _now(dev)
            conv5 = model.forward_features(crops)
            t2 = _now(dev)
            vec = model.spp(conv5)
            logits.append(model.classifier(vec) if classify else vec[:, :0])
            feats.append(vec)
            t3 = _now(dev)
            timing.warp += t1 - t0
            timing.conv += t2 - t1
            timing.head += t3 - t2
            counted(progress, min(start + batch_size, len(boxes)), len(boxes), "windows")
    empty = torch.zeros(0, len(model.class_names) if classify else 0, device=dev)
    return ModeResult(
        "rcnn",
        boxes,
        torch.cat(logits) if logits else empty,
        torch.cat(feats) if feats else torch.zeros(0, model.spp_length, device=dev),
        timing,
    )


def assign_scales(
    boxes: np.ndarray, image_size: tuple[int, int], scales: Sequence[int], target: int = 224
) -> np.ndarray:
    """The paper's rule: each window goes to the scale at which it is closest to target x target pixels."""
    short = min(image_size)
    side = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6))  # [N]
    sizes = side[:, None] * (np.asarray(scales)[None, :] / short)  # window side at each scale, [N, S]
    return np.asarray(scales)[np.argmin(np.abs(sizes - target), axis=1)]


# Windows pooled and classified at a time: [256, 64,000] floats (65 MB) for the SPP-net instead of 512 MB for 2,000.
WINDOW_CHUNK = 256


def _roi_pool_levels(conv5: torch.Tensor, rois: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """roi_pool at each level, side by side: Tensor[N, C * sum(n * n)].

    torchvision's CPU kernel uses one core whatever torch's thread count, so the windows are split among torch's
    threads (the kernel releases the GIL), each writing its rows of the one output: 2,000 windows of a 1,280-channel
    conv5 went from 1.0 s to 0.5 s on 2 cores.
    """
    n_win, channels = rois.shape[0], conv5.shape[1]
    out = torch.empty(n_win, channels * sum(n * n for n in levels), dtype=conv5.dtype, device=conv5.device)
    offsets = np.cumsum([0, *(channels * n * n for n in levels)]).tolist()
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()  # both are per thread

    def rows(part: slice) -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            for n, a, b in zip(levels, offsets, offsets[1:], strict=False):
                out[part, a:b] = roi_pool(conv5, rois[part], output_size=(n, n), spatial_scale=1.0).flatten(1)

    workers = min(torch.get_num_threads(), max(1, n_win // 64)) if conv5.device.type == "cpu" else 1
    bounds = np.linspace(0, n_win, workers + 1).round().astype(int).tolist()
    parts = [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    if workers == 1:
        rows(parts[0])
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="spp-roi-pool") as pool:
            list(pool.map(rows, parts))  # list(): re-raise a worker's exception here
    return out


def pool_windows(model: SPPNet, conv5: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """The model's pyramid over each window's conv5 cells.

    conv5: Tensor[1, C, H5, W5]; cells: Tensor[N, 4] (r0, r1, c0, c1), half-open. Returns Tensor[N, C * sum(n*n)]
    in the SPP layout, by the pyramid's own rule. With Appendix A's bins (the adaptive rule), max pyramids use
    torchvision's roi_pool, whose bins over an integer-aligned window are exactly Appendix A's, and average pyramids a
    summed-area table; both equal SPP on the cropped map (tested). The training rule's bins depend on each window's
    size and do not exist for some sizes: each window is then pooled as SPP on its cropped map, which raises
    ValueError for a window the rule cannot split.
    """
    spp = model.spp
    if spp.rule != "adaptive":
        crops = [conv5[:, :, r0:r1, c0:c1] for r0, r1, c0, c1 in cells.tolist()]
        return torch.cat([spatial_pyramid_pool(c, spp.levels, spp.mode, spp.rule) for c in crops], dim=0)
    n_win = cells.shape[0]
    if model.spp.mode == "max":
        r0, r1, c0, c1 = (cells[:, i].to(conv5.dtype) for i in range(4))
        # roi_pool's box corners are inclusive cell indices: (x1, y1, x2, y2) = (c0, r0, c1 - 1, r1 - 1).
        rois = torch.stack([torch.zeros_like(r0), c0, r0, c1 - 1, r1 - 1], dim=1)
        return _roi_pool_levels(conv5, rois, model.spp.levels)
    sat = F.pad(conv5[0].cumsum(1).cumsum(2), (1, 0, 1, 0))  # (C, H5+1, W5+1), sat[:, i, j] = sum of [:i, :j]
    out = []
    top, bottom, left, right = (cells[:, i].long() for i in range(4))
    for n in model.spp.levels:
        # Appendix A's bins inside each window, [N, n] (pyramid.adaptive_edges), moved to the window's first cell.
        ys0, ys1 = adaptive_edges(bottom - top, n)
        xs0, xs1 = adaptive_edges(right - left, n)
        a, b = (top[:, None] + ys0)[:, :, None], (top[:, None] + ys1)[:, :, None]  # (N, n, 1): bin rows
        c, d = (left[:, None] + xs0)[:, None, :], (left[:, None] + xs1)[:, None, :]  # (N, 1, n): bin cols
        total = sat[:, b, d] - sat[:, a, d] - sat[:, b, c] + sat[:, a, c]  # (C, N, n, n)
        area = ((b - a) * (d - c)).to(conv5.dtype)  # (N, n, n)
        out.append((total / area).permute(1, 0, 2, 3).reshape(n_win, -1))  # (C, N, n, n) -> (N, C*n*n)
    return torch.cat(out, dim=1)


def spp_mode(
    model: SPPNet,
    img: Image.Image,
    boxes: np.ndarray,
    scales: Sequence[int] = (688,),
    progress: Progress | None = None,
    classify: bool = True,
    keep_features: int | None = None,
) -> ModeResult:
    """SPP-net: conv layers once per scale on the whole image, then the pyramid over each window's conv5 cells.

    With ``classify=False`` only the pooled features are computed (logits are Tensor[N, 0]). With ``keep_features``
    the result holds the first that many windows' feature vectors only (``features`` is Tensor[min(N, keep), L]):
    the windows are pooled and classified WINDOW_CHUNK at a time, so all N vectors never exist at once.
    """
    dev = model.device
    timing = Timing()
    chosen = assign_scales(boxes, img.size, scales) if len(scales) > 1 else np.full(len(boxes), scales[0])
    logits = torch.zeros(len(boxes), len(model.class_names) if classify else 0, device=dev)
    kept = len(boxes) if keep_features is None else min(len(boxes), keep_features)
    feats = torch.zeros(kept, model.spp_length, device=dev)
    with torch.inference_mode():
        for k, s in enumerate(scales):
            rows = np.nonzero(chosen == s)[0]
            if len(rows) == 0:
                continue
            t_prep = _now(dev)
            view = resize_short_side(img, s)
            x = to_tensor(view, dev)
            t0 = _now(dev)
            conv5 = model.forward_features(x)
            t1 = _now(dev)
            geom = feature_geometry(model, (view.height, view.width), tuple(conv5.shape[-2:]))
            sx, sy = view.width / img.width, view.height / img.height
            scaled = boxes[rows] * np.array([sx, sy, sx, sy], dtype=np.float32)
            cells = torch.as_tensor(geom.windows_to_cells(scaled), device=dev)
            for start in range(0, len(rows), WINDOW_CHUNK):
                part = slice(start, start + WINDOW_CHUNK)
                vec = pool_windows(model, conv5, cells[part])  # [chunk, L]
                idx = torch.as_tensor(rows[part], device=dev)
                stored = idx < kept
                feats[idx[stored]] = vec[stored]
                if classify:
                    logits[idx] = model.classifier(vec)
            t2 = _now(dev)
            timing.warp += t0 - t_prep
            timing.conv += t1 - t0
            timing.head += t2 - t1
            counted(progress, k + 1, len(scales), "scales")
    return ModeResult(mode="spp", boxes=boxes, logits=logits, features=feats, timing=timing, scales=chosen)


@dataclass(frozen=True)
class Agreement:
    windows: int
    mean_cosine: float  # between the R-CNN and SPP feature vectors of the same window
    top1_agreement: float  # fraction of windows whose top-1 class is the same in both modes
    compared: int  # windows whose feature vectors the cosine compares (the SPP result may keep fewer rows)


def agreement(rcnn: ModeResult, spp: ModeResult) -> Agreement:
    """Compare the two modes on the windows R-CNN scored (the first rows of spp's): the top-1 class on all of them,
    the feature vectors' cosine on those whose SPP features were kept (a cached result keeps the first rows only)."""
    n = len(rcnn.boxes)
    m = min(n, len(spp.features))
    cos = F.cosine_similarity(rcnn.features[:m].float(), spp.features[:m].float(), dim=1)
    same = (rcnn.logits.argmax(1) == spp.logits[:n].argmax(1)).float()
    return Agreement(n, float(cos.mean()) if m else 0.0, float(same.mean()) if n else 0.0, m)


def bare_forward_per_window(model: SPPNet, batch_size: int = RCNN_BATCH, batches: int = 6) -> float:
    """Seconds per window of the whole network on ready batches at the training size: R-CNN's best case."""
    x = torch.rand(batch_size, 3, model.input_size, model.input_size, device=model.device)
    with torch.inference_mode():
        model(x)  # warm-up
        start = _now(model.device)
        for _ in range(batches):
            model(x)
        return (_now(model.device) - start) / (batches * batch_size)


def benchmark(
    model: SPPNet,
    img: Image.Image,
    windows: int = 2000,
    scales: Sequence[int] = (688,),
    mode: str = "fast",
    progress: Progress | None = None,
) -> dict:
    """Time both modes on the same image and windows in one run; the ratios the paper reports, and the baseline check.

    Selective search may find fewer windows than asked; sliding windows then make up the number (reported).
    """
    start = time.perf_counter()
    boxes = proposals(img, mode, windows)
    found = len(boxes)
    if found < windows:
        extra = sliding_windows(img.size, sizes=(48, 64, 96, 128, 160, 224, 320), overlap=0.75)
        boxes = np.concatenate([boxes, extra])[:windows]
    t_proposals = time.perf_counter() - start
    spp_mode(model, img, boxes[:8], scales)  # warm-up at these sizes
    spp = spp_mode(model, img, boxes, scales)
    rcnn = rcnn_mode(model, img, boxes, progress=progress)
    spp.timing.proposals = rcnn.timing.proposals = t_proposals
    bare = bare_forward_per_window(model)
    n = len(boxes)
    agree = agreement(rcnn, spp)
    return {
        "model": model.name,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "image": list(img.size),
        "scales": list(scales),
        "windows": n,
        "from_selective_search": found,
        "rcnn": vars(rcnn.timing) | {"total": rcnn.timing.total},
        "spp": vars(spp.timing) | {"total": spp.timing.total},
        "conv_ratio": rcnn.timing.conv / spp.timing.conv,
        # input preparation + conv + pooling/classifier: the paper's overall speed-up (paper.RUN_SPEEDUP)
        "end_to_end_ratio": rcnn.timing.run / spp.timing.run,
        "end_to_end_with_proposals_ratio": rcnn.timing.total / spp.timing.total,
        "rcnn_per_window_s": rcnn.timing.run / n,
        "bare_forward_per_window_s": bare,
        "rcnn_vs_bare_throughput": bare / (rcnn.timing.run / n),
        "agreement": vars(agree),
    }
