"""The SPP Lab: the generator, training, the multi-size loop, saving and loading, and the paper's qualitative result."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from spp_viz import registry
from spp_viz.images import to_tensor
from spp_viz.lab.data import CLASSES, SIZES, make_split
from spp_viz.lab.models import LabConfig
from spp_viz.lab.store import load_trained, read_meta
from spp_viz.lab.train import evaluate, save_result, synthetic_data, train

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
    from spp_viz.lab.store import save_model
    from spp_viz.lab.train import fine_tune_folder

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


def test_claim_verdict_needs_a_difference_beyond_twice_its_standard_error():
    from spp_viz.lab.experiments import claim_verdict

    # Differences per seed 0.02, 0.03, 0.025: mean 0.025, sd 0.005, se 0.005 / sqrt(3) = 0.00289: clear.
    verdict, v = claim_verdict([0.85, 0.83, 0.845], [0.83, 0.80, 0.82])
    assert verdict == "matches the paper"
    assert v.diff == pytest.approx(0.025) and v.se == pytest.approx(0.005 / np.sqrt(3))
    # Differences 0.04, -0.03, 0.005: mean 0.005, se = 0.0350 / sqrt(3) = 0.0202 > mean / 2: no clear difference.
    verdict, v = claim_verdict([0.84, 0.80, 0.825], [0.80, 0.83, 0.82])
    assert verdict == "no clear difference on these data" and v.se == pytest.approx(0.035 / np.sqrt(3), rel=1e-3)
    # The same differences with the signs flipped: clearly worse, said as the opposite of the paper.
    assert claim_verdict([0.83, 0.80, 0.82], [0.85, 0.83, 0.845])[0] == "the opposite of the paper"
    # One seed has no spread: never a verdict, however large the gap.
    assert claim_verdict([0.9], [0.5])[0] == "no clear difference on these data"
    with pytest.raises(ValueError, match="one result per seed"):
        claim_verdict([0.9, 0.8], [0.5])


def _rows(crop, warp, single, multi, fine):
    def row(name, view, values):
        test = {"crop": None, "warp": None, "full": None}
        return {
            "name": name,
            "test": test | {view: float(np.mean(values))},
            "std": test | {view: float(np.std(values, ddof=1))},
            "per_seed": test | {view: list(values)},
        }

    return [
        row("no SPP (crop)", "crop", crop),
        row("no SPP (warp)", "warp", warp),
        row("SPP {4,2,1} single-size", "full", single),
        row("SPP {4,2,1} multi-size", "full", multi),
        row("SPP {6,3,2,1} multi-size", "full", fine),
    ]


def test_paper_verdicts_follow_the_seeds():
    from spp_viz.lab.experiments import ExperimentResults, paper_verdicts

    steady = [0.80, 0.81, 0.79]
    better = [0.86, 0.87, 0.85]  # +6 points on every seed: clear
    noisy = [0.84, 0.78, 0.82]  # +1.3 points on average, but one seed lower: not clear
    def results(*rows):
        return ExperimentResults.from_json({"rows": _rows(*rows), "seeds": [0, 1, 2]})

    lines = paper_verdicts(results(steady, steady, steady, better, noisy))
    assert len(lines) == 4
    assert "**matches the paper**" in lines[0] and "**matches the paper**" in lines[1]  # multi beats crop and warp
    assert "**matches the paper**" in lines[2]  # multi-size beats single-size by 6 points on each seed
    assert "**the opposite of the paper**" in lines[3]  # {6,3,2,1}: 81.3 vs 86.0, lower on every seed
    assert "86.0 ± 1.0%" in lines[2] and "over 3 seeds" in lines[2]
    mixed = paper_verdicts(results(steady, steady, steady, noisy, noisy))
    assert all("**no clear difference on these data**" in line for line in mixed[:3]), mixed


def test_accuracy_cell_shows_mean_and_spread_or_why_a_view_does_not_exist():
    from spp_viz.lab.experiments import ExperimentRow, accuracy_cell

    row = {
        "name": "a",
        "test": {"crop": 0.86, "warp": 0.5, "full": None},
        "std": {"crop": 0.01, "warp": None, "full": None},
        "not_applicable": {"full": "no SPP: fixed size only"},
    }
    row = ExperimentRow.from_json(row)
    assert accuracy_cell(row, "crop") == "86.0 ± 1.0%"
    assert accuracy_cell(row, "warp") == "50.0%"  # one seed: no spread to show
    assert accuracy_cell(row, "full") == "n/a: no SPP: fixed size only"


def test_shipped_comparison_has_several_seeds_and_reasons_for_missing_cells():
    import json

    from conftest import ROOT

    from spp_viz.lab.experiments import EXPERIMENTS, ExperimentResults, paper_verdicts
    from spp_viz.lab.train import TEST_VIEWS

    shipped = json.loads((ROOT / "assets" / "lab_results.json").read_text())
    assert len(shipped["seeds"]) >= 3 and [r["name"] for r in shipped["rows"]] == [n for n, _ in EXPERIMENTS]
    for r in shipped["rows"]:
        for v in TEST_VIEWS:
            if r["test"][v] is None:
                assert "no SPP" in r["not_applicable"][v]
            else:
                assert len(r["per_seed"][v]) == len(shipped["seeds"])
                assert r["test"][v] == pytest.approx(np.mean(r["per_seed"][v]))
    assert len(paper_verdicts(ExperimentResults.from_json(shipped))) == 4


def test_run_experiments_pairs_networks_by_seed():
    from spp_viz.lab.experiments import run_experiments
    from spp_viz.lab.models import LabConfig
    from spp_viz.lab.train import train

    config = LabConfig.sized(40, epochs=1)
    results = run_experiments(config, seeds=(0, 3)).json()
    assert results["seeds"] == [0, 3]
    crop = results["rows"][0]
    assert crop["test"]["full"] is None and "no SPP" in crop["not_applicable"]["full"]
    # Seed 3's number is what training that network alone with seed 3 gives.
    alone = train(replace(config, seed=3, regime="crop"))
    assert crop["per_seed"]["crop"][1] == alone.test["crop"]


def test_held_out_takes_a_share_of_every_class_and_never_a_whole_class():
    from spp_viz.lab.data import held_out

    labels = [0] * 10 + [1] * 5 + [2] * 2 + [3]
    mask = held_out(labels, 0.2, seed=0).numpy()
    per_class = [int(mask[np.asarray(labels) == c].sum()) for c in range(4)]
    assert per_class == [2, 1, 1, 0]  # 20% rounded, at least one, never all of a class (a single image stays)
    assert (held_out(labels, 0.2, seed=0).numpy() == mask).all()  # the seed decides


def test_fine_tune_validation_accuracy_is_measured_on_held_out_images(tmp_path, monkeypatch):
    from spp_viz.lab import train as lab

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
    from spp_viz.gallery import folder_items, gallery_view

    items = [(c, it) for c, name in enumerate(("circle", "square")) for it in folder_items(tmp_path / "data" / name)]
    held = [(c, it) for (c, it), m in zip(items, mask.tolist(), strict=True) if m]
    with torch.no_grad():
        right = sum(int(result.model(to_tensor(gallery_view(it.read(), it.name, 64))).argmax()) == c for c, it in held)
    assert result.history[-1].val_accuracy == pytest.approx(right / len(held))


def test_claims_are_the_per_seed_differences_and_say_what_noise_hides():
    """By hand: SPP full 0.80, 0.90, 0.85 against warp 0.70, 0.88, 0.86 -> differences +10, +2, -1 points, mean
    +3.67, sample sd 5.69, standard error 3.28: no clear difference, and under 6.6 points cannot be told apart."""
    from spp_viz.lab.experiments import EXPERIMENTS, ExperimentResults, claims, convergence_note

    def row(name, changes, full, warp):
        test = {"crop": 0.5, "warp": sum(warp) / 3, "full": sum(full) / 3}
        per_seed = {"crop": [0.5] * 3, "warp": warp, "full": full}
        return {"name": name, **changes, "test": test, "std": dict.fromkeys(test, 0.0), "per_seed": per_seed}

    rows = [row(n, c, [0.80, 0.90, 0.85], [0.70, 0.88, 0.86]) for n, c in EXPERIMENTS]
    results = ExperimentResults.from_json({"rows": rows, "seeds": [0, 1, 2], "config": {"epochs": 7}})
    first = claims(results)[0]
    assert first.name == "Full-image SPP against the warped baseline" and first.per_seed == [10.0, 2.0, -1.0]
    assert first.difference == pytest.approx(3.67, abs=0.01) and first.se == pytest.approx(3.28, abs=0.01)
    assert first.verdict == "no clear difference on these data" and first.seeds == 3
    assert "cannot be told from noise" in first.sentence("a", "b") and "warp to a square" in first.sentence("a", "b")
    assert [c["name"] for c in results.json()["claims"]] == [c.name for c in claims(results)]
    note = convergence_note(results)  # crop networks at 50% on their crops, SPP ones at 85% on full images
    assert note.startswith("5 of 5 networks stay under 95%") and "50.0% to 85.0%" in note
