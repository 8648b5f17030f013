"""The paper's detection comparison at the defaults, timed end to end, and the feature speed-up at 2,000 windows.

1. ``python -m spp_viz detection-lab`` at its defaults (built-in scenes, both modes, R-CNN included) with an empty
   feature cache: the wall time (goal <= 5 minutes on the 2-core CPU), mAP with and without box regression, and the
   SPP-net - R-CNN difference with its bootstrap interval.
2. Feature extraction per image, both modes on the same 2,000 windows (the paper's count) of a few VOC-sized photos
   (500 x 375, from ../shared/imagenet-sample), side by side in this run: the speed-up (goal >= 50x), and the
   per-image figures the README's VOC 2007 estimate rests on.

    python bench/detection_lab.py [--images 3] [--windows 2000] [--modes spp,rcnn] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spp_viz.detection.compare import compare_detectors
from spp_viz.detection.data import SCENES, load_data, synthetic_scenes
from spp_viz.detection.detector import DetectorConfig
from spp_viz.detection.features import FeatureCache, detection_backbone
from spp_viz.detection.proposals import proposals, sliding_windows
from spp_viz.detection.windows import rcnn_mode, spp_mode
from spp_viz.images import load_image
from spp_viz.models import load_model


def full_run(backbone, modes: list[str]) -> dict:
    config = DetectorConfig()
    train, test = load_data("synthetic")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        report = compare_detectors(backbone, train, test, modes, config, FeatureCache(cache))
    out = report.json()
    out["wall_seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB
    return out


def photos(count: int) -> list:
    """VOC-sized photos (500 x 375) from ../shared/imagenet-sample, or the built-in scenes where it is absent."""
    folder = Path(__file__).resolve().parent.parent.parent / "shared" / "imagenet-sample"
    if folder.is_dir():
        return [
            (p.name, load_image(p).resize((500, 375), Image.Resampling.BILINEAR))
            for p in sorted(folder.glob("*.JPEG"))[:count]
        ]
    return [(i.name, i.image()) for i in synthetic_scenes("test", count, seed=1).images]


def feature_speedup(backbone, images: int, windows: int) -> dict:
    """Both modes on the same windows of each image: selective search, topped up with sliding windows."""
    config = DetectorConfig(windows=windows)
    rows = []
    for name, img in photos(images):
        boxes = proposals(img, config.proposals, windows)
        if len(boxes) < windows:  # small scenes have fewer selective-search regions than the paper's 2,000
            extra = sliding_windows(img.size, sizes=(32, 48, 64, 96, 128, 160, 224), overlap=0.75)
            boxes = np.concatenate([boxes, extra])[:windows]
        spp_mode(backbone, img, boxes[:8], config.scales, classify=False)  # warm-up at this size
        spp = spp_mode(backbone, img, boxes, config.scales, classify=False)
        rcnn = rcnn_mode(backbone, img, boxes, classify=False)
        rows.append(
            {
                "image": name,
                "size": list(img.size),
                "windows": len(boxes),
                "spp_s": spp.timing.run,
                "rcnn_s": rcnn.timing.run,
            }
        )
    spp_s = float(np.mean([r["spp_s"] for r in rows]))
    rcnn_s = float(np.mean([r["rcnn_s"] for r in rows]))
    return {"images": rows, "spp_s_per_image": spp_s, "rcnn_s_per_image": rcnn_s, "speedup": rcnn_s / spp_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--modes", default="spp,rcnn")
    parser.add_argument("--skip-full", action="store_true", help="only the feature speed-up")
    parser.add_argument("--skip-speedup", action="store_true", help="only the full run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backbone = detection_backbone(load_model())
    result = {"torch_threads": torch.get_num_threads(), "scenes": SCENES, "defaults": vars(DetectorConfig())}
    if not args.skip_full:
        result["full_run"] = full_run(backbone, args.modes.split(","))
    if not args.skip_speedup:
        result["feature_speedup"] = feature_speedup(backbone, args.images, args.windows)
    if args.json:
        print(json.dumps(result, default=float))
        return
    if "full_run" in result:
        r = result["full_run"]
        print(
            f"defaults, empty cache: {r['wall_seconds']:.0f} s for {r['train_images']} + {r['test_images']} scenes, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
        for name, m in r["modes"].items():
            print(
                f"  {name:<6} mAP {m['map']:.1%} (no box regression {m['map_no_bbox_reg']:.1%}), features "
                f"{m['feature_seconds_per_image']:.3f} s / image"
            )
        if "spp_minus_rcnn_map" in r:
            d = r["spp_minus_rcnn_map"]
            band = f"{100 * d['low']:+.1f} to {100 * d['high']:+.1f}"
            print(f"  SPP-net - R-CNN: {100 * d['value']:+.1f} points, 95% interval {band}")
    if "feature_speedup" not in result:
        return
    f = result["feature_speedup"]
    print(
        f"{args.windows} windows: SPP-net {f['spp_s_per_image']:.3f} s, R-CNN {f['rcnn_s_per_image']:.2f} s per image: "
        f"{f['speedup']:.0f}x"
    )


if __name__ == "__main__":
    main()
