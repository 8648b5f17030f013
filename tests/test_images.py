"""Image intake: every bad file gives ImageError with a readable message; odd but valid files load as RGB."""

from __future__ import annotations

import numpy as np
import pytest
from badfiles import corpus, exif_rotated_jpeg, photo, save

from spp_viz.images import MAX_SIDE, ImageError, load_image, resize_short_side, samples, to_tensor

CORPUS = corpus()


@pytest.mark.parametrize("name", [n for n in CORPUS if n.endswith("!")])
def test_bad_files_raise_image_error(name):
    with pytest.raises(ImageError) as info:
        load_image(CORPUS[name], name=name)
    message = str(info.value)
    assert name in message and "Traceback" not in message and len(message) < 300


@pytest.mark.parametrize("name", [n for n in CORPUS if not n.endswith("!")])
def test_odd_files_load_as_rgb(name):
    img = load_image(CORPUS[name])
    assert img.mode == "RGB" and max(img.size) <= MAX_SIDE and min(img.size) >= 16


def test_messages_say_what_is_wrong():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="not an image"):
        load_image(CORPUS["text_named_jpg!"])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(CORPUS["truncated_jpeg!"])
    with pytest.raises(ImageError, match="too many pixels|MP"):
        load_image(CORPUS["png_claims_100000x100000!"])
    with pytest.raises(ImageError, match="at least 16 pixels"):
        load_image(CORPUS["one_pixel!"])
    with pytest.raises(ImageError, match="too thin"):
        load_image(CORPUS["panorama_20000x20!"])
    with pytest.raises(ImageError, match="no image file"):
        load_image("/nonexistent/photo.jpg")


def test_exif_orientation_applied():
    assert load_image(exif_rotated_jpeg()).size == (200, 300)


def test_transparent_becomes_white_and_16bit_keeps_range():
    rgba = np.asarray(load_image(CORPUS["rgba_transparent"]))
    assert rgba.min() >= 250
    gray = np.asarray(load_image(CORPUS["png_16bit"]))
    assert gray.min() < 5 and gray.max() > 250  # the full 16-bit range maps onto 0..255, not all white


def test_large_image_is_shrunk_and_says_so():
    img = load_image(CORPUS["huge_valid_jpeg"])
    assert max(img.size) == MAX_SIDE and img.info["downsized_from"] == (6000, 4000)
    assert abs(img.width / img.height - 1.5) < 0.01
    # PNG (no JPEG draft mode to shrink while decoding), stored fast: zlib at level 9 took 8 s for 24 MP.
    small = load_image(save(photo(6000, 4000), "PNG", compress_level=1), max_side=500)
    assert small.size == (500, 333) and small.info["downsized_from"] == (6000, 4000)
    assert "downsized_from" not in load_image(save(photo(), "PNG")).info


def test_path_and_bytes_agree():
    s = samples()[0]
    assert np.array_equal(np.asarray(load_image(s.path)), np.asarray(load_image(s.path.read_bytes())))


def test_views():
    img = photo(451, 300)
    assert resize_short_side(img, 256).size == (385, 256)
    t = to_tensor(img)
    assert t.shape == (1, 3, 300, 451) and t.min() >= 0.0 and t.max() <= 1.0


def test_samples_are_listed_with_licences():
    listed = samples()
    assert len(listed) >= 3 and sum(bool(s.classes) for s in listed) >= 2
    for s in listed:
        assert s.path.is_file() and s.licence and s.credit
        load_image(s.path)
