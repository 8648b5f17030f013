"""Labelled data for detection: built-in synthetic scenes, and PASCAL VOC-format folders.

A detection set is a list of images, each with its objects' boxes, class labels and VOC "difficult" flags. Boxes are
(x0, y0, x1, y1) in pixel-edge coordinates of the image (x1, y1 exclusive), as everywhere in spp_viz; a VOC box
(1-based, inclusive) ``xmin..xmax`` becomes ``xmin - 1 .. xmax``.

The synthetic scenes are deterministic: a seed and a split name give the same images every time.
"""

from __future__ import annotations

import hashlib
import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..i18n import N_
from ..images import ImageError, load_image
from .boxes import box_iou

SCENE_CLASSES = (N_("disc"), N_("square"), N_("triangle"), N_("star"), N_("cross"))  # shown through _()
SCENE_SPLITS = {"train": 0, "val": 1, "test": 2}
SCENE_SIZES = ((320, 240), (240, 320), (288, 288), (352, 224))  # (W, H): VOC-like shapes, small enough for CPUs
VOC_SPLITS = ("train", "val", "trainval", "test")
VOC_HOME = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"  # where the README sends users for VOC 2007


@dataclass
class DetectionImage:
    """One image of a detection set and its objects.

    Attributes:
        name: the image's id (a VOC id, or scene name).
        boxes: Tensor-like float32 [K, 4], (x0, y0, x1, y1) in pixels.
        labels: int64 [K], indices into the set's classes.
        difficult: bool [K], VOC's flag: such objects are neither positives nor missed.
        size: (W, H) of the image.
    """

    name: str
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    size: tuple[int, int]
    _load: Callable[[], Image.Image] = field(repr=False)
    _bytes: Callable[[], bytes] = field(repr=False)

    def image(self) -> Image.Image:
        """The picture, read (or drawn) now: sets of thousands of images are never all held in memory."""
        return self._load()

    def digest(self) -> str:
        """SHA-1 of the image's bytes: the disk cache's key."""
        return hashlib.sha1(self._bytes()).hexdigest()


@dataclass
class DetectionSet:
    """Images with boxes, the class names, and the files that were skipped (name, why)."""

    name: str
    classes: tuple[str, ...]
    images: list[DetectionImage]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def limit(self, count: int | None) -> DetectionSet:
        """The first ``count`` images (all with None)."""
        return self if count is None else DetectionSet(self.name, self.classes, self.images[:count], self.skipped)


# ----------------------------------------------------------------------------- synthetic scenes


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Photo-like clutter of no class: smooth noise over a gradient, soft blobs, strokes and scribbles."""
    coarse = rng.uniform(0, 255, size=(max(2, h // 40), max(2, w // 40), 3)).astype(np.uint8)
    noise = np.asarray(Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    top, bottom = rng.uniform(30, 220, size=3), rng.uniform(30, 220, size=3)
    base = 0.55 * (top * (1 - ramp) + bottom * ramp) + 0.45 * noise
    base += rng.normal(0, 6, size=base.shape)  # sensor-like grain
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    side = min(w, h)
    for _ in range(int(rng.integers(3, 9))):  # soft blobs: low-contrast ellipses, blurred below
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.03, 0.2) * side, rng.uniform(0.03, 0.2) * side
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in rng.integers(40, 220, size=3)))
    img = img.filter(ImageFilter.GaussianBlur(radius=3))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):  # distractors: open curved strokes, no class has them
        points = np.cumsum(rng.normal(0, 0.06 * side, size=(8, 2)), axis=0) + rng.uniform(0, [w, h])
        draw.line([tuple(p) for p in points], fill=tuple(int(v) for v in rng.integers(0, 256, size=3)), width=2)
    return img


def _outline(label: int, box: tuple[float, float, float, float]) -> list[tuple[float, float]] | None:
    """The polygon of a class inside its box (touching all four sides), or None for the disc (an ellipse)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if label == 1:  # square (stretched with the box)
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if label == 2:  # triangle, apex up
        return [(x0 + w / 2, y0), (x1, y1), (x0, y1)]
    if label == 3:  # five-pointed star
        pts = []
        for i in range(10):
            r = 0.5 if i % 2 == 0 else 0.2
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((math.cos(a) * r, math.sin(a) * r))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
        return [(x0 + (p[0] - lo_x) / (hi_x - lo_x) * w, y0 + (p[1] - lo_y) / (hi_y - lo_y) * h) for p in pts]
    if label == 4:  # cross (plus sign), arms a third of the box wide
        a, b = x0 + w / 3, x0 + 2 * w / 3
        c, d = y0 + h / 3, y0 + 2 * h / 3
        return [(a, y0), (b, y0), (b, c), (x1, c), (x1, d), (b, d), (b, y1), (a, y1), (a, d), (x0, d), (x0, c), (a, c)]
    return None


def paste_objects(
    background: Image.Image, rng: np.random.Generator, num_classes: int = 4, max_objects: int = 5
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Draw 1 to ``max_objects`` objects of the first ``num_classes`` scene classes on a copy of the background.

    Sizes run from 1/10 to 1/2 of the shorter side, aspect ratios from 1:2 to 2:1; objects may overlap partly (never
    more than 0.3 IoU with one already drawn, so each stays visible). Returns (image, boxes [K, 4], labels [K]).
    """
    if not 1 <= num_classes <= len(SCENE_CLASSES):
        raise ValueError(f"a scene has 1 to {len(SCENE_CLASSES)} classes, not {num_classes}")
    img = background.convert("RGB").copy()
    w, h = img.size
    side = min(w, h)
    draw = ImageDraw.Draw(img)
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    mean = np.asarray(img, dtype=np.float32).mean(axis=(0, 1))
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            size = rng.uniform(0.1, 0.5) * side
            aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))  # w / h
            bw, bh = min(w - 2, size * math.sqrt(aspect)), min(h - 2, size / math.sqrt(aspect))
            x0, y0 = rng.uniform(1, w - bw - 1), rng.uniform(1, h - bh - 1)
            box = (float(round(x0)), float(round(y0)), float(round(x0 + bw)), float(round(y0 + bh)))
            if not boxes or box_iou(np.asarray([box]), np.asarray(boxes)).max() <= 0.3:
                break
        else:
            continue
        label = int(rng.integers(num_classes))
        colour = rng.integers(0, 256, size=3)
        while np.abs(colour - mean).sum() < 160:  # stands out from the background on average
            colour = rng.integers(0, 256, size=3)
        fill = tuple(int(c) for c in colour)
        outline = _outline(label, box)
        # Drawn with the last pixel inside the box, so the box is the object's exact pixel extent.
        inner = (box[0], box[1], box[2] - 1, box[3] - 1)
        if outline is None:
            draw.ellipse(inner, fill=fill)
        else:
            draw.polygon([(min(x, box[2] - 1), min(y, box[3] - 1)) for x, y in outline], fill=fill)
        boxes.append(box)
        labels.append(label)
    return img, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def synthetic_scenes(split: str, count: int, seed: int = 0, num_classes: int = 4) -> DetectionSet:
    """``count`` built-in scenes of one split; the same (split, count, seed) always gives the same scenes."""
    if split not in SCENE_SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SCENE_SPLITS)}")
    if count < 1:
        raise ValueError(f"a split needs at least one scene, got {count}")
    images = []
    for i in range(count):
        rng = np.random.default_rng([seed, SCENE_SPLITS[split], i])
        w, h = SCENE_SIZES[int(rng.integers(len(SCENE_SIZES)))]
        img, boxes, labels = paste_objects(_background(rng, w, h), rng, num_classes)
        data = _png(img)  # drawn once here; the PNG is small and decodes exactly (a lossless key for the cache)
        images.append(
            DetectionImage(
                f"{split}_{i:04d}",
                boxes,
                labels,
                np.zeros(len(labels), dtype=bool),
                (w, h),
                _load=lambda data=data: Image.open(io.BytesIO(data)).convert("RGB"),
                _bytes=lambda data=data: data,
            )
        )
    return DetectionSet(f"synthetic scenes (seed {seed}, {split})", SCENE_CLASSES[:num_classes], images)


# ----------------------------------------------------------------------------- VOC-format folders


class VOCError(ValueError):
    """A VOC folder cannot be used at all (no split list, no annotations); the message says what is missing."""


def _number(obj: ET.Element, tag: str) -> float:
    node = obj.find(tag)
    if node is None or node.text is None:
        raise ValueError(f"no <{tag}>")
    try:
        return float(node.text.strip())
    except ValueError:
        raise ValueError(f"<{tag}> is {node.text.strip()!r}, not a number") from None


def _read_annotation(path: Path) -> tuple[str, list[tuple[str, tuple[float, float, float, float], bool]]]:
    """(image file name, [(class, box, difficult)]) of one VOC XML file; ValueError says what is wrong."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"malformed XML ({e})") from None
    filename = (root.findtext("filename") or "").strip()
    objects = []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"object {k + 1} has no <name>")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"object {k + 1} ({name}) has no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (_number(bnd, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as e:
            raise ValueError(f"object {k + 1} ({name}): {e}") from None
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append((name, (xmin - 1, ymin - 1, xmax, ymax), difficult))
    return filename, objects


def _image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file's header only; ImageError when it is not a readable image."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # noqa: BLE001 - any Pillow failure means the same to the user: not a readable image
        raise ImageError(f"{path.name}: not a readable image ({e})") from None


def read_voc(root: str | Path, split: str, classes: Sequence[str] | None = None) -> DetectionSet:
    """A VOC-format folder's split: ``Annotations/*.xml``, ``JPEGImages/*``, ``ImageSets/Main/{split}.txt``.

    Classes are read from the split's annotations (sorted), unless ``classes`` is given (a test split uses the
    training split's classes; objects of any other class are left out and listed). Each file that cannot be used
    (malformed XML, missing image, a box outside the image) is skipped and listed with its reason.

    Raises:
        VOCError: the folder or the split's list is missing, or no image of the split can be used.
    """
    root = Path(root).expanduser()
    if split not in VOC_SPLITS:
        raise VOCError(f"unknown split {split!r}: use one of {', '.join(VOC_SPLITS)}")
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    for needed in (root / "Annotations", root / "JPEGImages", listing):
        if not needed.exists():
            raise VOCError(f"{root} is not a VOC-format folder: {needed.relative_to(root)} is missing")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    skipped: list[tuple[str, str]] = []
    parsed = []
    for image_id in ids:
        xml = root / "Annotations" / f"{image_id}.xml"
        try:
            if not xml.exists():
                raise ValueError("no annotation file")
            filename, objects = _read_annotation(xml)
            image_path = root / "JPEGImages" / (filename or f"{image_id}.jpg")
            if not image_path.exists():
                raise ValueError(f"the image {image_path.name} is missing from JPEGImages")
            w, h = _image_size(image_path)
            for name, (x0, y0, x1, y1), _ in objects:
                if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                    raise ValueError(f"the {name} box {x0 + 1:g},{y0 + 1:g},{x1:g},{y1:g} is outside the {w}x{h} image")
        except (ValueError, ImageError) as e:
            skipped.append((f"{image_id}", str(e)))
            continue
        parsed.append((image_id, image_path, (w, h), objects))
    names = tuple(classes) if classes is not None else tuple(sorted({o[0] for p in parsed for o in p[3]}))
    index = {n: i for i, n in enumerate(names)}
    images = []
    for image_id, image_path, size, objects in parsed:
        unknown = sorted({o[0] for o in objects if o[0] not in index})
        if unknown:
            skipped.append((image_id, f"objects of classes not trained on were left out: {', '.join(unknown)}"))
        kept = [o for o in objects if o[0] in index]
        images.append(
            DetectionImage(
                image_id,
                np.asarray([o[1] for o in kept], dtype=np.float32).reshape(-1, 4),
                np.asarray([index[o[0]] for o in kept], dtype=np.int64),
                np.asarray([o[2] for o in kept], dtype=bool),
                size,
                # max_side = the image's own: never shrunk, so the boxes fit it as they are
                _load=lambda p=image_path, side=size: load_image(p, max_side=max(side)),
                _bytes=lambda p=image_path: p.read_bytes(),
            )
        )
    if not images:
        raise VOCError(f"{root}: no image of the {split} split can be used ({len(skipped)} skipped)")
    return DetectionSet(f"{root.name} ({split})", names, images, skipped)


# ----------------------------------------------------------------------------- a training and a test set

# The built-in scenes' default split sizes: both modes, R-CNN included, in under 5 minutes on a 2-core CPU.
# Measured there: 40 + 30 scenes with 150 windows took 475 s, R-CNN's per-window passes most of it (README, Speed).
SCENES = {"train": 30, "test": 20}


def load_data(
    data: str,
    train_split: str = "trainval",
    test_split: str = "test",
    max_images: int | None = None,
    seed: int = 0,
) -> tuple[DetectionSet, DetectionSet]:
    """("synthetic" or a VOC-format folder) -> (training set, test set); the test set uses the training classes."""
    if data == "synthetic":
        return (
            synthetic_scenes("train", min(SCENES["train"], max_images or SCENES["train"]), seed),
            synthetic_scenes("test", min(SCENES["test"], max_images or SCENES["test"]), seed),
        )
    train = read_voc(data, train_split).limit(max_images)
    return train, read_voc(data, test_split, classes=train.classes).limit(max_images)
