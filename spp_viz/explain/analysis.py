"""The contract every folder analysis keeps, written down as detectron2 writes its ``DatasetEvaluator``'s.

An analysis runs one network over a folder's photos and keeps, per photo, what it measured (its *bench*: a
dataclass). Benches of disjoint photos merge into one (``merge``: the heads of ``distill --fold-heads``, each over the
photos it never saw). A bench sums itself up (``summary()``) in a typed, frozen *summary* that goes to JSON and back
(``json()`` / ``from_json``) and is what ships in ``assets/`` (``explain.shipped``); a summary reads as sentences
(``findings``). The views bench, the shuffle test and the levels bench keep it; the CLI's ``bench`` commands, the
shipped files and the pages use every one of them the same way (``explain.folder_analyses``). docs/analyses.md:
adding one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

B = TypeVar("B")


class Summary(Protocol):
    """What an analysis ships and shows: frozen, typed, to JSON and back unchanged."""

    model: str
    n: int

    def json(self) -> dict: ...

    @classmethod
    def from_json(cls, d: dict) -> Summary: ...


class Bench(Protocol):
    """Per-photo outcomes of one run. ``SAME`` names the settings every merged part must share."""

    SAME: ClassVar[tuple[str, ...]]
    model: str
    names: list[str]
    skipped: list[tuple[str, str]]
    seconds: float
    held_out: bool

    def summary(self) -> Summary: ...


def merge(parts: Sequence[B], model: str) -> B:
    """Benches of disjoint photos as one, named ``model`` and marked ``held_out``: the settings in ``SAME`` must agree,
    the seconds add up, every per-photo list or array is joined in the parts' order (dicts of them key by key), and
    a measurement that some part did not make (an empty dict: no labels there) is left out.

    Raises:
        ValueError: parts measured with different settings, or none.
    """
    if not parts:
        raise ValueError("no part to merge")
    first, kind = parts[0], type(parts[0])
    for name in kind.SAME:
        values = [getattr(p, name) for p in parts]
        if any(v != values[0] for v in values):
            raise ValueError(f"the parts were measured with different {name}: {sorted(set(map(str, values)))}")
    out = {}
    for f in dataclasses.fields(kind):
        values = [getattr(p, f.name) for p in parts]
        if f.name == "model":
            out[f.name] = model
        elif f.name == "held_out":
            out[f.name] = True
        elif f.name == "seconds":
            out[f.name] = sum(values)
        elif f.name in kind.SAME:
            out[f.name] = getattr(first, f.name)
        else:
            out[f.name] = _joined(values)
    return kind(**out)


def _joined(values: list) -> Any:
    if isinstance(values[0], np.ndarray):
        return np.concatenate(values)
    if isinstance(values[0], dict):
        if not all(values):
            return {}
        return {k: _joined([v[k] for v in values]) for k in values[0]}
    return [x for v in values for x in v]
