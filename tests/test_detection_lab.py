"""The detection pipeline end to end: backbone, disk cache (resume), training, testing, saving, the CLI, and a
VOC-format folder of real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_lab_model
from voc_files import write_voc

from spp_viz.detection import compare
from spp_viz.detection import features as detection_lab
from spp_viz.detection.compare import compare_detectors
from spp_viz.detection.data import paste_objects, read_voc, synthetic_scenes
from spp_viz.detection.detector import DetectorConfig, load_detector
from spp_viz.detection.evaluate import evaluate_detector, mark_detections
from spp_viz.detection.features import FeatureCache, detection_backbone, fingerprint
from spp_viz.detection.train import train_detector
from spp_viz.models import load_model

pytestmark = pytest.mark.training

IMAGENET = ROOT.parent / "shared" / "imagenet-sample"
TINY = DetectorConfig(windows=40)


@pytest.fixture(scope="module")
def backbone(default_model):
    return detection_backbone(default_model)


def test_backbone_is_the_stride_16_stage_shared_and_unchanged(default_model, backbone):
    before = {k: v.clone() for k, v in default_model.state_dict().items()}
    assert backbone.stride == 16 and backbone.channels == 112 and backbone.name.endswith("blocks[:5]")
    assert backbone.spp.levels == (4, 2, 1) and backbone.spp_length == 112 * 21
    # Shared layers (no copy), the model itself untouched and without hooks.
    assert backbone.features.conv_stem is default_model.features.conv_stem
    assert all(torch.equal(v, before[k]) for k, v in default_model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in default_model.modules())
    zf5 = load_model("zf5")
    assert detection_backbone(zf5).features is zf5.features  # conv5 is already at stride 16


def test_features_are_cached_and_an_interrupted_run_resumes(backbone, tmp_path, monkeypatch):
    data = synthetic_scenes("train", 4, seed=5)
    calls = []
    real = detection_lab.spp_mode
    monkeypatch.setattr(detection_lab, "spp_mode", lambda *a, **k: calls.append(1) or real(*a, **k))

    def stop_at_third(fraction, text):
        if "training image 3" in text:
            raise KeyboardInterrupt

    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        train_detector(backbone, data, "spp", (320,), TINY, cache, progress=stop_at_third)
    assert len(calls) == 2
    detector = train_detector(backbone, data, "spp", (320,), TINY, FeatureCache(tmp_path / "cache"))
    assert len(calls) == 4  # only the two images not done before
    again = train_detector(backbone, data, "spp", (320,), TINY, FeatureCache(tmp_path / "cache"))
    assert len(calls) == 4  # a second run only trains
    assert torch.equal(again.svms.weight, detector.svms.weight)
    stored = list((tmp_path / "cache").glob("*.feats.npy"))
    assert stored and all(np.load(p, mmap_mode="r").dtype == np.float16 for p in stored)


def test_saved_detector_scores_the_same(backbone, tmp_path):
    data = synthetic_scenes("train", 3, seed=6)
    cache = FeatureCache(None)
    detector = train_detector(backbone, data, "spp", (320,), TINY, cache)
    path = detector.save(tmp_path / "det.safetensors")
    for back in (load_detector(path), load_detector(path.read_bytes())):
        assert back.classes == detector.classes and back.config == detector.config
        wf = detection_lab.window_features(
            backbone, fingerprint(backbone), data.images[0], "spp", (320,), TINY, cache, with_gt=False
        )
        assert np.allclose(back.scores(wf.features), detector.scores(wf.features), atol=1e-5)
        a = back.detect(wf.boxes, wf.features, data.images[0].size)
        b = detector.detect(wf.boxes, wf.features, data.images[0].size)
        assert np.allclose(a.boxes, b.boxes, atol=1e-3) and (a.labels == b.labels).all()
    with pytest.raises(ValueError, match="no detector"):
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_detector(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a readable"):
        load_detector(b"garbage")
    other = detection_backbone(load_model("zf5"))
    with pytest.raises(ValueError, match="trained on the features of"):
        evaluate_detector(detector, other, data, cache)


@pytest.mark.release  # 24 s: the Detection page's AppTest trains and tests a detector on scenes in the default tier
def test_pipeline_on_scenes_finds_objects(backbone):
    # 5 training and 3 test scenes: mAP 0.49 to 0.68 in both modes over seeds 0-2 (8 and 5 scenes took 37 s, 0.87-0.89).
    train, test = synthetic_scenes("train", 5, seed=0), synthetic_scenes("test", 3, seed=0)
    report = compare_detectors(backbone, train, test, ("spp", "rcnn"), DetectorConfig(windows=60), FeatureCache(None))
    out = report.json()
    assert set(out) >= {"data", "classes", "train_images", "test_images", "modes"}
    assert out["train_images"] == 5 and out["test_images"] == 3
    for name in ("spp", "rcnn"):
        m = out["modes"][name]
        assert set(m) >= {"map", "map_no_bbox_reg", "ap", "feature_seconds_per_image"}
        assert set(m["ap"]) == set(train.classes)
        assert m["map"] > 0.3  # chance is far below: most windows hold no object
    spp = report.modes["spp"]
    shown, missed = mark_detections(spp.detections[0], test.images[0])
    assert all(shown.scores > 0)
    assert len(missed) <= len(test.images[0].boxes)


def test_a_lab_network_is_a_backbone_too(tmp_path):
    """A Lab network (untrained here: only the plumbing is under test) keeps all its conv layers and its stride."""
    from dataclasses import asdict

    from spp_viz.lab.models import LabConfig, build_lab_model
    from spp_viz.lab.store import load_trained, save_model

    meta = {"kind": "synthetic", "config": asdict(LabConfig())}
    path = save_model(build_lab_model(LabConfig()), tmp_path / "lab.safetensors", meta)
    lab = load_trained(path)
    bb = detection_backbone(lab)
    assert bb.features is lab.features and bb.stride == lab.stride and bb.channels == lab.channels
    train, test = synthetic_scenes("train", 2, seed=3), synthetic_scenes("test", 1, seed=3)
    report = compare_detectors(bb, train, test, ("spp", "rcnn"), DetectorConfig(windows=15, scales=(240,)))
    assert set(report.modes) == {"spp", "rcnn"}


def test_five_scale_row_pools_each_window_at_its_scale(tmp_path):
    from spp_viz.paper import DETECTION_SCALES
    from spp_viz.registry import load

    backbone = detection_backbone(load(tiny_lab_model(tmp_path)))
    train, test = synthetic_scenes("train", 2, seed=9), synthetic_scenes("test", 1, seed=9)
    report = compare_detectors(backbone, train, test, ("spp-5",), DetectorConfig(windows=15), FeatureCache(None))
    row = report.modes["spp-5"]
    assert row.scales == DETECTION_SCALES and row.detector.scales == DETECTION_SCALES
    assert 0.0 <= row.map <= 1.0 and row.feature_seconds_per_image > 0
    with pytest.raises(ValueError, match="unknown mode"):
        compare.mode_specs(["spp-3"], (688,))


@pytest.mark.release  # 10 s; the VOC reader's own tests stay in the default tier (tests/test_detection_data.py)
@pytest.mark.skipif(not IMAGENET.is_dir(), reason="../shared/imagenet-sample is not beside this clone")
def test_pipeline_on_a_voc_folder_of_real_photos(tmp_path, backbone):
    """Real ImageNet photos as backgrounds, shapes pasted on them, written and read as VOC, detected."""
    from PIL import Image

    photos = sorted(IMAGENET.glob("*.JPEG"))[:14]
    sets = {}
    for split, chosen in (("trainval", photos[:8]), ("test", photos[8:])):
        items = []
        for k, path in enumerate(chosen):
            rng = np.random.default_rng([7, k, len(split)])
            background = Image.open(path).convert("RGB").resize((320, 240))
            img, boxes, labels = paste_objects(background, rng, num_classes=3)
            items.append((f"{split}_{k}", img, boxes, labels))
        sets[split] = items
    root = tmp_path / "voc"
    write_voc(root, {s: _as_set(items) for s, items in sets.items()})
    train = read_voc(root, "trainval")
    test = read_voc(root, "test", classes=train.classes)
    assert train.skipped == [] and len(train) == 8 and len(test) == 6
    report = compare_detectors(backbone, train, test, ("spp",), DetectorConfig(windows=60), FeatureCache(None))
    assert report.modes["spp"].map > 0.2


def _as_set(items):
    from spp_viz.detection.data import SCENE_CLASSES, DetectionImage, DetectionSet

    return DetectionSet(
        "photos",
        SCENE_CLASSES[:3],
        [
            DetectionImage(
                name, boxes, labels, np.zeros(len(labels), bool), img.size, _load=lambda i=img: i, _bytes=img.tobytes
            )
            for name, img, boxes, labels in items
        ],
    )


def test_cli_detection_lab_json(tmp_path, capsys):
    from spp_viz.cli import main

    out = tmp_path / "det.safetensors"
    backbone = tiny_lab_model(tmp_path)
    # --data synthetic is the default: the second run below leaves it out and must read the same data.
    args = ["detection-lab", "--backbone", backbone, "--max-images", "4", "--windows", "30", "--scales", "320"]
    cache = ["--cache-dir", str(tmp_path / "cache")]
    code = main([*args, "--data", "synthetic", "--out", str(out), *cache, "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) >= {"data", "classes", "train_images", "test_images", "modes"}
    assert set(result["modes"]) == {"spp", "rcnn"}
    for mode in result["modes"].values():
        assert set(mode) >= {"map", "map_no_bbox_reg", "ap", "feature_seconds_per_image"}
    assert result["train_images"] == 4 and result["test_images"] == 4
    for path in result["saved"]:
        assert load_detector(Path(path)).classes == tuple(result["classes"])
    # The same run as a table: its features come from the cache now, so only training runs again.
    assert main([*args, *cache]) == 0
    table = capsys.readouterr().out
    assert "mAP" in table and "no bbox reg" in table and "faster than R-CNN on the same windows" in table
    assert f"{result['modes']['spp']['map']:.1%}" in table


def test_cli_detection_lab_errors(tmp_path, capsys):
    from spp_viz.cli import main

    assert main(["detection-lab", "--data", str(tmp_path), "--max-images", "2"]) == 2
    assert "not a VOC-format folder" in capsys.readouterr().err
    assert main(["detection-lab", "--modes", "spp,fast", "--max-images", "2"]) == 2
    assert "unknown mode" in capsys.readouterr().err


def test_a_network_by_name_is_a_backbone_too():
    """timm:resnet18 (random weights: the plumbing is under test) cut at its stride-16 stage, whose geometry is
    measured: both modes train and test, and the windows map onto conv5 by the measured stride."""
    from spp_viz.external import build_external

    bb = detection_backbone(build_external("timm:resnet18"))
    assert bb.stride == 16 and bb.channels == 256 and bb.footprint.stride == (16, 16)
    train, test = synthetic_scenes("train", 2, seed=3), synthetic_scenes("test", 1, seed=3)
    report = compare_detectors(bb, train, test, ("spp", "rcnn"), DetectorConfig(windows=15, scales=(240,)))
    assert set(report.modes) == {"spp", "rcnn"}
