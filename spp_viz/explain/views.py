"""Crop, warp or the whole image: the three ways to feed a network, and what each predicts.

The paper's views (see the notes): crop = the centre 224 x 224 of the image resized to shorter side 256; warp =
the whole image resized to 224 x 224; full = the whole image with shorter side 256, aspect ratio kept, through SPP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .. import paper
from ..i18n import N_, _
from ..images import resize_short_side, to_tensor
from ..models import Prediction, SPPNet, top_predictions
from ..progress import Progress, counted

VIEWS = ("crop", "warp", "full")
VIEW_TITLES = {
    "crop": N_("Centre crop"),
    "warp": N_("Warp"),
    "full": N_("Full image (SPP)"),
    "multi": N_("SPP, multi-scale"),
}


def view_title(view: str) -> str:
    """A view's title in the reader's language (``VIEW_TITLES`` keeps the English, for the CLI and the files)."""
    return _(VIEW_TITLES[view])


# The paper's multi-view test scales (notes, Testing views); it adds 18 crops per scale, we take full images only.
MULTI_SCALES = paper.TEST_SCALES


@dataclass(frozen=True)
class View:
    """One way of feeding the image: the picture the network gets and how it relates to the original."""

    name: str  # "crop", "warp" or "full"
    image: Image.Image  # what the network sees
    original_size: tuple[int, int]  # (W, H) of the original
    kept: tuple[float, float, float, float]  # the part of the original it shows, (x0, y0, x1, y1) in its pixels
    scale: tuple[float, float]  # network pixels per original pixel, (x, y): unequal for a warp

    @property
    def aspect_change(self) -> float:
        """How much the view stretches width against height (1.0: shapes kept)."""
        return self.scale[0] / self.scale[1]

    @property
    def kept_fraction(self) -> float:
        """Fraction of the original's area that the view shows."""
        x0, y0, x1, y1 = self.kept
        return (x1 - x0) * (y1 - y0) / (self.original_size[0] * self.original_size[1])


def crop_view(img: Image.Image, size: int = 224, short_side: int = 256) -> View:
    """The centre size x size of the image resized to ``short_side`` (smaller images: the centre square)."""
    resized = resize_short_side(img, short_side)
    side = min(size, resized.width, resized.height)
    left, top = (resized.width - side) // 2, (resized.height - side) // 2
    sx, sy = resized.width / img.width, resized.height / img.height
    kept = (left / sx, top / sy, (left + side) / sx, (top + side) / sy)
    return View("crop", resized.crop((left, top, left + side, top + side)), img.size, kept, (sx, sy))


def warp_view(img: Image.Image, size: int = 224) -> View:
    """The whole image squeezed to size x size: nothing lost, shapes distorted."""
    whole = (0.0, 0.0, float(img.width), float(img.height))
    return View(
        "warp",
        img.resize((size, size), Image.Resampling.BILINEAR),
        img.size,
        whole,
        (size / img.width, size / img.height),
    )


def full_view(img: Image.Image, short_side: int = 256) -> View:
    """The whole image, shorter side ``short_side``, aspect ratio kept: what SPP makes possible."""
    resized = resize_short_side(img, short_side)
    whole = (0.0, 0.0, float(img.width), float(img.height))
    return View("full", resized, img.size, whole, (resized.width / img.width, resized.height / img.height))


def make_views(img: Image.Image, size: int = 224, short_side: int = 256) -> dict[str, View]:
    """The paper's three views of one image."""
    return {"crop": crop_view(img, size, short_side), "warp": warp_view(img, size), "full": full_view(img, short_side)}


def probabilities(model: SPPNet, view_img: Image.Image) -> np.ndarray:
    """Softmax over the classes for one picture: [num_classes]."""
    with torch.inference_mode():
        return model(to_tensor(view_img, model.device)).float().softmax(1)[0].cpu().numpy()


def multi_scale_probabilities(model: SPPNet, img: Image.Image, sides: Sequence[int] = MULTI_SCALES) -> np.ndarray:
    """The paper's test scales, full-image views only (the paper adds 18 crops per scale): softmax averaged over
    shorter sides ``sides``."""
    return np.mean([probabilities(model, resize_short_side(img, s)) for s in sides], axis=0)


def top_from_probs(probs: np.ndarray, class_names: Sequence[str], k: int = 5) -> list[Prediction]:
    return top_predictions(torch.from_numpy(np.log(np.clip(probs, 1e-12, 1.0))), class_names, k)


@dataclass(frozen=True)
class Comparison:
    """Predictions of each view, and whether they agree."""

    probs: dict[str, np.ndarray]  # view name -> [num_classes]
    top5: dict[str, list[Prediction]]

    @property
    def top1(self) -> dict[str, int]:
        return {v: p[0].index for v, p in self.top5.items()}

    @property
    def agree(self) -> bool:
        """True when every view has the same top-1 class."""
        return len(set(self.top1.values())) == 1


def compare_views(model: SPPNet, img: Image.Image, short_side: int = 256, multi_scale: bool = False) -> Comparison:
    """Top-5 of the crop, warp and full-image views (and the multi-scale average, if asked)."""
    views = make_views(img, model.input_size, short_side)
    probs = {name: probabilities(model, v.image) for name, v in views.items()}
    if multi_scale:
        probs["multi"] = multi_scale_probabilities(model, img)
    return Comparison(probs, {name: top_from_probs(p, model.class_names) for name, p in probs.items()})


def candidate_classes(comparison: Comparison) -> list[int]:
    """Every class in any view's top-5, most probable on the full image first: the choices a page offers."""
    classes = {p.index for preds in comparison.top5.values() for p in preds}
    return sorted(classes, key=lambda i: -comparison.probs["full"][i])


def predictions_csv(comparison: Comparison) -> str:
    """CSV of every view's top-5: view, rank, class index, class name, probability."""
    lines = ["view,rank,class_index,class_name,probability"]
    for view, preds in comparison.top5.items():
        for rank, p in enumerate(preds, 1):
            name = p.name.replace('"', "'")
            lines.append(f'{view},{rank},{p.index},"{name}",{p.prob:.6f}')
    return "\n".join(lines) + "\n"


def scale_sweep(
    model: SPPNet,
    img: Image.Image,
    class_index: int,
    sides: Sequence[int] = tuple(range(128, 801, 64)),
    progress: Progress | None = None,
) -> dict[str, list[float]]:
    """Probability of one class against the input's shorter side s, for the three views.

    At side s: crop = centre 224 x 224 (or s x s when s < 224) of the image resized to shorter side s; warp = the
    image resized to s x s; full = shorter side s, aspect kept.
    """
    out: dict[str, list[float]] = {v: [] for v in VIEWS}
    size = model.input_size
    for k, s in enumerate(sides):
        views = {
            "crop": crop_view(img, min(size, s), s).image,
            "warp": img.resize((s, s), Image.Resampling.BILINEAR),
            "full": resize_short_side(img, s),
        }
        for name, picture in views.items():
            out[name].append(float(probabilities(model, picture)[class_index]))
        counted(progress, k + 1, len(sides), "sizes")
    return out
