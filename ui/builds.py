"""Networks built and weights downloaded on the server's queue: a network the server does not hold is built by one
of the queue's workers, never on a page's own thread, once per network however many sessions ask (they wait for the
same job), its size checked against ``SPP_VIZ_MAX_MODEL_MB`` before it queues; a download likewise.
"""

from __future__ import annotations

from spp_viz import registry
from spp_viz.budgets import check_model_size, megabytes
from spp_viz.external import download_pretrained, network_bytes
from spp_viz.i18n import _
from spp_viz.models import SPPNet

from .cache import choice_weights, model_shelf, shelved
from .job_queue import Job, current_job
from .jobs import run_heavy, server_queue, stopped
from .session import ModelChoice

BUILD_KIND = "Building a network"  # every build shares one running mean of its length: the queue's estimate


class BuildStopped(Exception):
    """This session clicked Stop while its network was built (or waited to be)."""


def build_stop_key(choice: ModelChoice) -> str:
    return f"build_stop_{choice.name}_{choice.device}_{choice.weights or ''}"


def build_model(choice: ModelChoice, *, show: bool = True) -> SPPNet:
    """The model of ``choice``: at once when the server holds it, else built through the queue (one job per model
    however many sessions ask), its size checked first (``registry.size``, no build).

    With ``show``, the place in the queue, the size, the progress and a Stop button are drawn where this is called
    (the sidebar); a Stop raises ``BuildStopped`` on this and later runs until ``ui.jobs.restart`` of its key.

    Raises:
        ValueError: for a refused name, or a network over the cap (``budgets.TooLarge``), before anything is built.
        BuildStopped: see ``show``.
    """
    shelf = model_shelf()
    if shelf.held(choice) or current_job() is not None:
        return shelved(choice)
    nbytes = registry.checked_size(choice.name)
    size = f" ({megabytes(nbytes)})" if nbytes else ""
    title = _("Building {model}").format(model=registry.title(choice.name)) + size

    weights = choice_weights(choice)  # this session's upload, read here: a worker has no session

    def work(job: Job) -> SPPNet:
        job.report(0.0, f"{title} ...")
        return shelved(choice, lambda fraction, text: job.report(fraction, f"{title}: {text}"), weights)

    if not show:
        job = server_queue().submit(BUILD_KIND, work, key=("build", choice))
        return job.future.result()
    stop = build_stop_key(choice)
    if stopped(stop):
        raise BuildStopped(title)
    return run_heavy(BUILD_KIND, work, join=("build", choice), title=title, stop=stop)


DOWNLOAD_KIND = "Downloading weights"


def download_stop_key(name: str) -> str:
    return f"download_stop_{name}"


def download(name: str, size: str = "") -> None:
    """Download ``name``'s pretrained weights on the server's queue (one download per network however many sessions
    ask; the file is the library's cache, shared once fetched), with its place, progress in MB and a Stop button
    drawn here. A network over the cap is refused before anything is fetched.

    Raises:
        ValueError: for a refused name or a network over the cap (``budgets.TooLarge``).
        WeightsError: when the download fails.
        BuildStopped: after this session clicked Stop (until ``ui.jobs.restart`` of its key).
    """
    check_model_size(name, network_bytes(name))
    title = _("Downloading {model}'s weights").format(model=name) + size
    stop = download_stop_key(name)
    if stopped(stop):
        raise BuildStopped(title)

    def work(job: Job) -> None:
        def show(got: int, total: int | None) -> None:
            got_mb = f"{got / 1e6:.1f}"
            text = _("{got} of {total} MB").format(got=got_mb, total=f"{total / 1e6:.1f}") if total else f"{got_mb} MB"
            job.report(min(1.0, got / total) if total else 0.0, f"{title}: {text}")

        download_pretrained(name, show)

    run_heavy(DOWNLOAD_KIND, work, join=("download", name), title=title, stop=stop)
