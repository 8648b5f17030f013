"""Any timm or torchvision CNN (issue 23): its conv5 geometry measured by the gradient footprint, checked against the
analytic values; names, weights and every mistake a user can make (every family: tests/test_every_cnn.py)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SAMPLES, cli
from torch import nn

from spp_viz.external import PRETRAINED, build_external, check_name
from spp_viz.footprint import measure, transparent_copy
from spp_viz.geometry import feature_geometry, layer_geometry
from spp_viz.models import _alexnet_parts, _efficientnet_lite0, zf5_features
from spp_viz.weights import WeightsError

CHAIN = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)]


def hand_chain() -> nn.Sequential:
    """By hand: 3x3 -> rf 3; 2x2 pool, stride 2 -> rf 4, jump 2; 3x3 -> rf 8; 5x5 stride 2 -> rf 16, jump 4."""
    return nn.Sequential(*CHAIN, nn.Conv2d(4, 8, 5, stride=2, padding=2))


@pytest.mark.parametrize(
    "features", [hand_chain, lambda: _alexnet_parts()[0], zf5_features, lambda: _efficientnet_lite0()[0]],
    ids=["hand chain", "AlexNet", "ZF-5", "EfficientNet-Lite0"],
)  # fmt: skip
def test_footprint_equals_the_analytic_receptive_field(features):
    """The measured field, stride and centre of cell 0 equal those read off the layers (Lite0's field, 851 pixels,
    needs the 1024-pixel input; its stride is the 32 typed into the zoo)."""
    net = features()
    fp = measure(net)
    g = layer_geometry(net, fp.input_hw)[-1]
    assert fp.rf == (g.y.rf, g.x.rf) and fp.stride == (g.y.jump, g.x.jump) and fp.start == (g.y.start, g.x.start)
    assert not fp.covers
    if features is hand_chain:
        assert fp.rf == (16, 16) and fp.stride == (4, 4)


def test_squeeze_and_excitation_makes_every_cell_see_the_whole_image():
    class SE(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.fc = nn.Conv2d(c, c, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))

    local = nn.Sequential(*CHAIN, nn.Conv2d(4, 8, 3, stride=2, padding=1))
    assert not measure(local).covers
    fp = measure(nn.Sequential(*CHAIN, SE(4), nn.Conv2d(4, 8, 3, stride=2, padding=1)))
    assert fp.covers == "global" and fp.global_field and fp.stride == (4, 4) and "whole image" in fp.describe()


def test_measuring_leaves_the_model_as_it_was():
    net = _alexnet_parts()[0].eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    probe = transparent_copy(net)
    measure(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(isinstance(m, nn.ReLU) for m in net.modules())
    assert not any(isinstance(m, (nn.ReLU, nn.MaxPool2d)) for m in probe.modules())
    assert not any(m._forward_hooks or m._backward_hooks for m in net.modules())


def test_a_torchvision_resnet_is_split_at_conv5_and_measured():
    """ResNet-18 by hand: conv1 7x7/2 -> 7, jump 2; maxpool 3x3/2 -> 11, jump 4; layer1, four 3x3 -> 43; layer2 ->
    51 (jump 8), 99; layer3 -> 115 (16), 211; layer4 -> 243 (32), 435. Its own predictions, from the split."""
    import torchvision

    model = build_external("torchvision:resnet18")
    assert model.footprint.rf == (435, 435) and model.stride == 32 and model.channels == 512
    assert not model.pretrained and model.spp.levels == (1,)
    net = torchvision.models.resnet18()
    net.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("normalize")}, strict=False)
    x = torch.rand(1, 3, 160, 200)
    conv5 = model.forward_features(x)
    assert conv5.shape == (1, 512, 5, 7)
    g = feature_geometry(model, (160, 200))
    assert g.shape == (5, 7) and g.x.jump == 32 and g.x.rf == 435


def test_timm_conv5_is_forward_features_and_its_head_gives_its_predictions():
    import timm

    model = build_external("timm:mobilenetv3_small_050")
    net = model.features.net
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), net.forward_features(model.normalize(x)))
        assert torch.allclose(model(x), net(model.normalize(x)), atol=1e-5)
    assert model.footprint.covers == "global"  # its squeeze-and-excitation blocks
    assert isinstance(net, timm.models.MobileNetV3) and model.channels == net.num_features


def test_names_are_refused_with_a_reason_and_cnns_of_any_family_accepted():
    with pytest.raises(ValueError, match="has layers that attend over positions"):
        check_name("timm:vit_tiny_patch16_224")
    with pytest.raises(ValueError, match="torchvision has no classification model named 'resnet5'; the nearest"):
        check_name("torchvision:resnet5")
    with pytest.raises(ValueError, match="write timm:NAME or torchvision:NAME"):
        check_name("keras:resnet50")
    # Refused by the allow-list of issue 23, accepted now that the split is read from the network (issue 32).
    assert check_name("torchvision:squeezenet1_0") == ("torchvision", "squeezenet1_0")
    assert check_name("timm:cspresnet50") == ("timm", "cspresnet50")
    assert check_name("torchvision:convnext_tiny") == ("torchvision", "convnext_tiny")


def test_weights_files_are_checked_against_the_architecture(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(3)
    net = torchvision.models.resnet18().eval()
    good = tmp_path / "resnet18.safetensors"
    save_file(net.state_dict(), str(good))
    model = build_external("torchvision:resnet18", str(good))
    assert model.pretrained
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(model(x), net(model.normalize(x)), atol=1e-5)
    other = tmp_path / "mnv3.safetensors"
    save_file(torchvision.models.mobilenet_v3_small().state_dict(), str(other))
    with pytest.raises(WeightsError, match="do not fit torchvision:resnet18"):
        build_external("torchvision:resnet18", str(other))
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not read weights from broken.pth"):
        build_external("torchvision:resnet18", str(broken))


@pytest.fixture(scope="module")
def lite1():
    """EfficientNet-Lite1 with its offline ImageNet weights (read only by the tests that take it)."""
    return build_external("timm:tf_efficientnet_lite1", PRETRAINED)


def test_lite1_from_its_package_is_a_real_pretrained_network(lite1):
    """Offline ImageNet weights: the sample cat is a cat (ImageNet classes 281-285) to EfficientNet-Lite1."""
    from spp_viz.explain.feature_maps import compute_feature_maps
    from spp_viz.images import load_image

    model = lite1
    assert model.pretrained and model.spec.mean == (0.5, 0.5, 0.5)
    fm = compute_feature_maps(model, load_image(SAMPLES / "chelsea.jpg"))
    assert 281 <= fm.top5[0].index <= 285, fm.top5[0]


def test_a_download_that_fails_says_so(monkeypatch, tmp_path):
    """With downloads off (the tests' SPP_VIZ_OFFLINE) nothing is tried; with them on, the library's own failure is
    reported (its download replaced by one that fails: no test reaches the network)."""
    import torchvision

    from spp_viz.external import download_pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    with pytest.raises(WeightsError, match="torchvision could not fetch the pretrained weights of resnet18: downl"):
        build_external("torchvision:resnet18", PRETRAINED)
    with pytest.raises(WeightsError, match="the download failed: downloads are off here"):
        download_pretrained("torchvision:resnet18")

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.delenv("SPP_VIZ_OFFLINE")
    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(WeightsError, match="torchvision could not fetch the pretrained weights of resnet18 .OSError"):
        build_external("torchvision:resnet18", PRETRAINED)


def test_predict_reports_conv5_and_its_measured_geometry(tmp_path):
    """The issue's check: conv5's height, width and channels equal timm's own forward_features output."""
    import timm
    from safetensors.torch import save_file

    from spp_viz.images import load_image, resize_short_side, to_tensor

    torch.manual_seed(1)
    net = timm.create_model("resnet18").eval()
    weights = tmp_path / "r18.safetensors"
    save_file(net.state_dict(), str(weights))
    image = SAMPLES / "chelsea.jpg"
    out = run_cli("predict", str(image), "--model", "timm:resnet18", "--weights", str(weights), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    cfg = net.pretrained_cfg  # timm's own normalisation, applied here by hand
    x = to_tensor(resize_short_side(load_image(image), 256))  # RGB in [0, 1], as the CLI feeds it
    assert [x.shape[-1], x.shape[-2]] == report["input_size"]
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        conv5 = net.forward_features((x - mean) / std)
    assert [report["conv5"][k] for k in ("channels", "height", "width")] == list(conv5.shape[1:])
    assert report["geometry"]["stride"] == 32 and report["geometry"]["receptive_field"] == [435, 435]
    assert report["geometry"]["how"] == "measured by the gradient footprint" and report["pretrained"]
    bad = run_cli("predict", str(image), "--model", "timm:vit_tiny_patch16_224")
    assert bad.returncode == 2 and "attend over positions" in bad.stderr


run_cli = cli  # in this process: see conftest.cli


def test_the_stride_16_stage_is_the_one_the_libraries_name():
    """The detection backbone of a network by name: against timm's own ``features_only`` model (out_indices 3, its
    stride-16 stage) and torchvision's ``create_feature_extractor`` at layer3, the same maps; stride measured 16."""
    import timm
    from torchvision.models.feature_extraction import create_feature_extractor

    from spp_viz.detection.features import detection_backbone

    x = torch.rand(1, 3, 200, 264)
    model = build_external("timm:resnet18")
    backbone = detection_backbone(model)
    reference = timm.create_model("resnet18", features_only=True, out_indices=[3]).eval()
    reference.load_state_dict(model.features.net.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.allclose(backbone.forward_features(x), reference(model.normalize(x))[0], atol=1e-5)
    assert backbone.stride == 16 and backbone.footprint.rf == (211, 211) and "layer3" in backbone.name
    tv = build_external("torchvision:resnet18")
    tv_backbone = detection_backbone(tv)
    net = nn.Sequential(tv.features)  # the split keeps torchvision's layer names under "0."
    extractor = create_feature_extractor(net, {"0.layer3": "out"})
    with torch.no_grad():
        assert torch.equal(tv_backbone.forward_features(x), extractor(tv.normalize(x))["out"])
    assert tv_backbone.stride == 16 and tv_backbone.channels == 256
    # AlexNet: conv5 (features.11, after its ReLU) is at stride 16 though 224 pixels give 13 cells, not 14; its field
    # is the one read off the layers for the zoo's AlexNet (163 pixels).
    alexnet = detection_backbone(build_external("torchvision:alexnet"))
    assert alexnet.name.endswith("features.11 (stride 16)") and alexnet.footprint.rf == (163, 163)


def test_a_deep_gated_network_is_measured_without_overflow():
    """EfficientNet-B0: 16 blocks, each with a residual sum and a squeeze-and-excitation product; the transparent
    copy once overflowed even float64 on it. Every cell sees the whole image; the stride is 32."""
    model = build_external("timm:efficientnet_b0")
    assert model.footprint.covers == "global" and model.stride == 32


def test_random_weights_are_the_same_on_every_load():
    """Results are cached under the name ("random" is part of the model choice): a reload must give the same net."""
    a, b = build_external("timm:resnet18"), build_external("timm:resnet18")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_lite1_ranks_before_its_relu6(lite1):
    """Lite1's conv5 ends in ReLU6: channels are ranked on the responses before it, as for the zoo's Lite0."""
    model = lite1
    assert model.clip == "ReLU6"
    x = torch.rand(1, 3, 240, 240)
    with torch.no_grad():
        conv5, responses = model.forward_responses(x)
        assert torch.equal(conv5, model.forward_features(x))
    assert torch.equal(responses.clamp(0, 6), conv5) and responses.max() > 6


def test_the_activation_index_is_keyed_by_the_weights_not_only_the_name(tmp_path):
    from safetensors.torch import save_file

    from spp_viz.explain.activation_index import _settings_key

    random = build_external("torchvision:resnet18")
    torch.manual_seed(7)
    import torchvision

    file = tmp_path / "mine.safetensors"
    save_file(torchvision.models.resnet18().state_dict(), str(file))
    mine = build_external("torchvision:resnet18", str(file))
    assert _settings_key(random, 9, True, 224) != _settings_key(mine, 9, True, 224)
    assert _settings_key(random, 9, True, 224) == _settings_key(build_external("torchvision:resnet18"), 9, True, 224)
    assert ":" not in _settings_key(random, 9, True, 224)  # a file name on every system


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_network_by_name_runs_on_cuda_as_on_the_cpu():
    """On the GPU: the same logits and conv5 as on the CPU; its geometry and its detection backbone (measured on a
    CPU copy) as well."""
    from spp_viz.detection.features import detection_backbone

    cpu = build_external("timm:resnet18")
    gpu = build_external("timm:resnet18").to("cuda")
    x = torch.rand(2, 3, 180, 250)
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(gpu.forward_features(x.cuda()).cpu(), cpu.forward_features(x), atol=1e-3, rtol=1e-3)
    assert feature_geometry(gpu, (180, 250)).shape == feature_geometry(cpu, (180, 250)).shape == (6, 8)
    backbone = detection_backbone(gpu)
    with torch.no_grad():
        assert backbone.forward_features(x.cuda()).device.type == "cuda"
    assert backbone.stride == 16 and backbone.footprint == detection_backbone(cpu).footprint


def test_each_attribution_runs_on_a_network_by_name_and_leaves_no_hook():
    """GradCAM on its conv5, Integrated Gradients and Occlusion on timm:resnet18: a map the size of the input, and
    the shared model without hooks afterwards."""
    from spp_viz.explain.attribution import METHODS, hook_count
    from spp_viz.explain.attribution import run as run_attribution

    model = build_external("timm:resnet18")
    x = torch.rand(1, 3, 96, 128)
    for method in METHODS:
        result = run_attribution(method, model, x, target=3)
        assert result.heatmap.shape == (96, 128), method
    assert hook_count(model) == 0


def test_normalisation_comes_from_the_weights():
    """timm: the pretrained config (Lite1: 0.5, 0.5, 0.5, at 240); torchvision: its weights' transforms."""
    import timm
    from torchvision.models import ResNet18_Weights

    lite1 = build_external("timm:tf_efficientnet_lite1")
    cfg = timm.get_pretrained_cfg("tf_efficientnet_lite1").to_dict()  # timm's own record, no second network built
    assert lite1.spec.mean == tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and lite1.input_size == cfg["input_size"][1]
    t = ResNet18_Weights.DEFAULT.transforms()
    resnet = build_external("torchvision:resnet18")
    assert resnet.spec.mean == tuple(t.mean) and resnet.spec.std == tuple(t.std) and resnet.input_size == 224
