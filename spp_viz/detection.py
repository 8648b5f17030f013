"""SPP-net detection against R-CNN: one conv pass and per-window pyramid pooling, against a CNN pass per window.

Both modes score the same windows with the same ImageNet classifier (this is an ImageNet classifier applied to
windows, not a detector trained on VOC). Boxes are (x0, y0, x1, y1) in pixels of the original image, x1/y1 exclusive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import batched_nms, roi_align, roi_pool

from .geometry import feature_geometry
from .images import resize_short_side, to_tensor
from .models import SPPNet

PAPER_SCALES = (480, 576, 688, 864, 1200)
PROPOSAL_MODES = ("fast", "quality", "sliding")
SEARCH_SIDE = 500  # selective search runs on the image shrunk to this longer side: seconds instead of a minute

Progress = Callable[[int, int], None] | None


# ----------------------------------------------------------------------------- windows


def clean_boxes(boxes: np.ndarray, image_size: tuple[int, int], min_side: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and drop empty, degenerate, inverted or non-finite ones.

    Returns:
        (boxes [M, 4] float32, indices [M] of the kept input rows).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = image_size
    finite = np.isfinite(b).all(axis=1)
    b = np.where(np.isfinite(b), b, 0.0)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    keep = finite & (b[:, 2] - b[:, 0] >= min_side) & (b[:, 3] - b[:, 1] >= min_side)
    return b[keep].astype(np.float32), np.nonzero(keep)[0]


def sliding_windows(
    image_size: tuple[int, int],
    sizes: Sequence[int] = (96, 160, 256, 384),
    overlap: float = 0.5,
    aspects: Sequence[float] = (1.0, 0.5, 2.0),
) -> np.ndarray:
    """Square and elongated windows at several sizes, sliding with the given overlap: [N, 4]."""
    w, h = image_size
    out = []
    for s in sizes:
        for a in aspects:
            bw, bh = s * np.sqrt(a), s / np.sqrt(a)
            if bw > w or bh > h:
                continue
            sx, sy = max(1.0, bw * (1 - overlap)), max(1.0, bh * (1 - overlap))
            for y in np.arange(0, h - bh + 1, sy):
                for x in np.arange(0, w - bw + 1, sx):
                    out.append((x, y, x + bw, y + bh))
    if not out:
        out.append((0, 0, w, h))
    return np.asarray(out, dtype=np.float32)


def proposals(img: Image.Image, mode: str = "fast", max_windows: int = 2000) -> np.ndarray:
    """Candidate windows: selective search ("fast" or "quality", OpenCV contrib) or "sliding" windows.

    Deterministic for a given image. Selective search runs on the image shrunk to ``SEARCH_SIDE`` pixels on its
    longer side and its boxes are scaled back. Returns at most ``max_windows`` boxes [N, 4].
    """
    if max_windows < 1:
        raise ValueError(f"the number of windows must be at least 1, got {max_windows}")
    if mode not in PROPOSAL_MODES:
        raise ValueError(f"unknown proposal mode {mode!r}: use one of {', '.join(PROPOSAL_MODES)}")
    if mode == "sliding":
        boxes = sliding_windows(img.size)
    else:
        import cv2

        scale = min(1.0, SEARCH_SIDE / max(img.size))
        small = img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        search.setBaseImage(np.ascontiguousarray(np.asarray(small)[:, :, ::-1]))  # RGB -> BGR
        search.switchToSelectiveSearchFast() if mode == "fast" else search.switchToSelectiveSearchQuality()
        # OpenCV returns the same set of boxes on every run but in a random order (its diversification ranking, not
        # seedable from Python). A canonical order, then a fixed-seed shuffle, makes the first N the same every
        # time while still mixing sizes and places, as the paper's randomised ranking does.
        rects = np.unique(search.process(), axis=0).astype(np.float32)  # (x, y, w, h), sorted
        rects = rects[np.random.default_rng(0).permutation(len(rects))]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / scale
    boxes, _ = clean_boxes(boxes, img.size)
    return boxes[:max_windows]


# ----------------------------------------------------------------------------- timing and results


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
        """Input preparation + conv + pooling/classifier: what the paper's 102x compares (proposals excluded)."""
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
    conv: float  # conv time ratio (the paper's 270x)
    run: float  # input preparation + conv + pooling/fc (the paper's 102x)
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
    progress: Progress = None,
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
            if progress:
                progress(min(start + batch_size, len(boxes)), len(boxes))
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


def pool_windows(model: SPPNet, conv5: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """The model's pyramid over each window's conv5 cells.

    conv5: Tensor[1, C, H5, W5]; cells: Tensor[N, 4] (r0, r1, c0, c1), half-open. Returns Tensor[N, C * sum(n*n)]
    in the SPP layout. Max pyramids use torchvision's roi_pool, whose bins over an integer-aligned window are
    exactly Appendix A's; average pyramids use a summed-area table. Both equal SPP on the cropped map.
    """
    n_win = cells.shape[0]
    r0, r1, c0, c1 = (cells[:, i].to(conv5.dtype) for i in range(4))
    if model.spp.mode == "max":
        # roi_pool's box corners are inclusive cell indices: (x1, y1, x2, y2) = (c0, r0, c1 - 1, r1 - 1).
        rois = torch.stack([torch.zeros_like(r0), c0, r0, c1 - 1, r1 - 1], dim=1)
        levels = [roi_pool(conv5, rois, output_size=(n, n), spatial_scale=1.0).flatten(1) for n in model.spp.levels]
        return torch.cat(levels, dim=1)
    sat = F.pad(conv5[0].cumsum(1).cumsum(2), (1, 0, 1, 0))  # (C, H5+1, W5+1), sat[:, i, j] = sum of [:i, :j]
    out = []
    for n in model.spp.levels:
        i = torch.arange(n, device=conv5.device, dtype=conv5.dtype)
        h, w = (r1 - r0)[:, None], (c1 - c0)[:, None]
        # Appendix A's bins inside each window, [N, n]: start floor(i*h/n), end ceil((i+1)*h/n).
        ys0, ys1 = r0[:, None] + torch.floor(i * h / n), r0[:, None] + torch.ceil((i + 1) * h / n)
        xs0, xs1 = c0[:, None] + torch.floor(i * w / n), c0[:, None] + torch.ceil((i + 1) * w / n)
        a, b = ys0.long()[:, :, None], ys1.long()[:, :, None]  # (N, n, 1): bin rows
        c, d = xs0.long()[:, None, :], xs1.long()[:, None, :]  # (N, 1, n): bin cols
        total = sat[:, b, d] - sat[:, a, d] - sat[:, b, c] + sat[:, a, c]  # (C, N, n, n)
        area = ((b - a) * (d - c)).to(conv5.dtype)  # (N, n, n)
        out.append((total / area).permute(1, 0, 2, 3).reshape(n_win, -1))  # (C, N, n, n) -> (N, C*n*n)
    return torch.cat(out, dim=1)


def spp_mode(
    model: SPPNet,
    img: Image.Image,
    boxes: np.ndarray,
    scales: Sequence[int] = (688,),
    progress: Progress = None,
    classify: bool = True,
) -> ModeResult:
    """SPP-net: conv layers once per scale on the whole image, then the pyramid over each window's conv5 cells.

    With ``classify=False`` only the pooled features are computed (logits are Tensor[N, 0]).
    """
    dev = model.device
    timing = Timing()
    chosen = assign_scales(boxes, img.size, scales) if len(scales) > 1 else np.full(len(boxes), scales[0])
    logits = torch.zeros(len(boxes), len(model.class_names) if classify else 0, device=dev)
    feats = torch.zeros(len(boxes), model.spp_length, device=dev)
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
            geom = feature_geometry(model, (view.height, view.width))
            sx, sy = view.width / img.width, view.height / img.height
            scaled = boxes[rows] * np.array([sx, sy, sx, sy], dtype=np.float32)
            cells = torch.as_tensor(geom.windows_to_cells(scaled), device=dev)
            vec = pool_windows(model, conv5, cells)
            idx = torch.as_tensor(rows, device=dev)
            feats[idx] = vec
            if classify:
                logits[idx] = model.classifier(vec)
            t2 = _now(dev)
            timing.warp += t0 - t_prep
            timing.conv += t1 - t0
            timing.head += t2 - t1
            if progress:
                progress(k + 1, len(scales))
    return ModeResult("spp", boxes, logits, feats, timing, chosen)


def spp_detect(
    model: SPPNet, img: Image.Image, mode: str = "fast", windows: int = 2000, scales: Sequence[int] = (688,)
) -> ModeResult:
    """Proposals (timed into the result) and SPP-net mode on them: what the detection page shows first."""
    start = time.perf_counter()
    boxes = proposals(img, mode, windows)
    seconds = time.perf_counter() - start
    result = spp_mode(model, img, boxes, scales)
    result.timing.proposals = seconds
    return result


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]
    label: int
    name: str
    score: float


def detect(
    result: ModeResult,
    class_names: Sequence[str],
    score_threshold: float = 0.3,
    iou: float = 0.3,
    classes: Sequence[int] | None = None,
    top: int = 20,
) -> list[Detection]:
    """Each window's top class and probability, class-wise NMS, strongest first."""
    if len(result.boxes) == 0:
        return []
    probs = result.logits.float().softmax(1)
    score, label = probs.max(1)
    keep = score >= score_threshold
    if classes is not None:
        keep &= torch.isin(label, torch.as_tensor(list(classes), device=label.device))
    boxes = torch.as_tensor(result.boxes, device=score.device)[keep]
    score, label = score[keep], label[keep]
    order = batched_nms(boxes, score, label, iou)[:top]
    return [
        Detection(tuple(boxes[i].tolist()), int(label[i]), class_names[int(label[i])], float(score[i]))
        for i in order.tolist()
    ]


def parts_of_larger(detections: Sequence[Detection], inside: float = 0.9) -> list[tuple[Detection, Detection]]:
    """(part, whole) pairs among detections: a window lying (``inside`` of its area) within a larger detection of
    the same class. Many such pairs mean the scores do not tell an object from its parts."""
    pairs = []
    for part in detections:
        px0, py0, px1, py1 = part.box
        area = max((px1 - px0) * (py1 - py0), 1e-9)
        for whole in detections:
            wx0, wy0, wx1, wy1 = whole.box
            if whole is part or whole.label != part.label or (wx1 - wx0) * (wy1 - wy0) <= area:
                continue
            overlap = max(0.0, min(px1, wx1) - max(px0, wx0)) * max(0.0, min(py1, wy1) - max(py0, wy0))
            if overlap >= inside * area:
                pairs.append((part, whole))
                break
    return pairs


@dataclass(frozen=True)
class Agreement:
    windows: int
    mean_cosine: float  # between the R-CNN and SPP feature vectors of the same window
    top1_agreement: float  # fraction of windows whose top-1 class is the same in both modes


def agreement(rcnn: ModeResult, spp: ModeResult) -> Agreement:
    """Compare the two modes on the windows R-CNN scored (the first rows of spp's)."""
    n = len(rcnn.boxes)
    cos = F.cosine_similarity(rcnn.features.float(), spp.features[:n].float(), dim=1)
    same = (rcnn.logits.argmax(1) == spp.logits[:n].argmax(1)).float()
    return Agreement(n, float(cos.mean()) if n else 0.0, float(same.mean()) if n else 0.0)


# ----------------------------------------------------------------------------- benchmark


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
    progress: Progress = None,
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
        # input preparation + conv + pooling/classifier: the paper's 102x
        "end_to_end_ratio": rcnn.timing.run / spp.timing.run,
        "end_to_end_with_proposals_ratio": rcnn.timing.total / spp.timing.total,
        "rcnn_per_window_s": rcnn.timing.run / n,
        "bare_forward_per_window_s": bare,
        "rcnn_vs_bare_throughput": bare / (rcnn.timing.run / n),
        "agreement": vars(agree),
    }
