"""Shared fixtures. Tests never reach the network: AlexNet downloads are switched off."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

os.environ["SPP_VIZ_OFFLINE"] = "1"
# Activation indexes go to a fresh folder per test run, never to the user's ~/.cache.
os.environ["SPP_VIZ_CACHE"] = tempfile.mkdtemp(prefix="spp_viz_test_cache_")
os.environ.setdefault("SPP_VIZ_DEVICE", "auto")
# The models one test process holds, as a small server would: the suite's many networks otherwise stay held up to
# the default (a quarter of the machine's memory).
os.environ.setdefault("SPP_VIZ_MODEL_MEMORY_MB", "1500")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "assets" / "samples"


def plain(markdown: str) -> str:
    """What a Markdown value reads as on screen: ui.md's backslash escapes and autolink breakers undone."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def said(at) -> list[str]:
    """The page's errors, warnings, infos and successes as they read on screen."""
    return [plain(e.value) for e in [*at.error, *at.warning, *at.info, *at.success]]


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def default_model():
    from spp_viz.models import load_model

    return load_model()


@pytest.fixture
def chelsea_bytes() -> bytes:
    return (SAMPLES / "chelsea.jpg").read_bytes()


def clear_server_state(models: bool = False) -> None:
    """Empty what a server keeps between sessions: per-image results, shared heavy results, the queue, the detection
    sets; the models too when ``models`` (a test of loading them). AppTest shares all of it across the tests of one
    process, as a server shares it across sessions."""
    import streamlit as st

    from ui.cache import detection_sets, model_shelf, shared_results
    from ui.classroom import throttles
    from ui.jobs import server_queue

    st.cache_data.clear()
    for resource in (shared_results, server_queue, detection_sets, throttles, *([model_shelf] if models else [])):
        resource.clear()


@pytest.fixture
def fresh_streamlit_caches():
    """Each AppTest test starts from empty results, but keeps the models the server already holds, as a server
    does for a new session: loading EfficientNet-Lite0 takes 3.5 s, and a fresh shelf per test cost minutes."""
    clear_server_state()
    yield
    clear_server_state()


@pytest.fixture
def fresh_models():
    """For a test of loading models (load counts, the shelf's limit, a failed load): no model held before it."""
    clear_server_state(models=True)
    yield
    clear_server_state(models=True)


IMAGENET_SAMPLE = ROOT.parent / "shared" / "imagenet-sample"


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """../shared/imagenet-sample (500 real ImageNet photos); tests that need it skip in a user's fresh clone."""
    if not IMAGENET_SAMPLE.is_dir():
        pytest.skip("../shared/imagenet-sample is not beside this clone")
    return IMAGENET_SAMPLE


@pytest.fixture(scope="session")
def zf5_model():
    """ZF-5 with its seeded (untrained) weights: small and quick, for tests that compare code paths."""
    from spp_viz.models import load_model

    return load_model("zf5")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``spp-viz ARGS`` run by the command line's own ``main`` in this process, its output and exit status captured
    as a subprocess's would be. A subprocess per call imported torch and timm again (3 to 5 s each);
    tests/test_cli.py keeps one real ``python -m spp_viz`` run for the entry point itself."""
    import torch

    from spp_viz.serve import main

    threads = torch.get_num_threads()  # a command may set its own; the tests after it keep theirs
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 1
    finally:
        torch.set_num_threads(threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["spp-viz", *args], code, out.getvalue(), err.getvalue())


# `bash run.sh test --all` (a release) sets SPP_VIZ_FULL_FUZZ=1: Hypothesis then runs each fuzz test's full count.
FULL_FUZZ = os.environ.get("SPP_VIZ_FULL_FUZZ") == "1"


def fuzz_examples(release: int, suite: int) -> int:
    """Hypothesis examples for a fuzz test: ``release`` in a release run, ``suite`` in the everyday suite."""
    return release if FULL_FUZZ else suite


def pytest_collection_modifyitems(items):
    """Mark every test of a module that drives the app through AppTest (``-m "not apptest"`` leaves them out)."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "AppTest"):
            item.add_marker(pytest.mark.apptest)


def tiny_lab_model(folder: Path) -> str:
    """A small Lab network (8-channel first blocks, random weights) saved in ``folder``, named as the command line and
    the registry take it (``lab:PATH``): for tests of the plumbing, where no real network's answers are under test
    (Lite0's conv layers at five scales up to 1200 took 15 s a test)."""
    from dataclasses import asdict

    import torch

    from spp_viz.lab.models import LabConfig, build_lab_model
    from spp_viz.lab.store import save_model

    config = LabConfig(width=8)
    torch.manual_seed(0)
    path = save_model(
        build_lab_model(config), folder / "tiny.safetensors", {"kind": "synthetic", "config": asdict(config)}
    )
    return f"lab:{path}"
