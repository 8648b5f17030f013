"""Feature-maps page overhead: image bytes -> everything the page computes, against one bare forward pass.

For inputs of 224, 512 and 1024 pixels on the long side (the chelsea sample, re-encoded as JPEG at that size):
  page   = load_image(bytes) + compute_feature_maps (one forward with conv5 returned, ranking, top-5, host copy)
           + the page's figures (16-channel grid, the large channel heatmap, the overlay on the image) and its
           downloads (the overlay as PNG, conv5 as .npy)
  bare   = model(x) on a ready tensor of the same size, in inference mode
Both are timed in the same process, interleaved, median of N runs. Goal: page / bare <= 1.5 at every size.

Run: python bench/features.py [--repeats N] [--model NAME] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time

import torch
from PIL import Image

from spp_viz.explain.feature_maps import compute_feature_maps
from spp_viz.images import load_image, samples, to_tensor
from spp_viz.models import load_model
from spp_viz.plots.exports import npy_bytes, png_bytes
from spp_viz.plots.maps import channel_grid, channel_heatmap, overlay

SIZES = (224, 512, 1024)


def image_bytes(long_side: int) -> bytes:
    img = load_image(samples()[0].path, max_side=4096)
    scale = long_side / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def page_work(model, data: bytes) -> None:
    img = load_image(data)
    fm = compute_feature_maps(model, img, short_side=None)
    top = int(fm.ranking[0])
    channel_grid(fm.conv5, fm.ranking[:16], values=fm.channel_max)
    channel_heatmap(fm.conv5[top], f"channel {top}")
    # The page's two download buttons carry their bytes (ui.vector_files says why): encoded on every run.
    png_bytes(overlay(img, fm.conv5[top]))
    npy_bytes(fm.conv5)


def bare_forward(model, x: torch.Tensor) -> None:
    with torch.inference_mode():
        model(x)
    if x.is_cuda:
        torch.cuda.synchronize()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = load_model(args.model)
    rows = []
    for long_side in SIZES:
        data = image_bytes(long_side)
        x = to_tensor(load_image(data), model.device)
        for _ in range(3):  # warm up allocator and kernels at this size
            page_work(model, data)
            bare_forward(model, x)
        page, bare = [], []
        for _ in range(args.repeats):
            page.append(timed(page_work, model, data))
            bare.append(timed(bare_forward, model, x))
        p, b = statistics.median(page), statistics.median(bare)
        rows.append(
            {
                "long_side": long_side,
                "input_hw": list(x.shape[-2:]),
                "page_ms": p * 1e3,
                "bare_ms": b * 1e3,
                "ratio": p / b,
            }
        )
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {model.device}"
    if args.json:
        print(json.dumps({"model": args.model, "machine": machine, "rows": rows}, indent=2))
        return
    print(f"feature-maps page vs bare forward ({args.model}; {machine}; median of {args.repeats})")
    print(f"{'long side':>9} {'input H x W':>12} {'page ms':>9} {'bare ms':>9} {'ratio':>6}  goal <= 1.5")
    for r in rows:
        hw = f"{r['input_hw'][0]} x {r['input_hw'][1]}"
        ok = "ok" if r["ratio"] <= 1.5 else "MISSED"
        print(f"{r['long_side']:>9} {hw:>12} {r['page_ms']:>9.1f} {r['bare_ms']:>9.1f} {r['ratio']:>6.2f}  {ok}")


if __name__ == "__main__":
    main()
