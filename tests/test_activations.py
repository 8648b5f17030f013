"""The activation index against a brute-force search; caching, extending and resuming; bad files; peaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from badfiles import photo, save

from spp_viz.explain.activation_index import ActivationIndex, build_index
from spp_viz.explain.activations import peaks
from spp_viz.gallery import GalleryItem, folder_items, gallery_view
from spp_viz.images import to_tensor
from spp_viz.models import load_model


@pytest.fixture(scope="module")
def zf5():
    return load_model("zf5", device="cpu")


@pytest.fixture
def gallery(tmp_path):
    sizes = [(300, 200), (200, 300), (300, 200), (250, 250), (400, 180), (180, 400)]  # two share a size: batched
    for i, (w, h) in enumerate(sizes):
        (tmp_path / f"img{i}.jpg").write_bytes(save(photo(w, h, seed=i), "JPEG", quality=92))
    return tmp_path


def conv5_of(model, items) -> dict[str, np.ndarray]:
    out = {}
    for item in items:
        with torch.inference_mode():
            out[item.name] = model.forward_features(to_tensor(gallery_view(item.read(), item.name)))[0].numpy()
    return out


def brute_force(maps: dict[str, np.ndarray], k: int, one_per_image: bool) -> list[list[float]]:
    """The top-k response values per channel over every image, by exhaustive search."""
    channels = next(iter(maps.values())).shape[0]
    best = []
    for ch in range(channels):
        values = []
        for conv5 in maps.values():
            flat = conv5[ch].ravel()
            values += [float(flat.max())] if one_per_image else sorted(flat.tolist(), reverse=True)[:k]
        best.append(sorted(values, reverse=True)[:k])
    return best


def check_against(index: ActivationIndex, maps: dict[str, np.ndarray], k: int, one_per_image: bool) -> None:
    """Values equal the brute force; every entry points at a real cell holding that value (ties may pick either)."""
    expected = brute_force(maps, k, one_per_image)
    for ch in range(index.channels):
        got = index.entries(ch)
        np.testing.assert_allclose([v for *_, v in got], expected[ch], rtol=1e-5, atol=1e-6, err_msg=f"channel {ch}")
        cells = [(index.names[i], y, x) for i, y, x, _ in got]
        assert len(cells) == len(set(cells))
        for (name, y, x), (*_, v) in zip(cells, got, strict=True):
            assert np.isclose(maps[name][ch, y, x], v, rtol=1e-5, atol=1e-6)
        if one_per_image:
            assert len({name for name, _, _ in cells}) == len(cells)  # at most one entry per image and channel


@pytest.mark.parametrize("one_per_image", [True, False])
def test_index_equals_brute_force(zf5, gallery, tmp_path, one_per_image):
    items = folder_items(gallery)
    report = build_index(zf5, items, top_k=4, one_per_image=one_per_image, batch_size=2, cache_dir=tmp_path / "c")
    check_against(report.index, conv5_of(zf5, items), 4, one_per_image)


def test_rebuild_reads_the_cache_and_adding_an_image_extends_it(zf5, gallery, tmp_path):
    cache = tmp_path / "c"
    items = folder_items(gallery)
    first = build_index(zf5, items[:5], top_k=3, cache_dir=cache)
    assert (first.from_cache, first.computed) == (False, 5)
    again = build_index(zf5, items[:5], top_k=3, cache_dir=cache)
    assert again.from_cache and again.computed == 0 and again.path == first.path
    np.testing.assert_array_equal(again.index.values, first.index.values)
    grown = build_index(zf5, items, top_k=3, cache_dir=cache)
    assert (grown.from_cache, grown.reused, grown.computed) == (False, 5, 1)
    check_against(grown.index, conv5_of(zf5, items), 3, True)
    other = build_index(zf5, items, top_k=5, cache_dir=cache)  # other settings: never mixed with k = 3
    assert other.computed == 6


def test_interrupted_build_resumes_from_its_checkpoint(zf5, gallery, tmp_path):
    cache = tmp_path / "c"
    items = folder_items(gallery)
    calls = []

    def stop_after_four(fraction, text):
        calls.append(text)
        if text.startswith("4 of 6"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(zf5, items, top_k=3, batch_size=1, cache_dir=cache, progress=stop_after_four, checkpoint_every=2)
    assert list(cache.glob("*-partial-*.npz"))
    resumed = build_index(zf5, items, top_k=3, batch_size=1, cache_dir=cache)
    assert resumed.reused == 4 and resumed.computed == 2
    assert not list(cache.glob("*-partial-*.npz"))  # the finished index replaces its checkpoint
    fresh = build_index(zf5, items, top_k=3, cache_dir=None)
    np.testing.assert_allclose(resumed.index.values, fresh.index.values, rtol=1e-5)


def test_unreadable_files_are_skipped_and_listed(zf5, gallery, tmp_path):
    (gallery / "broken.jpg").write_bytes(b"not a jpeg")
    (gallery / "empty.png").write_bytes(b"")
    (gallery / "notes.txt").write_text("ignored: not an image suffix")
    report = build_index(zf5, folder_items(gallery), top_k=2, cache_dir=tmp_path / "c")
    assert sorted(name for name, _ in report.skipped) == ["broken.jpg", "empty.png"]
    assert len(report.index.hashes) == 6
    assert all("cannot" in reason or "empty" in reason or "not an image" in reason for _, reason in report.skipped)
    assert build_index(zf5, folder_items(gallery), top_k=2, cache_dir=tmp_path / "c").from_cache


def test_bytes_items_duplicates_and_rank(zf5, tmp_path):
    data = save(photo(260, 200, seed=9), "PNG")
    items = [GalleryItem("a.png", data=data), GalleryItem("again.png", data=data)]
    report = build_index(zf5, items, top_k=2, cache_dir=None)
    assert report.index.names == ["a.png"]  # same bytes: one image
    v = report.index.values[0, 0]
    assert report.index.rank_of(0, v + 1) == 1 and report.index.rank_of(0, v - 1e-3) == 2
    with pytest.raises(ValueError, match="top-k"):
        build_index(zf5, items, top_k=0, cache_dir=None)
    with pytest.raises(ValueError, match="no folder"):
        folder_items(tmp_path / "missing")


def test_peaks_are_separated_and_positive():
    fmap = np.zeros((6, 6), np.float32)
    fmap[1, 1], fmap[1, 2], fmap[4, 4], fmap[0, 5] = 9, 8, 7, -1
    assert peaks(fmap, count=3) == [(1, 1, 9.0), (4, 4, 7.0)]  # (1, 2) is next to (1, 1); nothing else is > 0
    assert peaks(fmap, count=3, radius=0)[:2] == [(1, 1, 9.0), (1, 2, 8.0)]


def test_top_patches_are_field_crops_and_gone_images_say_so(zf5, gallery, tmp_path, default_model):
    from spp_viz.explain.activations import default_patch_kind, patch_box, top_patches
    from spp_viz.geometry import feature_geometry

    index = build_index(zf5, folder_items(gallery), top_k=3, cache_dir=None).index
    channel = next(c for c in range(zf5.channels) if index.values[c, 0] > 0)
    patches = top_patches(index, channel, zf5)
    assert 1 <= len(patches) <= 3 and patches[0][1].startswith("#1 ")
    i, y, x, _ = index.entries(channel)[0]
    x0, y0, x1, y1 = patch_box(feature_geometry(zf5, index.input_hw[i]), y, x, "field")
    assert patches[0][0].size == (round(x1) - round(x0), round(y1) - round(y0))
    assert max(patches[0][0].size) <= 139  # ZF-5's conv5 field
    (gallery / index.names[i]).unlink()
    assert top_patches(index, channel, zf5)[0][1].endswith("(gone)")
    assert default_patch_kind(feature_geometry(zf5, (224, 224))) == "field"
    assert default_patch_kind(feature_geometry(default_model, (224, 224))) == "context"  # 851-pixel field
    with pytest.raises(ValueError, match="patch kind"):
        patch_box(feature_geometry(zf5, (224, 224)), 0, 0, "everything")


def test_tied_channels_counts_equal_values_within_a_channels_top_k():
    from spp_viz.explain.activations import tied_channels

    index = ActivationIndex(
        "m",
        3,
        True,
        224,
        ["a", "b", "c"],
        ["a", "b", "c"],
        ["", "", ""],
        [(224, 224)] * 3,
        values=np.array([[6.0, 6.0, 5.0], [6.0, 5.9996, 5.0], [6.0, 5.9, -np.inf]], np.float32),
        image=np.array([[0, 1, 2], [0, 1, 2], [0, 1, -1]], np.int32),
        ys=np.zeros((3, 3), np.int32),
        xs=np.zeros((3, 3), np.int32),
    )
    assert tied_channels(index) == 2  # 6.0 = 6.0; 6.0 = 5.9996 rounded; the empty slot of channel 2 is no tie
    assert tied_channels(index, decimals=4) == 1


def test_the_index_ranks_responses_before_relu6(default_model, tmp_path):
    """EfficientNet-Lite0's ReLU6 makes most top responses 6.0; the index stores the batch-norm output instead."""
    from conftest import SAMPLES

    from spp_viz.explain.activations import tied_channels

    items = folder_items(SAMPLES)
    report = build_index(default_model, items, cache_dir=None)
    assert report.index.values.max() > 6.5  # not clipped
    clipped = {}
    for item in items:
        with torch.inference_mode():
            clipped[item.name] = default_model.forward_features(to_tensor(gallery_view(item.read(), item.name)))
    top1_clipped = torch.stack([c[0].amax(dim=(1, 2)) for c in clipped.values()]).amax(0)
    assert int((top1_clipped == 6.0).sum()) > 100  # the problem the index avoids
    assert tied_channels(report.index) <= 0.05 * report.index.channels
    np.testing.assert_allclose(np.clip(report.index.values[:, 0], 0, 6), top1_clipped.numpy(), rtol=1e-5, atol=1e-5)
