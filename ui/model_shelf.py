"""The models a server holds, as threads see it: within ``SPP_VIZ_MODEL_MEMORY_MB`` bytes, the least recently used
dropped first, one load per model however many sessions ask at once. No Streamlit here (tests drive it with
threads); ``ui.cache`` holds the server's one shelf.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable

from spp_viz.budgets import MB, storages
from spp_viz.models import SPPNet
from spp_viz.settings import model_memory_mb


def memory_budget() -> int:
    """What the models held at once may take, in bytes (``SPP_VIZ_MODEL_MEMORY_MB``)."""
    return int(model_memory_mb() * MB)


class ModelShelf:
    """The models the server holds, shared by every session, counted in bytes: the parameters and buffers of every
    model held, a tensor two of them share (the SPP-net's head reads Lite0's conv layers) counted once. When a new
    model takes the total over ``budget()``, the least recently used go first; the model just loaded always stays
    (a network larger than the budget is held alone). Two sessions asking for the same model wait for one load (a
    lock per model, never a lock over the server while a model loads)."""

    def __init__(self, budget: Callable[[], int] = memory_budget) -> None:
        self.budget = budget
        self._models: collections.OrderedDict[Hashable, SPPNet] = collections.OrderedDict()
        self._storages: dict[Hashable, dict[int, int]] = {}
        self._seconds: dict[Hashable, float] = {}
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.dropped = 0

    def held(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._models

    def loading(self, key: Hashable) -> bool:
        """Whether ``key``'s model is being loaded now (a second ask waits for that load)."""
        with self._lock:
            return key in self._loading

    def get(self, key: Hashable, load: Callable[[], SPPNet]) -> SPPNet:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            start = time.perf_counter()
            try:
                model = load()
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)  # failed: the next ask tries afresh
                raise
            found = storages(model)
            with self._lock:  # held and no longer loading in one step: no later ask can start a second load
                self._loading.pop(key, None)
                self._models[key] = model
                self._storages[key] = found
                self._seconds[key] = time.perf_counter() - start
                self.loads += 1
                self._drop_over_budget()
        return model

    def _drop_over_budget(self) -> None:
        """Drop the least recently used models while the total is over the budget, keeping the newest."""
        budget = self.budget()
        while len(self._models) > 1 and self._held_bytes() > budget:
            old, _ = self._models.popitem(last=False)
            self._storages.pop(old, None)
            self._seconds.pop(old, None)
            self.dropped += 1

    def _held_bytes(self) -> int:
        union: dict[int, int] = {}
        for found in self._storages.values():
            union.update(found)
        return sum(union.values())

    def held_bytes(self) -> int:
        """The bytes of every model held, each tensor once."""
        with self._lock:
            return self._held_bytes()

    def own_bytes(self, key: Hashable) -> int | None:
        """The bytes only ``key``'s model holds (what dropping it would free), while it is held."""
        with self._lock:
            if key not in self._storages:
                return None
            others = {p for k, found in self._storages.items() if k != key for p in found}
            return sum(n for p, n in self._storages[key].items() if p not in others)

    def seconds(self, key: Hashable) -> float | None:
        """How long ``key``'s model took to load, while it is held."""
        with self._lock:
            return self._seconds.get(key)

    def load_times(self) -> list[tuple[Hashable, float]]:
        """(key, seconds its load took) of every model held, the least recently used first."""
        with self._lock:
            return [(k, self._seconds[k]) for k in self._models]

    def models(self) -> list[tuple[Hashable, SPPNet]]:
        with self._lock:
            return list(self._models.items())
