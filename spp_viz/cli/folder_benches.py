"""The folder benches of the command line: ``bench views``, ``bench shuffle`` and ``bench levels`` over a folder of
photos, with a pyramid-head model's held-out heads (``--held-out``) where asked."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..gallery import GalleryItem
from ..models import SPPNet
from ..progress import Progress, span
from ..registry import PYRAMID_MODELS, base_of, load
from .commands import folder_items, positive, progress_bar, with_provenance


def held_out_models(args: argparse.Namespace, items: list[GalleryItem]) -> list[tuple[SPPNet, list[GalleryItem]]]:
    """(model, photos) pairs for a bench: the model on every photo, or with ``--held-out DIR`` each fold head of
    ``distill --fold-heads DIR`` on the photos it never saw (so no photo is scored by a head trained on it)."""
    from ..distill import read_head_meta

    if not args.held_out:
        return [(load(args.model, device=args.device, weights=args.weights), items)]
    if base_of(args.model) is None:
        raise ValueError(f"--held-out takes a pyramid-head model ({', '.join(PYRAMID_MODELS)}), not {args.model}")
    files = sorted(Path(args.held_out).glob("fold*.safetensors"))
    if not files:
        raise ValueError(f"no fold*.safetensors in {args.held_out}: make them with distill --fold-heads DIR")
    base = load(base_of(args.model), device=args.device)
    parts = []
    for f in files:
        names = set(read_head_meta(f).get("held_out", []))
        model = load(args.model, device=args.device, weights=f, base=base)
        parts.append((model, [i for i in items if i.name in names]))
    if not any(p[1] for p in parts):
        raise ValueError(f"none of the photos in {args.folder} is held out by the heads in {args.held_out}")
    return parts


def _part(progress: Progress | None, i: int, n: int) -> Progress | None:
    """Part i of n of one progress bar (one part per held-out head)."""
    return span(progress, i / n, (i + 1) / n)


def _run(args: argparse.Namespace, desc: str, run: Callable, analysis: str, usable: str) -> tuple[Any, SPPNet]:
    """(the bench, the model): ``run(model, photos, all files, progress)`` once, or once per held-out head with its
    photos, the parts merged (``explain.analysis.merge``), under one progress bar. With ``--json`` the summary of
    ``analysis`` is printed here. Raises ValueError when no photo was ``usable`` ("could be read")."""
    from ..explain.folder_analyses import ANALYSES

    merge = ANALYSES[analysis].bench.merge
    items = folder_items(args)
    parts = held_out_models(args, items)
    with progress_bar(desc) as progress:
        done = [run(m, part, items, _part(progress, i, len(parts))) for i, (m, part) in enumerate(parts)]
    bench = merge(done, args.model) if args.held_out else done[0]
    if not bench.names:
        raise ValueError(f"none of the {len(items)} files in {args.folder} {usable}")
    if args.json:
        print(json.dumps(with_provenance(bench.summary().json(), args)))
    return bench, parts[0][0]


def cmd_bench_views(args: argparse.Namespace) -> int:
    from ..explain.view_accuracy import ViewsReport, view_accuracy
    from ..explain.view_summary import findings

    def run(m: SPPNet, part: list, _items: list, progress: Progress | None) -> ViewsReport:
        return view_accuracy(m, part, args.short_side, args.multi, progress=progress)

    report, model = _run(args, f"views of {args.model}", run, "views", "has a readable label and image")
    if args.json:
        return 0
    result = report.summary()
    print(f"{args.folder}: {report.n} labelled photos, {model.name} on {model.device}, shorter side {args.short_side}")
    print(f"{'view':<10} {'top-1':>7} {'top-5':>7}   vs crop, top-1 (95% interval; McNemar p)")
    for v, acc in result.accuracy.items():
        line = f"{v:<10} {acc['top1']:>7.1%} {acc['top5']:>7.1%}"
        if v in result.against_crop:
            d = result.against_crop[v]["top1"]
            line += f"   {100 * d.diff:+.1f} points ({100 * d.low:+.1f} to {100 * d.high:+.1f}; p = {d.mcnemar_p:.2g})"
        print(line)
    for sentence in findings(result, "photos"):
        print("- " + sentence)
    for what, rows in (("without a label", report.unlabeled), ("unreadable", report.skipped)):
        if rows:
            print(f"{len(rows)} file(s) {what}, left out:")
            for name, why in rows:
                print(f"  {name}: {why}")
    print(f"{report.seconds:.1f} s ({result.images_per_second} photos/s)")
    return 0


def cmd_bench_shuffle(args: argparse.Namespace) -> int:
    from ..explain.bag_of_words import ShuffleBench, bench_findings, shuffle_bench
    from ..explain.labels import LabelReader

    ks = tuple(positive(k) for k in args.tiles.split(","))

    def run(m: SPPNet, part: list, items: list, progress: Progress | None) -> ShuffleBench:
        reader = LabelReader.for_model(m)
        # Every file in order with ``only``: each photo keeps the shuffle seed it has in a run over all of them.
        only = {p.name for p in part} if args.held_out else None
        return shuffle_bench(m, items, ks, args.seed, labels=lambda n: reader.read(n)[0], progress=progress, only=only)

    bench, model = _run(args, "shuffle test", run, "shuffle", "could be read")
    if args.json:
        return 0
    result = bench.summary()
    levels = result.levels
    print(f"{args.folder}: {result.n} photos, {model.name}, shorter side {result.short_side}, seed {args.seed}")
    print(f"{'tiles':<6} {'top-1 kept':>10} {'accuracy':>16} " + " ".join(f"{f'cos {n}x{n}':>9}" for n in levels))
    for r in result.rows:
        acc_text = f"{r.accuracy[0].mean:.0%} -> {r.accuracy[1].mean:.0%}" if r.accuracy else "no labels"
        cos = " ".join(f"{r.cosine[n].mean:>9.2f}" for n in levels)
        print(f"{r.k}x{r.k:<4} {r.top1_unchanged.mean:>10.0%} {acc_text:>16} {cos}")
    for line in bench_findings(result):
        print("- " + line)
    for name, why in bench.skipped:
        print(f"skipped {name}: {why}")
    print(f"{result.seconds:.1f} s")
    return 0


def cmd_bench_levels(args: argparse.Namespace) -> int:
    from ..explain.level_importance import LevelBench, level_bench, level_findings

    def run(m: SPPNet, part: list, _items: list, progress: Progress | None) -> LevelBench:
        return level_bench(m, part, progress)

    bench, _ = _run(args, "levels zeroed in turn", run, "levels", "could be read")
    if args.json:
        return 0
    result = bench.summary()
    held = " (each photo scored by a head not trained on it)" if result.held_out else ""
    print(f"{args.folder}: {result.n} photos, {result.model}{held}, full image at shorter side {result.short_side}")
    print(f"{'level':<6} {'share of the drop':>20} {'logit drop':>16} {'top-1 changes':>14}")
    for r in result.rows:
        share = f"{r.share.mean:.1%} +- {r.share.se:.1%}"
        drop = f"{r.drop.mean:.2f} +- {r.drop.se:.2f}"
        print(f"{r.level}x{r.level:<4} {share:>20} {drop:>16} {r.changed:>8} of {result.n}")
    for line in level_findings(result):
        print("- " + line)
    for name, why in bench.skipped:
        print(f"skipped {name}: {why}")
    print(f"{result.seconds:.1f} s")
    return 0
