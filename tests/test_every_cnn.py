"""Every CNN the two libraries ship (issue 32): conv5 found from the network's own graph, not from a list of names.

For one representative of every torchvision family and a spread of timm's, with random weights and an input the
probe never saw: the split's logits equal the network's to 1e-4, conv5 equals the map the network pools (read by
torchvision's own ``create_feature_extractor`` at the node named below by hand from each ``forward``, or timm's own
``forward_features``), and the stride is measured. Transformers and hybrids are refused with a reason."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SAMPLES, cli

from spp_viz import catalog
from spp_viz.external import check_name, split_network
from spp_viz.footprint import measure

# family -> (its smallest member, the node whose output the network pools, conv5's stride), read off each forward:
# DenseNet pools F.relu(features); SqueezeNet its classifier's 1 x 1 conv and ReLU (1000 class maps); ShuffleNet and
# MnasNet take x.mean([2, 3]); GoogLeNet and Inception-v3 their last inception block; AlexNet pools after pool5.
TORCHVISION = {
    "alexnet": ("alexnet", "features", 32),
    "convnext": ("convnext_tiny", "features", 32),
    "densenet": ("densenet121", "relu", 32),
    "efficientnet": ("efficientnet_b0", "features", 32),
    "googlenet": ("googlenet", "inception5b", 32),
    "inception": ("inception_v3", "Mixed_7c", 32),
    "mnasnet": ("mnasnet0_5", "layers", 32),
    "mobilenetv2": ("mobilenet_v2", "features", 32),
    "mobilenetv3": ("mobilenet_v3_small", "features", 32),
    "regnet": ("regnet_y_400mf", "trunk_output", 32),
    "resnet": ("resnet18", "layer4", 32),
    "shufflenetv2": ("shufflenet_v2_x0_5", "conv5", 32),
    "squeezenet": ("squeezenet1_1", "classifier.2", 16),
    "vgg": ("vgg11", "features", 32),
}
REFUSED = {"maxvit": "maxvit_t", "swin_transformer": "swin_t", "vision_transformer": "vit_b_16"}
X = (1, 3, 128, 160)  # not the probe's 224 x 224: the split must hold at any size


def test_the_table_covers_every_torchvision_family():
    """The test below is over every family torchvision lists, so a new one fails here until it is added."""
    assert set(catalog.families("torchvision").values()) == set(TORCHVISION) | set(REFUSED)
    for family, (arch, _, _) in TORCHVISION.items():  # each is its family's smallest (torchvision's own counts)
        sizes = {a: catalog.params("torchvision", a) for a in catalog.members("torchvision", family)}
        assert sizes[arch] == min(sizes.values()), (family, sizes)


@pytest.mark.parametrize("family", sorted(TORCHVISION))
def test_every_torchvision_family_is_split_at_the_map_it_pools(family):
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    arch, node, stride = TORCHVISION[family]
    torch.manual_seed(0)
    net = torchvision.models.get_model(arch).eval()
    model = split_network(f"torchvision:{arch}", net, field=False)
    x = torch.rand(*X)
    reference = create_feature_extractor(net, {node: "conv5"})
    with torch.no_grad():
        logits, conv5 = model.forward_with_features(x)
        assert torch.allclose(logits, net(model.normalize(x)), rtol=0, atol=1e-4)
        assert torch.allclose(conv5, reference(model.normalize(x))["conv5"], rtol=0, atol=1e-6)
    assert model.stride == stride and model.channels == conv5.shape[1]
    if family == "inception":  # Inception-v3 takes 75 pixels or more: measured, and said below that
        assert model.spec.min_side == 75
        with pytest.raises(ValueError, match="takes inputs of at least 75 pixels a side"):
            model(torch.rand(1, 3, 74, 120))
    fp = measure(model.features, (96, 96), max_side=192)  # small: the full-size footprint is test_external.py's
    assert fp.stride == (stride, stride)
    assert fp.covers or fp.rf[0] > stride  # a measured field, or one wider than 192 pixels


@pytest.mark.parametrize("arch", sorted(REFUSED.values()))
def test_torchvision_transformers_are_refused_with_the_layer_that_attends(arch):
    with pytest.raises(ValueError, match=r"attend over positions.*\(from .*Attention"):
        check_name(f"torchvision:{arch}")


# timm: one small member each of the families the issue names; timm's feature_info says the stride.
TIMM = [
    "resnet18d", "densenet121", "cs3darknet_focus_s", "xception41", "nf_regnet_b0",
    "ese_vovnet19b_slim", "mobilenetv4_conv_small", "regnetx_002", "ghostnet_050", "efficientnet_b0", "repvgg_a0",
    "convnext_atto", "fastvit_t8", "mambaout_femto",
]  # fmt: skip


@pytest.mark.parametrize("arch", TIMM)
def test_a_spread_of_timm_families_is_split_at_forward_features(arch):
    """FastViT-T8 is a hybrid family's member without attention (RepMixer blocks): accepted. MambaOut's maps are
    channels-last (Tensor[N, H, W, C]): conv5 is the same map, permuted."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model(arch).eval()
    model = split_network(f"timm:{arch}", net, field=False)
    x = torch.rand(*X)
    with torch.no_grad():
        logits, conv5 = model.forward_with_features(x)
        own = net.forward_features(model.normalize(x))
        assert torch.allclose(logits, net(model.normalize(x)), rtol=0, atol=1e-4)
    own = own.permute(0, 3, 1, 2) if own.shape[-1] == conv5.shape[1] and own.shape[1] != conv5.shape[1] else own
    assert torch.equal(conv5, own)
    assert model.stride == net.feature_info[-1]["reduction"]


@pytest.mark.parametrize(
    ("arch", "layer"),
    [("vit_tiny_patch16_224", "Attention"), ("mobilevit_xxs", "Attention"), ("coatnet_nano_rw_224", "Attention2d"),
     ("botnet26t_256", "SelfAttnBlock")],
)  # fmt: skip
def test_timm_transformers_and_hybrids_are_refused_before_anything_is_built(arch, layer):
    with pytest.raises(ValueError, match=rf"attend over positions.*: {layer}\)"):
        check_name(f"timm:{arch}")


def test_a_network_that_takes_only_some_sizes_is_refused_with_the_sizes_tried():
    """HRNet fuses its branches by upsampling: 224 x 224 works, 251 x 237 does not, and photos come in any size."""
    import timm

    net = timm.create_model("hrnet_w18_small").eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, 224, 224))  # the library's own network takes the probe
    with pytest.raises(ValueError, match=r"takes only some input sizes \(224 x 224 works, 251 x 237 fails: The size"):
        split_network("timm:hrnet_w18_small", net, field=False)


def test_a_name_the_library_does_not_list_gets_the_nearest_it_does():
    with pytest.raises(ValueError, match=r"torchvision has no classification model named 'mobilenetv2'.*mobilenet_v2"):
        check_name("torchvision:mobilenetv2")
    with pytest.raises(ValueError, match=r"timm has no classification model named 'resnt50'.*resnet50"):
        check_name("timm:resnt50")
    with pytest.raises(ValueError, match="write timm:NAME or torchvision:NAME"):
        check_name("keras:resnet50")


def test_predict_reports_mobilenet_v2s_own_last_map_from_a_students_weights(tmp_path):
    """The issue's first complaint: ``predict --model torchvision:mobilenet_v2 --weights mine.pth --json``."""
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    from spp_viz.images import load_image, resize_short_side, to_tensor

    torch.manual_seed(5)
    net = torchvision.models.mobilenet_v2().eval()
    weights = tmp_path / "mine.pth"
    torch.save(net.state_dict(), weights)
    image = SAMPLES / "chelsea.jpg"
    out = cli("predict", str(image), "--model", "torchvision:mobilenet_v2", "--weights", str(weights), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    x = to_tensor(resize_short_side(load_image(image), 256))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # ImageNet's, as torchvision's weights say
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        conv5 = create_feature_extractor(net, {"features": "out"})((x - mean) / std)["out"]
        top = net((x - mean) / std).softmax(1)[0].max()  # random weights: near ties, so the probability, not the index
    assert [report["conv5"][k] for k in ("channels", "height", "width")] == list(conv5.shape[1:])
    assert report["top5"][0]["prob"] == pytest.approx(float(top), abs=1e-5) and report["geometry"]["stride"] == 32


def test_models_lists_each_familys_smallest_member_measured():
    out = cli("models", "--library", "torchvision", "--family", "squeezenet", "--every-name", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    (family,) = report["families"]
    # SqueezeNet 1.1 by hand: conv 3x3/2, pool 3/2, fire, pool 3/2, fires, pool 3/2: stride 16; its pooled map is
    # the classifier's 1000 class maps.
    assert family["name"] == "torchvision:squeezenet1_1" and family["channels"] == 1000 and family["stride"] == 16
    assert family["members"] == 2 and family["accepted"] == 2
    assert [n["name"] for n in report["names"]] == ["torchvision:squeezenet1_0", "torchvision:squeezenet1_1"]
    bad = cli("models", "--library", "timm", "--family", "nosuch")
    assert bad.returncode == 2 and "timm has no family 'nosuch'; its families:" in bad.stderr
    refused = json.loads(cli("models", "--family", "swin_transformer", "--json").stdout)["families"][0]
    assert refused["accepted"] == 0 and "attend over positions" in refused["field"]


def test_tracing_a_network_leaves_another_threads_network_alone():
    """fx swaps nn.Module.__call__ for the whole process while it traces: a student's forward pass on another thread
    (beside a build on the server's queue) failed with "module is not installed as a submodule" before the tracer
    let other threads through."""
    import threading

    import torchvision

    from spp_viz import split

    traced, other = torchvision.models.resnet18().eval(), torchvision.models.mobilenet_v2().eval()
    x, stop, errors, passes = torch.rand(1, 3, 64, 64), threading.Event(), [], [0]
    with torch.no_grad():
        want = other(x)

    def student() -> None:
        while not stop.is_set():
            try:
                with torch.no_grad():
                    assert torch.equal(other(x), want)
                passes[0] += 1
            except Exception as e:  # noqa: BLE001  recorded, the test fails on it
                errors.append(repr(e))
                return

    thread = threading.Thread(target=student)
    thread.start()
    try:
        for _ in range(8):
            split.trace(traced, torch.zeros(1, 3, 64, 64))
    finally:
        stop.set()
        thread.join()
    assert errors == [] and passes[0] > 0
