"""The SPP Lab: train small SPP-nets (and fixed-size baselines) and reproduce the paper's comparisons.

Regimes (the paper's Sec. 2.3 and 3.1, at classroom scale):
  crop         no SPP: a fixed-size network (flatten after a fixed pool), trained on centre crops
  warp         no SPP: the same network, trained on whole images warped to a square
  single-size  SPP, trained on whole images at their own size
  multi-size   SPP, the image at its own size and at 180/224 of it, switching every epoch, parameters shared
  random-size  SPP, a random scale in [180/224, 1] every epoch
Every model is tested on crop, warp and full-image input (the full image at its own size; a fixed-size network
cannot take it).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .activations import IMAGE_SUFFIXES, GalleryItem, folder_items, gallery_view
from .devices import resolve_device
from .images import ImageError, to_tensor
from .models import DEFAULT_MODEL, NetSpec, SPPNet, WeightsError, fc_classifier, load_into, load_model
from .pyramid import SpatialPyramidPool, check_levels
from .stats import SeedVerdict, seed_verdict
from .synthetic import CLASSES, LabelledImage, make_split
from .views import crop_view, warp_view

REGIMES = ("crop", "warp", "single-size", "multi-size", "random-size")
TEST_VIEWS = ("crop", "warp", "full")
LAB_DIR_NAME = "lab"
DATASETS = ("synthetic", "folder")  # the built-in shapes, or a folder of class subfolders to fine-tune on
# Fine-tuning on a folder: the shorter sides a regime trains at (the paper's 224 and 180, switching every epoch).
FINE_TUNE_SIDES = {"single-size": (224,), "multi-size": (224, 180)}
FINE_TUNE_EPOCHS_PER_EPOCH = 5  # the head trains on cached vectors: an "epoch" of the Lab's slider is 5 passes
FINE_TUNE_VAL_FRACTION = 0.2  # of each class's images, held out to measure validation accuracy


@dataclass(frozen=True)
class LabConfig:
    levels: tuple[int, ...] = (4, 2, 1)  # the pyramid (SPP regimes)
    regime: str = "multi-size"  # one of REGIMES
    size: int = 64  # the fixed network's input side, and the crop / warp test views' side
    second_scale: float = 180 / 224  # multi-size: the other scale, as in the paper (180 against 224)
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-3  # Adam; 3e-3 collapsed to the uniform prediction on SPP runs
    width: int = 32  # channels of the first conv blocks; conv5 has 2 * width
    seed: int = 0  # data, initialisation and order: the same seed gives the same model
    train_count: int = 800
    val_count: int = 200
    test_count: int = 400

    @classmethod
    def sized(cls, train_count: int, **changes) -> LabConfig:
        """A config whose validation and test sets grow with the training set (a quarter and a half of it)."""
        return cls(
            train_count=train_count,
            val_count=max(40, train_count // 4),
            test_count=max(40, train_count // 2),
            **changes,
        )

    def validate(self) -> LabConfig:
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}: use one of {', '.join(REGIMES)}")
        check_levels(self.levels)
        if self.epochs < 1 or self.batch_size < 1 or self.train_count < len(CLASSES):
            raise ValueError("epochs and batch size must be at least 1, and the training set at least one per class")
        return self

    @property
    def uses_spp(self) -> bool:
        return self.regime not in ("crop", "warp")


class FixedPool(nn.Module):
    """pool5 of a fixed-size network: a 2x2 max pool and a flatten, for one conv5 size only."""

    def __init__(self, conv5_side: int) -> None:
        super().__init__()
        self.conv5_side = conv5_side
        self.levels = (conv5_side // 2,)  # what it amounts to: one n x n level, for the pages that ask
        self.mode = "max"

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.conv5_side, self.conv5_side):
            raise ValueError(
                f"a network without SPP only takes inputs whose conv5 is {self.conv5_side} x {self.conv5_side}; "
                f"this one's is {x.shape[-2]} x {x.shape[-1]}"
            )
        return F.max_pool2d(x, 2).flatten(1)  # (N, C, s, s) -> (N, C, s/2, s/2) -> (N, C*s*s/4)

    def output_length(self, channels: int) -> int:
        return channels * (self.conv5_side // 2) ** 2


def lab_features(width: int) -> nn.Sequential:
    """Four conv blocks with batch norm, total stride 8: small enough to train in seconds on a CPU."""
    chans = [3, width // 2, width, 2 * width, 2 * width]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for k in range(1, 5):
        layers[f"conv{k}"] = nn.Conv2d(chans[k - 1], chans[k], 3, padding=1, bias=False)
        layers[f"bn{k}"] = nn.BatchNorm2d(chans[k])
        layers[f"relu{k}"] = nn.ReLU(inplace=True)
        if k < 4:
            layers[f"pool{k}"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


def build_lab_model(config: LabConfig, class_names: Sequence[str] = CLASSES) -> SPPNet:
    """A small SPP-net (or, for the crop and warp regimes, a fixed-size network) as the config describes."""
    channels = 2 * config.width
    spp = SpatialPyramidPool(config.levels, "max") if config.uses_spp else FixedPool(config.size // 8)
    classifier = nn.Sequential(
        OrderedDict(
            fc6=nn.Linear(spp.output_length(channels), 128),
            relu6=nn.ReLU(inplace=True),
            drop6=nn.Dropout(0.2),
            fc7=nn.Linear(128, len(class_names)),
        )
    )
    spec = NetSpec(
        f"lab-{config.regime}", 8, channels, tuple(class_names), (0.5,) * 3, (0.5,) * 3, config.size, pretrained=True
    )
    return SPPNet(lab_features(config.width), spp, classifier, spec)


# ----------------------------------------------------------------------------- views and batches


def view(img: Image.Image, kind: str, size: int, scale: float = 1.0) -> Image.Image:
    """The paper's views at the Lab's size: crop (shorter side to size, centre square), warp (size x size), or the
    full image scaled by ``scale``."""
    if kind == "crop":
        return crop_view(img, size, short_side=size).image
    if kind == "warp":
        return warp_view(img, size).image
    if scale == 1.0:
        return img
    return img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.Resampling.BILINEAR)


def batches(
    samples: Sequence[LabelledImage],
    kind: str,
    size: int,
    scale: float,
    batch_size: int,
    rng: np.random.Generator | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Tensors grouped by size (full views vary), each group cut into batches; shuffled when rng is given."""
    groups: dict[tuple[int, int], list[tuple[Tensor, int]]] = {}
    for s in samples:
        t = to_tensor(view(s.image, kind, size, scale))[0]
        groups.setdefault(tuple(t.shape[-2:]), []).append((t, s.label))
    out = []
    for items in groups.values():
        order = rng.permutation(len(items)) if rng is not None else np.arange(len(items))
        for i in range(0, len(items), batch_size):
            chunk = [items[j] for j in order[i : i + batch_size]]
            out.append((torch.stack([t for t, _ in chunk]), torch.tensor([y for _, y in chunk])))
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def epoch_scale(config: LabConfig, epoch: int, rng: np.random.Generator) -> float:
    """The input scale of an epoch: 1; alternating 1 and second_scale; or random in [second_scale, 1]."""
    if config.regime == "multi-size":
        return 1.0 if epoch % 2 == 0 else config.second_scale
    if config.regime == "random-size":
        return float(rng.uniform(config.second_scale, 1.0))
    return 1.0


def train_view(config: LabConfig) -> str:
    """The view a regime trains on: crops, warps, or the full image."""
    return {"crop": "crop", "warp": "warp"}.get(config.regime, "full")


@torch.no_grad()
def evaluate(model: SPPNet, samples: Sequence[LabelledImage], kind: str, size: int) -> float | None:
    """Accuracy on one test view; None when the model cannot take it (a fixed-size network on full images)."""
    model.eval()
    correct = 0
    try:
        for x, y in batches(samples, kind, size, 1.0, 64):
            correct += int((model(x).argmax(1) == y).sum())
    except ValueError:
        return None
    return correct / max(1, len(samples))


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    loss: float
    val_accuracy: float  # on held-out images, never the training images
    scale: float
    input_sizes: tuple[tuple[int, int], ...]  # the (H, W) sizes the network was fed this epoch


@dataclass
class TrainResult:
    model: SPPNet | None
    config: LabConfig
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
    test: dict[str, float | None] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # what save_model needs to rebuild a fine-tuned model
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) that could not be used


def train(
    config: LabConfig,
    progress: Callable[[EpochLog], None] | None = None,
    data: dict[str, list[LabelledImage]] | None = None,
) -> TrainResult:
    """Train one Lab model on the synthetic set and test it on every view. Same config and seed, same model."""
    config.validate()
    start = time.perf_counter()
    data = data or synthetic_data(config)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_lab_model(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    # Cosine decay over the run: fast early progress, a calm finish (small sets are noisy at a fixed rate).
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    result = TrainResult(model, config)
    kind = train_view(config)
    for epoch in range(config.epochs):
        scale = epoch_scale(config, epoch, rng)
        model.train()
        total, seen, sizes = 0.0, 0, set()
        for x, y in batches(data["train"], kind, config.size, scale, config.batch_size, rng):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            seen += len(y)
            sizes.add(tuple(x.shape[-2:]))
        sched.step()
        log = EpochLog(
            epoch + 1, total / seen, evaluate(model, data["val"], kind, config.size) or 0.0, scale, tuple(sorted(sizes))
        )
        result.history.append(log)
        if progress:
            progress(log)
    model.eval().requires_grad_(False)
    result.test = {v: evaluate(model, data["test"], v, config.size) for v in TEST_VIEWS}
    result.seconds = time.perf_counter() - start
    return result


def synthetic_data(config: LabConfig) -> dict[str, list[LabelledImage]]:
    """The built-in shapes, split into train / val / test by the config's counts and seed."""
    counts = {"train": config.train_count, "val": config.val_count, "test": config.test_count}
    return {split: make_split(split, n, config.seed) for split, n in counts.items()}


# ----------------------------------------------------------------------------- the paper's comparison

EXPERIMENTS: tuple[tuple[str, dict], ...] = (
    ("no SPP (crop)", {"regime": "crop"}),
    ("no SPP (warp)", {"regime": "warp"}),
    ("SPP {4,2,1} single-size", {"regime": "single-size", "levels": (4, 2, 1)}),
    ("SPP {4,2,1} multi-size", {"regime": "multi-size", "levels": (4, 2, 1)}),
    ("SPP {6,3,2,1} multi-size", {"regime": "multi-size", "levels": (6, 3, 2, 1)}),
)


EXPERIMENT_SEEDS = (0, 1, 2)  # data and initialisation: the comparison's verdicts need the seed-to-seed spread
EXPERIMENT_EPOCHS = 7  # with 3 seeds, 15 networks train in under 5 minutes on a 2-core CPU (README, Lab)
NOT_APPLICABLE = "no SPP: the network takes only its fixed training size, never a whole image"


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value: one seed gives no spread)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def run_experiments(
    base: LabConfig = LabConfig(epochs=EXPERIMENT_EPOCHS),
    seeds: Sequence[int] = EXPERIMENT_SEEDS,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Train the five configurations with each seed (same data and seed for all five); test accuracy per view.

    Returns a JSON-ready dict: ``rows`` hold, per configuration and view, the mean over seeds (``test``), the standard
    deviation (``std``), each seed's accuracy (``per_seed``), and for a view a network cannot take, None and the
    reason in ``not_applicable``.
    """
    if not seeds:
        raise ValueError("give at least one seed")
    start = time.perf_counter()
    per_seed: dict[str, dict[str, list[float | None]]] = {n: {v: [] for v in TEST_VIEWS} for n, _ in EXPERIMENTS}
    seconds = dict.fromkeys(per_seed, 0.0)
    total, step = len(EXPERIMENTS) * len(seeds), 0
    for seed in seeds:
        seeded = replace(base, seed=seed)
        data = synthetic_data(seeded)  # one draw of data per seed, shared by the five networks
        for name, changes in EXPERIMENTS:
            if progress:
                progress(step, total, f"{name}, seed {seed}")
            result = train(replace(seeded, **changes), data=data)
            for v in TEST_VIEWS:
                per_seed[name][v].append(result.test[v])
            seconds[name] += result.seconds
            step += 1
    if progress:
        progress(total, total, "done")
    rows = []
    for name, changes in EXPERIMENTS:
        row: dict = {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}}
        row.update(test={}, std={}, per_seed={}, not_applicable={}, seconds=round(seconds[name], 2))
        for v in TEST_VIEWS:
            values = per_seed[name][v]
            if any(x is None for x in values):
                row["test"][v] = row["std"][v] = row["per_seed"][v] = None
                row["not_applicable"][v] = NOT_APPLICABLE
            else:
                row["test"][v], row["std"][v] = _mean_std(values)
                row["per_seed"][v] = values
        rows.append(row)
    return {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(base).items() if k != "seed"},
        "seeds": list(seeds),
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
        "torch_threads": torch.get_num_threads(),
    }


# (a, b, the paper's claim that a beats b, and its numbers): each tested on the per-seed accuracies.
PAPER_CLAIMS = (
    (
        ("SPP {4,2,1} multi-size", "full"),
        ("no SPP (warp)", "warp"),
        "Full-image SPP against the warped baseline",
        "Caltech101: 91.44 full against 89.91 warped",
    ),
    (
        ("SPP {4,2,1} multi-size", "full"),
        ("no SPP (crop)", "crop"),
        "Full-image SPP against the cropped baseline",
        "VOC 2007: 78.39 full against 76.45 crop",
    ),
    (
        ("SPP {4,2,1} multi-size", "full"),
        ("SPP {4,2,1} single-size", "full"),
        "Multi-size against single-size training",
        "Overfeat-7: 0.68 points better",
    ),
    (
        ("SPP {6,3,2,1} multi-size", "full"),
        ("SPP {4,2,1} multi-size", "full"),
        "{6,3,2,1} against {4,2,1}, both multi-size",
        "ZF-5: top-1 error 34.98 with {6,3,2,1} against 35.06 with {4,3,2,1}",
    ),
)


def claim_verdict(a: Sequence[float], b: Sequence[float]) -> tuple[str, SeedVerdict]:
    """ "matches the paper", "the opposite of the paper" or "no clear difference on these data", for the paper's
    claim that a beats b, from accuracies paired by seed: clear only when |mean difference| > 2 standard errors."""
    v = seed_verdict(a, b)
    if v.direction == "a":
        return "matches the paper", v
    if v.direction == "b":
        return "the opposite of the paper", v
    return "no clear difference on these data", v


def paper_verdicts(results: dict) -> list[str]:
    """What matches the paper and what does not, read off the per-seed numbers (see ``claim_verdict``)."""
    rows = {r["name"]: r for r in results["rows"]}
    out = []
    for (name_a, view_a), (name_b, view_b), what, paper in PAPER_CLAIMS:
        a, b = rows[name_a]["per_seed"][view_a], rows[name_b]["per_seed"][view_b]
        verdict, v = claim_verdict(a, b)
        spread = (
            f"{100 * v.diff:+.1f} points, standard error {100 * v.se:.1f} over {v.seeds} seeds"
            if v.seeds > 1
            else f"{100 * v.diff:+.1f} points from one seed, which gives no error bar"
        )
        out.append(
            f"{what} ({accuracy_cell(rows[name_a], view_a)} against {accuracy_cell(rows[name_b], view_b)}; {spread}): "
            f"**{verdict}** (the paper: {paper})."
        )
    return out


def accuracy_cell(row: dict, view: str) -> str:
    """A row of ``run_experiments`` at one view as the page, the CLI and the verdicts show it: "86.0 ± 1.0%" (mean
    ± standard deviation over seeds; the mean alone for one seed), or "n/a: " and why the network cannot take it."""
    mean, std = row["test"][view], row["std"][view]
    if mean is None:
        return "n/a: " + row["not_applicable"].get(view, "not measured")
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}") + "%"


# ----------------------------------------------------------------------------- save and load


def save_model(model: SPPNet, path: str | Path, meta: dict) -> Path:
    """safetensors: the weights, and in the metadata the config and class names needed to rebuild the model."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    info = {**meta, "class_names": list(model.class_names)}
    save_file(state, str(path), metadata={"spp_viz_lab": json.dumps(info)})
    return path


def save_result(result: TrainResult, path: str | Path) -> Path:
    """Save a model trained on the built-in shapes, with its config and test accuracy."""
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(result.config).items()}
    return save_model(result.model, path, {"kind": "synthetic", "config": cfg, "test": result.test})


def read_meta(path: str | Path) -> dict:
    """The Lab metadata of a saved model (raises WeightsError for other files)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # a missing or foreign file: one clear message
        raise WeightsError(f"{Path(path).name} is not a model saved by the Lab: {e}") from e
    if "spp_viz_lab" not in meta:
        raise WeightsError(f"{Path(path).name} holds no Lab configuration")
    return json.loads(meta["spp_viz_lab"])


def load_trained(path: str | Path, device: str | torch.device | None = None) -> SPPNet:
    """Rebuild a Lab model (synthetic, or fine-tuned on a folder) from its file, in eval mode."""
    from safetensors.torch import load_file

    meta = read_meta(path)
    state = load_file(str(path))
    if meta["kind"] == "synthetic":
        cfg = meta["config"]
        config = LabConfig(**{**cfg, "levels": tuple(cfg["levels"])})
        model = build_lab_model(config, meta["class_names"])
    else:
        base = load_model(meta["base"], device="cpu")
        spp = SpatialPyramidPool(tuple(meta["levels"]), "max")
        classifier = fc_classifier(spp.output_length(base.channels), len(meta["class_names"]), hidden=meta["hidden"])
        model = head_on(base, spp, classifier, meta["class_names"])
    load_into(model, state, "this Lab model")
    model.name = f"lab:{Path(path).stem}"
    return model.eval().requires_grad_(False).to(resolve_device(device))


def lab_models(folder: str | Path) -> list[Path]:
    """Saved Lab models in a folder, newest first."""
    folder = Path(folder)
    return (
        sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    )


# ----------------------------------------------------------------------------- fine-tuning on a folder


def head_on(base: SPPNet, spp: SpatialPyramidPool, classifier: nn.Module, class_names: Sequence[str]) -> SPPNet:
    """A new SPP head and classifier on a zoo model's (frozen) conv layers, with its normalisation and geometry."""
    return base.with_head(spp, classifier, class_names, f"lab-{base.name}")


def fine_tune_folder(
    base_name: str,
    folder: str | Path | dict[str, list[GalleryItem]],
    levels: Sequence[int] = (4, 2, 1),
    sides: Sequence[int] = (224,),
    epochs: int = 30,
    hidden: int = 256,
    seed: int = 0,
    progress: Callable[[EpochLog], None] | None = None,
) -> TrainResult:
    """Train an SPP head and classifier on the frozen conv layers of a pretrained zoo model, on an ImageFolder.

    Folder layout: one subfolder per class (or the images of each class, as ``read_class_zip`` gives them).
    conv features are computed once per image and size (shorter side in
    ``sides``; two sizes = multi-size training), pooled by the pyramid, and the classifier trains on those vectors.
    ``FINE_TUNE_VAL_FRACTION`` of each class (at least one image, when the class has two) is held out: the
    validation accuracy of each epoch is measured on those images only.
    """
    start = time.perf_counter()
    by_class = class_folders(folder) if not isinstance(folder, dict) else folder
    root = "the archive" if isinstance(folder, dict) else Path(folder).expanduser()
    classes = sorted(by_class)
    if len(classes) < 2:
        raise ValueError(f"{root} needs at least two class subfolders of images")
    base = load_model(base_name)
    spp = SpatialPyramidPool(check_levels(levels), "max")
    vectors: dict[int, list[Tensor]] = {s: [] for s in sides}
    labels = []
    skipped: list[tuple[str, str]] = []
    for label, name in enumerate(classes):
        for item in by_class[name]:
            try:
                views = [gallery_view(item.read(), item.name, s) for s in sides]
            except ImageError as e:
                skipped.append((f"{name}/{item.name}", str(e)))
                continue
            with torch.inference_mode():  # once per image and size: the expensive part
                for s, v in zip(sides, views, strict=True):
                    vectors[s].append(spp(base.forward_features(to_tensor(v, base.device)))[0].cpu())
            labels.append(label)
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: fewer than two classes have readable images")
    y = torch.tensor(labels)
    val = held_out(labels, FINE_TUNE_VAL_FRACTION, seed)
    if not val.any():
        raise ValueError(f"{root}: too few images to hold any out for validation (give a class at least two)")
    torch.manual_seed(seed)
    classifier = fc_classifier(spp.output_length(base.channels), len(classes), hidden=hidden, dropout=0.3)
    opt = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    regime = "multi-size" if len(sides) > 1 else "single-size"
    result = TrainResult(None, LabConfig(levels=tuple(levels), regime=regime))
    for epoch in range(epochs):
        s = sides[epoch % len(sides)]
        x = torch.stack(vectors[s])  # (N, k*M)
        classifier.train()
        loss = F.cross_entropy(classifier(x[~val]), y[~val])
        opt.zero_grad()
        loss.backward()
        opt.step()
        classifier.eval()
        with torch.no_grad():
            acc = float((classifier(x[val]).argmax(1) == y[val]).float().mean())
        log = EpochLog(epoch + 1, loss.item(), acc, s / sides[0], ((s, s),))
        result.history.append(log)
        if progress:
            progress(log)
    model = head_on(base, spp, classifier, classes).eval().requires_grad_(False)
    result.model = model
    result.seconds = time.perf_counter() - start
    result.skipped = skipped
    result.meta = {
        "kind": "folder",
        "base": base_name,
        "levels": list(levels),
        "hidden": hidden,
        "sides": list(sides),
        "train_images": int((~val).sum()),
        "val_images": int(val.sum()),
    }
    return result


def class_folders(folder: str | Path) -> dict[str, list[GalleryItem]]:
    """A folder's class subfolders and the image files in each (searched recursively)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return {}
    return {p.name: folder_items(p) for p in sorted(root.iterdir()) if p.is_dir()}


ZIP_MAX_UNPACKED_MB = 400
ZIP_MAX_FILES = 5000
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)  # what zipfile unpacks


def read_class_zip(
    data: bytes, max_unpacked_mb: int = ZIP_MAX_UNPACKED_MB, max_files: int = ZIP_MAX_FILES
) -> tuple[dict[str, list[GalleryItem]], list[tuple[str, str]]]:
    """A .zip of class folders (``cat/1.jpg``, ``dog/2.png``; one enclosing folder is fine), read in memory.

    Returns the images of each class and the files skipped, with why (not an image, not in a class folder).

    Raises:
        ValueError: for a file that is not a zip, one that unpacks to more than ``max_unpacked_mb`` or holds more
            than ``max_files`` files, and one with a path that leaves the archive (``../``, absolute, a drive).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"this file is not a readable .zip archive ({e})") from e
    if len(infos) > max_files:
        raise ValueError(f"the archive holds {len(infos)} files; the limit is {max_files}")
    cap = max_unpacked_mb * 1024 * 1024
    if sum(i.file_size for i in infos) > cap:
        raise ValueError(f"the archive unpacks to more than {max_unpacked_mb} MB, the limit")
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ValueError(f"{info.filename} points outside the archive: refused")
    paths = [PurePosixPath(i.filename).parts for i in infos]
    # One folder around everything (zip of "photos/" holding "cat/", "dog/"): look inside it.
    visible = [p for p in paths if not _hidden(p)]
    strip = 1 if len({p[0] for p in visible}) == 1 and any(len(p) >= 3 for p in visible) else 0
    classes: dict[str, list[GalleryItem]] = {}
    skipped: list[tuple[str, str]] = []
    used = 0
    for info, parts in zip(infos, paths, strict=True):
        if _hidden(parts):
            continue
        rel = parts[strip:]
        if PurePosixPath(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((info.filename, "not an image file"))
        elif len(rel) < 2:
            skipped.append((info.filename, "not inside a class folder"))
        elif info.flag_bits & 0x1:
            skipped.append((info.filename, "encrypted: needs a password"))
        elif info.compress_type not in ZIP_METHODS:
            skipped.append((info.filename, f"packed with compression method {info.compress_type}, not one zip reads"))
        else:
            try:
                with archive.open(info) as f:
                    blob = f.read(cap - used + 1)  # the sizes in the directory can lie: count what really comes out
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                skipped.append((info.filename, f"cannot be unpacked ({type(e).__name__}: {e})"))
                continue
            used += len(blob)
            if used > cap:
                raise ValueError(f"the archive unpacks to more than {max_unpacked_mb} MB, the limit")
            classes.setdefault(rel[0], []).append(GalleryItem("/".join(rel[1:]), data=blob))
    return classes, skipped


def _hidden(parts: tuple[str, ...]) -> bool:
    """macOS resource forks and dot files: archive tools add them; nobody means them as images."""
    return any(p == "__MACOSX" or p.startswith(".") for p in parts)


def held_out(labels: Sequence[int], fraction: float, seed: int) -> Tensor:
    """A boolean mask choosing ``fraction`` of each class (rounded, at least one of a class of two or more)."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    mask = np.zeros(len(labels_arr), dtype=bool)
    for c in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == c)
        if len(idx) >= 2:
            k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
            mask[rng.choice(idx, k, replace=False)] = True
    return torch.from_numpy(mask)


# ----------------------------------------------------------------------------- one entry for the page and the CLI


def lab_file_name(dataset: str, config: LabConfig, source: str, base: str = DEFAULT_MODEL) -> str:
    """How a trained model is named on disk: its data (``source``: a folder's or archive's name), regime or base,
    pyramid, epochs and seed."""
    levels = "".join(map(str, config.levels))
    if dataset == "synthetic":
        return f"shapes-{config.regime}-{levels}-e{config.epochs}-s{config.seed}.safetensors"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(source).stem) or "images"
    return f"{stem}-{base}-{levels}.safetensors"


def lab_epochs(dataset: str, config: LabConfig) -> int:
    """How many progress calls ``run_lab`` makes: the config's epochs, times 5 on a folder's cached vectors."""
    return config.epochs * (FINE_TUNE_EPOCHS_PER_EPOCH if dataset == "folder" else 1)


def run_lab(
    dataset: str,
    config: LabConfig,
    *,
    folder: str | Path | dict[str, list[GalleryItem]] = "",
    source_name: str = "",
    base: str = DEFAULT_MODEL,
    out: str | Path | None = None,
    lab_dir: str | Path | None = None,
    progress: Callable[[EpochLog], None] | None = None,
) -> tuple[Path, TrainResult]:
    """Train as the Lab page and ``python -m spp_viz train`` do, and save the model.

    Args:
        dataset: "synthetic" (the built-in shapes) or "folder" (fine-tune ``base``'s conv layers on ``folder``: a
            path, or the classes of an uploaded archive from ``read_class_zip``, then named by ``source_name``).
        config: regime, pyramid, epochs, seed (and the set sizes, for the shapes).
        out: the file to write; default ``lab_dir / lab_file_name(...)``.
        progress: called after every epoch (``config.epochs`` for the shapes, ``FINE_TUNE_EPOCHS_PER_EPOCH`` times
            as many for a folder).

    Raises:
        ValueError: for a bad config, or a folder that cannot be used.
    """
    config.validate()
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    if out is None:
        if lab_dir is None:
            raise ValueError("give out or lab_dir")
        name = source_name or (str(folder) if not isinstance(folder, dict) else "archive")
        out = Path(lab_dir) / lab_file_name(dataset, config, name, base)
    if dataset == "synthetic":
        result = train(config, progress=progress)
        return save_result(result, out), result
    if config.regime not in FINE_TUNE_SIDES:
        raise ValueError(f"fine-tuning on a folder takes the regimes {' or '.join(FINE_TUNE_SIDES)}")
    sides = FINE_TUNE_SIDES[config.regime]
    epochs = lab_epochs(dataset, config)
    result = fine_tune_folder(base, folder, config.levels, sides, epochs, seed=config.seed, progress=progress)
    return save_model(result.model, out, result.meta), result
