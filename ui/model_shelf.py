"""The models a server holds, as threads see it: at most ``SPP_VIZ_MAX_MODELS``, the least recently used dropped, one
load per model however many sessions ask at once. No Streamlit here (tests drive it with threads); ``ui.cache`` holds
the server's one shelf.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Hashable

from spp_viz.models import SPPNet
from spp_viz.settings import MAX_MODELS_ENV

DEFAULT_MAX_MODELS = 3


def max_models() -> int:
    """How many models the server holds at once (``SPP_VIZ_MAX_MODELS``, default 3): a ResNet-50 is 100 MB, a
    VGG-16 530 MB, and a class may try many. At least 2: the default SPP-net is two entries, Lite0 and the head
    that reads its conv layers, and with one the two would push each other out on every run."""
    raw = os.environ.get(MAX_MODELS_ENV, "").strip()
    return max(2, int(raw)) if raw.isdigit() else DEFAULT_MAX_MODELS


class ModelShelf:
    """The models the server holds, shared by every session: at most ``max_models()``, the least recently used
    dropped first. Two sessions asking for the same model wait for one load (a lock per model, never a lock over
    the server while a model loads)."""

    def __init__(self) -> None:
        self._models: collections.OrderedDict[Hashable, SPPNet] = collections.OrderedDict()
        self._seconds: dict[Hashable, float] = {}
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def held(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._models

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
            with self._lock:  # held and no longer loading in one step: no later ask can start a second load
                self._loading.pop(key, None)
                self._models[key] = model
                self._seconds[key] = time.perf_counter() - start
                self.loads += 1
                while len(self._models) > max_models():
                    old, _ = self._models.popitem(last=False)
                    self._seconds.pop(old, None)
        return model

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
