"""Property: whatever bytes a student uploads, load_image returns an RGB image or raises ImageError, nothing else.

Hypothesis mutates, truncates and splices valid JPEG, PNG, GIF, WebP, BMP and TIFF files (EXIF, 16-bit, CMYK,
palette, animation). Every input that ever failed is kept in tests/regressions/ and replayed first.
"""

from __future__ import annotations

import hashlib
import io
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from badfiles import exif_rotated_jpeg, photo, save
from conftest import fuzz_examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from spp_viz.images import ImageError, load_image

REGRESSIONS = Path(__file__).resolve().parent / "regressions"


@cache
def seeds() -> dict[str, bytes]:
    """Small valid files of every format and mode the uploader accepts."""
    base = photo(48, 40)
    frames = [photo(32, 32, seed=i) for i in range(3)]
    gif, webp_anim = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(webp_anim, format="WEBP", save_all=True, append_images=frames[1:], duration=50)
    gray16 = Image.fromarray((np.linspace(0, 65535, 40 * 48).reshape(40, 48)).astype(np.uint16))
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    exif = Image.Exif()
    exif[0x0112] = 8
    return {
        "jpeg": save(base, "JPEG", quality=80),
        "jpeg_progressive": save(base, "JPEG", progressive=True),
        "jpeg_exif": exif_rotated_jpeg(),
        "jpeg_cmyk": save(base.convert("CMYK"), "JPEG"),
        "png": save(base, "PNG"),
        "png_16bit": save(gray16, "PNG"),
        "png_palette": save(base.convert("P"), "PNG"),
        "png_rgba": save(rgba, "PNG"),
        "gif_animated": gif.getvalue(),
        "webp": save(base, "WEBP"),
        "webp_animated": webp_anim.getvalue(),
        "bmp": save(base, "BMP"),
        "tiff": save(base, "TIFF", exif=exif),
        "tiff_16bit": save(gray16, "TIFF"),
    }


def check(data: bytes) -> None:
    try:
        img = load_image(data, name="upload")
    except ImageError as e:
        assert str(e)  # a message a student can read
        return
    except Exception:
        # Keep the input that broke the intake: it is replayed by test_regressions from now on.
        REGRESSIONS.mkdir(exist_ok=True)
        (REGRESSIONS / f"{hashlib.sha1(data).hexdigest()[:16]}.bin").write_bytes(data)
        raise
    assert img.mode == "RGB" and min(img.size) >= 1


@st.composite
def damaged(draw) -> bytes:
    data = bytearray(seeds()[draw(st.sampled_from(sorted(seeds())))])
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "splice", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if how == "truncate":
            data = data[:i]
        elif how == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "splice":
            other = seeds()[draw(st.sampled_from(sorted(seeds())))]
            j = draw(st.integers(0, len(other)))
            data = data[:i] + other[j:]
        elif how == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i : i + draw(st.integers(1, 64))]
    return bytes(data)


def test_every_seed_loads():
    for name, data in seeds().items():
        img = load_image(data, name=name)
        assert img.mode == "RGB", name


def test_jpeg_cut_inside_its_header_is_refused_with_a_message():
    jpeg = save(photo(320, 240), "JPEG", exif=Image.Exif())
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(jpeg[:600], name="cut.jpg")


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*")), ids=lambda p: p.name)
def test_regressions(path):
    check(path.read_bytes())


@pytest.mark.fuzz
@settings(
    max_examples=fuzz_examples(2000, 300), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(damaged())
def test_damaged_uploads_load_or_are_refused(data):
    check(data)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(200, 100), deadline=None, database=None)
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_or_load(data):
    check(data)
