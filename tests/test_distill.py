"""The pyramid head and its distillation: the untrained head against the teacher by hand, which levels each part
reads, a tiny distillation with its cache, the held-out measurement on made-up vectors, the file, the command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import SAMPLES
from PIL import Image

from spp_viz.distill import (
    DistillConfig,
    ViewVectors,
    collect,
    cross_fit,
    distill,
    distill_views,
    load_head,
    read_head_meta,
    save_head,
    view_targets,
    with_pyramid_head,
)
from spp_viz.images import load_image, to_tensor
from spp_viz.pyramid import spatial_pyramid_pool
from spp_viz.pyramid_head import PyramidHead
from spp_viz.weights import WeightsError

pytestmark = pytest.mark.training

TINY = DistillConfig(rank=4, views=5, full_sides=(96, 128, 160), crop_side=96, epochs=4, batch_size=4)


def test_untrained_head_is_the_teacher_when_conv5_has_one_cell_per_bin(default_model):
    """At 192 x 192 Lite0's conv5 is 6 x 6: each 6x6 bin is one cell, so their mean is global average pooling and
    the untrained head (correction zero) gives the teacher's logits."""
    head = PyramidHead(default_model.classifier, 1280, (6, 3, 2, 1), rank=8)
    x = to_tensor(load_image((SAMPLES / "chelsea.jpg").read_bytes()).resize((192, 192)))
    with torch.inference_mode():
        conv5 = default_model.forward_features(x)
        assert conv5.shape[-2:] == (6, 6)
        logits = head(spatial_pyramid_pool(conv5, (6, 3, 2, 1), "max"))
        torch.testing.assert_close(logits, default_model(x), atol=1e-4, rtol=1e-4)


def test_the_start_reads_the_finest_level_and_the_correction_every_level():
    teacher = torch.nn.Linear(3, 2)
    head = PyramidHead(teacher, 3, (2, 1), rank=5)
    torch.nn.init.normal_(head.fc7.weight)  # a trained correction
    v = torch.rand(1, 3 * 5, requires_grad=True)  # (C=3) x (4 + 1 bins)
    (g_start,) = torch.autograd.grad(head.start(v).sum(), v)
    (g_corr,) = torch.autograd.grad(head.correction(v).sum(), v)
    assert g_start[0, :12].abs().min() > 0 and g_start[0, 12:].abs().max() == 0  # only the 2x2 level's 12 values
    assert g_corr[0, 12:].abs().min() > 0  # the 1x1 level carries weight in the correction
    assert "teacher" not in head.state_dict() and set(head.state_dict()) == {"fc6.weight", "fc6.bias", "fc7.weight",
                                                                             "fc7.bias"}  # fmt: skip
    with pytest.raises(ValueError, match="finest first"):
        PyramidHead(teacher, 3, (1, 2), rank=5)
    with pytest.raises(ValueError, match="reads 3 channels"):
        PyramidHead(teacher, 4, (2, 1), rank=5)


def test_views_are_full_images_a_flip_and_crops():
    img = Image.new("RGB", (300, 200))
    img.putpixel((0, 0), (255, 0, 0))
    views = distill_views(img, TINY, np.random.default_rng(0))
    assert len(views) == 5 and [min(v.size) for v in views[:3]] == [96, 128, 160]
    assert np.array_equal(np.asarray(views[3]), np.asarray(views[0])[:, ::-1])  # the first full view, mirrored
    assert views[4].size == (96, 96)


def test_distillation_on_a_tiny_folder_caches_and_resumes(default_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(SAMPLES / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    from spp_viz.gallery import folder_items

    items, cache = folder_items(folder), tmp_path / "cache"
    result = distill(default_model, items, TINY, cache)
    assert result.photos == ["chelsea.jpg", "coffee.jpg", "rocket.jpg"] and result.views == 15
    assert [s[0] for s in result.skipped] == ["broken.jpg"]
    assert result.losses[-1] < result.losses[0]  # the correction brings the student closer to the teacher
    assert result.measured is None  # no labels given: nothing to measure against
    assert len(list(cache.glob("*.npz"))) == 3
    again = collect(default_model, items, TINY, cache)
    assert again.computed == 0 and np.array_equal(again.logits, collect(default_model, items, TINY, None).logits)
    # Saved and loaded: the same logits from the model with the head.
    path = save_head(result.head, tmp_path / "head.safetensors", result.meta())
    loaded = load_head(path, default_model)
    spp_model = with_pyramid_head(default_model, loaded, "lite0-spp-test")
    x = to_tensor(load_image((SAMPLES / "coffee.jpg").read_bytes()))
    with torch.inference_mode():
        v = spatial_pyramid_pool(default_model.forward_features(x), TINY.levels, "max")
        torch.testing.assert_close(spp_model(x), result.head(v), atol=2e-2, rtol=1e-3)  # float16 on disk
    assert spp_model.features is default_model.features and spp_model.spp_length == 1280 * 50
    meta = read_head_meta(path)
    assert meta["config"]["rank"] == 4 and meta["views"] == 15 and meta["levels"] == [6, 3, 2, 1]


def test_wrong_files_and_inputs_are_refused_with_a_clear_message(default_model, tmp_path):
    from safetensors.torch import save_file

    from spp_viz.models import load_model

    with pytest.raises(WeightsError, match="other.safetensors holds no pyramid head"):
        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_head(tmp_path / "other.safetensors", default_model)
    head = PyramidHead(default_model.classifier, 1280, (4, 2, 1), rank=3)
    path = save_head(head, tmp_path / "small.safetensors", {})
    meta = {"spp_viz_pyramid_head": json.dumps({"levels": [6, 3, 2, 1], "rank": 3, "channels": 1280})}
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path), metadata=meta)  # lies about levels
    with pytest.raises(WeightsError, match="do not fit the pyramid head in small.safetensors"):
        load_head(path, default_model)
    with pytest.raises(ValueError, match="no one-level head"):
        distill(load_model("zf5"), [], TINY)
    with pytest.raises(ValueError, match="no image files"):
        distill(default_model, [], TINY)


def test_cross_fit_on_made_up_vectors():
    """Two classes, one channel, a 1x1 pyramid: the teacher's fc is the identity on [v, -v]; photos 0-3 are class 0
    (v < 0), photos 4-5 class 1 (v > 0), photo 5's teacher is wrong on purpose. Each photo has 3 views (full sides
    224, 256, 320; the full view at 256 is the second)."""
    teacher = torch.nn.Linear(1, 2)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        teacher.bias.zero_()
    v = np.array([-1.0, -2.0, -1.5, -0.5, 1.0, 2.0])
    vectors = np.repeat(v, 3)[:, None].astype(np.float16)
    logits = np.stack([-vectors[:, 0], vectors[:, 0]], 1).astype(np.float32)
    logits[16] = [5.0, -5.0]  # photo 5's full view at 256: the teacher says class 0
    data = ViewVectors(vectors, logits, np.repeat(np.arange(6), 3), names=[f"{i}" for i in range(6)])
    config = DistillConfig(levels=(1,), rank=2, views=4, full_sides=(224, 256, 320), epochs=1, batch_size=2)
    m = cross_fit(teacher, data, [0, 0, 0, 0, 1, 1], 1, config, folds=2)
    assert (m.folds, m.side, m.photos) == (2, 256, 6)
    assert m.teacher == pytest.approx(5 / 6) and m.start == 1.0  # the start reads the vector, not the teacher's logits
    assert 0.0 <= m.student <= 1.0 and m.student_minus_teacher.value == pytest.approx(m.student - m.teacher)
    with pytest.raises(ValueError, match="at least 2 labelled photos"):
        cross_fit(teacher, data, [0, None, None, None, None, None], 1, config, folds=2)


def test_view_targets_mix_each_view_with_its_photos_crop_mean():
    """Slow reference: for each photo (ids need not be consecutive, as in a cross-fit fold), the mean softmax over its
    crop views (after the 3 full views and the flip), mixed with each view's own softmax."""
    config = DistillConfig(views=6, full_sides=(224, 256, 320), crop_target=0.3)
    photo = np.repeat([0, 2, 5], 6)
    logits = np.random.default_rng(0).normal(size=(18, 4)).astype(np.float32)
    got = view_targets(ViewVectors(np.zeros((18, 1), np.float16), logits, photo), config).numpy()
    p = torch.from_numpy(logits).softmax(1).numpy()
    for g in range(3):
        rows = range(6 * g, 6 * g + 6)
        crop_mean = np.mean([p[r] for r in rows if r - 6 * g >= 4], axis=0)
        for r in rows:
            np.testing.assert_allclose(got[r], 0.7 * p[r] + 0.3 * crop_mean, atol=1e-6)
    plain = view_targets(ViewVectors(np.zeros((18, 1), np.float16), logits, photo), DistillConfig(crop_target=0.0))
    np.testing.assert_allclose(plain.numpy(), p, atol=1e-6)
    with pytest.raises(ValueError, match="needs random crops"):
        DistillConfig(views=4, crop_target=0.5).validate()
