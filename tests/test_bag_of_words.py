"""The shuffle test: tiles are a permutation of the photo, k = 1 changes nothing, and the bench's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spp_viz.explain.bag_of_words import cosine, shuffle_bench, shuffle_test, shuffle_tiles, tile_grid


def _photo(w: int = 101, h: int = 77) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("k", [2, 3, 4, 6, 8])
def test_tiles_are_a_permutation_of_the_original(k):
    img = _photo()
    base, shuffled, perm = shuffle_tiles(img, k, seed=5)
    assert base.size == (101 - 101 % k, 77 - 77 % k) and shuffled.size == base.size
    assert sorted(perm.tolist()) == list(range(k * k)) and not (perm == np.arange(k * k)).all()
    a, b = np.asarray(base), np.asarray(shuffled)
    th, tw = a.shape[0] // k, a.shape[1] // k

    def tile(arr, t):  # tile t, row by row
        r, c = divmod(t, k)
        return arr[r * th : (r + 1) * th, c * tw : (c + 1) * tw]

    for j, src in enumerate(perm):  # place j holds the original's tile perm[j], pixel for pixel
        np.testing.assert_array_equal(tile(b, j), tile(a, int(src)))
    assert sorted(a.reshape(-1, 3).tolist()) == sorted(b.reshape(-1, 3).tolist())  # the same pixels
    again = shuffle_tiles(img, k, seed=5)
    assert (again[2] == perm).all()  # the seed decides


def test_one_tile_gives_the_identical_image_and_every_cosine_is_one(zf5_model):
    img = _photo()
    base, shuffled, perm = shuffle_tiles(img, 1)
    assert perm.tolist() == [0] and np.array_equal(np.asarray(base), np.asarray(img))
    assert np.array_equal(np.asarray(shuffled), np.asarray(img))
    result = shuffle_test(zf5_model, img, 1)
    assert result.cosines == pytest.approx(dict.fromkeys((1, 2, 4, 6), 1.0)) and result.same_top1
    assert "the prediction stayed" in result.sentence()


def test_cosine_against_numpy():
    a, b = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([2.0, 1.0, 3.0])
    ref = float(np.dot(a.numpy(), b.numpy()) / np.linalg.norm(a.numpy()) / np.linalg.norm(b.numpy()))
    assert cosine(a, b) == pytest.approx(ref) and cosine(torch.zeros(3), torch.zeros(3)) == 1.0
    with pytest.raises(ValueError):
        tile_grid(_photo(10, 10), 11)


def test_shuffle_test_levels_are_the_pooled_conv5_of_each_picture(zf5_model):
    """Against an independent computation: conv5, then adaptive max pooling by torch, then the cosine by numpy."""
    import torch.nn.functional as F

    from spp_viz.images import to_tensor

    result = shuffle_test(zf5_model, _photo(300, 240), 4, seed=2, short_side=128)
    with torch.inference_mode():
        ca = zf5_model.forward_features(to_tensor(result.original))
        cb = zf5_model.forward_features(to_tensor(result.shuffled))
    for n, c in result.cosines.items():
        va, vb = F.adaptive_max_pool2d(ca, n).flatten().numpy(), F.adaptive_max_pool2d(cb, n).flatten().numpy()
        assert c == pytest.approx(float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)), rel=1e-5)
    words = result.sentence()
    assert words.startswith("With 4x4 tiles shuffled, the 1x1 level") and "the 6x6 level" in words


def test_shuffle_bench_counts_and_reports(tmp_path, zf5_model):
    from spp_viz.gallery import GalleryItem
    from spp_viz.images import load_image, resize_short_side

    items = [GalleryItem(f"{i}.png", data=_encode(_photo(120 + 9 * i, 100))) for i in range(3)]
    items.append(GalleryItem("broken.jpg", data=b"nope"))
    seen = []
    bench = shuffle_bench(zf5_model, items, ks=(2, 4), labels=lambda name: 0, progress=lambda f, t: seen.append((f, t)))
    assert bench.names == ["0.png", "1.png", "2.png"] and bench.skipped[0][0] == "broken.jpg"
    assert seen[-1] == (1.0, "4 of 4 photos")
    out = bench.json()
    assert [r["k"] for r in out["rows"]] == [2, 4] and out["labelled"] == 3
    # Photo 1 with 2 x 2 tiles, by hand: the grid is a multiple of lcm(2, 4) = 4, shuffled with seed 0 + 1.
    img = resize_short_side(load_image(items[1].data), 256)
    grid = tile_grid(img, 4)
    _, shuffled, _ = shuffle_tiles(grid, 2, 1)
    with torch.inference_mode():
        from spp_viz.explain.bag_of_words import level_vectors

        (va, _), (vb, _) = level_vectors(zf5_model, grid), level_vectors(zf5_model, shuffled)
    assert bench.cosines[2][6][1] == pytest.approx(cosine(va[6], vb[6]))
    mean = np.mean(bench.cosines[4][1])
    assert out["rows"][1]["cosine"]["1"]["mean"] == pytest.approx(mean)


def _encode(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
