"""What each command of ``python -m spp_viz`` does, given its parsed arguments."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .. import paper, provenance
from ..explain.feature_maps import compute_feature_maps
from ..images import load_image
from ..models import ZOO
from ..progress import Progress
from ..registry import LAB_PREFIX, PYRAMID_MODELS, load


@contextmanager
def progress_bar(desc: str) -> Iterator[Progress]:
    """A progress bar on stderr (stdout stays for results and --json) and the library's ``Progress`` callback that
    moves it: the fraction done as a percentage, what is happening beside it."""
    from tqdm import tqdm

    with tqdm(total=100, desc=desc, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:

        def progress(fraction: float, text: str) -> None:
            bar.set_description_str(f"{desc}: {text}", refresh=False)
            bar.update(100 * fraction - bar.n)

        yield progress


def with_provenance(result: dict, args: argparse.Namespace) -> dict:
    """A result JSON with how it was made (the command, versions, commit, date, machine) under ``provenance``."""
    return result | {provenance.KEY: provenance.record(getattr(args, "command_line", ["spp-viz"]))}


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def model_name(text: str) -> str:
    """A zoo name, a pyramid-head model's name, "lab:PATH" for a model saved by the Lab, or an allowed
    "timm:NAME" / "torchvision:NAME"."""
    from ..external import check_name, is_external

    if text in ZOO or text in PYRAMID_MODELS or text.startswith(LAB_PREFIX):
        return text
    if is_external(text):
        try:
            check_name(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
        return text
    known = ", ".join([*ZOO, *PYRAMID_MODELS])
    raise argparse.ArgumentTypeError(
        f"unknown model {text!r}: choose one of {known}, lab:PATH, timm:NAME or torchvision:NAME"
    )


def cmd_predict(args: argparse.Namespace) -> int:
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
        "geometry": _geometry(model, fm.input_hw, (h5, w5)),
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
    g = result["geometry"]
    print(f"  conv5 stride {g['stride']}, receptive field {g['receptive_field']} ({g['how']})")
    for i, p in enumerate(fm.top5, 1):
        print(f"  {i}. {p.name:<30} {p.prob:7.2%}")
    return 0


def _geometry(model, input_hw: tuple[int, int], conv5_hw: tuple[int, int]) -> dict:
    """conv5's stride and receptive field: measured (timm and torchvision models) or read off the layers (the zoo)."""
    from ..geometry import feature_geometry

    g = feature_geometry(model, input_hw, conv5_hw)
    fp = model.footprint
    how = "read off the layers" if fp is None else "measured by the gradient footprint"
    field = [g.x.rf, g.y.rf] if fp is None or not fp.covers else fp.describe()
    return {"stride": g.x.jump, "receptive_field": field, "how": how, "centre_of_cell_0": [g.x.start, g.y.start]}


def cmd_index(args: argparse.Namespace) -> int:
    from ..explain.activation_index import INDEX_CACHE, build_index
    from ..explain.activations import tied_channels
    from ..gallery import folder_items

    items = folder_items(args.folder)
    if not items:
        raise ValueError(f"no image files in {args.folder}")
    model = load(args.model, device=args.device, weights=args.weights)
    start = time.perf_counter()
    with progress_bar(f"indexing conv5 of {model.name}") as progress:
        report = build_index(
            model,
            items,
            top_k=args.top_k,
            one_per_image=not args.all_positions,
            cache_dir=args.cache_dir or INDEX_CACHE,
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


def cmd_bench_detection(args: argparse.Namespace) -> int:
    from ..detection.windows import benchmark

    img = load_image(args.image)
    model = load(args.model, device=args.device, weights=args.weights)
    with progress_bar("R-CNN mode") as progress:
        r = benchmark(model, img, args.windows, (args.scale,), args.proposals, progress=progress)
    if args.json:
        print(json.dumps(with_provenance(r, args), indent=2))
        return 0
    print(
        f"{args.image}: {r['image'][0]} x {r['image'][1]}, {r['windows']} windows "
        f"({r['from_selective_search']} from selective search), scale {args.scale}, {model.name} on {r['device']} "
        f"({r['threads']} threads)"
    )
    print(f"{'stage':<22} {'R-CNN s':>10} {'SPP-net s':>10}")
    for stage in ("proposals", "warp", "conv", "head", "total"):
        print(f"{stage:<22} {r['rcnn'][stage]:>10.3f} {r['spp'][stage]:>10.3f}")
    print(f"conv speed-up:                 {r['conv_ratio']:7.1f}x   (paper, ZF-5 on a GPU: {paper.CONV_SPEEDUP[1]}x)")
    print(f"conv + pooling/fc speed-up:    {r['end_to_end_ratio']:7.1f}x   (paper: {paper.RUN_SPEEDUP[1]}x)")
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


def folder_items(args: argparse.Namespace) -> list:
    """The folder's image files (the first --limit of them), for the folder commands."""
    from ..gallery import folder_items as items_of

    items = items_of(args.folder)[: args.limit]
    if not items:
        raise ValueError(f"no image files in {args.folder}")
    return items


def _folder_and_model(args: argparse.Namespace):
    """The folder's image files (the first --limit of them) and the model, for the folder commands."""
    items = folder_items(args)
    return items, load(args.model, device=args.device, weights=args.weights)


def cmd_train(args: argparse.Namespace) -> int:
    from ..lab.models import LabConfig
    from ..lab.train import run_lab
    from ..pyramid import parse_levels

    levels = parse_levels(args.levels)
    config = LabConfig(levels=levels, regime=args.regime, epochs=args.epochs, seed=args.seed).validate()
    dataset = "synthetic" if args.dataset == "synthetic" else "folder"
    with progress_bar(f"training ({args.regime})") as progress:
        path, result = run_lab(dataset, config, folder=args.dataset, base=args.base, out=args.out, progress=progress)
    print(f"saved {path} ({result.seconds:.1f} s)")
    if result.history:
        print(f"  validation accuracy (held-out images), last epoch: {result.history[-1].val_accuracy:.1%}")
    for view, acc in result.test.items():
        print(f"  test accuracy, {view} view: {'n/a (no SPP)' if acc is None else f'{acc:.1%}'}")
    return 0


def cmd_lab_experiments(args: argparse.Namespace) -> int:
    from ..lab.convergence import convergence_note
    from ..lab.experiments import RECIPES, accuracy_cell, paper_verdicts, run_experiments
    from ..lab.models import LabConfig
    from ..lab.train import TEST_VIEWS

    config, recipe_seeds = RECIPES[args.recipe]
    config = replace(config, epochs=args.epochs or config.epochs)
    if args.images:
        sized = LabConfig.sized(args.images)
        config = replace(config, train_count=sized.train_count, val_count=sized.val_count, test_count=sized.test_count)
    seeds = list(range(args.seeds or len(recipe_seeds)))
    with progress_bar("the paper's comparison") as progress:
        results = run_experiments(config, seeds, progress=progress, jobs=args.jobs)
    print(f"{'configuration':<28} " + " ".join(f"{v:>13}" for v in TEST_VIEWS))
    for r in results.rows:
        cells = ["n/a" if r.test[v] is None else accuracy_cell(r, v) for v in TEST_VIEWS]  # the reason: below
        print(f"{r.name:<28} " + " ".join(f"{c:>13}" for c in cells))
    print(f"mean ± standard deviation over seeds {seeds}; n/a: a network without SPP cannot take a whole image")
    note = convergence_note(results)
    if note:
        print(("Warning: " if note[1] else "") + note[0])
    for line in paper_verdicts(results):
        print("- " + line.replace("**", ""))
    print(f"{results.seconds:.1f} s in all ({results.how_run()})")
    if args.out:
        Path(args.out).write_text(json.dumps(with_provenance(results.json(), args), indent=2) + "\n")
        print(f"written to {args.out}")
    return 0


def cmd_detection_lab(args: argparse.Namespace) -> int:
    from ..detection.compare import compare_detectors
    from ..detection.data import load_data
    from ..detection.detector import DetectorConfig
    from ..detection.features import FeatureCache, detection_backbone

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    scales = tuple(positive(s) for s in args.scales.split(","))
    train, test = load_data(args.data, args.train_split, args.test_split, args.max_images)
    config = DetectorConfig(windows=args.windows, scales=scales).validate()
    backbone = detection_backbone(load(args.backbone, device=args.device, weights=args.weights), config.levels)
    cache = FeatureCache(args.cache_dir) if args.cache_dir else FeatureCache()
    with progress_bar("detection lab") as progress:
        report = compare_detectors(backbone, train, test, modes, config, cache, progress)
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
        print(json.dumps(with_provenance(result, args), default=float))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from ..distill import DISTILL_CACHE, DistillConfig, distill, save_fold_heads, save_head
    from ..explain.labels import LabelReader
    from ..pyramid import parse_levels

    items, model = _folder_and_model(args)
    levels = parse_levels(args.levels)
    config = DistillConfig(
        levels=levels, rank=args.rank, views=args.views, epochs=args.epochs, crop_target=args.crop_target
    ).validate()
    reader = LabelReader.for_model(model)
    with progress_bar(f"distilling a {list(levels)} head from {model.name}") as progress:
        result = distill(
            model, items, config, args.cache_dir or DISTILL_CACHE, progress,
            labels=lambda name: reader.read(name)[0], folds=args.folds,
        )  # fmt: skip
    recipe = result.meta()
    path = save_head(result.head, args.out, recipe)
    folds = save_fold_heads(result, args.fold_heads) if args.fold_heads else []
    skipped = [list(s) for s in result.skipped]
    meta = recipe | {"out": str(path), "fold_heads": [str(f) for f in folds], "skipped": skipped}
    if args.json:
        print(json.dumps(with_provenance(meta, args)))
        return 0
    print(
        f"{args.folder}: {len(result.photos)} photos, {result.views} views, pyramid {list(levels)}, fc6 width "
        f"{config.rank}, {config.epochs} epochs: KL to the teacher {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
    )
    if result.measured is not None:
        m = result.measured
        d = m.student_minus_teacher
        print(
            f"held out ({m.folds} folds, {m.photos} labelled photos, full image at shorter side {m.side}): top-1 "
            f"teacher {m.teacher:.1%}, untrained start {m.start:.1%}, distilled head {m.student:.1%} "
            f"({100 * d.value:+.1f} points against the teacher, 95% interval {100 * d.low:+.1f} to {100 * d.high:+.1f})"
        )
    for name, why in result.skipped:
        print(f"skipped {name}: {why}")
    for f in folds:
        print(f"saved the held-out head {f}")
    print(f"saved {path} ({result.seconds:.1f} s)")
    return 0
