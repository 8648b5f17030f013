"""Which input normalisation does the EfficientNet-Lite0 checkpoint expect? Measured on the labelled samples.

For each labelled sample: full-image views (shorter side 224, 256, 320), the 224 centre crop and the 224 warp,
each also flipped (10 views per image). Reports top-1 / top-5 hits and the mean log-probability of the correct
classes under ImageNet mean/std and under 0.5/0.5.

A label-free check too: the first BatchNorm after the stem conv stores the statistics of the stem's output on the
training data. The normalisation used in training is the one under which the stem's output on real photos has
about that variance, so we report the median ratio (batch variance / running variance) over channels: near 1 fits.
Run: python bench/normalisation.py
"""

from __future__ import annotations

import math

import torch
from PIL import ImageOps

from spp_viz.images import load_image, resize_short_side, samples, to_tensor
from spp_viz.models import IMAGENET_MEAN, IMAGENET_STD, load_model


def views(img):
    for s in (224, 256, 320):
        yield f"full{s}", resize_short_side(img, s)
    r = resize_short_side(img, 256)
    left, top = (r.width - 224) // 2, (r.height - 224) // 2
    yield "crop224", r.crop((left, top, left + 224, top + 224))
    yield "warp224", img.resize((224, 224))


def main() -> None:
    model = load_model("efficientnet_lite0", device="cpu")
    labelled = [s for s in samples() if s.classes]
    stem, bn = model.features.conv_stem, model.features.bn1
    print(
        f"{'normalisation':<16} {'views':>5} {'top-1':>6} {'top-5':>6} "
        f"{'mean log p(correct)':>20} {'stem var ratio':>15}"
    )
    for label, mean, std in (("0.5 / 0.5", (0.5,) * 3, (0.5,) * 3), ("ImageNet", IMAGENET_MEAN, IMAGENET_STD)):
        model.normalize.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
        model.normalize.std.copy_(torch.tensor(std).view(1, 3, 1, 1))
        n = top1 = top5 = 0
        logp = 0.0
        for s in labelled:
            img = load_image(s.path)
            for _, v in views(img):
                for flip in (False, True):
                    x = to_tensor(ImageOps.mirror(v) if flip else v)
                    with torch.inference_mode():
                        p = model(x).softmax(1)[0]
                    ranked = p.argsort(descending=True)[:5].tolist()
                    top1 += ranked[0] in s.classes
                    top5 += any(c in s.classes for c in ranked)
                    logp += math.log(max(sum(p[c].item() for c in s.classes), 1e-12))
                    n += 1
        with torch.inference_mode():
            xs = [model.normalize(to_tensor(resize_short_side(load_image(s.path), 224))) for s in samples()]
            out = torch.cat([stem(x).flatten(2) for x in xs], dim=2)  # (1, C, pixels of all images)
            ratio = (out.var(dim=(0, 2)) / bn.running_var.clamp_min(1e-8)).median().item()
        print(f"{label:<16} {n:>5} {top1:>6} {top5:>6} {logp / n:>20.3f} {ratio:>15.2f}")


if __name__ == "__main__":
    main()
