"""Strongest conv5 activations: peaks on one image, and a top-k index over a gallery (the paper's Figure 2).

The index keeps, for every conv5 channel, the k strongest responses over a set of images, each as
(image, y, x, value), by default at most one entry per image and channel. It is built in batches, stored on disk
keyed by the model, the settings and a hash of the images' bytes, resumed from its last checkpoint after an
interruption, and extended rather than rebuilt when images are added.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from .geometry import FeatureGeometry, feature_geometry
from .images import ImageError, load_image, resize_short_side, to_tensor
from .models import SPPNet

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
INDEX_SHORT_SIDE = 224  # gallery images are seen at the training scale, as in the paper's Figure 2
T = TypeVar("T")
DEFAULT_CACHE = Path(os.environ.get("SPP_VIZ_CACHE", Path.home() / ".cache" / "spp_viz")) / "index"


# ----------------------------------------------------------------------------- one image


def peaks(fmap: np.ndarray, count: int = 3, radius: int = 1) -> list[tuple[int, int, float]]:
    """The ``count`` strongest local maxima of fmap: [H5, W5] as (row, col, value), strongest first.

    A cell is taken only if no stronger taken cell lies within ``radius`` cells (greedy non-maximum suppression),
    so the arrows point at different parts rather than at one blob. Cells at or below zero are never peaks.
    """
    order = np.argsort(fmap, axis=None)[::-1]
    taken: list[tuple[int, int, float]] = []
    for flat in order:
        r, c = divmod(int(flat), fmap.shape[1])
        v = float(fmap[r, c])
        if v <= 0 or len(taken) == count:
            break
        if all(max(abs(r - tr), abs(c - tc)) > radius for tr, tc, _ in taken):
            taken.append((r, c, v))
    return taken


# ----------------------------------------------------------------------------- the gallery


@dataclass(frozen=True)
class GalleryItem:
    """One gallery image: a file on disk, or bytes (an upload, a sample)."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ImageError(f"{self.name}: no path and no bytes")
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise ImageError(f"{self.name} cannot be read: {e.strerror or e}") from e


def folder_items(folder: str | Path) -> list[GalleryItem]:
    """Image files in a folder and its subfolders (by suffix), sorted by path.

    Raises:
        ValueError: when the folder does not exist.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"no folder at {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [GalleryItem(name=str(p.relative_to(root)), path=p) for p in files]


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
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: two sessions building the same index never share a temporary file.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
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
        tmp.replace(path)  # atomic: an interrupted save never leaves a half-written index

    @classmethod
    def load(cls, path: Path) -> ActivationIndex:
        with np.load(path, allow_pickle=False) as z:
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


def gallery_view(data: bytes, name: str, short_side: int = INDEX_SHORT_SIDE) -> Image.Image:
    """How the index sees an image: load_image, then the shorter side at ``short_side``."""
    return resize_short_side(load_image(data, name=name), short_side)


def prefetched(work: Callable[[int], T], count: int, ahead: int = 4) -> Iterator[tuple[int, T]]:
    """(i, work(i)) for i in 0..count-1, in order, with up to ``ahead`` calls done early in one thread while the
    caller runs the network. Bounded, so a folder of thousands of photos is never decoded into memory at once."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = deque(pool.submit(work, i) for i in range(min(ahead, count)))
        for i in range(count):
            result = queue.popleft().result()
            if i + ahead < count:
                queue.append(pool.submit(work, i + ahead))
            yield i, result


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
    skipped: list[tuple[str, str]]  # (name, reason) of files that could not be used


def _settings_key(model: SPPNet, top_k: int, one_per_image: bool, short_side: int) -> str:
    # "-pre": indexed before the clip; indexes built from clipped maps (older caches) are never reused.
    clip = f"-pre{model.clip}" if model.clip else ""
    return f"{model.name}-k{top_k}-{'one' if one_per_image else 'all'}-s{short_side}{clip}"


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
    cache_dir: str | Path | None = DEFAULT_CACHE,
    progress: Callable[[int, int], None] | None = None,
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
        progress: called as progress(done, total) after each batch.
        checkpoint_every: save a checkpoint after about this many new images, so a stopped build resumes.

    Returns:
        A ``BuildReport``; unreadable files are listed in ``skipped``, never raised.
    """
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}")
    datas = {}
    hashes = []
    for item in items:
        try:
            h = hashlib.sha1(item.read()).hexdigest()
        except ImageError as e:
            h = hashlib.sha1(f"unreadable:{item.name}:{e}".encode()).hexdigest()
        hashes.append(h)
        datas.setdefault(h, item)
    unique = list(datas.values())
    unique_hashes = list(datas.keys())
    settings = _settings_key(model, top_k, one_per_image, short_side)
    target = f"{settings}-{_set_hash(unique_hashes)}"
    cache = Path(cache_dir) if cache_dir is not None else None
    final_path = (cache / f"{target}.npz") if cache else Path(f"{target}.npz")
    if cache and final_path.is_file():
        index = ActivationIndex.load(final_path)
        return BuildReport(index, final_path, True, len(unique), 0, [(n, r) for _, n, r in index.skipped])

    index = _best_start(cache, settings, set(unique_hashes)) if cache else None
    index = index or _empty(model, top_k, one_per_image, short_side)
    reused = len(index.hashes) + len(index.skipped)
    done = {*index.hashes, *(s[0] for s in index.skipped)}
    todo = [i for i, h in enumerate(unique_hashes) if h not in done]
    partial_path = cache / f"{settings}-partial-{target.rsplit('-', 1)[1]}.npz" if cache else None
    total, finished = len(unique_hashes), reused
    if progress:
        progress(finished, total)
    todo_items, todo_hashes = [unique[i] for i in todo], [unique_hashes[i] for i in todo]
    # Images wait in one bucket per size until batch_size of them can go through the network together; at most
    # batch_size images per distinct size are held, so memory stays bounded on any folder.
    buckets: dict[tuple[int, int], list[tuple[GalleryItem, str, Image.Image]]] = {}
    since_checkpoint = computed = 0

    def flush(batch: list[tuple[GalleryItem, str, Image.Image]]) -> None:
        nonlocal finished, since_checkpoint, computed
        x = torch.cat([to_tensor(v, model.device) for _, _, v in batch])  # same H x W within a bucket
        with torch.inference_mode():
            # Before a final clip (ReLU6): after it, the top responses of nearly every channel tie at 6.0.
            _, conv5 = model.forward_responses(x)
        first = len(index.hashes)
        for item, h, v in batch:
            index.hashes.append(h)
            index.names.append(item.name)
            index.paths.append(str(item.path) if item.path else "")
            index.input_hw.append((v.height, v.width))
        _merge(index, conv5, first)
        finished += len(batch)
        computed += len(batch)
        since_checkpoint += len(batch)
        # Checkpoint before reporting: a stop raised from the progress callback keeps this batch.
        if partial_path is not None and since_checkpoint >= checkpoint_every:
            index.save(partial_path)
            since_checkpoint = 0
        if progress:
            progress(finished, total)

    for item, h, view in _decoded(todo_items, todo_hashes, short_side):
        if isinstance(view, ImageError):
            index.skipped.append((h, item.name, str(view)))
            finished += 1
            continue
        bucket = buckets.setdefault(view.size, [])
        bucket.append((item, h, view))
        if len(bucket) == batch_size:
            flush(buckets.pop(view.size))
    for batch in buckets.values():
        flush(batch)
    if progress:
        progress(total, total)
    if cache:
        index.save(final_path)
        # The final index supersedes its checkpoint; an older index it grew from stays, for the sets it covers.
        if partial_path is not None and partial_path.exists():
            partial_path.unlink()
    return BuildReport(index, final_path, False, reused, computed, [(n, r) for _, n, r in index.skipped])


def tied_channels(index: ActivationIndex, decimals: int = 3) -> int:
    """How many channels have two equal values (to ``decimals`` places) among their stored top-k: ties make the
    shown patches an arbitrary pick (ReLU6's clipped maps tie at 6.0 almost everywhere)."""
    tied = 0
    for c in range(index.channels):
        values = np.round(index.values[c][index.image[c] >= 0], decimals)
        tied += len(np.unique(values)) < len(values)
    return tied


def image_bytes_of(index: ActivationIndex, i: int, extra: dict[str, bytes] | None = None) -> bytes | None:
    """The bytes of indexed image i: from its path, or from ``extra`` (hash -> bytes) for uploads."""
    if extra and index.hashes[i] in extra:
        return extra[index.hashes[i]]
    if index.paths[i]:
        try:
            return Path(index.paths[i]).read_bytes()
        except OSError:
            return None
    return None


PATCH_KINDS = ("field", "context")


def default_patch_kind(geom: FeatureGeometry) -> str:
    """ "field" when a conv5 cell's receptive field fits in the input, else "context" (it would be the whole image)."""
    return "field" if max(geom.x.rf, geom.y.rf) <= max(geom.input_hw) else "context"


def patch_box(geom: FeatureGeometry, y: int, x: int, kind: str = "field") -> tuple[float, float, float, float]:
    """The image box of conv5 cell (y, x): its receptive field ("field") or 3 strides around it ("context")."""
    if kind == "field":
        return geom.cell_box(y, x)
    if kind == "context":
        return geom.cell_context(y, x)
    raise ValueError(f"unknown patch kind {kind!r}: use one of {PATCH_KINDS}")


def top_patches(
    index: ActivationIndex, channel: int, model: SPPNet, extra: dict[str, bytes] | None = None, kind: str = "field"
) -> list[tuple[Image.Image, str]]:
    """The channel's top-k positive responses as (patch, caption), strongest first; the paper's Figure 2, right.

    ``extra`` maps image hashes to bytes for images indexed from uploads (they have no path). An image that can
    no longer be read gives a grey patch that says so. Zero responses (a ReLU's "nothing here") are left out.
    """
    out = []
    geoms: dict[tuple[int, int], FeatureGeometry] = {}
    for rank, (i, y, x, v) in enumerate(index.entries(channel), 1):
        if v <= 0:
            break
        caption = f"#{rank} {v:.2f}\n{Path(index.names[i]).name}"
        data = image_bytes_of(index, i, extra)
        try:
            view = gallery_view(data, index.names[i], index.short_side) if data is not None else None
        except ImageError:
            view = None
        if view is None:
            out.append((Image.new("RGB", (64, 64), (200, 200, 200)), caption + " (gone)"))
            continue
        hw = tuple(index.input_hw[i])
        if hw not in geoms:  # not setdefault: it would compute the geometry on every call
            geoms[hw] = feature_geometry(model, hw)
        geom = geoms[hw]
        x0, y0, x1, y1 = patch_box(geom, y, x, kind)
        out.append((view.crop((round(x0), round(y0), round(x1), round(y1))), caption))
    return out
