"""The views bench: labels from ImageNet-style names, the paired statistics, and accuracy against a slow loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from spp_viz.explain.labels import LabelReader, imagenet_wnids
from spp_viz.explain.view_accuracy import view_accuracy
from spp_viz.explain.view_summary import ViewsSummary, findings
from spp_viz.gallery import GalleryItem, folder_items
from spp_viz.models import NetSpec, SPPNet, imagenet_classes
from spp_viz.pyramid import SpatialPyramidPool
from spp_viz.stats import mcnemar, mean_se, paired_bootstrap

NAMES = ("tench", "goldfish", "great white shark", "crane", "crane", "maillot")
WNIDS = ("n01440764", "n01443537", "n01484850", "n02012849", "n03126707", "n03710637")


@pytest.fixture(scope="module")
def reader() -> LabelReader:
    return LabelReader(NAMES, WNIDS)


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("000_n01440764_tench.JPEG", 0),  # ../shared/imagenet-sample's scheme: index, wnid, name
        ("002_n01484850_great_white_shark.JPEG", 2),
        ("001_goldfish.jpg", 1),  # a leading index and the class name
        ("n01443537_10026.JPEG", 1),  # ImageNet train's naming: the wnid in the file name
        ("val/n02012849/ILSVRC2012_val_00000293.JPEG", 3),  # val sorted into wnid folders
        ("tench/photo1.png", 0),  # a folder named by the class, as the model spells it
        ("Great_White_Shark/x.jpg", 2),  # case, underscores for spaces
    ],
)
def test_labels_are_read_from_each_naming_scheme(reader, path, label):
    got, how = reader.read(path)
    assert got == label, how


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("holiday.jpg", "no class index"),  # nothing to read
        ("photos/holiday.jpg", "no class index"),  # a folder that is no class
        ("001_n01440764_tench.JPEG", "leading index 1 but WordNet id n01440764 is class 0"),  # they disagree
        ("n09999999_1.JPEG", "not one of the model's 6 classes"),
        ("crane/1.jpg", "belongs to 2 classes"),  # ImageNet has two classes named crane: never a guess
        ("n01440764_n01443537.JPEG", "several WordNet ids"),
        ("007_holiday.jpg", "no class index"),  # a leading number that is no class name is not a label
        ("005_goldfish.jpg", "leading index 5 but the class name 'goldfish' is class 1"),
        ("photon01440764.jpg", "no class index"),  # an id inside a longer word is not one
    ],
)
def test_files_without_a_readable_label_are_listed_with_why(reader, path, why):
    got, how = reader.read(path)
    assert got is None and why in how


def test_the_imagenet_ids_match_the_models_class_order():
    from spp_viz.models import imagenet_classes

    wnids, names = imagenet_wnids(), imagenet_classes()
    reader = LabelReader(names, wnids)
    assert len(wnids) == 1000 and wnids[0] == "n01440764" and names[0] == "tench"
    assert reader.read("000_n01440764_tench.JPEG")[0] == 0
    assert reader.read("998_n13133613_ear.JPEG")[0] == 998 and names[998] == "ear"


def test_every_photo_of_the_shared_sample_has_its_label(shared_sample):
    from spp_viz.models import imagenet_classes

    reader = LabelReader(imagenet_classes(), imagenet_wnids())
    items = folder_items(shared_sample)
    labels = [reader.read(i.name)[0] for i in items]
    assert len(items) == 500 and labels == [int(i.name[:3]) for i in items]


def test_paired_bootstrap_and_mcnemar_on_a_case_with_a_known_answer():
    # 20 photos: both right on 10, only a on 6, only b on 1, both wrong on 3.
    a = [True] * 10 + [True] * 6 + [False] * 1 + [False] * 3
    b = [True] * 10 + [False] * 6 + [True] * 1 + [False] * 3
    test = mcnemar(a, b)
    # Exact two-sided binomial: 7 disagreements, 1 or fewer going b's way: 2 * (1 + 7) / 2**7 = 0.125.
    assert (test.only_a, test.only_b) == (6, 1) and test.p_value == pytest.approx(0.125)
    diff = paired_bootstrap(a, b, samples=4000)
    assert diff.value == pytest.approx(0.25)  # 16/20 - 11/20
    # The normal approximation of the paired difference: sd of d over sqrt(n).
    d = np.asarray(a, float) - np.asarray(b, float)
    assert diff.se == pytest.approx(d.std() / math.sqrt(len(d)), rel=0.1)
    normal = 1.96 * d.std() / math.sqrt(len(d))  # the interval's half-width, by the normal approximation
    assert diff.low == pytest.approx(0.25 - normal, abs=0.04) and diff.high == pytest.approx(0.25 + normal, abs=0.04)
    assert diff.low <= 0  # 6 against 1 on 20 photos: not clear, as McNemar's p = 0.125 says
    clear = mcnemar([True] * 12 + [False] * 8, [False] * 20)
    assert clear.p_value == pytest.approx(2 / 2**12)  # 12 disagreements, none b's way
    assert paired_bootstrap([True] * 12 + [False] * 8, [False] * 20).low > 0.35
    same = paired_bootstrap([True, False, True], [True, False, True])
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and mcnemar([True], [True]).p_value == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap([True], [True, False])


def _tiny_folder(tmp_path, model, predict=None) -> list[GalleryItem]:
    """Five labelled photos (class-name folders, as the model spells its names), one unlabelled, one broken. With
    ``predict`` (image -> class index), the first three are filed under the class it gives them, so that a run of
    the bench has hits as well as misses to get right."""
    rng = np.random.default_rng(0)
    for i in range(5):
        img = Image.fromarray(rng.integers(0, 255, (90 + 10 * i, 120, 3), dtype=np.uint8))
        label = predict(img) if predict is not None and i < 3 else i * 7
        folder = tmp_path / model.class_names[label]
        folder.mkdir(exist_ok=True)
        img.save(folder / f"{i}.png")
    Image.new("RGB", (80, 80)).save(tmp_path / "unknown.png")
    (tmp_path / model.class_names[0]).mkdir(exist_ok=True)
    (tmp_path / model.class_names[0] / "broken.jpg").write_bytes(b"not an image")
    return folder_items(tmp_path)


def tiny_imagenet_net(class_names) -> SPPNet:
    """Two stride-4 convs (stride 16, 16 channels), the paper's pyramid and one linear layer onto ImageNet's classes:
    the bench's batching is under test, not a network's answers (ZF-5's fc layers at six scales took 13 s)."""
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=4, padding=1)
    )
    spec = NetSpec("tiny", 16, 16, tuple(class_names))
    spp = SpatialPyramidPool((6, 3, 2, 1), "max")
    head = nn.Linear(spp.output_length(16), len(class_names))
    with torch.no_grad():
        head.weight.mul_(30)  # clear winners: a near-uniform softmax would leave top-1 to rounding
    return SPPNet(features, spp, head, spec).eval().requires_grad_(False)


def test_view_accuracy_matches_a_photo_by_photo_loop(tmp_path):
    """Batched, threaded and bucketed, the bench must give what one forward per view gives."""
    from spp_viz.explain.views import make_views, multi_scale_probabilities, probabilities
    from spp_viz.images import load_image

    model = tiny_imagenet_net(imagenet_classes())
    full_view_top1 = lambda img: int(np.argmax(probabilities(model, make_views(img, 224, 96)["full"].image)))  # noqa: E731
    items = _tiny_folder(tmp_path, model, predict=full_view_top1)
    seen = []
    progress = lambda f, t: seen.append((f, t))  # noqa: E731
    report = view_accuracy(model, items, short_side=96, multi=True, batch_size=3, progress=progress)
    assert report.n == 5 and [u[0] for u in report.unlabeled] == ["unknown.png"]
    assert [s[0] for s in report.skipped] == [f"{model.class_names[0]}/broken.jpg"]
    assert seen[-1] == (1.0, "6 of 6 photos")
    reader = LabelReader.for_model(model)
    for k, name in enumerate(report.names):
        img = load_image(next(i for i in items if i.name == name).read())
        label = reader.read(name)[0]
        views = {v: view.image for v, view in make_views(img, model.input_size, 96).items()}
        if views["crop"].size != views["warp"].size:  # at shorter side 96 the crop is 96 square: the bench warps to it
            views["warp"] = views["warp"].resize(views["crop"].size, Image.Resampling.BILINEAR)
        probs = {v: probabilities(model, views[v]) for v in ("crop", "warp", "full")}
        probs["multi"] = multi_scale_probabilities(model, img)
        for v, p in probs.items():
            top5 = np.argsort(-p)[:5]
            assert report.top1[v][k] == (top5[0] == label), (name, v)
            assert report.top5[v][k] == (label in top5), (name, v)
    assert report.top1["full"].sum() == 3 and not report.top1["full"].all()  # hits and misses were both checked
    result = report.json()
    assert set(result["views"]) == {"crop", "warp", "full", "multi"} and set(result["paired"]) == {
        "warp",
        "full",
        "multi",
    }
    assert result["n"] == 5 and json.loads(json.dumps(result)) == result
    # The paper's Caltech101 claim, full image against warp, paired the same way.
    full_vs_warp = result["paired_with_warp"]["full"]["top1"]
    assert full_vs_warp["diff"] == pytest.approx(report.top1["full"].mean() - report.top1["warp"].mean())
    assert set(result["paired_with_warp"]) == {"full", "multi"}


def test_findings_say_no_clear_difference_when_the_interval_spans_zero():
    result = {
        "n": 500,
        "model": "efficientnet_lite0",
        "views": {"crop": {"top1": 0.75, "top5": 0.9}, "full": {"top1": 0.76, "top5": 0.91}},
        "paired": {
            "full": {
                "top1": {
                    "diff": 0.01,
                    "low": -0.01,
                    "high": 0.03,
                    "mcnemar_p": 0.4,
                    "only_this_view": 20,
                    "only_crop": 15,
                }
            }
        },
    }
    lines = findings(ViewsSummary.from_json(result), "ImageNet photos")
    assert lines[0].startswith("Over 500 ImageNet photos") and "75.0%" in lines[0]
    assert "no clear difference" in lines[1] and "+1.0 points" in lines[1]
    assert "does not show clearly" in lines[2]
    result["paired"]["full"]["top1"] |= {"diff": 0.05, "low": 0.02, "high": 0.08}
    lines = findings(ViewsSummary.from_json(result))
    assert "beats the centre crop by 5.0 points" in lines[1] and "direction the paper" in lines[2]


def test_mean_se_by_hand():
    # 1, 2, 3, 4: mean 2.5, sample sd sqrt(5/3) = 1.2910, standard error 1.2910 / 2 = 0.6455.
    mean, se = mean_se([1, 2, 3, 4])
    assert mean == 2.5 and se == pytest.approx(math.sqrt(5 / 3) / 2)
    assert math.isnan(mean_se([0.7])[1])  # one value: no spread
    with pytest.raises(ValueError, match="non-empty"):
        mean_se([])
