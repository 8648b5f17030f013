"""Shared fixtures. Tests never reach the network: AlexNet downloads are switched off."""

from __future__ import annotations

import io
import os
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
