"""The SPP Lab: the generator, training, the multi-size loop, saving and loading, and the paper's qualitative result."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from spp_viz import registry
from spp_viz.images import to_tensor
from spp_viz.synthetic import CLASSES, SIZES, make_split
from spp_viz.train import LabConfig, evaluate, load_trained, read_meta, save_result, synthetic_data, train

TINY = LabConfig(epochs=3, train_count=80, val_count=40, test_count=40, width=16)


def test_generator_is_deterministic_balanced_and_labels_are_right():
    a, b = make_split("train", 40, seed=3), make_split("train", 40, seed=3)
    assert all(
        np.array_equal(np.asarray(x.image), np.asarray(y.image)) and x.label == y.label
        for x, y in zip(a, b, strict=True)
    )
    assert not np.array_equal(np.asarray(a[0].image), np.asarray(make_split("test", 1, seed=3)[0].image))
    assert [s.label for s in a].count(0) == 10 and sorted({s.label for s in a}) == [0, 1, 2, 3]
    for s in make_split("val", 200, seed=1):
        x0, y0, x1, y1 = s.box
        assert 0 <= x0 < x1 <= s.image.width and 0 <= y0 < y1 <= s.image.height  # the object is inside the image
        assert s.image.size in SIZES
        w, h = x1 - x0, y1 - y0
        ratio = max(w, h) / min(w, h)
        if CLASSES[s.label] in ("ellipse", "rectangle"):
            assert ratio == pytest.approx(2.0, abs=0.15)
        else:
            assert ratio == pytest.approx(1.0, abs=0.1)
        inside = np.asarray(s.image)[(y0 + y1) // 2, (x0 + x1) // 2]
        corner = np.asarray(s.image)[0, 0]
        assert np.abs(inside.astype(int) - corner.astype(int)).sum() > 0  # the shape is drawn


def test_tiny_training_lowers_the_loss_and_is_reproducible():
    first = train(replace(TINY, epochs=4, regime="single-size"))
    assert first.history[-1].loss < first.history[0].loss
    again = train(replace(TINY, epochs=4, regime="single-size"))
    assert [h.loss for h in again.history] == pytest.approx([h.loss for h in first.history], rel=1e-5)


def test_multi_size_alternates_sizes():
    result = train(replace(TINY, epochs=4, regime="multi-size"))
    scales = [h.scale for h in result.history]
    assert scales == pytest.approx([1.0, 180 / 224, 1.0, 180 / 224])
    big, small = set(result.history[0].input_sizes), set(result.history[1].input_sizes)
    assert big != small and max(h for h, _ in small) < max(h for h, _ in big)
    random = train(replace(TINY, epochs=3, regime="random-size"))
    assert len({round(h.scale, 6) for h in random.history}) == 3


def test_fixed_size_network_refuses_full_images_with_a_clear_message():
    result = train(replace(TINY, regime="warp"))
    assert result.test["full"] is None and result.test["warp"] is not None
    with pytest.raises(ValueError, match="without SPP only takes"):
        result.model(torch.rand(1, 3, 96, 48))


def test_saved_model_loads_and_predicts_the_same(tmp_path):
    result = train(replace(TINY, regime="multi-size", levels=(3, 1)))
    path = save_result(result, tmp_path / "m.safetensors")
    assert read_meta(path)["config"]["levels"] == [3, 1]
    loaded = load_trained(path)
    via_registry = registry.load(f"lab:{path}")
    assert loaded.class_names == list(CLASSES) and loaded.spp.levels == (3, 1)
    x = to_tensor(make_split("test", 1)[0].image)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model(x))
        torch.testing.assert_close(via_registry(x), result.model(x))


def test_full_image_spp_beats_warp_on_held_out_data():
    """The paper's qualitative result on a small configuration: on the images a warp distorts (2:1 and 1:2), the
    whole image through SPP beats the warped baseline on shapes whose aspect ratio is the class."""
    config = LabConfig(epochs=8, train_count=400, val_count=80, test_count=400)
    data = synthetic_data(config)
    distorted = [s for s in data["test"] if s.image.width != s.image.height]
    assert len(distorted) > 150
    spp = train(replace(config, regime="single-size"), data=data)
    warp = train(replace(config, regime="warp"), data=data)
    spp_acc = evaluate(spp.model, distorted, "full", config.size)
    warp_acc = evaluate(warp.model, distorted, "warp", config.size)
    assert spp_acc > warp_acc + 0.03, (spp_acc, warp_acc)


def test_fine_tune_on_a_folder_then_save_and_load(tmp_path):
    from spp_viz.train import fine_tune_folder, save_model

    for label in ("circle", "square"):
        (tmp_path / "data" / label).mkdir(parents=True)
    for i, s in enumerate(make_split("train", 12, seed=5)):
        if CLASSES[s.label] in ("circle", "square"):
            s.image.save(tmp_path / "data" / CLASSES[s.label] / f"{i}.png")
    (tmp_path / "data" / "circle" / "broken.jpg").write_bytes(b"nope")  # skipped, not fatal
    result = fine_tune_folder("zf5", tmp_path / "data", levels=(2, 1), sides=(96, 72), epochs=6, hidden=32)
    assert result.model.class_names == ["circle", "square"] and len(result.history) == 6
    assert [h.input_sizes[0][0] for h in result.history[:2]] == [96, 72]  # two sizes, alternating
    path = save_model(result.model, tmp_path / "f.safetensors", result.meta)
    loaded = load_trained(path)
    x = to_tensor(make_split("test", 1)[0].image)
    torch.testing.assert_close(loaded(x), result.model(x))
    with pytest.raises(ValueError, match="two class subfolders"):
        fine_tune_folder("zf5", tmp_path / "data" / "circle")


def test_paper_verdicts_read_the_numbers():
    import json

    from conftest import ROOT

    from spp_viz.train import paper_verdicts

    shipped = json.loads((ROOT / "assets" / "lab_results.json").read_text())
    lines = paper_verdicts(shipped)
    full = {r["name"]: r["test"]["full"] for r in shipped["rows"]}
    assert len(lines) == 4 and "does not match" not in lines[0] + lines[1]  # full-image SPP beats crop and warp
    multi_gain = full["SPP {4,2,1} multi-size"] > full["SPP {4,2,1} single-size"]
    fine_gain = full["SPP {6,3,2,1} multi-size"] > full["SPP {4,2,1} multi-size"]
    assert ("does not match" not in lines[2]) == multi_gain and ("no gain" not in lines[3]) == fine_gain

    def rows(crop, warp, single, multi, fine):
        return [
            {"name": "no SPP (crop)", "test": {"crop": crop}},
            {"name": "no SPP (warp)", "test": {"warp": warp}},
            {"name": "SPP {4,2,1} single-size", "test": {"full": single}},
            {"name": "SPP {4,2,1} multi-size", "test": {"full": multi}},
            {"name": "SPP {6,3,2,1} multi-size", "test": {"full": fine}},
        ]

    worse = paper_verdicts({"rows": rows(0.9, 0.9, 0.6, 0.5, 0.4), "config": {"test_count": 400}})
    assert [("does not match" in line or "no gain" in line) for line in worse] == [True, True, True, True]
    assert "0.25" in worse[2]  # one test image in 400


def test_held_out_takes_a_share_of_every_class_and_never_a_whole_class():
    from spp_viz.train import held_out

    labels = [0] * 10 + [1] * 5 + [2] * 2 + [3]
    mask = held_out(labels, 0.2, seed=0).numpy()
    per_class = [int(mask[np.asarray(labels) == c].sum()) for c in range(4)]
    assert per_class == [2, 1, 1, 0]  # 20% rounded, at least one, never all of a class (a single image stays)
    assert (held_out(labels, 0.2, seed=0).numpy() == mask).all()  # the seed decides


def test_fine_tune_validation_accuracy_is_measured_on_held_out_images(tmp_path, monkeypatch):
    from spp_viz import train as lab

    for label in ("circle", "square"):
        (tmp_path / "data" / label).mkdir(parents=True)
    for i, s in enumerate(make_split("train", 24, seed=6)):
        if CLASSES[s.label] in ("circle", "square"):
            s.image.save(tmp_path / "data" / CLASSES[s.label] / f"{i}.png")
    seen = {}
    real = lab.held_out

    def spy(labels, fraction, seed):
        seen["mask"] = real(labels, fraction, seed)
        return seen["mask"]

    monkeypatch.setattr(lab, "held_out", spy)
    result = lab.fine_tune_folder("zf5", tmp_path / "data", levels=(1,), sides=(64,), epochs=2, hidden=8)
    mask = seen["mask"]
    assert result.meta["val_images"] == int(mask.sum()) >= 2
    assert result.meta["train_images"] == int((~mask).sum())
    # The last epoch's validation accuracy, recomputed with the saved model on the held-out images alone.
    from spp_viz.activations import folder_items, gallery_view

    items = [(c, it) for c, name in enumerate(("circle", "square")) for it in folder_items(tmp_path / "data" / name)]
    held = [(c, it) for (c, it), m in zip(items, mask.tolist(), strict=True) if m]
    with torch.no_grad():
        right = sum(int(result.model(to_tensor(gallery_view(it.read(), it.name, 64))).argmax()) == c for c, it in held)
    assert result.history[-1].val_accuracy == pytest.approx(right / len(held))
