"""A synthetic image set where crop and warp each lose what tells the classes apart.

Four classes: circle, ellipse (2:1), square, rectangle (2:1). Images come in several sizes and aspect ratios (1:2 to
2:1); each holds one filled shape at a random scale and position, often near a border. A centre crop of an elongated
image can cut the shape away; a warp to a square changes a shape's aspect ratio by the image's, so a circle in a
wide image becomes an upright ellipse and a lying ellipse becomes a circle. The background is flat (a smooth
gradient), so nothing but the shapes shows how much an image was stretched. Fully determined by the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "ellipse", "square", "rectangle")
# (W, H): a few sizes, so that images batch by size. Half square, half 2:1 or 1:2: then a warp makes a circle in a
# square image and a lying ellipse in a wide one the same picture, and only the image's own shape tells them apart.
SIZES = ((64, 64), (80, 80), (96, 96), (72, 72), (128, 64), (64, 128), (96, 48), (48, 96))
SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class LabelledImage:
    """One image of a labelled set: the picture, its class index and the object's box."""

    image: Image.Image
    label: int
    box: tuple[int, int, int, int]  # the shape's bounding box (x0, y0, x1, y1), inside the image


def _shape_box(rng: np.random.Generator, w: int, h: int, label: int) -> tuple[int, int, int, int]:
    """A box for the shape: side 45-70% of the shorter image side, 2:1 for ellipse/rectangle (either way up)."""
    base = rng.uniform(0.45, 0.70) * min(w, h)
    bw = bh = base
    if label in (1, 3):  # elongated classes: 2:1, lying or standing
        if rng.random() < 0.5:
            bw, bh = base * 2 if base * 2 <= w - 2 else w - 2, base
        else:
            bw, bh = base, base * 2 if base * 2 <= h - 2 else h - 2
        # Keep the 2:1 ratio exact even when the image limited the long side.
        if bw > bh:
            bh = bw / 2
        else:
            bw = bh / 2
    bw, bh = round(bw), round(bh)
    x0 = _position(rng, w, bw, long_axis=w > h)
    y0 = _position(rng, h, bh, long_axis=h > w)
    return x0, y0, min(w - 1, x0 + bw), min(h - 1, y0 + bh)


def _position(rng: np.random.Generator, side: int, extent: int, long_axis: bool) -> int:
    """Where the shape starts along one axis. Along an image's long axis, two times in three at one of its ends,
    where a centre crop cuts it; otherwise anywhere."""
    top = max(2, side - extent)
    if long_axis and rng.random() < 2 / 3:
        margin = max(2, round(0.15 * side))
        return (
            int(rng.integers(1, min(margin, top)))
            if rng.random() < 0.5
            else int(rng.integers(max(1, top - margin), top))
        )
    return int(rng.integers(1, top))


def make_sample(rng: np.random.Generator, label: int) -> LabelledImage:
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    top, bottom = rng.integers(40, 200, size=3), rng.integers(40, 200, size=3)
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    background = (top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp).repeat(w, axis=1)
    img = Image.fromarray(background.astype(np.uint8), "RGB")
    box = _shape_box(rng, w, h, label)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    while sum(abs(c - b) for c, b in zip(colour, top.tolist(), strict=True)) < 150:  # visible against the background
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    draw = ImageDraw.Draw(img)
    if label in (0, 1):
        draw.ellipse(box, fill=colour)
    else:
        draw.rectangle(box, fill=colour)
    return LabelledImage(img, label, box)


def make_split(split: str, count: int, seed: int = 0) -> list[LabelledImage]:
    """A balanced split (classes in turn), reproducible: the same seed and split give the same images."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS[split]])
    return [make_sample(rng, i % len(CLASSES)) for i in range(count)]
