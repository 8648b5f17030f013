"""Crop, warp and full-image views over many labelled photos: accuracy of each, and how sure the differences are.

The paper compares the views on VOC 2007 and Caltech101 with networks trained with SPP at several sizes (see the
notes); this module measures the same comparison for the app's network on a folder of ImageNet photos. Labels are
read from ImageNet-style names (``labels.LabelReader``), never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from ..gallery import GalleryItem, prefetched
from ..images import ImageError, load_image, resize_short_side, to_tensor
from ..models import SPPNet
from ..progress import Progress, counted
from ..stats import Interval, McNemar, mcnemar, paired_bootstrap
from .analysis import merge as merge_parts
from .labels import LabelReader, labelled_items
from .view_summary import PairedDiff, ViewsSummary
from .views import MULTI_SCALES, crop_view, warp_view

BENCH_VIEWS = ("crop", "warp", "full")  # "multi" joins them when asked


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
    held_out: bool = False  # merged from held-out heads, each scoring photos it was not trained on

    @property
    def n(self) -> int:
        return len(self.names)

    SAME: ClassVar[tuple[str, ...]] = ("short_side", "views")  # settings every merged part must share

    @classmethod
    def merge(cls, parts: Sequence[ViewsReport], model: str) -> ViewsReport:
        """Benches of disjoint photos (one per held-out head) as one, named ``model`` (``analysis.merge``)."""
        return merge_parts(parts, model)

    def accuracy(self, view: str) -> dict[str, float]:
        return {"top1": float(self.top1[view].mean()), "top5": float(self.top5[view].mean())}

    def paired(self, view: str, k: int = 1, against: str = "crop") -> tuple[Interval, McNemar]:
        """``view`` against another view (the centre crop) on the same photos: accuracy difference with a 95%
        bootstrap interval, and McNemar's exact test."""
        hits = self.top1 if k == 1 else self.top5
        return paired_bootstrap(hits[view], hits[against]), mcnemar(hits[view], hits[against])

    def _pairs(self, against: str, views: Sequence[str]) -> dict[str, dict[str, PairedDiff]]:
        out = {}
        for v in views:
            out[v] = {}
            for k, key in ((1, "top1"), (5, "top5")):
                diff, test = self.paired(v, k, against)
                out[v][key] = PairedDiff(
                    diff=diff.value, low=diff.low, high=diff.high, mcnemar_p=test.p_value,
                    only_this_view=test.only_a, only_other=test.only_b,
                )  # fmt: skip
        return out

    def summary(self) -> ViewsSummary:
        """What the photos add up to: accuracies and paired differences, as the page, the CLI and the JSON show."""
        full_views = [v for v in self.views if v in ("full", "multi")]
        return ViewsSummary(
            n=self.n,
            model=self.model,
            short_side=self.short_side,
            accuracy={v: self.accuracy(v) for v in self.views},
            against_crop=self._pairs("crop", [v for v in self.views if v != "crop"]),
            # The paper's Caltech101 claim is full image against warp: the same test, against the warp.
            against_warp=self._pairs("warp", full_views),
            unlabeled=list(self.unlabeled),
            skipped=list(self.skipped),
            seconds=round(self.seconds, 1),
            names=list(self.names),
            hits={v: "".join("1" if h else "0" for h in self.top1[v]) for v in self.views},
            held_out=self.held_out,
            images_per_second=round(self.n / self.seconds, 2) if self.seconds else None,
        )

    def json(self) -> dict:
        return self.summary().json()


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
    progress: Progress | None = None,
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
        progress: told the fraction done and "done of total photos" as photos finish.

    Returns:
        A ``ViewsReport``; unreadable files are listed in ``skipped``, never raised.
    """
    start = time.perf_counter()
    reader = reader or LabelReader.for_model(model)
    keep, labels, unlabeled = labelled_items(items, reader)
    views = BENCH_VIEWS + (("multi",) if multi else ())
    probs, skipped = _view_probabilities(model, keep, views, short_side, multi, batch_size, progress)
    done_items = sorted(probs["crop"])
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


def _view_probabilities(
    model: SPPNet,
    keep: Sequence[GalleryItem],
    views: Sequence[str],
    short_side: int,
    multi: bool,
    batch_size: int,
    progress: Progress | None,
) -> tuple[dict[str, dict[int, np.ndarray]], list[tuple[str, str]]]:
    """Each view's softmax per photo (by position in ``keep``; multi: the mean over the scales), and the photos that
    could not be read. A photo counts as done for ``progress`` once all its views are back."""
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
                counted(progress, finished + len(skipped), len(keep), "photos")

        return done

    batcher = _Batcher(model, batch_size)
    for i, prepared in _prepared(keep, model.input_size, short_side, multi):
        if isinstance(prepared, ImageError):
            skipped.append((keep[i].name, str(prepared)))
            counted(progress, finished + len(skipped), len(keep), "photos")
            continue
        fixed, full, *scales = prepared
        pending[i] = 3 + len(scales)
        batcher.add(fixed[:1], collect("crop", i))
        batcher.add(fixed[1:], collect("warp", i))
        batcher.add(full, collect("full", i))
        for x in scales:
            batcher.add(x, collect("multi", i))
    batcher.flush()
    return probs, skipped
