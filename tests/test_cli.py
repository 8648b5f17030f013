"""python -m spp_viz predict, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import SAMPLES


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spp_viz", *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_predict_json_full_image_view():
    out = run("predict", str(SAMPLES / "chelsea.jpg"), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["input_size"] == [385, 256]  # 451 x 300 with the shorter side at 256
    assert result["conv5"] == {"height": 8, "width": 13, "channels": 1280}
    assert result["spp_length"] == 1280
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
