"""Pyramid page: the redraw after a change of preset or channel, against recomputing conv5.

conv5 (and the ranking and top-5) come from a cache keyed on the image bytes, so changing the level preset, the rule
or the channel only redraws: geometry, every level's bins, values and winners, their figures (serialised to JSON as
Streamlit does), the SPP vector, its strip and its downloads (CSV, .npy), the rule check. This times that redraw for
a 1024-pixel image (long side 1024, fed at its own size) against the conv5 pass it avoids, both in the same process,
median of N.

Run: python bench/pyramid_redraw.py [--repeats N] [--model NAME]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from features import image_bytes  # bench/features.py: the chelsea sample re-encoded at a given long side

from spp_viz.explain.feature_maps import compute_feature_maps
from spp_viz.explain.level_views import PRESETS, level_view, spp_vector
from spp_viz.geometry import feature_geometry
from spp_viz.images import load_image
from spp_viz.models import load_model
from spp_viz.plots.base import encode_image
from spp_viz.plots.exports import npy_bytes
from spp_viz.plots.pyramid import level_on_image, level_on_map, vector_strip
from spp_viz.pyramid import paper_rule_check, paper_rule_failures, vector_csv


def redraw(model, fm, img, levels, mode: str, rule: str, channel: int) -> int:
    """Everything the page rebuilds on a rerun when conv5 is cached; returns the JSON size sent to the browser."""
    view_img = encode_image(img.resize((fm.input_hw[1], fm.input_hw[0])))
    geom = feature_geometry(model, fm.input_hw)
    figures = []
    for n in levels:
        view = level_view(fm.conv5[channel], geom, n, mode, rule)
        figures += [level_on_map(fm.conv5[channel], view, "map", False), level_on_image(view_img, view, "image")]
    winners = level_view(fm.conv5[channel], geom, levels[0], "max", rule)
    figures += [level_on_map(fm.conv5[channel], winners, "w"), level_on_image(view_img, winners, "w", geom=geom)]
    vec = spp_vector(fm.conv5, levels, mode, rule)
    figures.append(vector_strip(vec, levels, fm.conv5.shape[0]))
    # The download buttons' bytes: cached per vector on the page (a channel change reuses them), counted here as
    # after a preset change, when they are built again.
    vector_csv(vec, levels, fm.conv5.shape[0])
    npy_bytes(vec)
    for size in fm.conv5.shape[1:]:
        paper_rule_check(size, levels)
    paper_rule_failures(40, levels)
    return sum(len(f.to_json()) for f in figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    model = load_model(args.model)
    img = load_image(image_bytes(1024))
    fm = compute_feature_maps(model, img, short_side=None)
    presets = list(PRESETS.values())
    conv, draws, sizes = [], [], []
    for i in range(args.repeats + 2):
        start = time.perf_counter()
        fm = compute_feature_maps(model, img, short_side=None)
        mid = time.perf_counter()
        # Each redraw is a new preset and a new channel, as when a student clicks through them.
        sizes.append(redraw(model, fm, img, presets[i % len(presets)], "max", "adaptive", int(fm.ranking[i])))
        end = time.perf_counter()
        if i >= 2:  # warm-up
            conv.append(mid - start)
            draws.append(end - mid)
    c, d = statistics.median(conv) * 1e3, statistics.median(draws) * 1e3
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, {model.device}"
    print(f"pyramid page redraw, {img.width} x {img.height} image fed at its own size ({args.model}; {machine})")
    print(f"conv5 {fm.conv5_shape[0]} x {fm.conv5_shape[1]} x {fm.conv5_shape[2]}; median of {args.repeats}")
    print(f"  recompute conv5 (avoided by the cache): {c:8.1f} ms")
    print(f"  redraw (all figures, vector, rules):    {d:8.1f} ms   ({c / d:.1f}x faster than recomputing)")
    print(f"  figure JSON sent per redraw:            {statistics.median(sizes) / 1e6:8.2f} MB")


if __name__ == "__main__":
    main()
