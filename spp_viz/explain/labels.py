"""A photo's class read from its path (ImageNet-style names, WordNet ids, class-named folders), never guessed."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from ..gallery import GalleryItem
from ..models import SPPNet

WNID = re.compile(r"(?<![A-Za-z0-9])n\d{8}(?!\d)")  # a WordNet noun id, not part of a longer token
LEADING_INDEX = re.compile(r"^(\d{1,4})_(.+)$")


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
