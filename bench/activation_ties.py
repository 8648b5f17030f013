"""Ties in the activation index's top-k: responses before ReLU6 (what the app indexes) against the clipped maps.

EfficientNet-Lite0's conv5 goes through ReLU6, so its strongest responses tie at exactly 6.0 and the patches shown
for a channel are an arbitrary pick among them. The app ranks the responses before the clip; this counts the
channels with a tie (equal to 3 decimals) within their top-k both ways, on the same photos, without the cache.

Run: python bench/activation_ties.py [DIR] [--top-k 9] [--model NAME]   (DIR: ../shared/imagenet-sample)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spp_viz.explain.activation_index import build_index
from spp_viz.explain.activations import tied_channels
from spp_viz.gallery import folder_items
from spp_viz.models import SPPNet, load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "imagenet-sample"


class ClippedResponses(SPPNet):
    """The same layers, but ``forward_responses`` returns the clipped map: how the index was built before."""

    def forward_responses(self, x):
        conv5 = self.forward_features(x)
        return conv5, conv5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(SHARED))
    parser.add_argument("--top-k", type=int, default=9)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    model = load_model(args.model)
    clipped = ClippedResponses(model.features, model.spp, model.classifier, model.spec).eval()  # shares the layers
    items = folder_items(args.folder)
    print(f"{len(items)} photos in {args.folder}, {model.name}, top {args.top_k} per channel")
    for name, net in ((f"before {model.clip}", model), ("clipped", clipped)):
        start = time.perf_counter()
        index = build_index(net, items, top_k=args.top_k, cache_dir=None).index
        tied = tied_channels(index)
        at_ceiling = int((index.values[:, 0] == model.clip_ceiling).sum()) if model.clip_ceiling else 0
        print(
            f"  {name:>14}: {tied} of {index.channels} channels ({tied / index.channels:.1%}) with a tie in their "
            f"top {args.top_k}; top-1 exactly at the ceiling in {at_ceiling} ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
