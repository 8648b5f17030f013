"""The Lab's data: the built-in shapes, their crop / warp / full views in batches, and class folders or a .zip of
them for fine-tuning.

The shapes are a synthetic set where crop and warp each lose what tells the classes apart. Four classes: circle,
ellipse (2:1), square, rectangle (2:1). Images come in several sizes and aspect ratios (1:2 to 2:1); each holds one
filled shape at a random scale and position, often near a border. A centre crop of an elongated image can cut the
shape away; a warp to a square changes a shape's aspect ratio by the image's, so a circle in a wide image becomes an
upright ellipse and a lying ellipse becomes a circle. The background is flat (a smooth gradient), so nothing but the
shapes shows how much an image was stretched. Fully determined by the seed.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ..explain.views import crop_view, warp_view
from ..gallery import IMAGE_SUFFIXES, GalleryItem, folder_items
from ..i18n import N_, _
from ..images import to_tensor

CLASSES = (N_("circle"), N_("ellipse"), N_("square"), N_("rectangle"))  # shown through _()
# (W, H): a few sizes, so that images batch by size. Half square, half 2:1 or 1:2: then a warp makes a circle in a
# square image and a lying ellipse in a wide one the same picture, and only the image's own shape tells them apart.
SIZES = ((64, 64), (80, 80), (96, 96), (72, 72), (128, 64), (64, 128), (96, 48), (48, 96))
SPLITS = {"train": 0, "val": 1, "test": 2}
FRESH = 3  # the random stream of the fresh training sets (``epoch_set``), apart from the three splits


@dataclass(frozen=True)
class LabelledImage:
    """One image of a labelled set: the picture, its class index and the object's box."""

    image: Image.Image
    label: int
    box: tuple[int, int, int, int]  # the shape's bounding box (x0, y0, x1, y1), inside the image


def shape_box(rng: np.random.Generator, w: int, h: int, label: int) -> tuple[int, int, int, int]:
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
    box = shape_box(rng, w, h, label)
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


def epoch_set(count: int, seed: int, epoch: int) -> list[LabelledImage]:
    """A new balanced training set for one epoch, reproducible from (seed, epoch), never one of the splits' images."""
    rng = np.random.default_rng([seed, FRESH, epoch])
    return [make_sample(rng, i % len(CLASSES)) for i in range(count)]


# ----------------------------------------------------------------------------- views and batches


def view(img: Image.Image, kind: str, size: int, scale: float = 1.0) -> Image.Image:
    """The paper's views at the Lab's size: crop (shorter side to size, centre square), warp (size x size), or the
    full image scaled by ``scale``."""
    if kind == "crop":
        return crop_view(img, size, short_side=size).image
    if kind == "warp":
        return warp_view(img, size).image
    if scale == 1.0:
        return img
    return img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.Resampling.BILINEAR)


def batches(
    samples: Sequence[LabelledImage],
    kind: str,
    size: int,
    scale: float,
    batch_size: int,
    rng: np.random.Generator | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Tensors grouped by size (full views vary), each group cut into batches; shuffled when rng is given."""
    groups: dict[tuple[int, int], list[tuple[Tensor, int]]] = {}
    for s in samples:
        t = to_tensor(view(s.image, kind, size, scale))[0]
        groups.setdefault(tuple(t.shape[-2:]), []).append((t, s.label))
    out = []
    for items in groups.values():
        order = rng.permutation(len(items)) if rng is not None else np.arange(len(items))
        for i in range(0, len(items), batch_size):
            chunk = [items[j] for j in order[i : i + batch_size]]
            out.append((torch.stack([t for t, _y in chunk]), torch.tensor([y for _t, y in chunk])))
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


# ----------------------------------------------------------------------------- class folders and archives


def class_folders(folder: str | Path) -> dict[str, list[GalleryItem]]:
    """A folder's class subfolders and the image files in each (searched recursively)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return {}
    return {p.name: folder_items(p) for p in sorted(root.iterdir()) if p.is_dir()}


ZIP_MAX_UNPACKED_MB = 400
ZIP_MAX_FILES = 5000
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)  # what zipfile unpacks


def read_class_zip(
    data: bytes, max_unpacked_mb: int = ZIP_MAX_UNPACKED_MB, max_files: int = ZIP_MAX_FILES
) -> tuple[dict[str, list[GalleryItem]], list[tuple[str, str]]]:
    """A .zip of class folders (``cat/1.jpg``, ``dog/2.png``; one enclosing folder is fine), read in memory.

    Returns the images of each class and the files skipped, with why (not an image, not in a class folder).

    Raises:
        ValueError: for a file that is not a zip, one that unpacks to more than ``max_unpacked_mb`` or holds more
            than ``max_files`` files, and one with a path that leaves the archive (``../``, absolute, a drive).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(_("this file is not a readable .zip archive ({why})").format(why=e)) from e
    if len(infos) > max_files:
        raise ValueError(_("the archive holds {n} files; the limit is {most}").format(n=len(infos), most=max_files))
    cap = max_unpacked_mb * 1024 * 1024
    if sum(i.file_size for i in infos) > cap:
        raise ValueError(_("the archive unpacks to more than {mb} MB, the limit").format(mb=max_unpacked_mb))
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ValueError(_("{file} points outside the archive: refused").format(file=info.filename))
    paths = [PurePosixPath(i.filename).parts for i in infos]
    # One folder around everything (zip of "photos/" holding "cat/", "dog/"): look inside it.
    visible = [p for p in paths if not _hidden(p)]
    strip = 1 if len({p[0] for p in visible}) == 1 and any(len(p) >= 3 for p in visible) else 0
    classes: dict[str, list[GalleryItem]] = {}
    skipped: list[tuple[str, str]] = []
    used = 0
    for info, parts in zip(infos, paths, strict=True):
        if _hidden(parts):
            continue
        rel = parts[strip:]
        if PurePosixPath(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((info.filename, _("not an image file")))
        elif len(rel) < 2:
            skipped.append((info.filename, _("not inside a class folder")))
        elif info.flag_bits & 0x1:
            skipped.append((info.filename, _("encrypted: needs a password")))
        elif info.compress_type not in ZIP_METHODS:
            method = _("packed with compression method {method}, not one zip reads").format(method=info.compress_type)
            skipped.append((info.filename, method))
        else:
            try:
                with archive.open(info) as f:
                    blob = f.read(cap - used + 1)  # the sizes in the directory can lie: count what really comes out
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                skipped.append((info.filename, _("cannot be unpacked ({why})").format(why=f"{type(e).__name__}: {e}")))
                continue
            used += len(blob)
            if used > cap:
                raise ValueError(_("the archive unpacks to more than {mb} MB, the limit").format(mb=max_unpacked_mb))
            classes.setdefault(rel[0], []).append(GalleryItem("/".join(rel[1:]), data=blob))
    return classes, skipped


def _hidden(parts: tuple[str, ...]) -> bool:
    """macOS resource forks and dot files: archive tools add them; nobody means them as images."""
    return any(p == "__MACOSX" or p.startswith(".") for p in parts)


def held_out(labels: Sequence[int], fraction: float, seed: int) -> Tensor:
    """A boolean mask choosing ``fraction`` of each class (rounded, at least one of a class of two or more)."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    mask = np.zeros(len(labels_arr), dtype=bool)
    for c in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == c)
        if len(idx) >= 2:
            k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
            mask[rng.choice(idx, k, replace=False)] = True
    return torch.from_numpy(mask)
