"""Command line: ``python -m spp_viz predict IMAGE``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .bag_of_words import SHUFFLE_TILES
from .detection import PROPOSAL_MODES
from .detection_lab import DetectorConfig
from .devices import resolve_device
from .features import compute_feature_maps
from .images import SAMPLES_DIR, ImageError, load_image
from .models import DEFAULT_MODEL, ZOO, WeightsError
from .registry import LAB_PREFIX, load
from .train import EXPERIMENT_EPOCHS, EXPERIMENT_SEEDS, FINE_TUNE_EPOCHS_PER_EPOCH, FINE_TUNE_SIDES, REGIMES


@contextmanager
def _progress_bar(total: int, unit: str, desc: str) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr (stdout stays for results and --json) and the callback the library's long runs take:
    ``progress(done, total, ...)`` moves the bar to ``done`` of ``total``."""
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, desc=desc, file=sys.stderr) as bar:

        def progress(done: int, total: int | None = None, *_) -> None:
            if total is not None:
                bar.total = total
            bar.update(done - bar.n)

        yield progress


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _model_name(text: str) -> str:
    """A zoo name, or "lab:PATH" for a model saved by the Lab."""
    if text in ZOO or text.startswith(LAB_PREFIX):
        return text
    raise argparse.ArgumentTypeError(f"unknown model {text!r}: choose one of {', '.join(ZOO)}, or lab:PATH")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default=DEFAULT_MODEL, type=_model_name, help=f"{', '.join(ZOO)} or lab:PATH (default: %(default)s)"
    )
    p.add_argument("--weights", default=None, help="weights file (.pth or .safetensors) instead of the default")
    p.add_argument("--device", default=None, help="auto, cuda, mps or cpu (default: best available)")


def _cmd_predict(args: argparse.Namespace) -> int:
    img = load_image(args.image)
    model = load(args.model, device=args.device, weights=args.weights)
    short_side = None if args.short_side == 0 else args.short_side
    fm = compute_feature_maps(model, img, short_side)
    h5, w5, c = fm.conv5_shape
    result = {
        "image": args.image,
        "model": model.name,
        "pretrained": model.pretrained,
        "device": str(model.device),
        "image_size": list(img.size),
        "downsized_from": list(img.info["downsized_from"]) if "downsized_from" in img.info else None,
        "input_size": [fm.input_hw[1], fm.input_hw[0]],
        "conv5": {"height": h5, "width": w5, "channels": c},
        "spp_length": fm.spp_length,
        "top5": [{"index": p.index, "name": p.name, "prob": round(p.prob, 6)} for p in fm.top5],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.image}: model {model.name} on {model.device}" + ("" if model.pretrained else " (UNTRAINED weights)"))
    if result["downsized_from"]:
        w0, h0 = result["downsized_from"]
        print(f"  image shrunk on reading from {w0} x {h0} to {img.width} x {img.height}")
    print(
        f"  input {fm.input_hw[1]} x {fm.input_hw[0]} (W x H) -> conv5 {h5} x {w5} x {c} "
        f"-> SPP vector of {fm.spp_length}"
    )
    for i, p in enumerate(fm.top5, 1):
        print(f"  {i}. {p.name:<30} {p.prob:7.2%}")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from .activations import DEFAULT_CACHE, build_index, folder_items, tied_channels

    items = folder_items(args.folder)
    if not items:
        raise ValueError(f"no image files in {args.folder}")
    model = load(args.model, device=args.device, weights=args.weights)
    start = time.perf_counter()
    with _progress_bar(len(items), "img", f"indexing conv5 of {model.name}") as progress:
        report = build_index(
            model,
            items,
            top_k=args.top_k,
            one_per_image=not args.all_positions,
            cache_dir=args.cache_dir or DEFAULT_CACHE,
            progress=progress,
        )
    seconds = time.perf_counter() - start
    index = report.index
    how = "read from the cache" if report.from_cache else f"{report.computed} computed, {report.reused} reused"
    print(
        f"{len(index.hashes)} images indexed ({how}) in {seconds:.1f} s: top {index.top_k} of {index.channels} "
        f"conv5 channels -> {report.path}"
    )
    tied = tied_channels(index)
    where = f"before {model.clip}" if model.clip else "conv5"
    print(
        f"responses {where}: {tied} of {index.channels} channels ({tied / index.channels:.1%}) have a tie "
        f"(equal to 3 decimals) within their top {index.top_k}"
    )
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped:")
        for name, reason in report.skipped:
            print(f"  {name}: {reason}")
    return 0


def _cmd_bench_detection(args: argparse.Namespace) -> int:
    from .detection import benchmark

    img = load_image(args.image)
    model = load(args.model, device=args.device, weights=args.weights)
    with _progress_bar(args.windows, "win", "R-CNN mode") as progress:
        r = benchmark(model, img, args.windows, (args.scale,), args.proposals, progress=progress)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(
        f"{args.image}: {r['image'][0]} x {r['image'][1]}, {r['windows']} windows "
        f"({r['from_selective_search']} from selective search), scale {args.scale}, {model.name} on {r['device']} "
        f"({r['threads']} threads)"
    )
    print(f"{'stage':<22} {'R-CNN s':>10} {'SPP-net s':>10}")
    for stage in ("proposals", "warp", "conv", "head", "total"):
        print(f"{stage:<22} {r['rcnn'][stage]:>10.3f} {r['spp'][stage]:>10.3f}")
    print(f"conv speed-up:                 {r['conv_ratio']:7.1f}x   (paper, ZF-5 on a GPU: 270x)")
    print(f"conv + pooling/fc speed-up:    {r['end_to_end_ratio']:7.1f}x   (paper: 102x)")
    print(f"with proposals (shared):       {r['end_to_end_with_proposals_ratio']:7.1f}x")
    print(
        f"R-CNN per window {r['rcnn_per_window_s'] * 1e3:.1f} ms vs bare batched forward "
        f"{r['bare_forward_per_window_s'] * 1e3:.1f} ms: throughput ratio {r['rcnn_vs_bare_throughput']:.2f} "
        f"(>= 0.9: the baseline is not handicapped)"
    )
    a = r["agreement"]
    print(
        f"agreement on {a['windows']} windows: mean cosine {a['mean_cosine']:.3f}, "
        f"top-1 agreement {a['top1_agreement']:.1%}"
    )
    return 0


def _folder_and_model(args: argparse.Namespace):
    """The folder's image files (the first --limit of them) and the model, for the folder benches."""
    from .activations import folder_items

    items = folder_items(args.folder)[: args.limit]
    if not items:
        raise ValueError(f"no image files in {args.folder}")
    return items, load(args.model, device=args.device, weights=args.weights)


def _cmd_bench_views(args: argparse.Namespace) -> int:
    from .view_accuracy import findings, view_accuracy

    items, model = _folder_and_model(args)
    with _progress_bar(len(items), "img", f"views of {model.name}") as progress:
        report = view_accuracy(model, items, args.short_side, args.multi, progress=progress)
    if not report.n:
        raise ValueError(f"none of the {len(items)} files in {args.folder} has a readable label and image")
    result = report.json()
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.folder}: {report.n} labelled photos, {model.name} on {model.device}, shorter side {args.short_side}")
    print(f"{'view':<10} {'top-1':>7} {'top-5':>7}   vs crop, top-1 (95% interval; McNemar p)")
    for v, acc in result["views"].items():
        line = f"{v:<10} {acc['top1']:>7.1%} {acc['top5']:>7.1%}"
        if v in result["paired"]:
            d = result["paired"][v]["top1"]
            line += (
                f"   {100 * d['diff']:+.1f} points ({100 * d['low']:+.1f} to {100 * d['high']:+.1f}; "
                f"p = {d['mcnemar_p']:.2g})"
            )
        print(line)
    for sentence in findings(result, "photos"):
        print("- " + sentence)
    for what, rows in (("without a label", report.unlabeled), ("unreadable", report.skipped)):
        if rows:
            print(f"{len(rows)} file(s) {what}, left out:")
            for name, why in rows:
                print(f"  {name}: {why}")
    print(f"{report.seconds:.1f} s ({result['images_per_second']} photos/s)")
    return 0


def _cmd_bench_shuffle(args: argparse.Namespace) -> int:
    from .bag_of_words import bench_findings, shuffle_bench
    from .view_accuracy import LabelReader

    ks = tuple(_positive(k) for k in args.tiles.split(","))
    items, model = _folder_and_model(args)
    reader = LabelReader.for_model(model)
    with _progress_bar(len(items), "img", "shuffle test") as progress:
        bench = shuffle_bench(model, items, ks, args.seed, labels=lambda name: reader.read(name)[0], progress=progress)
    if not bench.names:
        raise ValueError(f"none of the {len(items)} files in {args.folder} could be read")
    result = bench.json()
    if args.json:
        print(json.dumps(result))
        return 0
    levels = result["levels"]
    print(f"{args.folder}: {result['n']} photos, {model.name}, shorter side {result['short_side']}, seed {args.seed}")
    print(f"{'tiles':<6} {'top-1 kept':>10} {'accuracy':>16} " + " ".join(f"{f'cos {n}x{n}':>9}" for n in levels))
    for r in result["rows"]:
        acc = r.get("accuracy")
        acc_text = f"{acc['original']['mean']:.0%} -> {acc['shuffled']['mean']:.0%}" if acc else "no labels"
        cos = " ".join(f"{r['cosine'][str(n)]['mean']:>9.2f}" for n in levels)
        print(f"{r['k']}x{r['k']:<4} {r['top1_unchanged']['mean']:>10.0%} {acc_text:>16} {cos}")
    for line in bench_findings(result):
        print("- " + line)
    for name, why in bench.skipped:
        print(f"skipped {name}: {why}")
    print(f"{result['seconds']:.1f} s")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .pyramid import parse_levels
    from .train import LabConfig, lab_epochs, run_lab

    levels = parse_levels(args.levels)
    config = LabConfig(levels=levels, regime=args.regime, epochs=args.epochs, seed=args.seed).validate()
    dataset = "synthetic" if args.dataset == "synthetic" else "folder"
    with tqdm(total=lab_epochs(dataset, config), unit="epoch", desc=f"training ({args.regime})") as bar:

        def progress(log) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{log.loss:.3f}", val=f"{log.val_accuracy:.1%}")

        path, result = run_lab(dataset, config, folder=args.dataset, base=args.base, out=args.out, progress=progress)
    print(f"saved {path} ({result.seconds:.1f} s)")
    if result.history:
        print(f"  validation accuracy (held-out images), last epoch: {result.history[-1].val_accuracy:.1%}")
    for view, acc in result.test.items():
        print(f"  test accuracy, {view} view: {'n/a (no SPP)' if acc is None else f'{acc:.1%}'}")
    return 0


def _cmd_lab_experiments(args: argparse.Namespace) -> int:
    from .train import EXPERIMENTS, TEST_VIEWS, LabConfig, accuracy_cell, paper_verdicts, run_experiments

    seeds = list(range(args.seeds))
    with _progress_bar(len(EXPERIMENTS) * len(seeds), "net", "the paper's comparison") as progress:
        results = run_experiments(LabConfig(epochs=args.epochs), seeds, progress=progress)
    print(f"{'configuration':<28} " + " ".join(f"{v:>13}" for v in TEST_VIEWS))
    for r in results["rows"]:
        cells = ["n/a" if r["test"][v] is None else accuracy_cell(r, v) for v in TEST_VIEWS]  # the reason: below
        print(f"{r['name']:<28} " + " ".join(f"{c:>13}" for c in cells))
    print(f"mean ± standard deviation over seeds {seeds}; n/a: a network without SPP cannot take a whole image")
    for line in paper_verdicts(results):
        print("- " + line.replace("**", ""))
    print(f"{results['seconds']:.1f} s in all ({results['torch_threads']} torch threads)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {args.out}")
    return 0


def _cmd_detection_lab(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .detection_lab import DetectorConfig, FeatureCache, detection_backbone, load_data, run_detection_lab

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    scales = tuple(_positive(s) for s in args.scales.split(","))
    train, test = load_data(args.data, args.train_split, args.test_split, args.max_images)
    config = DetectorConfig(windows=args.windows, scales=scales).validate()
    backbone = detection_backbone(load(args.backbone, device=args.device, weights=args.weights), config.levels)
    cache = FeatureCache(args.cache_dir) if args.cache_dir else FeatureCache()
    with tqdm(total=100, unit="%", desc="detection lab", file=sys.stderr) as bar:

        def progress(fraction: float, text: str) -> None:
            bar.set_description(text)
            bar.update(round(100 * fraction) - bar.n)

        report = run_detection_lab(backbone, train, test, modes, config, cache, progress)
    result = report.json()
    saved = []
    if args.out:
        out = Path(args.out)
        for name, mode in report.modes.items():
            saved.append(str(mode.detector.save(out.with_name(f"{out.stem}-{name}{out.suffix or '.safetensors'}"))))
        result["saved"] = saved
    if not args.json:
        print(
            f"{report.data}: {report.train_images} training and {report.test_images} test images, classes "
            f"{', '.join(report.classes)}; {report.backbone}, pyramid {list(config.levels)}, {config.windows} windows"
        )
        print(f"{'mode':<8} {'mAP':>7} {'no bbox reg':>12} {'95% interval':>16} {'features s/img':>15}")
        for name, m in result["modes"].items():
            lo, hi = m["map_95_interval"]
            print(
                f"{name:<8} {m['map']:>7.1%} {m['map_no_bbox_reg']:>12.1%} {f'{lo:.1%} - {hi:.1%}':>16} "
                f"{m['feature_seconds_per_image']:>15.3f}"
            )
        if "feature_speedup" in result:
            d = result["spp_minus_rcnn_map"]
            print(
                f"SPP-net features {result['feature_speedup']:.1f}x faster than R-CNN on the same windows; "
                f"mAP SPP - R-CNN {100 * d['value']:+.1f} points (95% interval {100 * d['low']:+.1f} to "
                f"{100 * d['high']:+.1f})"
            )
        for path in saved:
            print(f"saved {path}")
        for name, why in report.skipped:
            print(f"skipped {name}: {why}")
        print(f"{report.seconds:.1f} s in all")
    else:
        print(json.dumps(result, default=float))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spp_viz", description="SPP-net Explorer from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="top-5 classes of an image, with its input and conv5 sizes")
    p.add_argument("image", help="path of an image file")
    _add_model_args(p)
    p.add_argument(
        "--short-side",
        type=lambda t: 0 if t == "0" else _positive(t),
        default=256,
        help="resize so the shorter side is N, keeping the aspect ratio (the paper's full-image view; "
        "default %(default)s; 0 keeps the image's own size)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("index", help="top-k conv5 activations per channel over a folder of images (cached)")
    p.add_argument("folder", help="folder of images (searched recursively)")
    _add_model_args(p)
    p.add_argument("--top-k", type=_positive, default=9, help="responses kept per channel (default %(default)s)")
    p.add_argument("--all-positions", action="store_true", help="allow several entries per image and channel")
    p.add_argument("--cache-dir", default=None, help="where indexes are stored (default ~/.cache/spp_viz/index)")
    p.set_defaults(func=_cmd_index)

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
        type=_positive,
        default=12,
        help=f"(folders: {FINE_TUNE_EPOCHS_PER_EPOCH} passes over the cached vectors each)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", default=DEFAULT_MODEL, choices=sorted(ZOO), help="pretrained conv layers (folders)")
    p.add_argument("--out", required=True, help="where to save the model (.safetensors)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("lab-experiments", help="the paper's comparison on the built-in shapes, over several seeds")
    p.add_argument("--epochs", type=_positive, default=EXPERIMENT_EPOCHS, help="per network (default %(default)s)")
    p.add_argument("--seeds", type=_positive, default=len(EXPERIMENT_SEEDS), help="seeds 0..N-1 (default %(default)s)")
    p.add_argument("--out", default=None, help="write the results as JSON (e.g. assets/lab_results.json)")
    p.set_defaults(func=_cmd_lab_experiments)

    p = sub.add_parser("detection-lab", help="train and test the paper's detector (SVMs, box regression, mAP)")
    p.add_argument("--data", default="synthetic", help="'synthetic' (built-in scenes) or a VOC-format folder")
    p.add_argument("--backbone", default=DEFAULT_MODEL, type=_model_name, help="zoo name or lab:PATH")
    p.add_argument("--weights", default=None, help="weights file for the backbone instead of the default")
    p.add_argument("--device", default=None, help="auto, cuda, mps or cpu (default: best available)")
    p.add_argument("--modes", default="spp,rcnn", help="comma-separated: spp, spp-5 (five scales), rcnn")
    p.add_argument("--scales", default="688", help="SPP-net scales, e.g. 688 or 480,576,688,864,1200")
    p.add_argument("--train-split", default="trainval", help="VOC split to train on (default %(default)s)")
    p.add_argument("--test-split", default="test", help="VOC split to test on (default %(default)s)")
    p.add_argument("--max-images", type=_positive, default=None, help="at most N images per split")
    p.add_argument(
        "--windows", type=_positive, default=DetectorConfig.windows, help="selective-search windows per image"
    )
    p.add_argument("--cache-dir", default=None, help="window features cache (default ~/.cache/spp_viz/detection)")
    p.add_argument("--out", default=None, help="save each mode's detector as OUT-MODE.safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    p.set_defaults(func=_cmd_detection_lab)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    p = bench.add_parser("detection", help="time R-CNN and SPP-net modes on the same image and windows")
    p.add_argument("--image", default=str(SAMPLES_DIR / "astronaut.jpg"), help="image (default: the astronaut sample)")
    p.add_argument("--windows", type=_positive, default=2000, help="windows (default %(default)s)")
    p.add_argument("--scale", type=_positive, default=688, help="SPP scale: shorter side (default %(default)s)")
    p.add_argument("--proposals", default="fast", choices=PROPOSAL_MODES)
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_bench_detection)

    p = bench.add_parser("views", help="top-1 / top-5 of crop, warp and full-image views over a folder of photos")
    p.add_argument("folder", help="labelled photos: a WordNet id or class index in the name, or class folders")
    _add_model_args(p)
    p.add_argument("--short-side", type=_positive, default=256, help="full view's shorter side (default 256)")
    p.add_argument("--multi", action="store_true", help="also full images averaged over the paper's test scales")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N files")
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    p.set_defaults(func=_cmd_bench_views)

    p = bench.add_parser("shuffle", help="the bag-of-words test: shuffle k x k tiles, compare pyramid levels")
    p.add_argument("folder", help="photos (labels, where their names carry them, add accuracy)")
    _add_model_args(p)
    p.add_argument("--tiles", default=",".join(map(str, SHUFFLE_TILES)), help="k values (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="photo i is shuffled with seed + i (default 0)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N files")
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    p.set_defaults(func=_cmd_bench_shuffle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a user error, with the reason on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "device", None):
            resolve_device(args.device)
        return args.func(args)
    except (ImageError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
