"""Captum attributions: shapes, GradCAM against a hand computation, level shares, no leaked hooks, threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np
import pytest
import torch
from badfiles import photo
from torch import nn

from spp_viz.explain import attribution as A
from spp_viz.images import to_tensor
from spp_viz.models import NetSpec, SPPNet, load_model
from spp_viz.pyramid import SpatialPyramidPool


def tiny(levels=(1,), mode="avg", seed=0) -> SPPNet:
    torch.manual_seed(seed)
    features = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 3, padding=1), relu=nn.ReLU()))
    spp = SpatialPyramidPool(levels, mode)
    classifier = nn.Linear(2 * sum(n * n for n in levels), 3)
    model = SPPNet(features, spp, classifier, NetSpec("tiny", 1, 2, ("a", "b", "c"), (0.0,) * 3, (1.0,) * 3))
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
    start = time.perf_counter()
    result = A.run(method, model, x, target=3)
    wall = time.perf_counter() - start
    assert result.heatmap.shape == (64, 96) and np.isfinite(result.heatmap).all()
    assert 0 < result.seconds <= wall and result.passes >= 1  # the time shown is this run's, within its wall time
    # The estimate before a slow run, by hand from one 10 ms forward pass.
    by_hand = {
        "gradcam": 2 * 0.01,
        "integrated_gradients": A.IG_STEPS * 2.5 * 0.01,
        "occlusion": A.occlusion_windows((64, 96)) * 0.01 * 0.6,
    }
    assert A.estimate_seconds(method, 0.01, (64, 96)) == pytest.approx(by_hand[method])


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
    # No such class: each method fails once the logits exist (mid-run), and leaves nothing on the shared model.
    for method in A.METHODS:
        with pytest.raises(IndexError, match="index 5000 is out of bounds"):
            A.run(method, model, x, 5000)
        assert A.hook_count(model) == 0, method
    with pytest.raises(IndexError, match="index 5000 is out of bounds"):
        A.level_contributions(model, x, target=5000)
    assert A.hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"), A.hook_guard(model):
        model.features.conv1.register_forward_hook(lambda *a: None)
        model.register_forward_pre_hook(lambda *a: None)
        raise RuntimeError("boom")
    assert A.hook_count(model) == 0
    with pytest.raises(ValueError, match="unknown attribution"):
        A.run("saliency-magic", model, x, 1)


def test_threads_sharing_one_model_get_the_results_of_one_session_alone(default_model):
    images = [to_tensor(photo(160 + 16 * i, 128, seed=i)) for i in range(6)]
    alone = [A.gradcam(default_model, x, 281 + i).heatmap for i, x in enumerate(images)]
    results: dict[int, np.ndarray] = {}
    errors = []

    def work(i: int) -> None:
        try:
            results[i] = A.run("gradcam", default_model, images[i], 281 + i).heatmap
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


def test_integrated_gradients_are_complete():
    """IG's axiom: the attributions add up to f(x) - f(baseline) for the target (here the black image)."""
    model = tiny(levels=(2, 1), mode="max", seed=3)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    target = 1
    attr = A.integrated_gradients_raw(model, x, target, steps=300)
    with torch.no_grad():
        expected = float(model(x)[0, target] - model(torch.zeros_like(x))[0, target])
    assert abs(expected) > 1e-3  # a case where the axiom says something
    assert float(attr.sum()) == pytest.approx(expected, rel=0.02, abs=1e-4)
    heat = A.integrated_gradients(model, x, target, steps=300).heatmap
    np.testing.assert_allclose(heat, attr[0].abs().sum(0).numpy(), rtol=1e-5, atol=1e-7)


def test_occlusion_equals_a_slow_loop():
    """Each pixel's value: the target's mean drop over every grey square (all colours, value 0.5) covering it."""
    model = tiny(levels=(2, 1), mode="max", seed=4)
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    target, window = 2, 8
    stride = A.occlusion_stride(window)
    got = A.occlusion(model, x, target, window=window).heatmap
    drop_sum = torch.zeros(16, 20)
    covered = torch.zeros(16, 20)
    with torch.no_grad():
        base = float(model(x)[0, target])
        for top in range(0, 16 - window + 1, stride):
            for left in range(0, 20 - window + 1, stride):
                hidden = x.clone()
                hidden[..., top : top + window, left : left + window] = 0.5
                drop_sum[top : top + window, left : left + window] += base - float(model(hidden)[0, target])
                covered[top : top + window, left : left + window] += 1
    expected = 3 * torch.where(covered > 0, drop_sum / covered.clamp(min=1), 0.0)  # summed over the 3 colours
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert A.occlusion(model, x, target, window=window).passes == A.occlusion_windows((16, 20), window) == 3 * 4


def test_cost_estimate_scales_with_views_and_reuses_one_timed_pass():
    model = tiny()
    x = torch.rand(1, 3, 32, 48)
    timing: dict[str, float] = {}
    one = A.estimate_views_seconds("occlusion", model, x, views=1, timing=timing)
    first_pass = timing["forward"]
    assert set(timing) == {"forward"} and 0 < timing["forward"] < 10  # one real pass of a tiny network
    timing["forward"] = 0.01  # a pass already timed is reused, not timed again
    three = A.estimate_views_seconds("occlusion", model, x, views=3, timing=timing)
    assert three == pytest.approx(3 * A.occlusion_windows((32, 48)) * 0.01 * 0.6)
    assert one == pytest.approx(A.occlusion_windows((32, 48)) * first_pass * 0.6)
    ig = A.estimate_views_seconds("integrated_gradients", model, x, noise_tunnel=True, views=1, timing=timing)
    assert ig == pytest.approx(A.IG_STEPS * A.NT_SAMPLES * 2.5 * 0.01)


def test_gradcam_equals_captums_layer_gradcam_and_leaves_no_hook():
    """The hook-free GradCAM against Captum's LayerGradCam (which hooks conv5) as the independent reference."""
    from captum.attr import LayerAttribution, LayerGradCam

    model = load_model("zf5", device="cpu")
    x = to_tensor(photo(112, 96))
    ours = A.gradcam(model, x, 7).heatmap
    assert A.hook_count(model) == 0
    with torch.enable_grad():
        cam = LayerGradCam(model, model.features).attribute(x, target=7)
    ref = LayerAttribution.interpolate(torch.relu(cam), (96, 112), interpolate_mode="bilinear")[0, 0]
    assert ours.max() > 0
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-4, atol=1e-6 * float(ours.max()))
