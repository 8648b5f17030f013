"""The server's warm-up: import what the home page needs, load the default network into the shelf and freeze the
objects made so far out of the garbage collector's sight, so that no student waits for them and no click pays a full
collection over them; and the start-up messages a teacher reads in the server's log.

Every way of starting the app gets it once per process: ``ui/launch.py`` (what ``spp-viz app``, ``spp-viz serve``
and a container run) calls ``start`` before Streamlit's own start, while the first browser loads its page;
``streamlit run app.py`` has app.py call ``start`` in the first session's run. ``app.py`` then calls ``wait`` before
its imports, so the warm-up and a page never import the same modules at once (two threads importing one module cycle
can see it half-initialised). AppTest starts none: its runs come from no browser.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time

_started = threading.Event()
_done = threading.Event()
_seconds: dict[str, float] = {}
log = logging.getLogger("spp_viz.warmup")


def _warm() -> None:
    t0 = time.perf_counter()
    try:
        # What the home page imports (app.py and the ui modules its first run reaches), then the default network. And
        # pandas: Plotly reads it from sys.modules without importing it (to check whether a figure's data is a Series),
        # so a figure built while another page's first `import pandas` is half done fails with "partially initialized
        # module 'pandas'" (7 of 30 students at once on a replica no one had opened). Imported here, it never is.
        import pandas  # noqa: F401

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
        # A full collection walks every object; frozen, the 436,000 of the imports and the network are skipped by
        # Python's own collections (Streamlit's after every run, 0.21 s each, is off: .streamlit/config.toml).
        gc.collect()
        gc.freeze()
    except Exception:  # the first page then loads it itself and shows the error where a teacher sees it
        log.exception("warm-up failed; the first page will load the network itself")
    finally:
        _done.set()
    # On the server's log, where a teacher reads the URL: Streamlit's logging shows its own loggers only.
    imports, network = _seconds.get("imports", 0.0), _seconds.get("network", 0.0)
    print(f"  Warm-up done: imports {imports:.1f} s, default network {network:.1f} s.", flush=True)
    _class_retention()


def _class_retention() -> None:
    """Open the class database at the server's start: its classes past their retention are deleted now, and every
    hour while the server runs (``spp_viz.classroom.retention``). A database that is down waits for the Class page."""
    try:
        import ui.classroom

        ui.classroom.class_store()
    except Exception as e:  # noqa: BLE001  the Class page says so to whoever opens it; every other page works
        log.warning("the class database could not be opened at start (%s)", e)


_start_lock = threading.Lock()


def start() -> None:
    """Begin the warm-up on a thread of its own and say the start-up messages (once per process, whoever asks)."""
    with _start_lock:
        if _started.is_set():
            return
        _started.set()
    from spp_viz.settings import TEACHER_KEY_ENV, keep_downloads_in_cache, teacher_key

    keep_downloads_in_cache()  # before the warm-up imports timm (huggingface_hub reads its folder once)
    if not os.environ.get(TEACHER_KEY_ENV):  # the Class page's passphrase, where the teacher reads the address
        print(f"  Class mode: the teacher's passphrase is {teacher_key()} (set {TEACHER_KEY_ENV} to choose one).",
              flush=True)  # fmt: skip
    threading.Thread(target=_warm, name="spp-viz-warm-up", daemon=True).start()


def started() -> bool:
    return _started.is_set()


def wait(timeout: float = 120) -> None:
    """Wait for a warm-up in progress to finish (at once when none was started)."""
    if _started.is_set():
        _done.wait(timeout)


def seconds() -> dict[str, float]:
    """How long the warm-up's steps took ("imports", "network"), for the server panel and the bench."""
    return dict(_seconds)
