"""Crop, warp and full-image views over many labelled photos: accuracy of each, and how sure the differences are.

The paper compares the views on VOC 2007 and Caltech101 with networks trained with SPP at several sizes (see the
notes); this module measures the same comparison for the app's network on a folder of ImageNet photos. Labels are
read from ImageNet-style names (``read_label``), never guessed.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import torch
from PIL import Image

from .activations import GalleryItem, prefetched
from .detection_eval import Interval
from .images import ImageError, load_image, resize_short_side, to_tensor
from .models import SPPNet
from .stats import McNemar, mcnemar, paired_bootstrap
from .views import MULTI_SCALES, VIEW_TITLES, crop_view, warp_view

BENCH_VIEWS = ("crop", "warp", "full")  # "multi" joins them when asked
WNID = re.compile(r"(?<![A-Za-z0-9])n\d{8}(?!\d)")  # a WordNet noun id, not part of a longer token
LEADING_INDEX = re.compile(r"^(\d{1,4})_(.+)$")
VIEW_WORDS = {
    "crop": "centre crop",
    "warp": "warp",
    "full": "full image",
    "multi": f"full images at {len(MULTI_SCALES)} scales",
}


# ----------------------------------------------------------------------------- labels


@functools.cache  # read once: the Crop/warp/SPP page asks on every rerun of its folder panel
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (shipped with timm, no download)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_label_name(i) for i in range(info.num_classes()))


def _norm(name: str) -> str:
    """A class name as it may appear in a file or folder name: lower case, words joined by single spaces."""
    return " ".join(re.split(r"[\s_\-]+", name.strip().lower()))


@dataclass(frozen=True)
class LabelReader:
    """Reads a photo's class from its path, for a model's class names (and, for ImageNet models, WordNet ids).

    Schemes, in order:
        1. a leading class index followed by the WordNet id (``000_n01440764_tench.JPEG``) or by the class name
           (``000_tench.jpg``); index and id (or name) must agree;
        2. a WordNet id in the file name (``n01440764_10026.JPEG``) or as the parent folder's name
           (``n01440764/ILSVRC2012_val_00000293.JPEG``);
        3. a parent folder named by the class name as the model spells it (``tench/1.jpg``, ``great_white_shark/``).
    """

    class_names: tuple[str, ...]
    wnids: tuple[str, ...] | None = None  # None: the model's classes are not ImageNet-1k's
    by_wnid: dict[str, int] = field(init=False, repr=False, compare=False)
    by_name: dict[str, list[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.wnids is not None and len(self.wnids) != len(self.class_names):
            raise ValueError(f"{len(self.wnids)} WordNet ids for {len(self.class_names)} classes")
        object.__setattr__(self, "by_wnid", {w: i for i, w in enumerate(self.wnids or ())})
        by_name: dict[str, list[int]] = {}
        for i, n in enumerate(self.class_names):
            by_name.setdefault(_norm(n), []).append(i)
        object.__setattr__(self, "by_name", by_name)

    @classmethod
    def for_model(cls, model: SPPNet) -> LabelReader:
        """ImageNet WordNet ids for a 1000-class model, class names only otherwise."""
        names = tuple(model.class_names)
        return cls(names, imagenet_wnids() if len(names) == 1000 else None)

    def _wnid(self, wnid: str) -> tuple[int | None, str]:
        if not self.by_wnid:
            return None, f"WordNet id {wnid}, but this model's classes are not ImageNet's"
        if wnid not in self.by_wnid:
            return None, f"WordNet id {wnid} is not one of the model's {len(self.class_names)} classes"
        return self.by_wnid[wnid], f"WordNet id {wnid}"

    def _name(self, name: str) -> tuple[int | None, str]:
        found = self.by_name.get(_norm(name), [])
        if len(found) > 1:
            return None, f"the class name {name!r} belongs to {len(found)} classes ({found})"
        return (found[0], f"class name {name!r}") if found else (None, "")

    def read(self, path: str | PurePath) -> tuple[int | None, str]:
        """(class index, how it was read) or (None, why no label could be read)."""
        path = PurePath(path)
        stem, parent = path.stem, path.parent.name
        m = LEADING_INDEX.match(stem)
        if m:
            index, rest = int(m.group(1)), m.group(2)
            wnid = WNID.match(rest)
            if wnid:
                label, how = self._wnid(wnid.group(0))
                if label is None or label == index:
                    return label, how if label is None else f"index {index} and {how}"
                return None, f"leading index {index} but {how} is class {label}"
            label, how = self._name(rest)
            if label is not None:
                if label == index:
                    return label, f"index {index} and {how}"
                return None, f"leading index {index} but the {how} is class {label}"
        ids = sorted(set(WNID.findall(stem)))
        if len(ids) > 1:
            return None, f"several WordNet ids in the name ({', '.join(ids)})"
        if ids:
            return self._wnid(ids[0])
        if WNID.fullmatch(parent):
            return self._wnid(parent)
        if parent:
            label, how = self._name(parent)
            if label is not None or how:
                return label, how if label is None else f"folder {how}"
        return None, "no class index, WordNet id or class-named folder in its path"


# ----------------------------------------------------------------------------- the bench


def prepare_views(img: Image.Image, size: int, short_side: int, multi: bool) -> tuple[torch.Tensor, ...]:
    """(fixed [2, 3, size, size], full [1, 3, H, W], *multi) for one photo: the paper's views, as ``views`` makes
    them (crop: centre size x size at shorter side ``short_side``; warp: size x size; full: shorter side
    ``short_side``)."""
    full = resize_short_side(img, short_side)
    crop = crop_view(img, size, short_side).image
    warp = warp_view(img, size).image
    if crop.size != warp.size:  # a photo smaller than the crop: the crop is its centre square; warp to match
        warp = warp.resize(crop.size, Image.Resampling.BILINEAR)
    fixed = torch.cat([to_tensor(crop), to_tensor(warp)])  # (2, 3, S, S): crop, warp
    scales = tuple(to_tensor(resize_short_side(img, s)) for s in MULTI_SCALES) if multi else ()
    return (fixed, to_tensor(full), *scales)


@dataclass
class ViewsReport:
    """Per-photo outcomes of each view: whether the label is the top-1 and among the top-5."""

    model: str
    short_side: int
    views: tuple[str, ...]
    names: list[str]  # the photos measured, in order
    labels: np.ndarray  # [N] class index
    top1: dict[str, np.ndarray]  # view -> [N] bool
    top5: dict[str, np.ndarray]  # view -> [N] bool
    unlabeled: list[tuple[str, str]] = field(default_factory=list)  # (file, why no label)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why it could not be read)
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.names)

    def accuracy(self, view: str) -> dict[str, float]:
        return {"top1": float(self.top1[view].mean()), "top5": float(self.top5[view].mean())}

    def paired(self, view: str, k: int = 1, against: str = "crop") -> tuple[Interval, McNemar]:
        """``view`` against another view (the centre crop) on the same photos: accuracy difference with a 95%
        bootstrap interval, and McNemar's exact test."""
        hits = self.top1 if k == 1 else self.top5
        return paired_bootstrap(hits[view], hits[against]), mcnemar(hits[view], hits[against])

    def _pairs(self, against: str, views: Sequence[str]) -> dict:
        out = {}
        for v in views:
            out[v] = {}
            for k, key in ((1, "top1"), (5, "top5")):
                diff, test = self.paired(v, k, against)
                out[v][key] = {
                    "diff": diff.value,
                    "low": diff.low,
                    "high": diff.high,
                    "mcnemar_p": test.p_value,
                    "only_this_view": test.only_a,
                    f"only_{against}": test.only_b,
                }
        return out

    def json(self) -> dict:
        full_views = [v for v in self.views if v in ("full", "multi")]
        return {
            "n": self.n,
            "model": self.model,
            "short_side": self.short_side,
            "views": {v: self.accuracy(v) for v in self.views},
            "paired": self._pairs("crop", [v for v in self.views if v != "crop"]),
            # The paper's Caltech101 claim is full image against warp: the same test, against the warp.
            "paired_with_warp": self._pairs("warp", full_views),
            "unlabeled": [list(u) for u in self.unlabeled],
            "skipped": [list(s) for s in self.skipped],
            "seconds": round(self.seconds, 1),
            "images_per_second": round(self.n / self.seconds, 2) if self.seconds else None,
        }


def labelled_items(
    items: Sequence[GalleryItem], reader: LabelReader
) -> tuple[list[GalleryItem], list[int], list[tuple[str, str]]]:
    """Split a gallery into (items with a label, their labels, [(name, why)] of those without)."""
    keep, labels, unlabeled = [], [], []
    for item in items:
        label, how = reader.read(item.name)
        if label is None:
            unlabeled.append((item.name, how))
        else:
            keep.append(item)
            labels.append(label)
    return keep, labels, unlabeled


def _prepared(
    items: Sequence[GalleryItem], size: int, short_side: int, multi: bool, ahead: int = 8
) -> Iterator[tuple[int, tuple[torch.Tensor, ...] | ImageError]]:
    """(position, views or the error) in order; a thread decodes and resizes up to ``ahead`` photos while the
    network runs, and never more, so memory stays bounded on any folder."""

    def work(i: int) -> tuple[torch.Tensor, ...] | ImageError:
        try:
            return prepare_views(load_image(items[i].read(), name=items[i].name), size, short_side, multi)
        except ImageError as e:
            return e

    return prefetched(work, len(items), ahead)


class _Batcher:
    """Collects tensors of equal size and runs them through the network together, up to ``batch`` at a time; each
    result goes to its owner's callback as softmax probabilities.

    At most ``4 * batch`` tensors wait in all: past that the oldest bucket runs as it is, so photos of rare sizes
    (each multi-scale view of an odd aspect ratio is one) never pile up in memory.
    """

    def __init__(self, model: SPPNet, batch: int) -> None:
        self.model, self.batch = model, batch
        # Insertion-ordered: the first key is the oldest bucket.
        self.waiting: dict[tuple[int, int], list[tuple[torch.Tensor, Callable[[np.ndarray], None]]]] = {}
        self.count = 0

    def add(self, x: torch.Tensor, done: Callable[[np.ndarray], None]) -> None:
        size = tuple(x.shape[-2:])
        bucket = self.waiting.setdefault(size, [])
        bucket.append((x, done))
        self.count += 1
        if len(bucket) >= self.batch:
            self._run(self.waiting.pop(size))
        while self.count > 4 * self.batch:
            self._run(self.waiting.pop(next(iter(self.waiting))))

    def flush(self) -> None:
        for key in list(self.waiting):
            self._run(self.waiting.pop(key))

    def _run(self, bucket: list[tuple[torch.Tensor, Callable[[np.ndarray], None]]]) -> None:
        self.count -= len(bucket)
        x = torch.cat([t for t, _ in bucket]).to(self.model.device)  # (B, 3, H, W), one size per bucket
        with torch.inference_mode():
            probs = self.model(x).float().softmax(1).cpu().numpy()  # (B, classes)
        for p, (_, done) in zip(probs, bucket, strict=True):
            done(p)


def view_accuracy(
    model: SPPNet,
    items: Sequence[GalleryItem],
    short_side: int = 256,
    multi: bool = False,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    reader: LabelReader | None = None,
) -> ViewsReport:
    """Top-1 and top-5 accuracy of the crop, warp and full-image views (and the paper's multi-scale average).

    Args:
        model: the network; the crop and warp are ``model.input_size`` square.
        items: photos; their labels come from their names (``LabelReader``); photos without one are listed in
            ``unlabeled`` and not run.
        short_side: the full view's (and the crop's) shorter side.
        multi: also the softmax averaged over full views at shorter sides ``MULTI_SCALES``.
        batch_size: views of equal size go through the network together, up to this many.
        progress: called as progress(done, total) as photos finish.

    Returns:
        A ``ViewsReport``; unreadable files are listed in ``skipped``, never raised.
    """
    start = time.perf_counter()
    reader = reader or LabelReader.for_model(model)
    keep, labels, unlabeled = labelled_items(items, reader)
    views = BENCH_VIEWS + (("multi",) if multi else ())
    probs: dict[str, dict[int, np.ndarray]] = {v: {} for v in views}
    pending: dict[int, int] = {}  # photo -> results still to come
    finished = 0
    skipped: list[tuple[str, str]] = []

    def collect(view: str, i: int) -> Callable[[np.ndarray], None]:
        def done(p: np.ndarray) -> None:
            nonlocal finished
            store = probs[view]
            # multi: the mean of the softmax over the scales, summed as the scales arrive.
            store[i] = store.get(i, 0.0) + p / len(MULTI_SCALES) if view == "multi" else p
            pending[i] -= 1
            if pending[i] == 0:
                finished += 1
                if progress:
                    progress(finished + len(skipped), len(keep))

        return done

    batcher = _Batcher(model, batch_size)
    for i, prepared in _prepared(keep, model.input_size, short_side, multi):
        if isinstance(prepared, ImageError):
            skipped.append((keep[i].name, str(prepared)))
            if progress:
                progress(finished + len(skipped), len(keep))
            continue
        fixed, full, *scales = prepared
        pending[i] = 3 + len(scales)
        batcher.add(fixed[:1], collect("crop", i))
        batcher.add(fixed[1:], collect("warp", i))
        batcher.add(full, collect("full", i))
        for x in scales:
            batcher.add(x, collect("multi", i))
    batcher.flush()
    done_items = sorted(pending)
    y = np.asarray([labels[i] for i in done_items], dtype=np.int64)
    top1, top5 = {}, {}
    for v in views:
        p = np.stack([probs[v][i] for i in done_items]) if done_items else np.zeros((0, len(model.class_names)))
        ranked = np.argsort(-p, axis=1, kind="stable")[:, :5]  # (N, 5): best first
        top1[v] = ranked[:, 0] == y if len(y) else np.zeros(0, bool)
        top5[v] = (ranked == y[:, None]).any(axis=1) if len(y) else np.zeros(0, bool)
    return ViewsReport(
        model=model.name,
        short_side=short_side,
        views=views,
        names=[keep[i].name for i in done_items],
        labels=y,
        top1=top1,
        top5=top5,
        unlabeled=unlabeled,
        skipped=skipped,
        seconds=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------- what the numbers say


def _verdict(d: dict, other: str) -> str:
    """A paired difference in words: clear only when its 95% interval excludes zero."""
    band = f"95% interval {100 * d['low']:+.1f} to {100 * d['high']:+.1f}, McNemar p = {d['mcnemar_p']:.2g}"
    if d["low"] > 0:
        return f"beats the {other} by {100 * d['diff']:.1f} points ({band})"
    if d["high"] < 0:
        return f"falls {100 * -d['diff']:.1f} points below the {other} ({band})"
    return f"shows no clear difference from the {other}: {100 * d['diff']:+.1f} points ({band})"


def findings(result: dict, where: str = "these photos") -> list[str]:
    """Sentences computed from a ``ViewsReport.json()``: each view against the crop (and the full image against the
    warp), with its interval, and how that compares with the paper's direction."""
    views = result["views"]
    acc = ", ".join(f"{VIEW_WORDS[v]} {views[v]['top1']:.1%}" for v in views)
    out = [f"Over {result['n']} {where} this network's top-1 accuracy is: {acc} (top-5 in the table)."]
    for v, paired in result["paired"].items():
        d = paired["top1"]
        out.append(
            f"{VIEW_TITLES[v]} {_verdict(d, 'centre crop')}; right only this way: {d['only_this_view']} photo(s), "
            f"only with the crop: {d['only_crop']}."
        )
    trained = (
        f"The paper's networks were trained with SPP at several input sizes; this one ({result['model']}) was "
        "trained on 224 x 224 crops (its head is global average pooling), so it knows objects at the crop's scale "
        "and framing."
    )
    warp = result.get("paired_with_warp", {}).get("full", {}).get("top1")
    if warp is not None:
        paper = "the paper's direction (Caltech101: full 91.44% against warped 89.91%)"
        out.append(
            f"Full image (SPP) {_verdict(warp, 'warp')}: "
            + (f"{paper}." if warp["low"] > 0 else f"{paper} does not show clearly here.")
        )
    full = result["paired"].get("full", {}).get("top1")
    if full is not None:
        if full["low"] > 0:
            out.append("The full image beats the crop here too: the direction the paper reports (VOC 2007).")
        elif full["high"] >= 0:
            out.append(
                "The paper's gain of the full image over the crop (VOC 2007: 78.39 against 76.45 mAP) does not "
                f"show clearly here. {trained}"
            )
        else:
            out.append(f"The full image loses against the crop here, the opposite of the paper. {trained}")
    return out


def table_rows(result: dict) -> list[dict[str, str]]:
    """One row per view of a ``ViewsReport.json()``, as the page and the README show them."""
    rows = []
    for v, acc in result["views"].items():
        row = {"view": VIEW_TITLES[v], "top-1": f"{acc['top1']:.1%}", "top-5": f"{acc['top5']:.1%}"}
        for key, label in (("top1", "top-1"), ("top5", "top-5")):
            d = result["paired"].get(v, {}).get(key)
            row[f"{label} minus crop (95% interval)"] = (
                "reference"
                if d is None
                else f"{100 * d['diff']:+.1f} ({100 * d['low']:+.1f} to {100 * d['high']:+.1f}) points"
            )
        d = result["paired"].get(v, {}).get("top1")
        row["McNemar p, top-1"] = "" if d is None else f"{d['mcnemar_p']:.2g}"
        rows.append(row)
    return rows
