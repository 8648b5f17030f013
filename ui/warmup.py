"""The server's warm-up: while Streamlit starts and the first browser loads its page, import what the home page
needs and load the default network into the shelf, so that the first student does not wait for them.

``ui/launch.py`` (what ``spp-viz app`` runs) calls ``start`` before Streamlit's own start; ``app.py`` calls ``wait``
before its imports, so the warm-up and the first page never import the same modules at once (two threads importing
one module cycle can see it half-initialised). Under ``streamlit run app.py`` or AppTest nothing starts it and
``wait`` returns at once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

_started = threading.Event()
_done = threading.Event()
_seconds: dict[str, float] = {}
log = logging.getLogger("spp_viz.warmup")


def _warm() -> None:
    t0 = time.perf_counter()
    try:
        # What the home page imports (app.py and the ui modules its first run reaches), then the default network.
        import ui.cache
        import ui.page
        import ui.sidebar_box  # noqa: F401
        from spp_viz import registry
        from spp_viz.devices import resolve_device
        from spp_viz.explain.level_views import classifier_reads  # noqa: F401
        from spp_viz.files import trim
        from spp_viz.plots.views import crop_warp_spp  # noqa: F401

        from .session import ModelChoice

        _seconds["imports"] = time.perf_counter() - t0
        trim()  # the cache folder within its budget from the start (SPP_VIZ_CACHE_MB may have been lowered)
        ui.cache.get_model(ModelChoice(registry.DEFAULT_MODEL, str(resolve_device("auto"))))
        _seconds["network"] = time.perf_counter() - t0 - _seconds["imports"]
        # Streamlit runs gc.collect(2) after every script run (runner.postScriptGC), holding the GIL: over the
        # 436,000 objects of the imports and the network that took 0.21 s of every click, for every student
        # (bench/gc_pause.py). Frozen, they are skipped by every later collection; what the pages make is collected.
        gc.collect()
        gc.freeze()
    except Exception:  # the first page then loads it itself and shows the error where a teacher sees it
        log.exception("warm-up failed; the first page will load the network itself")
    finally:
        _done.set()
    # On the server's log, where a teacher reads the URL: Streamlit's logging shows its own loggers only.
    imports, network = _seconds.get("imports", 0.0), _seconds.get("network", 0.0)
    print(f"  Warm-up done: imports {imports:.1f} s, default network {network:.1f} s.", flush=True)


def start() -> None:
    """Begin the warm-up on a thread of its own (once per process)."""
    if not _started.is_set():
        _started.set()
        threading.Thread(target=_warm, name="spp-viz-warm-up", daemon=True).start()


def wait(timeout: float = 120) -> None:
    """Wait for a warm-up in progress to finish (at once when none was started)."""
    if _started.is_set():
        _done.wait(timeout)


def seconds() -> dict[str, float]:
    """How long the warm-up's steps took ("imports", "network"), for the server panel and the bench."""
    return dict(_seconds)
