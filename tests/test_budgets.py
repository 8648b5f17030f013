"""Models within a byte budget: every network's size is checked before anything is built (``SPP_VIZ_MAX_MODEL_MB``),
a weights file is checked against its network before it is read, and a build's measurement of conv5's receptive
field holds no second copy of the weights."""

from __future__ import annotations

import time

import pytest
import torch

from spp_viz import budgets, external, pretrained, registry
from spp_viz.budgets import TooLarge, check_model_size
from spp_viz.footprint import transparent_copy
from spp_viz.settings import max_model_mb

XXLARGE = "timm:convnext_xxlarge"


def test_convnext_xxlarge_is_refused_from_the_meta_device_before_anything_is_built(monkeypatch):
    """Its size, the cap and the variable that raises it, in under a second, with no layer built (a build took 228 s
    and 12.1 GB)."""
    external.meta_facts("timm", "resnet18")  # timm imported and warm: what is timed is the check

    def built(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(pretrained, "timm_net", built)
    monkeypatch.setattr(external, "timm_net", built)
    start = time.perf_counter()
    with pytest.raises(TooLarge) as info:
        registry.load(XXLARGE)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    # 846.5 M parameters and buffers in float32, read off the meta device: 3,386 MB (by hand: 846,471,016 x 4)
    assert "timm:convnext_xxlarge is 3,386 MB (846.5 M parameters)" in message
    assert "at most 600 MB" in message and "SPP_VIZ_MAX_MODEL_MB" in message


def test_vgg16_fits_the_default_cap_and_a_lower_cap_refuses_it(monkeypatch):
    size = registry.size("torchvision:vgg16")
    assert size == 138_357_544 * 4  # torchvision's own count of VGG-16's parameters, in float32
    check_model_size("torchvision:vgg16", size)  # 553 MB <= 600 MB: no error
    monkeypatch.setenv("SPP_VIZ_MAX_MODEL_MB", "500")
    with pytest.raises(TooLarge, match="at most 500 MB"):
        registry.load("torchvision:vgg16")
    monkeypatch.setenv("SPP_VIZ_MAX_MODEL_MB", "4000")
    check_model_size(XXLARGE, registry.size(XXLARGE))  # raised by whoever starts the app: accepted


@pytest.mark.parametrize("raw", ["lots", "-5", "0", "1.5"])
def test_a_bad_cap_names_its_variable(monkeypatch, raw):
    monkeypatch.setenv("SPP_VIZ_MAX_MODEL_MB", raw)
    with pytest.raises(ValueError, match="SPP_VIZ_MAX_MODEL_MB must be"):
        max_model_mb()


def test_every_kind_of_name_has_a_size_before_it_is_built():
    """The zoo and the default SPP-net from their layers on the meta device (and the head file's header), by hand:
    ZF-5's fc6 alone reads 256 x 50 = 12,800 numbers into 4,096."""
    assert registry.size("zf5") > (12_800 * 4096 + 4096 * 4096) * 4
    lite0 = registry.load("efficientnet_lite0")
    assert registry.size("efficientnet_lite0") == sum(budgets.storages(lite0.features, lite0.classifier).values())
    assert registry.size("efficientnet_lite0_spp") > registry.size("efficientnet_lite0")


def test_a_weights_file_far_larger_than_its_network_is_refused_unread(tmp_path, monkeypatch):
    """A 600 MB file for ResNet-18 (47 MB): refused from its size on disk, never read (a sparse file: no 600 MB
    written); one over the cap is refused whatever the network."""
    big = tmp_path / "huge.pth"
    with open(big, "wb") as f:
        f.truncate(600_000_000)

    def read(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(external, "read_state_dict", read)
    with pytest.raises(TooLarge, match="600 MB, but timm:resnet18's weights are 47 MB"):
        registry.load("timm:resnet18", weights=str(big))
    monkeypatch.setenv("SPP_VIZ_MAX_MODEL_MB", "500")
    with pytest.raises(TooLarge, match="weights files of at most 500 MB"):
        registry.load("zf5", weights=str(big))  # ZF-5 (308 MB) fits the cap; its 600 MB file does not


def test_the_receptive_field_copy_holds_no_copy_of_the_weights():
    """The transparent copy's weights are one number each, broadcast (no storage of the weight's size): measuring a
    network does not hold it twice."""
    import torchvision

    net = torch.nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])  # its conv layers
    probe = transparent_copy(net)
    weights = budgets.storages(net)
    copied = budgets.storages(probe)
    assert sum(weights.values()) > 40e6 and sum(copied.values()) < 1e6  # ResNet-18's conv layers: 44.7 MB
    assert not set(weights) & set(copied)  # and nothing shared with (so nothing written into) the original
    conv = next(m for m in probe.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.stride() == (0, 0, 0, 0) and float(conv.weight[0, 0, 0, 0]) == pytest.approx(1 / (3 * 7 * 7))
