"""One bounded queue per server for heavy work, so that a class shares the CPU fairly.

Heavy jobs (R-CNN mode, the scale sweep, Integrated Gradients / SmoothGrad / Occlusion, Lab training and the Lab's
comparison, index builds) run on ``SPP_VIZ_WORKERS`` worker threads (default: half the cores, at least one), in the
order they were asked for. A student sees their place in the queue and an estimate; a job whose session has gone
is dropped before it starts, and one whose page stopped waiting (a rerun, a Stop button) is cancelled at its next
progress report. Light work (feature maps, pyramid redraws, GradCAM) never enters the queue.

``ui.job_queue.JobQueue`` knows nothing of Streamlit (tests drive it with threads); ``run_heavy`` here is the page
side.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import streamlit as st

from spp_viz.i18n import _

from .cache import shared_results
from .job_queue import Job, JobQueue, QueueFull, default_workers


@st.cache_resource(show_spinner=False)
def server_queue() -> JobQueue:
    """The one queue of this server process."""
    return JobQueue(default_workers())


def _session_alive() -> Callable[[], bool]:
    """A test of whether this browser session is still connected (always True where no server runs, as in AppTest)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return lambda: True
    runtime, session_id = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session_id)


def finished_result(key: Hashable) -> Any | None:
    """The result a ``run_heavy`` with this key finished, for any session, or None when none is kept."""
    return shared_results().get(key)


def run_heavy(
    kind: str,
    fn: Callable[[Job], Any],
    *,
    on_update: Callable[[list[Any]], None] | None = None,
    key: Hashable | None = None,
    join: Hashable | None = None,
    title: str | None = None,
    stop: str | None = None,
) -> Any:
    """Run ``fn(job)`` through the server's queue and wait for it, showing the place in the queue and progress.

    ``fn`` reports with ``job.report(fraction, text, update)``; ``on_update`` is called here, in the page's own run,
    with every update so far whenever one arrives (a live training chart). With ``key``, a finished result is kept
    for every session and returned at once next time (``finished_result``). With ``join``, the job is shared: a
    session asking while the job of that key waits or runs waits for the same job (a network's build, a download).
    ``title`` is what the student reads (default ``kind``, which also names the jobs whose mean length estimates the
    wait). With ``stop``, a Stop button of that key is shown; a click stops this session's wait (``stopped`` then says
    so) and the job, unless another session waits for it too. Exceptions of ``fn`` are raised here.
    """
    store = shared_results()
    if key is not None and (hit := store.get(key)) is not None:
        return hit
    title = title or kind
    queue, alive = server_queue(), _session_alive()
    try:
        job = queue.submit(kind, fn, alive, key=join)
    except QueueFull as e:
        st.error(
            _("**The server is too busy to start {title} now** ({why}). Try again in a minute.").format(
                title=title, why=e
            )
        )
        st.stop()
    box, bar, button = st.empty(), st.empty(), st.empty()
    if stop is not None:
        button.button(_("Stop"), key=stop, on_click=_stop, args=(stop,))
    seen = 0
    try:
        while not job.done:
            place = queue.position(job)
            if place:
                wait = queue.estimate(job)
                box.info(
                    _("**{title}** waits for its turn: place {place} in the queue, about {seconds} s.").format(
                        title=title, place=place, seconds=f"{wait:.0f}"
                    )
                )
            else:
                box.empty()
                bar.progress(job.fraction, text=job.text or f"{title} ...")
                if on_update is not None and len(job.updates) > seen:
                    seen = len(job.updates)
                    on_update(list(job.updates))
            time.sleep(0.2)
        result = job.future.result()
    finally:
        if not job.done:  # this run stopped waiting (a rerun, a Stop button, a closed tab)
            queue.cancel(job, alive)
        box.empty()
        bar.empty()
        button.empty()
    if key is not None:
        store.put(key, result)
    return result


_STOPPED = "ui.jobs.stopped"  # the Stop buttons clicked in this session, by key, until ``restart``


def _stop(key: str) -> None:
    st.session_state.setdefault(_STOPPED, set()).add(key)


def stopped(key: str) -> bool:
    """Whether this session clicked the Stop button of ``key`` (and has not asked to start again)."""
    return key in st.session_state.get(_STOPPED, set())


def restart(key: str) -> None:
    """Forget a Stop click: the next ``run_heavy`` with this stop key starts its job again."""
    st.session_state.get(_STOPPED, set()).discard(key)


@contextlib.contextmanager
def stop_button(label: str, key: str) -> Iterator[None]:
    """A Stop button shown while the body runs a page's own long work (a training run): its click starts a new run
    of the page, which ends the work at its next progress report; ``st.session_state[key]`` then says it was
    clicked, for the message the next run shows."""
    slot = st.empty()
    slot.button(label, key=key)
    try:
        yield
    finally:
        slot.empty()
