"""Activation-index throughput against bare forward passes of the same images, in the same run.

The gallery: the sample photos re-encoded as JPEGs at varied sizes and crops (N images in a temporary folder).
  index = build_index(...) from the files, no cache: read, decode, resize, batch, conv5, top-k merge
  bare  = model.forward_features on the same images, already decoded into tensors, batched the same way
          (grouped by size, batch 8), in inference mode
Both use the same threads. Goal: index throughput / bare throughput >= 0.8.

Run: python bench/activation_index.py [--images N] [--model NAME]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from throughput import batched_seconds, report_ratio

from spp_viz.explain.activation_index import build_index
from spp_viz.gallery import INDEX_SHORT_SIDE, folder_items, gallery_view
from spp_viz.images import load_image, samples, to_tensor
from spp_viz.models import load_model


def make_gallery(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    photos = [load_image(s.path) for s in samples()]
    for i in range(count):
        img = photos[i % len(photos)]
        # A random crop at one of three aspect ratios, so the gallery has a few distinct sizes, as photo folders do.
        aspect = (4 / 3, 3 / 4, 1.0)[int(rng.integers(3))]
        w = int(min(img.width, img.height * aspect) * rng.uniform(0.7, 1.0))
        h = int(w / aspect)
        x0, y0 = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
        img.crop((x0, y0, x0 + w, y0 + h)).resize((w * 2, h * 2), Image.Resampling.BICUBIC).save(
            folder / f"img{i:04d}.jpg", quality=90
        )


def bare_passes(model, folder: Path, batch_size: int = 8) -> float:
    views = [gallery_view(p.read_bytes(), p.name, INDEX_SHORT_SIDE) for p in sorted(folder.glob("*.jpg"))]
    return batched_seconds((to_tensor(v, model.device) for v in views), batch_size, model.forward_features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_gallery(folder, args.images)
        items = folder_items(folder)
        bare_passes(model, folder)  # warm-up
        index_times, bare_times = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine state
            start = time.perf_counter()
            build_index(model, items, cache_dir=None)
            index_times.append(time.perf_counter() - start)
            bare_times.append(bare_passes(model, folder))
    n = args.images
    index_s, bare_s = min(index_times), min(bare_times)
    report_ratio(
        f"activation index vs bare forward ({args.model}",
        f"{model.device}; {n} images at shorter side {INDEX_SHORT_SIDE}; best of {args.rounds}",
        "images",
        n,
        ("index build", index_s, "from JPEG files"),
        bare_s,
    )


if __name__ == "__main__":
    main()
