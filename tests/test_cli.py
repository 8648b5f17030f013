"""The command line (`spp-viz` / `python -m spp_viz`): every command, its output, its mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SAMPLES, cli, tiny_lab_model

import spp_viz

run = cli  # the commands run in this process (see conftest.cli); the first test runs the real entry point


def test_predict_json_full_image_view():
    # As a user types it: `python -m spp_viz` in its own process (the `spp-viz` script calls the same main).
    out = subprocess.run(
        [sys.executable, "-m", "spp_viz", "predict", str(SAMPLES / "chelsea.jpg"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["input_size"] == [385, 256]  # 451 x 300 with the shorter side at 256
    assert result["conv5"] == {"height": 8, "width": 13, "channels": 1280}
    assert result["spp_length"] == 1280 * 50  # the default network, the SPP-net: {6,3,2,1} over Lite0's conv5
    assert len(result["top5"]) == 5
    assert {p["index"] for p in result["top5"]} & {281, 282, 285}


def test_predict_text_and_short_side():
    out = run("predict", str(SAMPLES / "coffee.jpg"), "--short-side", "224", "--model", "zf5")
    assert out.returncode == 0, out.stderr
    assert "UNTRAINED" in out.stdout and "conv5 13 x 20 x 256" in out.stdout and "12800" in out.stdout


def test_predict_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    out = run("predict", str(bad))
    assert out.returncode == 2
    assert out.stderr.startswith("error: notes.jpg is not an image") and "Traceback" not in out.stderr
    out = run("predict", str(SAMPLES / "coffee.jpg"), "--model", "alexnet", TORCH_HOME=str(tmp_path))
    assert out.returncode == 2 and "AlexNet's ImageNet weights are not on this machine" in out.stderr
    out = run("predict", str(SAMPLES / "coffee.jpg"), "--short-side", "-3")
    assert out.returncode == 2 and "must be at least 1" in out.stderr


def test_index_command_builds_then_reads_the_cache(tmp_path):
    from badfiles import photo, save

    for i in range(3):
        (tmp_path / "g" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "g" / "sub" / f"{i}.png").write_bytes(save(photo(120, 90, seed=i), "PNG"))
    (tmp_path / "g" / "bad.jpg").write_text("no")
    args = ("index", str(tmp_path / "g"), "--model", "zf5", "--top-k", "2", "--cache-dir", str(tmp_path / "c"))
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "3 images indexed (3 computed, 0 reused)" in first.stdout and "bad.jpg" in first.stdout
    second = run(*args)
    assert "read from the cache" in second.stdout
    missing = run("index", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no folder" in missing.stderr


@pytest.mark.training
def test_train_command_saves_a_loadable_model(tmp_path):
    out = run(
        "train",
        "--dataset",
        "synthetic",
        "--levels",
        "2,1",
        "--regime",
        "single-size",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "m.safetensors"),
    )
    assert out.returncode == 0, out.stderr
    assert "test accuracy, full view" in out.stdout and (tmp_path / "m.safetensors").is_file()
    bad = run("train", "--levels", "0", "--out", str(tmp_path / "x.safetensors"))
    assert bad.returncode == 2 and "n >= 1" in bad.stderr


def test_bench_detection_command_json(tmp_path):
    model = tiny_lab_model(tmp_path)  # the timings' bookkeeping is under test, not a network's speed
    out = run("bench", "detection", "--windows", "24", "--scale", "224", "--model", model, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["windows"] == 24 and set(result["rcnn"]) == {"proposals", "warp", "conv", "head", "total"}
    rcnn, spp = result["rcnn"], result["spp"]
    # The ratios the command reports are the ratios of the times it reports, and each total is its stages' sum.
    assert result["conv_ratio"] == pytest.approx(rcnn["conv"] / spp["conv"])
    for mode in (rcnn, spp):
        assert mode["total"] == pytest.approx(mode["proposals"] + mode["warp"] + mode["conv"] + mode["head"], rel=1e-6)
    # Both modes read the same windows from the same proposals; only R-CNN runs the conv layers once per window.
    assert rcnn["proposals"] == spp["proposals"] and rcnn["conv"] > spp["conv"]


def _labelled_folder(root):
    """Two ImageNet-named photos, one without a label, one broken."""
    from badfiles import photo, save

    root.mkdir()
    (root / "000_n01440764_tench.png").write_bytes(save(photo(160, 120, seed=1), "PNG"))
    (root / "n01443537_5.png").write_bytes(save(photo(120, 160, seed=2), "PNG"))
    (root / "holiday.png").write_bytes(save(photo(100, 100, seed=3), "PNG"))
    (root / "002_n01484850_shark.jpg").write_text("not a photo")
    return root


def test_bench_views_command_json_and_text(tmp_path):
    folder = _labelled_folder(tmp_path / "photos")
    out = run("bench", "views", str(folder), "--model", "zf5", "--short-side", "96", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])  # one JSON object, last on stdout
    assert result["n"] == 2 and set(result["views"]) == {"crop", "warp", "full"}
    made = result["provenance"]  # how the result was made, in the file itself
    assert made["command"] == f"spp-viz bench views {folder} --model zf5 --short-side 96 --json"
    assert made["package_version"] == spp_viz.__version__ and made["date"][:4] >= "2026"
    assert set(result["views"]["crop"]) == {"top1", "top5"} and set(result["paired"]) == {"warp", "full"}
    assert [u[0] for u in result["unlabeled"]] == ["holiday.png"]
    assert [s[0] for s in result["skipped"]] == ["002_n01484850_shark.jpg"]
    text = run("bench", "views", str(folder), "--model", "zf5", "--short-side", "96", "--multi", "--limit", "3")
    assert text.returncode == 0, text.stderr
    assert "multi" in text.stdout and "1 file(s) without a label" in text.stdout and "holiday.png" in text.stdout
    empty = run("bench", "views", str(tmp_path / "nope"))
    assert empty.returncode == 2 and "no folder" in empty.stderr


def test_bench_shuffle_command(tmp_path):
    folder = _labelled_folder(tmp_path / "photos")
    out = run("bench", "shuffle", str(folder), "--model", "zf5", "--tiles", "2,4", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 3 and [r["k"] for r in result["rows"]] == [2, 4] and result["labelled"] == 2
    assert [s[0] for s in result["skipped"]] == ["002_n01484850_shark.jpg"]
    text = run("bench", "shuffle", str(folder), "--model", "zf5", "--tiles", "2")
    assert text.returncode == 0 and "cos 1x1" in text.stdout and "2x2 tiles: mean cosine" in text.stdout


@pytest.mark.training
def test_lab_experiments_command_with_seeds(tmp_path):
    out = run("lab-experiments", "--epochs", "1", "--seeds", "2", "--images", "64", "--out", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    assert "mean ± standard deviation over seeds [0, 1]" in out.stdout and "over 2 seeds" in out.stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["config"]["epochs"] == 1
    assert (saved["config"]["train_count"], saved["config"]["val_count"], saved["config"]["test_count"]) == (64, 40, 40)
    # One epoch leaves every network under-trained: the run says so before its verdicts.
    assert "Warning: 5 of 5 networks stay under 95%" in out.stdout
    assert set(saved["ceilings"]) == {"crop", "warp"} and len(saved["claims"]) == 4
    assert [len(r["kept_epochs"]) for r in saved["rows"]] == [2] * 5
    bad = run("lab-experiments", "--recipe", "overnight")
    assert bad.returncode == 2 and "invalid choice: 'overnight'" in bad.stderr


@pytest.mark.training
def test_distill_command(tmp_path):
    """A head distilled from Lite0's own on four photos named by WordNet id: saved, measured on held-out photos (two
    folds), the unreadable file listed; then the mistakes a user can make."""
    import shutil

    from spp_viz.explain.labels import imagenet_wnids

    wnids = imagenet_wnids()
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (sample, index) in enumerate((("chelsea", 281), ("coffee", 504), ("chelsea", 282), ("coffee", 967))):
        shutil.copy(SAMPLES / f"{sample}.jpg", folder / f"{wnids[index]}_{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"nope")
    out, folds = tmp_path / "head.safetensors", tmp_path / "folds"
    args = ["--views", "5", "--epochs", "2", "--rank", "4", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    done = run("distill", str(folder), *args, "--fold-heads", str(folds), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["photos"] == 4 and result["views"] == 20 and result["skipped"][0][0] == "broken.jpg"
    measured = result["measured"]
    assert measured["folds"] == 2 and measured["photos"] == 4 and measured["side"] == 256
    assert 0 <= measured["student"] <= 1 and out.is_file()
    # The held-out heads: each photo held out by exactly one of them.
    from spp_viz.distill import read_head_meta

    held = [read_head_meta(f)["held_out"] for f in sorted(folds.glob("fold*.safetensors"))]
    assert len(held) == 2 and sorted(held[0] + held[1]) == sorted(p.name for p in folder.glob("n*.jpg"))
    held_out = ["--model", "efficientnet_lite0_spp", "--held-out", str(folds), "--json"]
    levels = run("bench", "levels", str(folder), *held_out)
    assert levels.returncode == 0, levels.stderr
    summary = json.loads(levels.stdout.strip().splitlines()[-1])
    assert summary["n"] == 4 and summary["held_out"] and [r["level"] for r in summary["rows"]] == [6, 3, 2, 1]
    views = json.loads(run("bench", "views", str(folder), *held_out).stdout.strip().splitlines()[-1])
    assert views["n"] == 4 and views["held_out"] and sorted(views["names"]) == sorted(held[0] + held[1])
    lite0 = ("--model", "efficientnet_lite0", "--held-out", str(folds))
    assert "a pyramid-head model" in run("bench", "levels", str(folder), *lite0).stderr
    assert "no fold*.safetensors" in run("bench", "views", str(folder), *held_out[:3], str(tmp_path)).stderr
    text = run("distill", str(folder), *args, "--folds", "0")  # the views come from the cache now
    assert text.returncode == 0 and "saved" in text.stdout and "held out" not in text.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no image files" in run("distill", str(empty), *args).stderr
    assert "--folds takes 0" in run("distill", str(folder), *args, "--folds", "1").stderr
    assert "needs random crops" in run("distill", str(folder), *args, "--views", "4").stderr
    assert "between 0 and 1" in run("distill", str(folder), *args, "--crop-target", "2").stderr
    assert "no one-level head" in run("distill", str(folder), *args, "--model", "zf5").stderr
