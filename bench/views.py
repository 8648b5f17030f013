"""Views bench throughput against a bare batched forward pass over the same views, in the same run.

  bench = spp_viz.view_accuracy.view_accuracy(...) from the files: read, decode, make the crop / warp / full views
          (and the multi-scale ones with --multi), batch by size, forward, softmax, top-5
  bare  = the model's forward on the same views, already made into tensors, batched the same way (batch 16 of one
          size), in inference mode
Both use the same threads, interleaved round by round. Goal: bench throughput / bare throughput >= 0.8.

The photos: ../shared/imagenet-sample (first --images of them), or the sample photos re-encoded when it is absent.

Run: python bench/views.py [--images N] [--multi] [--model NAME] [--rounds R]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from spp_viz.activations import GalleryItem, folder_items
from spp_viz.images import load_image
from spp_viz.models import load_model
from spp_viz.view_accuracy import LabelReader, labelled_items, prepare_views, view_accuracy

SHARED = Path(__file__).resolve().parents[2] / "shared" / "imagenet-sample"


def bare_passes(model, items: list[GalleryItem], short_side: int, multi: bool, batch_size: int = 16) -> float:
    """Seconds of forward passes alone over the bench's views, grouped by size as the bench groups them."""
    buckets: dict[tuple[int, int], list[torch.Tensor]] = {}
    for item in items:
        fixed, full, *scales = prepare_views(load_image(item.read()), model.input_size, short_side, multi)
        for x in (fixed[:1], fixed[1:], full, *scales):
            buckets.setdefault(tuple(x.shape[-2:]), []).append(x)
    batches = [torch.cat(ts[i : i + batch_size]) for ts in buckets.values() for i in range(0, len(ts), batch_size)]
    start = time.perf_counter()
    with torch.inference_mode():
        for x in batches:
            model(x).softmax(1)
    return time.perf_counter() - start


def photos(count: int, tmp: Path) -> tuple[list[GalleryItem], str]:
    if SHARED.is_dir():
        return folder_items(SHARED)[:count], f"{SHARED} (first {count})"
    from spp_viz.images import samples

    for i, s in enumerate(samples()):  # labelled by a class-named folder, so the bench runs them
        (tmp / "tench").mkdir(exist_ok=True)
        load_image(s.path).save(tmp / "tench" / f"{i}.jpg", quality=90)
    return folder_items(tmp), "the sample photos (../shared/imagenet-sample is absent)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--multi", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        items, where = photos(args.images, Path(tmp))
        items, _, _ = labelled_items(items, LabelReader.for_model(model))
        bare_passes(model, items[:16], args.short_side, args.multi)  # warm-up
        bench_times, bare_times = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine state
            start = time.perf_counter()
            view_accuracy(model, items, args.short_side, args.multi)
            bench_times.append(time.perf_counter() - start)
            bare_times.append(bare_passes(model, items, args.short_side, args.multi))
    n = len(items)
    bench_s, bare_s = min(bench_times), min(bare_times)
    views = "crop, warp, full" + (" and 6 multi-scale" if args.multi else "")
    print(
        f"views bench vs bare forward ({args.model}; {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{model.device}; {n} photos from {where}; {views} views; best of {args.rounds})"
    )
    print(f"  views bench: {n / bench_s:6.2f} photos/s  ({bench_s:.2f} s, from JPEG files)")
    print(f"  bare passes: {n / bare_s:6.2f} photos/s  ({bare_s:.2f} s, tensors ready)")
    ratio = bare_s / bench_s
    print(f"  ratio {ratio:.2f}  (goal >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'})")


if __name__ == "__main__":
    main()
