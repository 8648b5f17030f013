"""Attribution cost on the CPU: each method at 224 and at the full size of a 1024-pixel image, against one forward.

For the chelsea sample at shorter side 224 (337 x 224) and re-encoded at long side 1024 (1024 x 681), fed as is:
one bare forward pass, GradCAM (conv5), Integrated Gradients (24 steps), IG with NoiseTunnel (4 samples) and
Occlusion (window 1/7 of the shorter side, half-window stride). Medians of N runs (slow methods: one run).
Goal: GradCAM <= 3x one forward pass at the same size.

Run: python bench/attribution.py [--repeats N] [--model NAME]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from features import image_bytes  # bench/features.py

from spp_viz.explain import attribution as A
from spp_viz.images import load_image, resize_short_side, to_tensor
from spp_viz.models import load_model


def forward_s(model, x) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    model = load_model(args.model)
    big = load_image(image_bytes(1024))
    inputs = {"224": to_tensor(resize_short_side(big, 224)), "1024": to_tensor(big)}
    target = 285  # Egyptian cat
    print(
        f"attribution cost ({args.model}; {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{model.device})"
    )
    print(f"{'size':>5} {'input':>11} {'method':<26} {'seconds':>8} {'x forward':>10}")
    for label, x in inputs.items():
        for _ in range(2):  # warm-up
            forward_s(model, x)
            A.gradcam(model, x, target)
        fwd = statistics.median(forward_s(model, x) for _ in range(args.repeats))
        hw = f"{x.shape[-1]} x {x.shape[-2]}"
        rows = [("one forward pass", fwd)]
        rows.append(("GradCAM", statistics.median(A.gradcam(model, x, target).seconds for _ in range(args.repeats))))
        rows.append(("Integrated Gradients", A.integrated_gradients(model, x, target).seconds))
        rows.append(("IG + NoiseTunnel (4)", A.integrated_gradients(model, x, target, noise_tunnel=True).seconds))
        rows.append(("Occlusion", A.occlusion(model, x, target).seconds))
        for name, sec in rows:
            print(f"{label:>5} {hw:>11} {name:<26} {sec:>8.2f} {sec / fwd:>10.1f}")
        ratio = rows[1][1] / fwd
        print(f"{'':>5} {'':>11} GradCAM / forward = {ratio:.2f} (goal <= 3: {'met' if ratio <= 3 else 'MISSED'})")


if __name__ == "__main__":
    main()
