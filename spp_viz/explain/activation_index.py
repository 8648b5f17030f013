"""The gallery index of strongest activations (the paper's Figure 2): for every conv5 channel, the k strongest
responses over a set of images, each as (image, y, x, value), by default at most one entry per image and channel.

It is built in batches, stored on disk keyed by the model, the settings and a hash of the images' bytes, resumed from
its last checkpoint after an interruption, and extended rather than rebuilt when images are added.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..files import DiskFull, in_use, write_atomically
from ..gallery import INDEX_SHORT_SIDE, GalleryItem, gallery_view, prefetched
from ..images import ImageError, to_tensor
from ..models import SPPNet
from ..progress import Progress, counted
from ..settings import cache_root
from ..weights import weights_digest

INDEX_CACHE = cache_root() / "index"


@dataclass
class ActivationIndex:
    """Top-k conv5 responses per channel over a set of images.

    ``values[c, i]`` is channel c's i-th strongest response (descending; -inf where fewer than k exist), found in
    image ``image[c, i]`` (an index into ``names``/``hashes``; -1 when empty) at conv5 cell (``ys[c, i]``,
    ``xs[c, i]``) of that image's input of ``input_hw[image]`` pixels.
    """

    model: str
    top_k: int
    one_per_image: bool
    short_side: int
    hashes: list[str]  # sha1 of each indexed image's bytes
    names: list[str]
    paths: list[str]  # "" for images given as bytes
    input_hw: list[tuple[int, int]]  # (H, W) fed to the network, per image
    values: np.ndarray  # [C, K] float32
    image: np.ndarray  # [C, K] int32
    ys: np.ndarray  # [C, K] int32
    xs: np.ndarray  # [C, K] int32
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (hash, name, reason)

    @property
    def channels(self) -> int:
        return self.values.shape[0]

    def entries(self, channel: int) -> list[tuple[int, int, int, float]]:
        """(image, y, x, value) of a channel, strongest first, without empty slots."""
        keep = self.image[channel] >= 0
        return [
            (int(i), int(y), int(x), float(v))
            for i, y, x, v in zip(
                self.image[channel][keep],
                self.ys[channel][keep],
                self.xs[channel][keep],
                self.values[channel][keep],
                strict=True,
            )
        ]

    def rank_of(self, channel: int, value: float) -> int:
        """Where a response of ``value`` would rank among the channel's entries (1 = strongest)."""
        return int(np.sum(self.values[channel] > value)) + 1

    def save(self, path: Path) -> None:
        """Written under its writer's own name and renamed into place (``files.write_atomically``): an interrupted
        save never leaves a half-written index, and two sessions building one index never share a file.

        Raises:
            DiskFull: when the disk is full.
        """
        write_atomically(path, self._write)

    def _write(self, tmp: Path) -> None:
        np.savez(
            tmp,
            model=self.model,
            top_k=self.top_k,
            one_per_image=self.one_per_image,
            short_side=self.short_side,
            hashes=np.array(self.hashes, dtype=str),
            names=np.array(self.names, dtype=str),
            paths=np.array(self.paths, dtype=str),
            input_hw=np.array(self.input_hw, np.int32).reshape(-1, 2),
            values=self.values,
            image=self.image,
            ys=self.ys,
            xs=self.xs,
            skipped=np.array(self.skipped, dtype=str).reshape(-1, 3),
        )

    @classmethod
    def load(cls, path: Path) -> ActivationIndex:
        with in_use(path), np.load(path, allow_pickle=False) as z:
            return cls(
                model=str(z["model"]),
                top_k=int(z["top_k"]),
                one_per_image=bool(z["one_per_image"]),
                short_side=int(z["short_side"]),
                hashes=z["hashes"].tolist(),
                names=z["names"].tolist(),
                paths=z["paths"].tolist(),
                input_hw=[tuple(hw) for hw in z["input_hw"].tolist()],
                values=z["values"],
                image=z["image"],
                ys=z["ys"],
                xs=z["xs"],
                skipped=[tuple(s) for s in z["skipped"].tolist()],
            )


def _empty(model: SPPNet, top_k: int, one_per_image: bool, short_side: int) -> ActivationIndex:
    c = model.channels
    return ActivationIndex(
        model=model.name,
        top_k=top_k,
        one_per_image=one_per_image,
        short_side=short_side,
        hashes=[],
        names=[],
        paths=[],
        input_hw=[],
        values=np.full((c, top_k), -np.inf, np.float32),
        image=np.full((c, top_k), -1, np.int32),
        ys=np.zeros((c, top_k), np.int32),
        xs=np.zeros((c, top_k), np.int32),
    )


def _merge(index: ActivationIndex, conv5: torch.Tensor, first_image: int) -> None:
    """Merge a batch conv5: Tensor[B, C, H5, W5] of images first_image.. into the index's top-k, in place."""
    b, c, h, w = conv5.shape
    flat = conv5.float().flatten(2)  # (B, C, H5*W5)
    per = 1 if index.one_per_image else min(index.top_k, h * w)
    vals, pos = flat.topk(per, dim=2)  # (B, C, per)
    vals = vals.permute(1, 0, 2).reshape(c, b * per)  # (B, C, per) -> (C, B*per), image-major within a channel
    pos = pos.permute(1, 0, 2).reshape(c, b * per)
    imgs = (torch.arange(b).repeat_interleave(per) + first_image).expand(c, -1)
    all_vals = torch.cat([torch.from_numpy(index.values), vals.cpu()], dim=1)
    all_imgs = torch.cat([torch.from_numpy(index.image), imgs.to(torch.int32)], dim=1)
    all_ys = torch.cat([torch.from_numpy(index.ys), (pos // w).cpu().to(torch.int32)], dim=1)
    all_xs = torch.cat([torch.from_numpy(index.xs), (pos % w).cpu().to(torch.int32)], dim=1)
    # Stable on ties: earlier images win, as in a brute-force scan.
    order = all_vals.argsort(dim=1, descending=True, stable=True)[:, : index.top_k]
    index.values = all_vals.gather(1, order).numpy()
    index.image = all_imgs.gather(1, order).numpy()
    index.ys = all_ys.gather(1, order).numpy()
    index.xs = all_xs.gather(1, order).numpy()


def _decoded(items: Sequence[GalleryItem], hashes: Sequence[str], short_side: int, ahead: int = 4) -> Iterator:
    """(item, hash, view or ImageError) in order, decoding up to ``ahead`` images in a thread while the network runs."""

    def work(i: int) -> Image.Image | ImageError:
        try:
            return gallery_view(items[i].read(), items[i].name, short_side)
        except ImageError as e:
            return e

    for i, result in prefetched(work, len(items), ahead):
        yield items[i], hashes[i], result


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    index: ActivationIndex
    path: Path
    from_cache: bool  # the whole index was read from disk
    reused: int  # images taken from an earlier index or checkpoint
    computed: int  # images run through the network now

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(name, reason) of the files that could not be used."""
        return [(n, r) for _, n, r in self.index.skipped]


def _settings_key(model: SPPNet, top_k: int, one_per_image: bool, short_side: int) -> str:
    # "-pre": indexed before the clip; indexes built from clipped maps (older caches) are never reused. The weights'
    # digest: "timm:resnet18" random, pretrained or from a student's file are three indexes.
    clip = f"-pre{model.clip}" if model.clip else ""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.name)
    return f"{name}-{weights_digest(model.features)}-k{top_k}-{'one' if one_per_image else 'all'}-s{short_side}{clip}"


def _set_hash(hashes: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(sorted(hashes)).encode()).hexdigest()[:16]


def _best_start(cache_dir: Path, settings: str, wanted: set[str]) -> ActivationIndex | None:
    """The cached index or checkpoint of these settings that covers the most of ``wanted`` and nothing else."""
    best_path, best_n = None, 0
    for path in sorted(cache_dir.glob(f"{settings}-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as z:
                known = set(z["hashes"].tolist()) | {s[0] for s in z["skipped"].tolist()}
        except (OSError, ValueError, KeyError):
            continue  # a damaged cache file is ignored, never fatal
        if known <= wanted and len(known) > best_n:
            best_path, best_n = path, len(known)
    return ActivationIndex.load(best_path) if best_path is not None else None


def build_index(
    model: SPPNet,
    items: Sequence[GalleryItem],
    top_k: int = 9,
    one_per_image: bool = True,
    short_side: int = INDEX_SHORT_SIDE,
    batch_size: int = 8,
    cache_dir: str | Path | None = INDEX_CACHE,
    progress: Progress | None = None,
    checkpoint_every: int = 64,
) -> BuildReport:
    """Build (or read, or extend) the top-k activation index of a gallery.

    Args:
        model: the network; its conv5 is indexed.
        items: the gallery. Duplicates (same bytes) count once.
        top_k: entries kept per channel.
        one_per_image: at most one entry per image and channel (the strongest cell).
        short_side: gallery images are resized to this shorter side.
        batch_size: images of the same size go through the network together, up to this many.
        cache_dir: where indexes are stored; None keeps nothing on disk.
        progress: told the fraction done and "done of total images" after each batch.
        checkpoint_every: save a checkpoint after about this many new images, so a stopped build resumes.

    Returns:
        A ``BuildReport``; unreadable files are listed in ``skipped``, never raised.
    """
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}")
    unique, unique_hashes = _unique_items(items)
    settings = _settings_key(model, top_k, one_per_image, short_side)
    target = f"{settings}-{_set_hash(unique_hashes)}"
    cache = Path(cache_dir) if cache_dir is not None else None
    final_path = (cache / f"{target}.npz") if cache else Path(f"{target}.npz")
    if cache and final_path.is_file():
        index = ActivationIndex.load(final_path)
        return BuildReport(index, final_path, from_cache=True, reused=len(unique), computed=0)

    index = _best_start(cache, settings, set(unique_hashes)) if cache else None
    index = index or _empty(model, top_k, one_per_image, short_side)
    reused = len(index.hashes) + len(index.skipped)
    done = {*index.hashes, *(s[0] for s in index.skipped)}
    todo = [i for i, h in enumerate(unique_hashes) if h not in done]
    partial_path = cache / f"{settings}-partial-{target.rsplit('-', 1)[1]}.npz" if cache else None
    total = len(unique_hashes)
    builder = _Builder(model, index, partial_path, checkpoint_every, progress, total=total, finished=reused)
    counted(progress, builder.finished, builder.total, "images")
    builder.run([unique[i] for i in todo], [unique_hashes[i] for i in todo], short_side, batch_size)
    counted(progress, builder.total, builder.total, "images")
    if cache:
        with contextlib.suppress(DiskFull):  # on a full disk the index is used now and built again next time
            index.save(final_path)
        # The final index supersedes its checkpoint; an older index it grew from stays, for the sets it covers.
        if partial_path is not None:
            partial_path.unlink(missing_ok=True)
    return BuildReport(index, final_path, from_cache=False, reused=reused, computed=builder.computed)


def _unique_items(items: Sequence[GalleryItem]) -> tuple[list[GalleryItem], list[str]]:
    """The items with distinct bytes (the first of each) and their sha1; an unreadable file gets a hash of its name
    and error, so it is listed once and skipped."""
    datas: dict[str, GalleryItem] = {}
    for item in items:
        try:
            h = hashlib.sha1(item.read()).hexdigest()
        except ImageError as e:
            h = hashlib.sha1(f"unreadable:{item.name}:{e}".encode()).hexdigest()
        datas.setdefault(h, item)
    return list(datas.values()), list(datas.keys())


class _Builder:
    """Runs the images still to index through the network in same-size batches, merges each batch into the index,
    checkpoints it, and reports progress."""

    def __init__(
        self,
        model: SPPNet,
        index: ActivationIndex,
        partial_path: Path | None,
        checkpoint_every: int,
        progress: Progress | None,
        total: int,
        finished: int,
    ) -> None:
        self.model, self.index, self.partial_path = model, index, partial_path
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.total, self.finished = total, finished
        self.computed = self.since_checkpoint = 0

    def run(self, items: list[GalleryItem], hashes: list[str], short_side: int, batch_size: int) -> None:
        # Images wait in one bucket per size until batch_size of them can go through the network together; at most
        # batch_size images per distinct size are held, so memory stays bounded on any folder.
        buckets: dict[tuple[int, int], list[tuple[GalleryItem, str, Image.Image]]] = {}
        for item, h, view in _decoded(items, hashes, short_side):
            if isinstance(view, ImageError):
                self.index.skipped.append((h, item.name, str(view)))
                self.finished += 1
                continue
            bucket = buckets.setdefault(view.size, [])
            bucket.append((item, h, view))
            if len(bucket) == batch_size:
                self.flush(buckets.pop(view.size))
        for batch in buckets.values():
            self.flush(batch)

    def flush(self, batch: list[tuple[GalleryItem, str, Image.Image]]) -> None:
        index = self.index
        x = torch.cat([to_tensor(v, self.model.device) for _, _, v in batch])  # same H x W within a bucket
        with torch.inference_mode():
            # Before a final clip (ReLU6): after it, the top responses of nearly every channel tie at 6.0.
            _, conv5 = self.model.forward_responses(x)
        first = len(index.hashes)
        for item, h, v in batch:
            index.hashes.append(h)
            index.names.append(item.name)
            index.paths.append(str(item.path) if item.path else "")
            index.input_hw.append((v.height, v.width))
        _merge(index, conv5, first)
        self.finished += len(batch)
        self.computed += len(batch)
        self.since_checkpoint += len(batch)
        # Checkpoint before reporting: a stop raised from the progress callback keeps this batch.
        if self.partial_path is not None and self.since_checkpoint >= self.checkpoint_every:
            with contextlib.suppress(DiskFull):  # no checkpoint on a full disk: the build itself goes on
                index.save(self.partial_path)
            self.since_checkpoint = 0
        counted(self.progress, self.finished, self.total, "images")
