"""The zoo: the real pretrained default model, AlexNet from a checkpoint the test writes, ZF-5's geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from spp_viz.devices import resolve_device
from spp_viz.explain.feature_maps import compute_feature_maps
from spp_viz.images import load_image, samples, to_tensor
from spp_viz.models import load_model, top_predictions
from spp_viz.pyramid import SpatialPyramidPool
from spp_viz.weights import WeightsError, alexnet_cache_path


def labelled_samples():
    return [s for s in samples() if s.classes]


@pytest.mark.parametrize("view", ["224x224", "full-256"])
def test_default_model_knows_the_samples(default_model, view):
    hits = 0
    for s in labelled_samples():
        img = load_image(s.path)
        if view == "224x224":
            x = to_tensor(img.resize((224, 224)))
            with torch.inference_mode():
                top5 = top_predictions(default_model(x)[0], default_model.class_names)
        else:
            top5 = compute_feature_maps(default_model, img, short_side=256).top5
        hits += any(p.index in s.classes for p in top5)
    assert hits >= 2, f"only {hits} labelled samples had a right class in the top-5 ({view})"


def test_default_model_any_size_and_split(default_model):
    assert default_model.pretrained and default_model.channels == 1280 and default_model.stride == 32
    assert default_model.spp.levels == (1,) and default_model.spp.mode == "avg"
    for h, w in [(224, 224), (97, 311), (512, 384), (33, 33)]:
        x = torch.rand(1, 3, h, w)
        with torch.inference_mode():
            logits, conv5 = default_model.forward_with_features(x)
            torch.testing.assert_close(logits, default_model(x))
        assert logits.shape == (1, 1000)
        assert conv5.shape[1] == 1280 and conv5.shape[-2:] == (-(-h // 32), -(-w // 32))  # "same" padding: ceil


def test_alexnet_from_checkpoint_equals_torchvision(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    model = load_model("alexnet", device="cpu", weights=path)
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        # The model normalises inside; torchvision's AlexNet expects normalised input.
        torch.testing.assert_close(model(x), reference(model.normalize(x)))
        conv5 = model.forward_features(x)
        assert conv5.shape == (2, 256, 13, 13)
        # pool5 (3x3, stride 2) equals the one-level pyramid (6,) max at 224.
        pool5 = reference.features[12](conv5).flatten(1)
        torch.testing.assert_close(SpatialPyramidPool((6,), "max")(conv5), pool5)
        assert model(torch.rand(1, 3, 300, 451)).shape == (1, 1000)  # any size now


def test_alexnet_safetensors_and_wrapped_checkpoints(tmp_path):
    from safetensors.torch import save_file

    state = torchvision.models.alexnet(weights=None).state_dict()
    save_file(state, tmp_path / "a.safetensors")
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    a = load_model("alexnet", device="cpu", weights=tmp_path / "a.safetensors")
    b = load_model("alexnet", device="cpu", weights=tmp_path / "wrapped.pt")
    torch.testing.assert_close(a.classifier[1].weight, b.classifier[1].weight)


def test_alexnet_missing_weights_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert not alexnet_cache_path().exists()
    with pytest.raises(WeightsError, match="Connect to the internet once") as info:
        load_model("alexnet", device="cpu")
    assert "alexnet-owt-7be5be79.pth" in str(info.value)


def test_alexnet_uses_torchvision_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(4)
    state = torchvision.models.alexnet(weights=None).state_dict()
    alexnet_cache_path().parent.mkdir(parents=True)
    torch.save(state, alexnet_cache_path())
    model = load_model("alexnet", device="cpu")
    torch.testing.assert_close(model.features[0].weight, state["features.0.weight"])


def test_bad_weights_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model("alexnet", device="cpu", weights=tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(WeightsError, match="could not read"):
        load_model("zf5", device="cpu", weights=corrupt)
    other = tmp_path / "other.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), other)
    with pytest.raises(WeightsError, match="do not fit ZF-5"):
        load_model("zf5", device="cpu", weights=other)


def test_checkpoint_with_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": torch.nn.ReLU()}, evil)  # a pickled module
    with pytest.raises(WeightsError, match="could not read"):
        load_model("zf5", device="cpu", weights=evil)


def test_zf5_geometry_and_untrained_label():
    model = load_model("zf5", device="cpu")
    assert not model.pretrained and model.stride == 16 and model.spp_length == 12_800
    with torch.inference_mode():
        assert model.forward_features(torch.rand(1, 3, 224, 224)).shape == (1, 256, 13, 13)
        assert model.forward_features(torch.rand(1, 3, 180, 180)).shape == (1, 256, 10, 10)
        assert model(torch.rand(1, 3, 250, 333)).shape == (1, 1000)
    again = load_model("zf5", device="cpu")
    torch.testing.assert_close(model.features.conv1.weight, again.features.conv1.weight)  # seeded


def test_unknown_model_and_device():
    with pytest.raises(ValueError, match="unknown model"):
        load_model("resnet9000")
    with pytest.raises(ValueError, match="unknown device|not supported"):
        resolve_device("tpu")


def test_device_order(monkeypatch):
    monkeypatch.delenv("SPP_VIZ_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device(None).type == expected
    monkeypatch.setenv("SPP_VIZ_DEVICE", "cpu")
    assert resolve_device(None).type == "cpu"
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_model_really_on_cuda(chelsea_bytes):
    model = load_model(device="cuda")
    assert all(p.device.type == "cuda" for p in model.parameters())
    fm = compute_feature_maps(model, load_image(chelsea_bytes))
    assert any(p.index in (281, 282, 285) for p in fm.top5)


def test_no_hooks_on_model(default_model):
    compute_feature_maps(default_model, load_image(samples()[0].path))
    for m in default_model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_channel_ranking_strongest_first_ties_by_mean(default_model):
    import numpy as np

    fm = compute_feature_maps(default_model, load_image(samples()[0].path))
    maxes, means = fm.channel_max[fm.ranking], fm.conv5.mean(axis=(1, 2))[fm.ranking]
    assert np.all(np.diff(maxes) <= 0)
    tied = maxes[:-1] == maxes[1:]
    assert np.all(means[:-1][tied] >= means[1:][tied] - 1e-6)
    assert sorted(fm.ranking.tolist()) == list(range(1280))


def test_responses_before_relu6_are_the_batch_norm_output_and_leave_the_model_unchanged(default_model):
    import torch.nn.functional as F
    from conftest import SAMPLES

    from spp_viz.images import resize_short_side

    model = default_model
    assert model.clip == "ReLU6" and model.clip_ceiling == 6.0
    x = to_tensor(resize_short_side(load_image(SAMPLES / "chelsea.jpg"), 256))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        conv5, responses = model.forward_responses(x)
        # Independently: every conv layer but the last, then batch norm by the functional form with bn2's numbers.
        h = model.normalize(x)
        for name, layer in model.features.named_children():
            if name != "bn2":
                h = layer(h)
        bn = model.features.bn2
        ref = F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        torch.testing.assert_close(responses, ref)
        torch.testing.assert_close(conv5, model.forward_features(x))  # the clipped map is still what SPP pools
        assert torch.equal(conv5, responses.clamp(0, 6)) and responses.max() > 6
        logits, _, _ = model.forward_with_responses(x)
        torch.testing.assert_close(logits, model(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    fm = compute_feature_maps(model, load_image(SAMPLES / "chelsea.jpg"))
    top10 = fm.channel_max[fm.ranking[:10]]
    assert len(set(np.round(top10, 3))) == 10  # distinct: no ties at 6.00
    assert (np.diff(top10) <= 0).all() and fm.saturated_channels > 10  # after the clip, many would tie


def test_networks_without_a_clip_are_unchanged(tmp_path):
    from conftest import SAMPLES

    from spp_viz.images import resize_short_side

    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    img = load_image(SAMPLES / "chelsea.jpg")
    for model in (load_model("zf5", device="cpu"), load_model("alexnet", device="cpu", weights=path)):
        assert model.clip is None and model.clip_ceiling is None
        x = to_tensor(resize_short_side(img, 256))
        with torch.inference_mode():
            conv5, responses = model.forward_responses(x)
            assert responses is conv5
            torch.testing.assert_close(conv5, model.forward_features(x))
        fm = compute_feature_maps(model, img)
        assert fm.responses is fm.conv5 and fm.saturated_channels == 0
        np.testing.assert_array_equal(fm.channel_max, fm.conv5.max(axis=(1, 2)))


def test_the_spp_model_reads_the_shipped_head_on_lite0s_shared_conv_layers(default_model, tmp_path):
    """efficientnet_lite0_spp: Lite0's conv layers (the same modules, not a copy), the {6,3,2,1} max pyramid, the
    shipped head's recipe in its metadata; its logits equal the head applied by hand to the pyramid vector."""
    from spp_viz import registry
    from spp_viz.distill import read_head_meta
    from spp_viz.pyramid import spatial_pyramid_pool
    from spp_viz.weights import UploadedWeights

    entry = registry.PYRAMID_MODELS["efficientnet_lite0_spp"]
    assert entry.file.is_file() and entry.file.stat().st_size <= 30e6  # the limit for the shipped file
    model = registry.load("efficientnet_lite0_spp", base=default_model)
    assert model.features is default_model.features and model.name == "efficientnet_lite0_spp"
    assert model.spp.levels == (6, 3, 2, 1) and model.spp.mode == "max" and model.spp_length == 64_000
    assert model.pretrained and model.class_names == default_model.class_names
    meta = read_head_meta(entry.file)
    assert meta["levels"] == [6, 3, 2, 1] and meta["photos"] == 500 and meta["measured"]["photos"] == 500
    x = to_tensor(load_image(samples()[0].path).resize((256, 200)))
    with torch.inference_mode():
        v = spatial_pyramid_pool(default_model.forward_features(x), (6, 3, 2, 1), "max")
        torch.testing.assert_close(model(x), model.classifier(v))
        assert not torch.equal(model(x), default_model(x))  # its own head, not Lite0's
    assert registry.title("efficientnet_lite0_spp").startswith("SPP-net") and not registry.is_zoo(entry.name)
    assert "efficientnet_lite0_spp" in registry.names() and registry.base_of(entry.name) == "efficientnet_lite0"
    with pytest.raises(ValueError, match="shares the conv layers of efficientnet_lite0"):
        registry.load("efficientnet_lite0_spp", base=load_model("zf5"))
    with pytest.raises(ValueError, match="reads its head from a file"):
        registry.load("efficientnet_lite0_spp", weights=UploadedWeights("h.safetensors", b"x"))
    (tmp_path / "broken.safetensors").write_bytes(b"not a head")
    with pytest.raises(WeightsError, match="broken.safetensors is not a pyramid head"):
        registry.load("efficientnet_lite0_spp", weights=tmp_path / "broken.safetensors", base=default_model)
