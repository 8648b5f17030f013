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
import tempfile
import time
from pathlib import Path

from throughput import batched_seconds, report_ratio

from spp_viz.explain.labels import LabelReader, labelled_items
from spp_viz.explain.view_accuracy import prepare_views, view_accuracy
from spp_viz.gallery import GalleryItem, folder_items
from spp_viz.images import load_image
from spp_viz.models import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "imagenet-sample"


def bare_passes(model, items: list[GalleryItem], short_side: int, multi: bool, batch_size: int = 16) -> float:
    """Seconds of forward passes alone over the bench's views, grouped by size as the bench groups them."""

    def views():
        for item in items:
            fixed, full, *scales = prepare_views(load_image(item.read()), model.input_size, short_side, multi)
            yield from (fixed[:1], fixed[1:], full, *scales)

    return batched_seconds(views(), batch_size, lambda x: model(x).softmax(1))


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
    report_ratio(
        f"views bench vs bare forward ({args.model}",
        f"{model.device}; {n} photos from {where}; {views} views; best of {args.rounds}",
        "photos",
        n,
        ("views bench", bench_s, "from JPEG files"),
        bare_s,
    )


if __name__ == "__main__":
    main()
