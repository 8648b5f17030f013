"""Distillation of a pyramid head (``PyramidHead``) from a pretrained network's own one-level head.

No ImageNet training set is here, so the student learns to match the teacher's softmax on the same view (function
matching): full images at several sizes (the paper's multi-size training), a flip, and random crops of several sizes
and aspect ratios, of any folder of photos. Each view goes through the frozen conv layers once; its pyramid vector and
the teacher's logits are cached on disk per photo (keyed by the model, the view settings and the photo's bytes), so a
second run only trains and a stopped run resumes at the next photo.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .files import in_use, write_atomically
from .gallery import GalleryItem
from .images import ImageError, load_image, resize_short_side, to_tensor
from .models import SPPNet
from .progress import Progress, counted, report, span
from .pyramid import SpatialPyramidPool, check_levels, spatial_pyramid_pool
from .pyramid_head import PyramidHead
from .settings import cache_root
from .stats import Interval, paired_bootstrap
from .weights import load_into, read_tagged, save_tagged

DISTILL_CACHE = cache_root() / "distill"
META_KEY = "spp_viz_pyramid_head"


@dataclass(frozen=True)
class DistillConfig:
    """How the head is distilled (defaults: the 500 photos of ../shared/imagenet-sample on a 2-core CPU)."""

    levels: tuple[int, ...] = (6, 3, 2, 1)  # the paper's pyramid, finest first
    rank: int = 192  # fc6's width: 12.5M parameters (fc6 and fc7) with 1,280 channels, 25 MB in float16
    views: int = 8  # per photo: full images at full_sides, one flipped, then random crops
    full_sides: tuple[int, ...] = (224, 256, 320)  # shorter sides of the full-image views (multi-size)
    crop_side: int = 224  # random crops are resized to this square
    crop_area: tuple[float, float] = (0.3, 1.0)  # of the photo's area
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # width / height
    # Each view's target: (1 - crop_target) x the teacher's softmax on that view + crop_target x the teacher's mean
    # softmax over the photo's random crops, so the student learns to see in a whole image what the crops show.
    crop_target: float = 0.5
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3  # AdamW's peak, reached after 30% of the steps (one-cycle schedule)
    weight_decay: float = 0.05
    seed: int = 0  # the crops and the training order

    def validate(self) -> DistillConfig:
        check_levels(self.levels)
        if self.rank < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("rank, epochs and batch size must be at least 1")
        if self.views < len(self.full_sides) + 1:
            raise ValueError(f"give at least {len(self.full_sides) + 1} views: the full images and one flip")
        if not 0.0 <= self.crop_target <= 1.0:
            raise ValueError(f"crop_target is a weight between 0 and 1, got {self.crop_target}")
        if self.crop_target > 0 and self.views < len(self.full_sides) + 2:
            raise ValueError(f"crop_target needs random crops: give at least {len(self.full_sides) + 2} views")
        return self

    def view_key(self) -> dict:
        """What decides a photo's views (not the training settings): the cache key's part."""
        keep = ("levels", "views", "full_sides", "crop_side", "crop_area", "crop_ratio", "seed")
        return {k: v for k, v in asdict(self).items() if k in keep}


def distill_views(img: Image.Image, config: DistillConfig, rng: np.random.Generator) -> list[Image.Image]:
    """The photo's full views (each side in ``full_sides``), the first one flipped, then random crops."""
    out = [resize_short_side(img, s) for s in config.full_sides]
    out.append(out[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    w, h = img.size
    while len(out) < config.views:
        area = rng.uniform(*config.crop_area) * w * h
        ratio = np.exp(rng.uniform(np.log(config.crop_ratio[0]), np.log(config.crop_ratio[1])))
        cw, ch = max(1, min(w, round(np.sqrt(area * ratio)))), max(1, min(h, round(np.sqrt(area / ratio))))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((config.crop_side,) * 2, Image.Resampling.BILINEAR)
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


def check_teacher(model: SPPNet) -> nn.Linear:
    """The teacher's fc; raises ValueError for a network whose head is not global average pooling + one fc."""
    if not isinstance(model.classifier, nn.Linear) or tuple(model.spp.levels) != (1,) or model.spp.mode != "avg":
        raise ValueError(
            f"{model.name} has no one-level head to distil from: distillation needs global average pooling and one "
            "fully connected layer (efficientnet_lite0)"
        )
    return model.classifier


@dataclass
class ViewVectors:
    """Every view's pyramid vector (float16) and the teacher's logits, with the photo each came from."""

    vectors: np.ndarray  # [V, C * M] float16
    logits: np.ndarray  # [V, classes] float32
    photo: np.ndarray  # [V] index into the photos used
    names: list[str] = field(default_factory=list)  # the photos used
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    computed: int = 0  # photos run through the network now (the rest came from the cache)


def _photo_vectors(model: SPPNet, img: Image.Image, config: DistillConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One photo's views through the conv layers once each: (vectors [V, C*M] float16, teacher logits [V, K])."""
    rng = np.random.default_rng([config.seed, seed])
    vectors, logits = [], []
    with torch.inference_mode():
        for view in distill_views(img, config, rng):
            conv5 = model.forward_features(to_tensor(view, model.device))  # (1, C, H5, W5)
            logits.append(model.forward_head(conv5)[0].float().cpu().numpy())
            vectors.append(spatial_pyramid_pool(conv5, config.levels, "max")[0].half().cpu().numpy())
    return np.stack(vectors), np.stack(logits)


def collect(
    model: SPPNet,
    items: list[GalleryItem],
    config: DistillConfig,
    cache_dir: str | Path | None = DISTILL_CACHE,
    progress: Progress | None = None,
) -> ViewVectors:
    """Each readable photo's view vectors, read from the cache or computed and cached; unreadable files skipped."""
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    settings = json.dumps({"model": model.name, **config.view_key()}, sort_keys=True)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    computed = 0
    for i, item in enumerate(items):
        counted(progress, i, len(items), "photos")
        try:
            data = item.read()
            key = hashlib.sha1(settings.encode() + hashlib.sha1(data).digest()).hexdigest()
            path = cache / f"{key}.npz" if cache is not None else None
            if path is not None and path.is_file():
                with in_use(path), np.load(path) as z:
                    pair = (z["vectors"], z["logits"])
            else:
                # The photo's bytes seed its crops: the same photo gets the same views wherever it is listed.
                pair = _photo_vectors(model, load_image(data, name=item.name), config, int(key[:8], 16))
                computed += 1
                if path is not None:  # renamed into place: a stopped run never leaves a half-written photo
                    write_atomically(path, lambda tmp, pair=pair: np.savez(tmp, vectors=pair[0], logits=pair[1]))
        except ImageError as e:
            skipped.append((item.name, str(e)))
            continue
        parts.append(pair)
        names.append(item.name)
    counted(progress, len(items), len(items), "photos")
    if not parts:
        raise ValueError(f"none of the {len(items)} files could be read as an image")
    return ViewVectors(
        vectors=np.concatenate([p[0] for p in parts]),
        logits=np.concatenate([p[1] for p in parts]),
        photo=np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts]),
        names=names,
        skipped=skipped,
        computed=computed,
    )


def view_targets(data: ViewVectors, config: DistillConfig) -> torch.Tensor:
    """Each view's target distribution Tensor[V, classes]: the teacher's softmax on the view, mixed with weight
    ``config.crop_target`` with the teacher's mean softmax over the photo's random crops."""
    own = torch.from_numpy(data.logits).float().softmax(1)  # (V, K)
    if config.crop_target == 0:
        return own
    first_crop = len(config.full_sides) + 1  # each photo's views: the full ones, a flip, then the crops
    group = np.cumsum(np.r_[0, np.diff(data.photo) != 0])  # (V,) 0, 1, ... per photo, in order (ids may skip)
    index = np.arange(len(group)) - np.r_[0, np.flatnonzero(np.diff(group)) + 1][group]  # the view's place
    crops = torch.from_numpy(index >= first_crop)  # (V,) which views are random crops
    photo = torch.from_numpy(group).long()
    sums = torch.zeros(int(photo.max()) + 1, own.shape[1]).index_add_(0, photo[crops], own[crops])
    counts = torch.zeros(len(sums)).index_add_(0, photo[crops], torch.ones(int(crops.sum())))
    crop_mean = sums / counts.clamp(min=1)[:, None]  # (photos, K)
    return (1 - config.crop_target) * own + config.crop_target * crop_mean[photo]


def fit_head(
    teacher: nn.Linear, data: ViewVectors, channels: int, config: DistillConfig, progress: Progress | None = None
) -> tuple[PyramidHead, list[float]]:
    """Train the head's correction so its softmax matches the teacher's on every view (KL divergence, AdamW).

    Returns the head and the mean loss of each epoch.
    """
    torch.manual_seed(config.seed)
    dev = teacher.weight.device
    head = PyramidHead(teacher, channels, config.levels, config.rank).to(dev)
    params = [*head.fc6.parameters(), *head.fc7.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(data.vectors) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps)
    x, target = torch.from_numpy(data.vectors), view_targets(data, config).to(dev)
    with torch.no_grad():  # the start is frozen: computed once
        start = torch.cat([head.start(x[i : i + 1024].to(dev).float()) for i in range(0, len(x), 1024)])
    losses = []
    for epoch in range(config.epochs):
        order, total = torch.randperm(len(x)), 0.0
        for i in range(0, len(x), config.batch_size):
            rows = order[i : i + config.batch_size]
            logits = start[rows] + head.correction(x[rows].to(dev).float())
            loss = F.kl_div(F.log_softmax(logits, 1), target[rows], reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item() * len(rows)
        losses.append(total / len(x))
        report(progress, (epoch + 1) / config.epochs, f"epoch {epoch + 1} of {config.epochs}: KL {losses[-1]:.4f}")
    return head.eval().requires_grad_(False), losses


@dataclass(frozen=True)
class CrossFit:
    """Held-out top-1 of the teacher, the untrained start and the distilled head, on each labelled photo's full view
    at shorter side ``side``, each photo predicted by a head trained without it (``folds`` heads)."""

    folds: int
    side: int
    photos: int
    teacher: float
    start: float
    student: float
    student_minus_teacher: Interval  # paired over the photos, 95% bootstrap interval
    # Each fold's head and the photos it never saw (the benches' --held-out reads them): not part of the JSON.
    heads: tuple[tuple[PyramidHead, tuple[str, ...]], ...] = field(default=(), compare=False, repr=False)

    def json(self) -> dict:
        d = self.student_minus_teacher
        keep = ("folds", "side", "photos", "teacher", "start", "student")
        return {**{k: getattr(self, k) for k in keep},
                "student_minus_teacher": {"diff": d.value, "low": d.low, "high": d.high}}  # fmt: skip


def cross_fit(
    teacher: nn.Linear,
    data: ViewVectors,
    labels: list[int | None],
    channels: int,
    config: DistillConfig,
    folds: int = 2,
    progress: Progress | None = None,
) -> CrossFit:
    """How well the recipe does on photos it never saw: photo i's head is trained on the other folds' photos.

    ``labels``: each used photo's class (``data.names`` order), None when its name carries none.
    """
    side = 256 if 256 in config.full_sides else config.full_sides[0]
    first = np.r_[0, np.flatnonzero(np.diff(data.photo)) + 1]  # each photo's first view
    rows = first + config.full_sides.index(side)  # its full view at ``side``
    known = np.array([lab is not None for lab in labels])
    if folds < 2 or known.sum() < folds:
        raise ValueError(f"cross-fitting needs at least {max(folds, 2)} labelled photos and 2 folds")
    y = torch.tensor([lab if lab is not None else -1 for lab in labels])
    student = torch.zeros(len(labels), dtype=torch.long)
    heads = []
    for f in range(folds):
        held = np.arange(len(labels)) % folds == f
        views = ~held[data.photo]  # the training photos' views
        train = ViewVectors(data.vectors[views], data.logits[views], data.photo[views])
        head, _ = fit_head(teacher, train, channels, config, span(progress, f / folds, (f + 1) / folds))
        with torch.no_grad():
            x = torch.from_numpy(data.vectors[rows[held]]).float().to(teacher.weight.device)
            student[torch.from_numpy(held)] = head(x).argmax(1).cpu()
        heads.append((head, tuple(n for n, h in zip(data.names, held, strict=True) if h)))
    with torch.no_grad():
        x = torch.from_numpy(data.vectors[rows]).float().to(teacher.weight.device)
        start = head.start(x).argmax(1).cpu()  # every fold's head has the same start: the teacher's fc, untrained
    teach = torch.from_numpy(data.logits[rows]).argmax(1)
    k = torch.from_numpy(known)
    preds = {"teacher": teach, "start": start, "student": student}
    right = {name: (pred[k] == y[k]).numpy() for name, pred in preds.items()}
    return CrossFit(
        folds=folds, side=side, photos=int(k.sum()), teacher=float(right["teacher"].mean()),
        start=float(right["start"].mean()), student=float(right["student"].mean()),
        student_minus_teacher=paired_bootstrap(right["student"], right["teacher"]), heads=tuple(heads),
    )  # fmt: skip


@dataclass
class DistillResult:
    """A distilled head and how it was made."""

    head: PyramidHead
    config: DistillConfig
    losses: list[float]  # mean KL divergence to the teacher per epoch, on the training views
    photos: list[str]
    views: int
    skipped: list[tuple[str, str]]
    seconds: float
    measured: CrossFit | None = None  # held-out accuracy of the recipe, when the photos' names carry labels

    def meta(self) -> dict:
        """The recipe and the measurements, as the weights file records them."""
        return {
            "config": asdict(self.config),
            "photos": len(self.photos),
            "views": self.views,
            "losses": [round(x, 5) for x in self.losses],
            "seconds": round(self.seconds, 1),
            "measured": self.measured.json() if self.measured is not None else None,
        }


def distill(
    model: SPPNet,
    items: list[GalleryItem],
    config: DistillConfig = DistillConfig(),
    cache_dir: str | Path | None = DISTILL_CACHE,
    progress: Progress | None = None,
    labels: Callable[[str], int | None] | None = None,
    folds: int = 2,
) -> DistillResult:
    """A pyramid head for ``model``'s conv layers, distilled from its own head on ``items``.

    With ``labels`` (a photo's class from its name, or None), the recipe is first measured on held-out photos
    (``cross_fit`` with ``folds`` heads); the head returned is then trained on every photo. Progress: the photos'
    views (0 -> 0.6), the held-out heads (-> 0.9), the head (-> 1).
    """
    config.validate()
    teacher = check_teacher(model)
    if not items:
        raise ValueError("no image files to distil from")
    if folds == 1 or folds < 0:
        raise ValueError(f"--folds takes 0 (no held-out measurement) or 2 and more, got {folds}")
    start = time.perf_counter()
    data = collect(model, items, config, cache_dir, span(progress, 0.0, 0.6))
    measured = None
    if labels is not None and folds >= 2 and sum(labels(n) is not None for n in data.names) >= folds:
        known = [labels(n) for n in data.names]
        measured = cross_fit(teacher, data, known, model.channels, config, folds, span(progress, 0.6, 0.9))
    head, losses = fit_head(teacher, data, model.channels, config, span(progress, 0.9, 1.0))
    seconds = time.perf_counter() - start
    return DistillResult(
        head=head, config=config, losses=losses, photos=data.names, views=len(data.vectors), skipped=data.skipped,
        seconds=seconds, measured=measured,
    )  # fmt: skip


def save_head(head: PyramidHead, path: str | Path, meta: dict) -> Path:
    """fc6 and fc7 as .safetensors (float16), the recipe and measurements in its metadata."""
    info = {**meta, "levels": list(head.levels), "rank": head.rank, "channels": head.channels}
    return save_tagged({k: v.half() for k, v in head.state_dict().items()}, path, META_KEY, info)


def save_fold_heads(result: DistillResult, folder: str | Path) -> list[Path]:
    """The held-out measurement's heads as ``fold{i}.safetensors`` in ``folder``, each with the names of the photos
    it never saw (``held_out``), so a bench can score every photo with a head that was not trained on it."""
    if result.measured is None:
        raise ValueError("no held-out heads: the photos' names carry no labels, or --folds is 0")
    meta = result.meta()
    return [
        save_head(head, Path(folder) / f"fold{i}.safetensors", {**meta, "fold": i, "held_out": list(names)})
        for i, (head, names) in enumerate(result.measured.heads)
    ]


def read_head_meta(path: str | Path) -> dict:
    """The metadata of a saved head (raises WeightsError, naming the file, for any other file)."""
    return read_tagged(path, META_KEY, "pyramid head")


def load_head(path: str | Path, model: SPPNet) -> PyramidHead:
    """A saved head on ``model``'s own fc (its teacher); its tensors are checked against the architecture."""
    from safetensors.torch import load_file

    meta = read_head_meta(path)
    head = PyramidHead(check_teacher(model), model.channels, tuple(meta["levels"]), int(meta["rank"]))
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    load_into(head, state, f"the pyramid head in {Path(path).name}")
    return head.eval().requires_grad_(False).to(model.device)


def head_bytes(path: str | Path) -> int:
    """A saved head's size in memory, from its file's header: its tensors in float32 (the file keeps float16)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) * 4 for k in f.keys())  # noqa: SIM118  (not a dict)


def with_pyramid_head(model: SPPNet, head: PyramidHead, name: str) -> SPPNet:
    """``model``'s conv layers (shared) with the max pyramid and the pyramid head as its classifier, in eval mode
    (as the shared conv layers already are)."""
    return model.with_head(SpatialPyramidPool(head.levels, "max"), head, model.class_names, name).eval()
