"""The pages' heavy computations, each through the server's queue (ui.jobs) with its progress reported there.

A page calls one function here per result. Those kept for every session (keyed on what they depend on) take
``start``: with ``start=False`` the function returns the kept result, or None where nobody has asked for it yet, and
the page then offers a button instead of starting minutes of work on every visit. A Lab training run is this
session's own: ``last_lab_training`` gives it back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import streamlit as st

from spp_viz import registry
from spp_viz.detection.compare import DetectionComparison, compare_detectors
from spp_viz.detection.detector import DetectorConfig, load_detector
from spp_viz.detection.evaluate import ModeReport, evaluate_detector
from spp_viz.detection.features import FeatureCache, detection_backbone
from spp_viz.detection.windows import ModeResult, rcnn_mode
from spp_viz.explain.activation_index import BuildReport, build_index
from spp_viz.explain.attribution import METHOD_TITLES, Attribution
from spp_viz.explain.attribution import run as run_attribution
from spp_viz.explain.view_accuracy import view_accuracy
from spp_viz.explain.view_summary import ViewsSummary
from spp_viz.explain.views import make_views
from spp_viz.explain.views import scale_sweep as sweep_views
from spp_viz.gallery import GalleryItem
from spp_viz.images import to_tensor
from spp_viz.lab.experiments import ExperimentResults, run_experiments
from spp_viz.lab.models import LabConfig
from spp_viz.lab.store import NotSaved
from spp_viz.lab.train import EpochLog, TrainResult, run_lab
from spp_viz.models import SPPNet
from spp_viz.progress import Progress

from .cache import attributions as light_attributions
from .cache import detection_sets, get_model, model_and_image
from .jobs import Job, finished_result, run_heavy
from .session import ModelChoice, context


def _job_progress(job: Job, what: str) -> Progress:
    """The library's progress callback for a job, its text led by what runs ("R-CNN mode: 3 of 64 windows")."""
    return lambda fraction, text: job.report(fraction, f"{what}: {text}")


def _image_key(kind: str, *rest) -> tuple:
    """A kept result's key: what it is, this session's model and image, and its own settings."""
    subject = context().subject
    return (kind, subject.model, subject.image.digest, *rest)


def attributions(
    method: str, target: int, noise_tunnel: bool, short_side: int = 256, *, start: bool = True
) -> dict[str, Attribution] | None:
    """One attribution method on the three views. GradCAM (one forward and one backward pass) runs in the page's own
    run, cached on the image; the slow methods (Integrated Gradients, SmoothGrad, Occlusion) go through the queue."""
    if method == "gradcam":
        return light_attributions(context().subject, short_side, method, target, noise_tunnel)
    key = _image_key("attributions", short_side, method, target, noise_tunnel)
    if not start:
        return finished_result(key)
    model, img = model_and_image(context().subject)
    views = make_views(img, model.input_size, short_side)
    title = METHOD_TITLES[method] + (" + SmoothGrad" if noise_tunnel and method == "integrated_gradients" else "")

    def work(job: Job) -> dict[str, Attribution]:
        out = {}
        for k, (name, view) in enumerate(views.items()):
            job.report(k / len(views), f"{title}: view {k + 1} of {len(views)}")
            out[name] = run_attribution(method, model, to_tensor(view.image), target, noise_tunnel=noise_tunnel)
        return out

    return run_heavy(title, work, key=key)


def scale_sweep(class_index: int, sides: Sequence[int], *, start: bool = True) -> dict[str, list[float]] | None:
    """The probability of one class against the input size, for the three views."""
    key = _image_key("sweep", class_index, tuple(sides))
    if not start:
        return finished_result(key)
    model, img = model_and_image(context().subject)

    def work(job: Job) -> dict[str, list[float]]:
        return sweep_views(model, img, class_index, sides, progress=_job_progress(job, "Scale sweep"))

    return run_heavy("Scale sweep", work, key=key)


def rcnn(boxes: np.ndarray, *, start: bool = True) -> ModeResult | None:
    """R-CNN mode on these windows of the current image (timed on a worker, one heavy job at a time per worker)."""
    key = _image_key("rcnn", boxes.tobytes())
    if not start:
        return finished_result(key)
    model, img = model_and_image(context().subject)

    def work(job: Job) -> ModeResult:
        return rcnn_mode(model, img, boxes, progress=_job_progress(job, "R-CNN mode"))

    return run_heavy("R-CNN mode", work, key=key)


def gallery_index(model: SPPNet, items: list[GalleryItem]) -> BuildReport:
    """The gallery's activation index (stored on disk by the library, so a second build only reads it)."""

    def work(job: Job) -> BuildReport:
        return build_index(model, items, progress=_job_progress(job, "Indexing conv5"))

    return run_heavy("Index build", work)


def views_bench(model: SPPNet, items: list[GalleryItem], short_side: int, multi: bool) -> ViewsSummary:
    """Crop, warp and full-image accuracy over a folder of labelled photos; kept for every session per model, files
    (name, size, time) and settings."""

    def work(job: Job) -> ViewsSummary:
        return view_accuracy(model, items, short_side, multi, progress=_job_progress(job, "Views")).summary()

    stamp = tuple((i.name, *_stat(i.path)) for i in items)
    return run_heavy("Views over a folder", work, key=("views-bench", context().model, stamp, short_side, multi))


def _stat(path: Path | None) -> tuple[int, float]:
    """(size, modification time) of a file, so a changed folder is measured again."""
    try:
        info = path.stat() if path else None
    except OSError:
        info = None
    return (info.st_size, info.st_mtime) if info else (0, 0.0)


@dataclass(frozen=True)
class LabRun:
    """What the Lab page shows of this session's last training run (the network itself stays on disk, not in the
    session: a class of sessions each holding a model would fill the server's memory). On a full disk the model's
    file stays in the session instead (``unsaved``), for its download."""

    path: Path
    history: list[EpochLog]
    test: dict[str, float | None]
    seconds: float
    best_epoch: int  # 0: no early stopping, the last epoch's weights
    epochs: int  # planned
    unsaved: bytes | None = field(default=None, repr=False)  # the model's file when the disk could not take it


_LAB_RUN = "ui.heavy.lab_run"  # this session's last LabRun, in st.session_state


def lab_training(
    dataset: str,
    config: LabConfig,
    *,
    source: tuple[str | dict, str],
    base: str,
    base_weights: str | None,
    lab_dir: Path,
    on_update: Callable[[list[EpochLog]], None],
) -> LabRun:
    """Train in the Lab on ``source`` (a folder or an archive's classes, and its name); ``on_update`` gets the epochs
    so far (for the live chart), in the page's own run. The run is this session's last (``last_lab_training``)."""

    def work(job: Job) -> tuple[Path, TrainResult]:
        folder, name = source
        return run_lab(
            dataset, config, folder=folder, source_name=name, base=base, base_weights=base_weights, lab_dir=lab_dir,
            progress=job.report, on_epoch=job.updates.append,
        )  # fmt: skip

    try:
        path, result, unsaved = *run_heavy("Lab training", work, on_update=on_update), None
    except NotSaved as e:  # trained, but the disk is full: the file goes to the student instead
        path, result, unsaved = lab_dir / e.name, e.result, e.data
    run = LabRun(path, result.history, result.test, result.seconds, result.best_epoch, result.config.epochs, unsaved)
    st.session_state[_LAB_RUN] = run
    if unsaved is None:
        own_lab_models().append(path)
    return run


def own_lab_models() -> list[Path]:
    """The Lab models this session trained: only its own sidebar offers them, until the teacher shares one."""
    return st.session_state.setdefault("ui.heavy.lab_own", [])


def share_lab_model(path: Path, key: str, shared: Path) -> Path:
    """Move this session's Lab model into the folder every session's sidebar lists, on the teacher's passphrase
    (5 tries a minute per session).

    Raises:
        ValueError: a wrong passphrase, or too many tries.
    """
    from spp_viz.classroom.access import Throttled, is_teacher
    from spp_viz.settings import teacher_key

    from .classroom import session_key, throttles

    try:
        throttles()["passphrase"].attempt(session_key(), "passphrase attempts")
    except Throttled as e:
        raise ValueError(str(e)) from e
    if not is_teacher(key, teacher_key()):
        raise ValueError("that is not the teacher's passphrase")
    target = shared / path.name
    os.replace(path, target)
    models = own_lab_models()
    models[:] = [target if p == path else p for p in models]
    run = last_lab_training()
    if run is not None and run.path == path:
        st.session_state[_LAB_RUN] = replace(run, path=target)
    return target


def last_lab_training() -> LabRun | None:
    """This session's last finished Lab training run, or None."""
    return st.session_state.get(_LAB_RUN)


def lab_comparison(config: LabConfig, seeds: tuple[int, ...]) -> ExperimentResults:
    """The Lab's five networks on the same data, once per seed; kept for every session per configuration."""

    def work(job: Job) -> ExperimentResults:
        return run_experiments(config, seeds, progress=job.report)

    return run_heavy("Lab comparison", work, key=("lab-comparison", config, seeds))


def conv_layers_choice() -> ModelChoice:
    """The sidebar's model, or for a pyramid-head model the network whose conv layers it shares: the detector reads
    conv layers only, so the SPP-net and Lite0 train the same detector on the same cached features."""
    choice = context().subject.model
    base = registry.base_of(choice.name)
    return replace(choice, name=base, weights=None) if base is not None else choice


def detection_lab(
    data: str, counts: tuple[int, int], modes: tuple[str, ...], config: DetectorConfig, *, start: bool = True
) -> DetectionComparison | None:
    """Train and test the paper's detector in each mode, on this session's backbone (the sidebar's model, cut at
    stride 16). Window features go to the server's disk cache, so a second run of the same data only trains."""
    choice = conv_layers_choice()
    key = ("detection-lab", choice, data, counts, modes, config)
    if not start:
        return finished_result(key)
    model = get_model(choice)  # here, in the page's run: a worker thread has no Streamlit context for the cache
    train, test = detection_sets(data, counts)

    def work(job: Job) -> DetectionComparison:
        backbone = detection_backbone(model, config.levels)
        return compare_detectors(backbone, train, test, modes, config, FeatureCache(), job.report)

    return run_heavy("Detector training", work, key=key)


def detection_test(data: bytes, source: str, counts: tuple[int, int]) -> ModeReport:
    """A saved detector (a file's bytes) on the test set; ValueError when it does not fit this backbone or data."""
    detector = load_detector(data)
    model = get_model(conv_layers_choice())
    _, test = detection_sets(source, counts)

    def work(job: Job) -> ModeReport:
        backbone = detection_backbone(model, detector.config.levels)
        return evaluate_detector(detector, backbone, test, FeatureCache(), job.report)

    return run_heavy("Detector test", work)
