"""Captum attributions: shapes, GradCAM against a hand computation, level shares, no leaked hooks, threads."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
from badfiles import photo
from torch import nn

from spp_viz import attribution as A
from spp_viz.images import to_tensor
from spp_viz.models import SPPNet, load_model
from spp_viz.pyramid import SpatialPyramidPool


def tiny(levels=(1,), mode="avg", seed=0) -> SPPNet:
    torch.manual_seed(seed)
    features = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 3, padding=1), relu=nn.ReLU()))
    spp = SpatialPyramidPool(levels, mode)
    classifier = nn.Linear(2 * sum(n * n for n in levels), 3)
    model = SPPNet(
        features,
        spp,
        classifier,
        name="tiny",
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        stride=1,
        channels=2,
        class_names=["a", "b", "c"],
    )
    return model.eval().requires_grad_(False)


def test_gradcam_equals_hand_computation():
    model = tiny()
    x = torch.rand(1, 3, 6, 8)
    with torch.no_grad():
        conv5 = model.forward_features(x)[0]  # (2, 6, 8)
    target = 2
    # Global average pooling then a linear layer: d logit / d A_c(i, j) = W[t, c] / (H * W), so alpha_c is that.
    alpha = model.classifier.weight[target] / (6 * 8)
    expected = torch.relu((alpha[:, None, None] * conv5).sum(0))  # same size as the input here (stride 1)
    got = A.gradcam(model, x, target).heatmap
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", A.METHODS)
def test_attribution_shapes_and_cost(method):
    model = load_model("zf5", device="cpu")
    x = to_tensor(photo(96, 64))
    result = A.run(method, model, x, target=3)
    assert result.heatmap.shape == (64, 96) and np.isfinite(result.heatmap).all()
    assert result.seconds > 0 and result.passes >= 1
    assert A.estimate_seconds(method, 0.01, (64, 96)) > 0


def test_noise_tunnel_option():
    model = tiny()
    x = torch.rand(1, 3, 10, 10)
    plain = A.integrated_gradients(model, x, 1, steps=8)
    smooth = A.integrated_gradients(model, x, 1, steps=8, noise_tunnel=True, nt_samples=3)
    assert smooth.heatmap.shape == plain.heatmap.shape and smooth.passes == 3 * plain.passes


def test_level_contributions_find_the_level_the_classifier_reads():
    model = tiny(levels=(2, 1), mode="max")
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[1, 8:] = 1.0  # only the 1x1 level's two numbers feed class 1
    x = torch.rand(1, 3, 8, 8)
    shares = A.level_contributions(model, x, target=1)
    assert [s.level for s in shares] == [2, 1]
    assert shares[0].drop == pytest.approx(0.0, abs=1e-6) and shares[1].share == pytest.approx(1.0)


def test_no_hook_remains_after_runs_and_after_a_failure():
    model = load_model("zf5", device="cpu")
    x = to_tensor(photo(64, 64))
    assert A.hook_count(model) == 0
    for method in A.METHODS:
        A.run(method, model, x, 1)
        assert A.hook_count(model) == 0, method
    with pytest.raises((IndexError, RuntimeError, AssertionError)):
        A.gradcam(model, x, target=5000)  # no such class: Captum fails mid-run, with its hook registered
    assert A.hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"), A.hook_guard(model):
        model.features.conv1.register_forward_hook(lambda *a: None)
        model.register_forward_pre_hook(lambda *a: None)
        raise RuntimeError("boom")
    assert A.hook_count(model) == 0
    with pytest.raises(ValueError, match="unknown attribution"):
        A.run("saliency-magic", model, x, 1)


def test_threads_sharing_one_model_get_the_results_of_one_session_alone(default_model):
    lock = threading.Lock()
    images = [to_tensor(photo(160 + 16 * i, 128, seed=i)) for i in range(6)]
    alone = [A.gradcam(default_model, x, 281 + i).heatmap for i, x in enumerate(images)]
    results: dict[int, np.ndarray] = {}
    errors = []

    def work(i: int) -> None:
        try:
            results[i] = A.run("gradcam", default_model, images[i], 281 + i, lock=lock).heatmap
        except Exception as e:  # collected: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, expected in enumerate(alone):
        np.testing.assert_allclose(results[i], expected, rtol=1e-5, atol=1e-6)
    assert A.hook_count(default_model) == 0
