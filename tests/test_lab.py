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

pytestmark = pytest.mark.training

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


@pytest.mark.release  # 15 s: the Lab experiments page's AppTest runs a small comparison in the default tier
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
    result = fine_tune_folder("zf5", tmp_path / "data", levels=(2, 1), sides=(96, 72), epochs=6, hidden=32, seed=3)
    assert result.model.class_names == ["circle", "square"] and len(result.history) == 6
    # The result records the settings it ran with, in its config and in the saved file's metadata.
    assert (result.config.epochs, result.config.seed, result.config.levels) == (6, 3, (2, 1))
    assert result.config.regime == "multi-size"
    assert {k: result.meta[k] for k in ("epochs", "seed", "sides", "hidden")} == {
        "epochs": 6, "seed": 3, "sides": [96, 72], "hidden": 32
    }
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


def test_shipped_results_meet_the_issues_goals_and_their_claims_are_their_rows():
    """Issue 22: at least 5 seeds; every claim's paired standard error at most 1 point; every network at 95% on the
    view it trained for, or capped by that view (its ceiling, measured here again, under 95%). The claims list in
    the file is the one its rows give."""
    import json

    from conftest import ROOT

    from spp_viz.lab.ceiling import view_ceiling
    from spp_viz.lab.convergence import CONVERGED, own_views
    from spp_viz.lab.experiments import ExperimentResults, claims

    raw = json.loads((ROOT / "assets" / "lab_results.json").read_text())
    shipped = ExperimentResults.from_json(raw)
    assert len(shipped.seeds) >= 5 and raw["claims"] == [c.json() for c in claims(shipped)]
    assert all(c.se is not None and c.se <= 1.0 for c in claims(shipped))
    for v in own_views(shipped):
        capped = v.ceiling < CONVERGED and v.ceiling == pytest.approx(view_ceiling(v.view), abs=1e-4)
        assert v.accuracy >= CONVERGED or capped, v
    assert all(len(r.val_curves) == len(shipped.seeds) == len(r.kept_epochs) for r in shipped.rows)


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


@pytest.mark.release  # 10 s of training in three processes: a release check (the suite's 10 minutes)
def test_networks_trained_in_parallel_processes_are_the_ones_trained_here():
    """``jobs=2``: two processes of one torch thread each. A network's numbers depend on its configuration and seed
    only, so they equal training it here with one thread."""
    from spp_viz.lab.experiments import EXPERIMENTS, network_run, run_experiments

    config = LabConfig.sized(40, epochs=2, width=16)
    parallel = run_experiments(config, seeds=(0, 1), jobs=2)
    assert parallel.jobs == 2 and parallel.torch_threads == 1
    threads = torch.get_num_threads()
    try:
        # Every network once, the seeds taken in turn (both seeds and all five networks checked; all ten pairs
        # trained again here took half of this test's time and checked nothing more).
        for k, ((name, changes), row) in enumerate(zip(EXPERIMENTS, parallel.rows, strict=True)):
            i = k % 2
            here = network_run(config, (0, 1)[i], changes, threads=1)
            assert row.per_seed["warp"][i] == here.test["warp"], (name, i)
            assert row.val_curves[i] == [round(h.val_accuracy, 4) for h in here.history]
    finally:
        torch.set_num_threads(threads)


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
    from spp_viz.lab.convergence import convergence_note
    from spp_viz.lab.experiments import EXPERIMENTS, ExperimentResults, claims

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
    note, warn = convergence_note(results)  # crop networks at 50% on their crops, SPP ones at 85% on full images
    assert warn and note.startswith("5 of 5 networks stay under 95%") and "50.0% to 85.0%" in note


def test_view_ceilings_match_hand_calculations():
    """By hand: square images only, a crop and a warp keep every shape whole and undistorted (100%); wide 2:1 images
    only, a warp makes circles standing 1:2 ellipses and lying ellipses circles, still apart (100%). Square and wide
    images as likely: the circles of square images (half the circles) and the lying ellipses of wide ones (a quarter
    of the ellipses) look the same after a warp; the observer calls both circles and loses that quarter of the
    ellipses, and as many rectangles: 1/8 of all images, 87.5% (a little more where a box's rounding shows the
    image's size)."""
    from spp_viz.lab.ceiling import cut_away, view_ceiling

    square, wide = ((64, 64),), ((128, 64),)
    assert view_ceiling("crop", 4000, sizes=square) == 1.0 and view_ceiling("warp", 4000, sizes=square) == 1.0
    assert view_ceiling("warp", 4000, sizes=wide) == 1.0 and view_ceiling("full") == 1.0
    assert 0.87 <= view_ceiling("warp", 20_000, sizes=square + wide) <= 0.895
    # The built-in data: a warp loses more than a crop, which cuts a shape away wholly in about 1 image in 100.
    assert view_ceiling("warp") < 0.95 < view_ceiling("crop") < 1.0
    test = make_split("test", 400, seed=0)
    brute = 0
    for s in test:  # by hand: the crop is the centre square of side min(W, H)
        w, h = s.image.size
        c = min(w, h)
        x0, y0, x1, y1 = s.box
        brute += x1 <= (w - c) / 2 or x0 >= (w + c) / 2 or y1 <= (h - c) / 2 or y0 >= (h + c) / 2
    assert cut_away(test) == brute and 0 < brute < 20
    with pytest.raises(ValueError, match="crop, warp or full"):
        view_ceiling("sideways")


def test_lr_schedule_warms_up_then_decays_to_zero():
    from spp_viz.lab.train import lr_factor

    # 20 epochs: a warm-up of round(0.15 * 20) = 3 epochs (1/3, 2/3, 1), then a cosine over the other 17.
    assert [lr_factor(e, 20) for e in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert lr_factor(3 + 17 // 2, 20) == pytest.approx(0.5 * (1 + np.cos(np.pi * 8 / 17)))
    assert lr_factor(19, 20) == pytest.approx(0.5 * (1 + np.cos(np.pi * 16 / 17)))
    assert lr_factor(0, 1) == 1.0


def test_fresh_data_gives_every_epoch_new_images_reproducibly():
    from spp_viz.lab.data import epoch_set

    a, b, again = epoch_set(8, 0, 1), epoch_set(8, 0, 2), epoch_set(8, 0, 1)
    pixels = [np.asarray(s.image) for s in a]
    assert all(np.array_equal(p, np.asarray(s.image)) for p, s in zip(pixels, again, strict=True))
    split = [np.asarray(s.image) for s in make_split("train", 8, 0)] + [np.asarray(s.image) for s in b]
    assert not any(p.shape == q.shape and np.array_equal(p, q) for p in pixels for q in split)
    assert [s.label for s in a] == [0, 1, 2, 3] * 2
    fresh = replace(TINY, epochs=3, fresh_data=True)
    first, second = train(fresh), train(fresh)
    assert [h.loss for h in first.history] == pytest.approx([h.loss for h in second.history], rel=1e-5)
    fixed = train(replace(fresh, fresh_data=False))
    assert [h.loss for h in first.history][1:] != pytest.approx([h.loss for h in fixed.history][1:])


def test_early_stopping_keeps_the_best_epochs_weights():
    config = replace(TINY, epochs=12, patience=2, regime="crop", lr=5e-3)
    data = synthetic_data(config)
    result = train(config, data=data)
    vals = [h.val_accuracy for h in result.history]
    best = int(np.argmax(vals)) + 1  # the first epoch with the highest validation accuracy
    assert result.best_epoch == best
    # It stopped exactly `patience` epochs after the best, or ran out of epochs.
    assert len(vals) == min(config.epochs, best + config.patience)
    # The model it returns is that epoch's: re-measured on the validation images, the same accuracy.
    assert evaluate(result.model, data["val"], "crop", config.size) == pytest.approx(vals[best - 1])
    assert train(replace(config, patience=0), data=data).best_epoch == 0
    with pytest.raises(ValueError, match="patience"):
        train(replace(config, patience=-1))


def test_convergence_note_separates_under_training_from_a_view_that_caps():
    from spp_viz.lab.convergence import classroom_note, convergence_note
    from spp_viz.lab.experiments import EXPERIMENTS, ExperimentResults

    def row(name, changes, own):
        test = {"crop": own, "warp": own, "full": own}
        return {"name": name, **changes, "test": test, "std": dict.fromkeys(test, 0.0),
                "per_seed": {v: [own, own + 0.01, own - 0.01] for v in test}}  # fmt: skip

    def results(crop, warp, spp, ceilings):
        accs = [crop, warp, spp, spp, spp]
        rows = [row(n, c, a) for (n, c), a in zip(EXPERIMENTS, accs, strict=True)]
        return ExperimentResults.from_json({"rows": rows, "seeds": [0, 1, 2], "ceilings": ceilings,
                                            "config": {"epochs": 7, "train_count": 800}})  # fmt: skip

    ceilings = {"crop": 0.99, "warp": 0.88}
    text, warn = convergence_note(results(0.97, 0.87, 0.96, ceilings))
    assert not warn and text.startswith("no SPP (warp) reaches 87.0% on its warp view") and "88.0%" in text
    text, warn = convergence_note(results(0.90, 0.87, 0.96, ceilings))
    assert warn and text.startswith("1 of 5 networks stay under 95%") and "90.0% to 90.0%" in text
    assert convergence_note(results(0.97, 0.96, 0.96, ceilings)) is None
    # Far under its view's ceiling, a warp network is under-trained, not capped.
    text, warn = convergence_note(results(0.97, 0.60, 0.96, ceilings))
    assert warn and text.startswith("1 of 5 networks stay under 95%") and "no SPP (warp) reaches" not in text
    note = classroom_note(results(0.70, 0.72, 0.74, ceilings), results(0.97, 0.87, 0.96, ceilings))
    assert note.startswith("This run's networks are not converged: 70.0 to 74.0%")
    assert "shipped ones reach 87.0 to 97.0%" in note and "so its verdicts are the weaker" in note
