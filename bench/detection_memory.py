"""Does training memory grow with the data? Peak RSS of SPP-net training on more and more scenes (features cached on
disk, read back one image at a time), each count in a fresh process.

    python bench/detection_memory.py [--counts 25,100,200] [--windows 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = """
import resource, sys, json
from spp_viz.detection.data import synthetic_scenes
from spp_viz.detection.detector import DetectorConfig
from spp_viz.detection.features import FeatureCache, detection_backbone
from spp_viz.detection.train import train_detector
from spp_viz.models import load_model
count, windows, cache = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
backbone = detection_backbone(load_model())
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
scenes = synthetic_scenes("train", count, seed=11)
det = train_detector(backbone, scenes, "spp", (480,), DetectorConfig(windows=windows), FeatureCache(cache))
print(json.dumps({"images": count, "rss_after_model_mb": base,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "pool_size": det.meta["pool_size"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="25,100,200")
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for count in (int(c) for c in args.counts.split(",")):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(count), str(args.windows), cache],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps({"windows": args.windows, "runs": rows}))
        return
    for r in rows:
        print(
            f"{r['images']:>5} scenes x {args.windows} windows: peak RSS {r['peak_rss_mb']:.0f} MB "
            f"({r['rss_after_model_mb']:.0f} MB with the model loaded), SVM examples kept {r['pool_size']}"
        )


if __name__ == "__main__":
    main()
