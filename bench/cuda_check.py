"""On a CUDA GPU, with torch alone: the SPP op on the GPU against the CPU, and the paper's detection timing with its
own architecture (ZF-5, seeded weights: timing does not depend on them) on 2,000 windows, SPP-net vs R-CNN features.

    python bench/cuda_check.py     (prints JSON; exits 1 without CUDA)
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from PIL import Image

from spp_viz.detection.proposals import sliding_windows
from spp_viz.detection.windows import rcnn_mode, spp_mode
from spp_viz.models import load_model
from spp_viz.pyramid import spatial_pyramid_pool


def spp_op_differences() -> dict:
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    cases = 0
    for h, w in ((13, 13), (10, 17), (1, 1), (40, 23)):
        x = torch.randn(3, 64, h, w, generator=g)
        for mode in ("max", "avg"):
            for levels in ((6, 3, 2, 1), (4, 2, 1), (5,)):
                out_cpu = spatial_pyramid_pool(x, levels, mode)
                out_gpu = spatial_pyramid_pool(x.cuda(), levels, mode).cpu()
                worst = max(worst, float((out_cpu - out_gpu).abs().max()))
                cases += 1
    return {"cases": cases, "max_abs_difference": worst}


def detection_timing(windows: int = 2000) -> dict:
    model = load_model("zf5", device="cuda")
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, size=(375, 500, 3), dtype=np.uint8))
    boxes = sliding_windows(img.size, sizes=(32, 48, 64, 96, 128, 160, 224, 320), overlap=0.75)[:windows]
    for _ in range(2):  # warm-up: cuDNN picks its algorithms, kernels load
        spp_mode(model, img, boxes[:64], (688,), classify=False)
        rcnn_mode(model, img, boxes[:64], classify=False)
    spp = spp_mode(model, img, boxes, (688,), classify=False)
    rcnn = rcnn_mode(model, img, boxes, batch_size=128, classify=False)
    return {
        "model": "zf5",
        "windows": len(boxes),
        "spp": vars(spp.timing),
        "rcnn": vars(rcnn.timing),
        "conv_speedup": rcnn.timing.conv / spp.timing.conv,
        "features_speedup": rcnn.timing.run / spp.timing.run,
    }


def main() -> int:
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA GPU"}))
        return 1
    out = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "spp_op": spp_op_differences()}
    out["detection"] = detection_timing()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
