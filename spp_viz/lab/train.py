"""Training in the Lab (the paper's Sec. 2.3 and 3.1, at classroom scale): one network on the built-in shapes, a
pyramid head fine-tuned on a folder of class subfolders, and ``run_lab``, the one entry of the page and the CLI.

Regimes:
  crop         no SPP: a fixed-size network (flatten after a fixed pool), trained on centre crops
  warp         no SPP: the same network, trained on whole images warped to a square
  single-size  SPP, trained on whole images at their own size
  multi-size   SPP, the image at its own size and at 180/224 of it, switching every epoch, parameters shared
  random-size  SPP, a random scale in [180/224, 1] every epoch
Every model is tested on crop, warp and full-image input (the full image at its own size; a fixed-size network
cannot take it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..gallery import GalleryItem, gallery_view
from ..i18n import N_, _
from ..images import ImageError, to_tensor
from ..models import BASE_MODEL, SPPNet, fc_classifier
from ..progress import Progress, report
from ..pyramid import SpatialPyramidPool, check_levels
from .data import LabelledImage, batches, class_folders, epoch_set, held_out, make_split
from .models import LabConfig, build_lab_model, head_on
from .store import load_base, save_model

TEST_VIEWS = ("crop", "warp", "full")
TEST_VIEW_TITLES = {"crop": N_("crop view"), "warp": N_("warp view"), "full": N_("full view")}  # read through _()
DATASETS = ("synthetic", "folder")  # the built-in shapes, or a folder of class subfolders to fine-tune on
# Fine-tuning on a folder: the shorter sides a regime trains at (the paper's 224 and 180, switching every epoch).
FINE_TUNE_SIDES = {"single-size": (224,), "multi-size": (224, 180)}
FINE_TUNE_EPOCHS_PER_EPOCH = 5  # the head trains on cached vectors: an "epoch" of the Lab's slider is 5 passes
FINE_TUNE_VAL_FRACTION = 0.2  # of each class's images, held out to measure validation accuracy


def epoch_scale(config: LabConfig, epoch: int, rng: np.random.Generator) -> float:
    """The input scale of an epoch: 1; alternating 1 and second_scale; or random in [second_scale, 1]."""
    if config.regime == "multi-size":
        return 1.0 if epoch % 2 == 0 else config.second_scale
    if config.regime == "random-size":
        return float(rng.uniform(config.second_scale, 1.0))
    return 1.0


def lr_factor(epoch: int, epochs: int) -> float:
    """The learning rate's schedule, a factor of ``LabConfig.lr``: a linear warm-up over the first 15% of the epochs
    (SPP networks started at 2e-3 stayed at chance for epochs without it), then a cosine decay to 0 over the rest
    (fast early progress, a calm finish)."""
    warm = max(1, round(0.15 * epochs))
    if epoch < warm:
        return (epoch + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (epoch - warm) / max(1, epochs - warm)))


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
    best_epoch: int = 0  # the epoch whose weights early stopping kept; 0: no early stopping, the last epoch's


EpochCallback = Callable[[EpochLog], None]  # each epoch's log, for the Lab's live training curves


def train(
    config: LabConfig,
    progress: Progress | None = None,
    data: dict[str, list[LabelledImage]] | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train one Lab model on the synthetic set and test it on every view. Same config and seed, same model.

    With ``config.fresh_data`` every epoch after the first trains on a new generated set; with ``config.patience``
    training stops after that many epochs without a better validation accuracy, and the best epoch's weights are
    kept (``TrainResult.best_epoch``). ``on_epoch`` gets each epoch's log (for live curves); ``progress`` the
    fraction of epochs done and what they reached."""
    config.validate()
    start = time.perf_counter()
    data = data or synthetic_data(config)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_lab_model(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, epochs=config.epochs))
    result = TrainResult(model, config)
    kind = train_view(config)
    best_state, best_accuracy = None, -1.0
    for epoch in range(config.epochs):
        fresh = config.fresh_data and epoch > 0
        train_set = epoch_set(config.train_count, config.seed, epoch) if fresh else data["train"]
        loss, sizes, scale = _train_epoch(model, opt, train_set, config, epoch, rng)
        sched.step()
        log = EpochLog(epoch + 1, loss, evaluate(model, data["val"], kind, config.size) or 0.0, scale, sizes)
        _epoch_done(result, log, config.epochs, progress, on_epoch)
        if config.patience and log.val_accuracy > best_accuracy:
            best_accuracy, result.best_epoch = log.val_accuracy, log.epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if config.patience and log.epoch - result.best_epoch >= config.patience:
            report(
                progress,
                1.0,
                _("stopped at epoch {epoch}: kept epoch {kept}, {accuracy}").format(
                    epoch=log.epoch, kept=result.best_epoch, accuracy=f"{best_accuracy:.0%}"
                ),
            )
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval().requires_grad_(False)
    result.test = {v: evaluate(model, data["test"], v, config.size) for v in TEST_VIEWS}
    result.seconds = time.perf_counter() - start
    return result


def _train_epoch(
    model: SPPNet,
    opt: torch.optim.Optimizer,
    samples: Sequence[LabelledImage],
    config: LabConfig,
    epoch: int,
    rng: np.random.Generator,
) -> tuple[float, tuple[tuple[int, int], ...], float]:
    """One pass over ``samples`` on the regime's view: the mean loss, the (H, W) sizes fed, the input scale."""
    scale = epoch_scale(config, epoch, rng)
    model.train()
    total, seen, sizes = 0.0, 0, set()
    for x, y in batches(samples, train_view(config), config.size, scale, config.batch_size, rng):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        seen += len(y)
        sizes.add(tuple(x.shape[-2:]))
    return total / seen, tuple(sorted(sizes)), scale


def synthetic_data(config: LabConfig) -> dict[str, list[LabelledImage]]:
    """The built-in shapes, split into train / val / test by the config's counts and seed."""
    counts = {"train": config.train_count, "val": config.val_count, "test": config.test_count}
    return {split: make_split(split, n, config.seed) for split, n in counts.items()}


def save_result(result: TrainResult, path: str | Path, by_content: bool = False) -> Path:
    """Save a model trained on the built-in shapes, with its config and test accuracy."""
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(result.config).items()}
    meta = {"kind": "synthetic", "config": cfg, "test": result.test}
    return save_model(result.model, path, meta, result, by_content)


def fine_tune_folder(
    base_name: str,
    folder: str | Path | dict[str, list[GalleryItem]],
    levels: Sequence[int] = (4, 2, 1),
    sides: Sequence[int] = (224,),
    epochs: int = 30,
    hidden: int = 256,
    seed: int = 0,
    progress: Progress | None = None,
    on_epoch: EpochCallback | None = None,
    base_weights: str | None = None,
) -> TrainResult:
    """Train an SPP head and classifier on the frozen conv layers of a pretrained model, on an ImageFolder.

    The base is a zoo name or "timm:NAME" / "torchvision:NAME" with ``base_weights`` (``store.load_base``).

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
    base = load_base(base_name, base_weights)
    spp = SpatialPyramidPool(check_levels(levels), "max")
    vectors, labels, skipped = _pooled_vectors(base, spp, by_class, classes, sides)
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: fewer than two classes have readable images")
    val = held_out(labels, FINE_TUNE_VAL_FRACTION, seed)
    if not val.any():
        raise ValueError(f"{root}: too few images to hold any out for validation (give a class at least two)")
    torch.manual_seed(seed)
    classifier = fc_classifier(spp.output_length(base.channels), len(classes), hidden=hidden, dropout=0.3)
    regime = "multi-size" if len(sides) > 1 else "single-size"
    # The settings this run used (a default LabConfig would claim 12 epochs and seed 0 whatever ran).
    result = TrainResult(None, LabConfig(levels=tuple(levels), regime=regime, epochs=epochs, seed=seed))
    _fit_head(classifier, vectors, torch.tensor(labels), val, sides, epochs, result, progress, on_epoch)
    result.model = head_on(base, spp, classifier, classes).eval().requires_grad_(False)
    result.seconds = time.perf_counter() - start
    result.skipped = skipped
    result.meta = {
        "kind": "folder",
        "base": base_name,
        "base_weights": base_weights,
        "levels": list(levels),
        "hidden": hidden,
        "sides": list(sides),
        "epochs": epochs,
        "seed": seed,
        "train_images": int((~val).sum()),
        "val_images": int(val.sum()),
    }
    return result


def _pooled_vectors(
    base: SPPNet,
    spp: SpatialPyramidPool,
    by_class: dict[str, list[GalleryItem]],
    classes: Sequence[str],
    sides: Sequence[int],
) -> tuple[dict[int, list[Tensor]], list[int], list[tuple[str, str]]]:
    """Each readable image's pyramid vector at each side, its class, and the files skipped (with why)."""
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
    return vectors, labels, skipped


def _fit_head(
    classifier: nn.Module,
    vectors: dict[int, list[Tensor]],
    y: Tensor,
    val: Tensor,
    sides: Sequence[int],
    epochs: int,
    result: TrainResult,
    progress: Progress | None,
    on_epoch: EpochCallback | None,
) -> None:
    """Full-batch Adam on the cached vectors, switching sides every epoch; validation accuracy on ``val`` only."""
    opt = torch.optim.Adam(classifier.parameters(), lr=1e-3)
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
        _epoch_done(result, EpochLog(epoch + 1, loss.item(), acc, s / sides[0], ((s, s),)), epochs, progress, on_epoch)


def _epoch_done(
    result: TrainResult, log: EpochLog, epochs: int, progress: Progress | None, on_epoch: EpochCallback | None
) -> None:
    """Keep an epoch's log and tell the caller: the log first (a live chart), then how far training got."""
    result.history.append(log)
    if on_epoch is not None:
        on_epoch(log)
    text = _("epoch {epoch} of {epochs}: loss {loss}, validation accuracy {accuracy}").format(
        epoch=log.epoch, epochs=epochs, loss=f"{log.loss:.3f}", accuracy=f"{log.val_accuracy:.0%}"
    )
    report(progress, log.epoch / epochs, text)


def lab_file_name(dataset: str, config: LabConfig, source: str, base: str = BASE_MODEL) -> str:
    """How a trained model is named on disk: its data (``source``: a folder's or archive's name), regime or base,
    pyramid, epochs and seed."""
    levels = "".join(map(str, config.levels))
    if dataset == "synthetic":
        return f"shapes-{config.regime}-{levels}-e{config.epochs}-s{config.seed}.safetensors"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(source).stem) or "images"
    base = base.split(":", 1)[-1]  # "timm:resnet18" -> "resnet18"
    return f"{stem}-{base}-{levels}.safetensors"


def lab_epochs(dataset: str, config: LabConfig) -> int:
    """How many epochs ``run_lab`` reports: the config's epochs, times 5 on a folder's cached vectors."""
    return config.epochs * (FINE_TUNE_EPOCHS_PER_EPOCH if dataset == "folder" else 1)


def run_lab(
    dataset: str,
    config: LabConfig,
    *,
    folder: str | Path | dict[str, list[GalleryItem]] = "",
    source_name: str = "",
    base: str = BASE_MODEL,
    base_weights: str | None = None,
    out: str | Path | None = None,
    lab_dir: str | Path | None = None,
    progress: Progress | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[Path, TrainResult]:
    """Train as the Lab page and ``python -m spp_viz train`` do, and save the model.

    Args:
        dataset: "synthetic" (the built-in shapes) or "folder" (fine-tune ``base``'s conv layers on ``folder``: a
            path, or the classes of an uploaded archive from ``read_class_zip``, then named by ``source_name``).
        config: regime, pyramid, epochs, seed (and the set sizes, for the shapes).
        base: the network fine-tuned on a folder (``store.load_base``).
        base_weights: where ``base``'s weights came from (recorded with the model).
        out: the file to write; default ``lab_dir / lab_file_name(...)``.
        progress: told the fraction done after every epoch (``lab_epochs``: ``config.epochs`` for the shapes,
            ``FINE_TUNE_EPOCHS_PER_EPOCH`` times as many for a folder).
        on_epoch: gets each epoch's ``EpochLog`` before ``progress`` hears of it.

    Raises:
        ValueError: for a bad config, or a folder that cannot be used.
        store.NotSaved: when the disk is full after training: it carries the model's file and the result.
    """
    config.validate()
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    by_content = out is None  # in the Lab's folder: named after its content too, never overwriting another
    if out is None:
        if lab_dir is None:
            raise ValueError("give out or lab_dir")
        name = source_name or (str(folder) if not isinstance(folder, dict) else "archive")
        out = Path(lab_dir) / lab_file_name(dataset, config, name, base)
    if dataset == "synthetic":
        result = train(config, progress=progress, on_epoch=on_epoch)
        return save_result(result, out, by_content), result
    if config.regime not in FINE_TUNE_SIDES:
        raise ValueError(f"fine-tuning on a folder takes the regimes {' or '.join(FINE_TUNE_SIDES)}")
    sides = FINE_TUNE_SIDES[config.regime]
    epochs = lab_epochs(dataset, config)
    result = fine_tune_folder(
        base, folder, config.levels, sides, epochs, seed=config.seed, progress=progress, on_epoch=on_epoch,
        base_weights=base_weights,
    )  # fmt: skip
    return save_model(result.model, out, result.meta, result, by_content), result
