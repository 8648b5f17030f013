"""Retention kept: classes past their "deleted after" date go from the database at the server's start and every hour
while it runs (``ClassStore.find`` and the export already ignore them from the moment they expire), and by hand with
``spp-viz class purge``."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("spp_viz.classroom")
EVERY_S = 3600.0
_started: set[str] = set()
_lock = threading.Lock()


def keep_retention(store, every_s: float = EVERY_S) -> threading.Event | None:  # noqa: ANN001  (a ClassStore)
    """Purge ``store`` now and every ``every_s`` seconds on a thread of its own, once per database in a process.
    Returns the event that stops the sweeps (set it: they end, and the database may be swept again), or None when
    sweeps of that database run already. A database that is down is tried again at the next sweep."""
    with _lock:
        if store.url in _started:
            return None
        _started.add(store.url)
    stop = threading.Event()

    def sweep() -> None:
        try:
            while True:
                try:
                    gone = store.purge()
                    if gone:
                        log.info("retention: %d class(es) past their date deleted", gone)
                except Exception as e:  # noqa: BLE001  a database down now is tried again at the next sweep
                    log.warning("retention: the class database could not be purged (%s); trying again later", e)
                if stop.wait(every_s):
                    return
        finally:
            with _lock:
                _started.discard(store.url)

    threading.Thread(target=sweep, name="spp-viz-retention", daemon=True).start()
    return stop
