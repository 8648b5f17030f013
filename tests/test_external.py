"""Any timm or torchvision CNN (issue 23): its conv5 geometry measured by the gradient footprint, checked against the
analytic values; the allow-list, the weights and every mistake a user can make."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import SAMPLES
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


def test_names_outside_the_allow_list_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="is a transformer: it has no conv map"):
        check_name("timm:vit_tiny_patch16_224")
    with pytest.raises(ValueError, match="torchvision has no network named 'resnet5'"):
        check_name("torchvision:resnet5")
    with pytest.raises(ValueError, match="write timm:NAME or torchvision:NAME"):
        check_name("keras:resnet50")
    with pytest.raises(ValueError, match="not on the list of CNNs"):
        check_name("torchvision:squeezenet1_0")
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


def test_lite1_from_its_package_is_a_real_pretrained_network():
    """Offline ImageNet weights: the sample cat is a cat (ImageNet classes 281-285) to EfficientNet-Lite1."""
    from spp_viz.explain.feature_maps import compute_feature_maps
    from spp_viz.images import load_image

    model = build_external("timm:tf_efficientnet_lite1", PRETRAINED)
    assert model.pretrained and model.spec.mean == (0.5, 0.5, 0.5)
    fm = compute_feature_maps(model, load_image(SAMPLES / "chelsea.jpg"))
    assert 281 <= fm.top5[0].index <= 285, fm.top5[0]


def test_a_download_that_fails_says_so(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(WeightsError, match="torchvision could not fetch the pretrained weights of resnet18"):
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
    assert bad.returncode == 2 and "is a transformer" in bad.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spp_viz", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))  # fmt: skip
