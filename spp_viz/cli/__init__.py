"""Command line: ``python -m spp_viz predict IMAGE``, and the other commands' arguments."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..detection.detector import DetectorConfig
from ..detection.proposals import PROPOSAL_MODES
from ..devices import resolve_device
from ..distill import DistillConfig
from ..explain.bag_of_words import SHUFFLE_TILES
from ..images import SAMPLES_DIR, ImageError
from ..lab.experiments import EXPERIMENT_EPOCHS, EXPERIMENT_SEEDS, RECIPES, SHIPPED_SEEDS
from ..lab.models import REGIMES
from ..lab.train import FINE_TUNE_EPOCHS_PER_EPOCH, FINE_TUNE_SIDES
from ..models import BASE_MODEL, ZOO
from ..registry import DEFAULT_MODEL, PYRAMID_MODELS
from ..weights import WeightsError
from . import commands, folder_benches
from .catalog import add_models
from .classes import add_class


def _add_model_args(p: argparse.ArgumentParser, default: str = DEFAULT_MODEL) -> None:
    p.add_argument(
        "--model",
        default=default,
        type=commands.model_name,
        help=f"{', '.join([*PYRAMID_MODELS, *ZOO])}, lab:PATH, timm:NAME or torchvision:NAME (default: %(default)s)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="weights file (.pth or .safetensors) instead of the default; for timm: and torchvision: models, "
        "'pretrained' for the library's own (downloaded; offline: timm:tf_efficientnet_lite1 and lite2 from their "
        "packages), none for random weights",
    )
    p.add_argument("--device", default=None, help="auto, cuda, mps or cpu (default: best available)")


def _add_predict(sub) -> None:
    """``predict IMAGE``."""
    p = sub.add_parser("predict", help="top-5 classes of an image, with its input and conv5 sizes")
    p.add_argument("image", help="path of an image file")
    _add_model_args(p)
    p.add_argument(
        "--short-side",
        type=lambda t: 0 if t == "0" else commands.positive(t),
        default=256,
        help="resize so the shorter side is N, keeping the aspect ratio (the paper's full-image view; "
        "default %(default)s; 0 keeps the image's own size)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=commands.cmd_predict)


def _add_index(sub) -> None:
    """``index FOLDER``."""
    p = sub.add_parser("index", help="top-k conv5 activations per channel over a folder of images (cached)")
    p.add_argument("folder", help="folder of images (searched recursively)")
    _add_model_args(p)
    p.add_argument(
        "--top-k", type=commands.positive, default=9, help="responses kept per channel (default %(default)s)"
    )
    p.add_argument("--all-positions", action="store_true", help="allow several entries per image and channel")
    p.add_argument("--cache-dir", default=None, help="where indexes are stored (default ~/.cache/spp_viz/index)")
    p.set_defaults(func=commands.cmd_index)


def _add_train(sub) -> None:
    """``train``."""
    p = sub.add_parser("train", help="train an SPP-net in the Lab (synthetic shapes, or fine-tune on a folder)")
    p.add_argument("--dataset", default="synthetic", help="'synthetic' or a folder with one subfolder per class")
    p.add_argument("--levels", default="4,2,1", help="pyramid levels (default %(default)s)")
    p.add_argument(
        "--regime",
        default="multi-size",
        choices=REGIMES,
        help=f"(folders: {' or '.join(FINE_TUNE_SIDES)}; default %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=commands.positive,
        default=12,
        help=f"(folders: {FINE_TUNE_EPOCHS_PER_EPOCH} passes over the cached vectors each)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", default=BASE_MODEL, choices=sorted(ZOO), help="pretrained conv layers (folders)")
    p.add_argument("--out", required=True, help="where to save the model (.safetensors)")
    p.set_defaults(func=commands.cmd_train)


def _add_lab_experiments(sub) -> None:
    """``lab-experiments``."""
    p = sub.add_parser("lab-experiments", help="the paper's comparison on the built-in shapes, over several seeds")
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="classroom",
        help=f"classroom: the page's quick default ({EXPERIMENT_EPOCHS} epochs, {len(EXPERIMENT_SEEDS)} seeds, under 5 "
        "minutes on 2 cores); shipped: the shipped results' (a new training set every epoch, early stopping, "
        f"{len(SHIPPED_SEEDS)} seeds; its time on 2 cores: README, Lab)",
    )
    p.add_argument(
        "--epochs", type=commands.positive, default=None, help="at most, per network (default: the recipe's)"
    )
    p.add_argument("--seeds", type=commands.positive, default=None, help="seeds 0..N-1; default: the recipe's")
    p.add_argument(
        "--images",
        type=commands.positive,
        default=None,
        help="training images per epoch, the validation and test sets scaled with it (a quick try; default: the "
        "recipe's)",
    )
    p.add_argument(
        "--jobs", type=commands.positive, default=1, help="seeds trained at once, a process each (default %(default)s)"
    )
    p.add_argument("--out", default=None, help="write the results as JSON (e.g. assets/lab_results.json)")
    p.set_defaults(func=commands.cmd_lab_experiments)


def _add_detection_lab(sub) -> None:
    """``detection-lab``."""
    p = sub.add_parser("detection-lab", help="train and test the paper's detector (SVMs, box regression, mAP)")
    p.add_argument("--data", default="synthetic", help="'synthetic' (built-in scenes) or a VOC-format folder")
    p.add_argument("--backbone", default=BASE_MODEL, type=commands.model_name, help="zoo name or lab:PATH")
    p.add_argument("--weights", default=None, help="weights file for the backbone instead of the default")
    p.add_argument("--device", default=None, help="auto, cuda, mps or cpu (default: best available)")
    p.add_argument("--modes", default="spp,rcnn", help="comma-separated: spp, spp-5 (five scales), rcnn")
    p.add_argument("--scales", default="688", help="SPP-net scales, e.g. 688 or 480,576,688,864,1200")
    p.add_argument("--train-split", default="trainval", help="VOC split to train on (default %(default)s)")
    p.add_argument("--test-split", default="test", help="VOC split to test on (default %(default)s)")
    p.add_argument("--max-images", type=commands.positive, default=None, help="at most N images per split")
    p.add_argument(
        "--windows", type=commands.positive, default=DetectorConfig.windows, help="selective-search windows per image"
    )
    p.add_argument("--cache-dir", default=None, help="window features cache (default ~/.cache/spp_viz/detection)")
    p.add_argument("--out", default=None, help="save each mode's detector as OUT-MODE.safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    p.set_defaults(func=commands.cmd_detection_lab)


def _add_bench(sub) -> None:
    """``bench detection | views | shuffle``."""
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    p = bench.add_parser("detection", help="time R-CNN and SPP-net modes on the same image and windows")
    p.add_argument("--image", default=str(SAMPLES_DIR / "astronaut.jpg"), help="image (default: the astronaut sample)")
    p.add_argument("--windows", type=commands.positive, default=2000, help="windows (default %(default)s)")
    p.add_argument("--scale", type=commands.positive, default=688, help="SPP scale: shorter side (default %(default)s)")
    p.add_argument("--proposals", default="fast", choices=PROPOSAL_MODES)
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=commands.cmd_bench_detection)

    p = bench.add_parser("views", help="top-1 / top-5 of crop, warp and full-image views over a folder of photos")
    p.add_argument("folder", help="labelled photos: a WordNet id or class index in the name, or class folders")
    _add_model_args(p)
    p.add_argument("--short-side", type=commands.positive, default=256, help="full view's shorter side (default 256)")
    p.add_argument("--multi", action="store_true", help="also full images averaged over the paper's test scales")
    _add_folder_bench_args(p)
    p.set_defaults(func=folder_benches.cmd_bench_views)

    p = bench.add_parser("shuffle", help="the bag-of-words test: shuffle k x k tiles, compare pyramid levels")
    p.add_argument("folder", help="photos (labels, where their names carry them, add accuracy)")
    _add_model_args(p)
    p.add_argument("--tiles", default=",".join(map(str, SHUFFLE_TILES)), help="k values (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="photo i is shuffled with seed + i (default 0)")
    _add_folder_bench_args(p)
    p.set_defaults(func=folder_benches.cmd_bench_shuffle)

    p = bench.add_parser("levels", help="each pyramid level zeroed in turn: its share of the decision, over a folder")
    p.add_argument("folder", help="photos (searched recursively)")
    _add_model_args(p)
    _add_folder_bench_args(p)
    p.set_defaults(func=folder_benches.cmd_bench_levels)


def _add_folder_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--held-out",
        default=None,
        metavar="DIR",
        help="pyramid-head models: score each photo with the head in DIR (distill --fold-heads) not trained on it",
    )
    p.add_argument("--limit", type=commands.positive, default=None, help="only the first N files")
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")


def _add_distill(sub) -> None:
    """``distill DIR``."""
    p = sub.add_parser("distill", help="distil a pyramid head {6,3,2,1} from a network's own one-level head")
    p.add_argument("folder", help="photos (searched recursively); labels in their names add a held-out measurement")
    _add_model_args(p, BASE_MODEL)  # the teacher: a network with its own one-level head
    p.add_argument("--levels", default="6,3,2,1", help="pyramid levels, finest first (default %(default)s)")
    p.add_argument("--rank", type=commands.positive, default=DistillConfig.rank, help="fc6 width (default %(default)s)")
    p.add_argument("--views", type=commands.positive, default=DistillConfig.views, help="per photo (default 8)")
    p.add_argument("--epochs", type=commands.positive, default=DistillConfig.epochs, help="(default %(default)s)")
    p.add_argument(
        "--crop-target",
        type=float,
        default=DistillConfig.crop_target,
        help="weight of the teacher's mean over each photo's crops in every view's target (default %(default)s)",
    )
    p.add_argument("--folds", type=int, default=2, help="held-out heads that measure the recipe (0: none)")
    p.add_argument("--limit", type=commands.positive, default=None, help="only the first N files")
    p.add_argument("--cache-dir", default=None, help="view vectors cache (default ~/.cache/spp_viz/distill)")
    p.add_argument("--out", required=True, help="where to save the head (.safetensors)")
    p.add_argument("--fold-heads", default=None, metavar="DIR", help="also save the held-out heads (for --held-out)")
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    p.set_defaults(func=commands.cmd_distill)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spp-viz",
        description="SPP-net Explorer from the command line (also `python -m spp_viz`).",
        epilog="spp-viz app [STREAMLIT FLAGS] serves the Streamlit app (see spp_viz.serve).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    adders = (_add_predict, _add_index, _add_train, _add_lab_experiments, _add_detection_lab, _add_distill, _add_bench,
              add_models, add_class)  # fmt: skip
    for add in adders:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a user error, with the reason on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["spp-viz", *argv]  # recorded in every result JSON (spp_viz.provenance)
    try:
        if getattr(args, "device", None):
            resolve_device(args.device)
        return args.func(args)
    except (ImageError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
