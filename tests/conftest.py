"""Shared fixtures. Tests never reach the network: AlexNet downloads are switched off."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

os.environ["SPP_VIZ_OFFLINE"] = "1"
# Activation indexes go to a fresh folder per test run, never to the user's ~/.cache.
os.environ["SPP_VIZ_CACHE"] = tempfile.mkdtemp(prefix="spp_viz_test_cache_")
os.environ.setdefault("SPP_VIZ_DEVICE", "auto")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "assets" / "samples"


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


@pytest.fixture
def fresh_streamlit_caches():
    """AppTest shares Streamlit's caches across tests in one process: each test starts from empty ones."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()


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
