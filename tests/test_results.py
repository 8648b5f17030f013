"""Results keep their types until they are written out: each shipped JSON reads back into its dataclass and writes
out the same JSON, and the one progress callback of the library reports fractions and counts."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import ROOT

from spp_viz.explain.bag_of_words import ShuffleSummary, bench_findings
from spp_viz.explain.level_importance import LevelSummary
from spp_viz.explain.view_summary import ViewsSummary, findings
from spp_viz.lab.experiments import ExperimentResults, paper_verdicts
from spp_viz.progress import counted, report
from spp_viz.provenance import record, sentence

ASSETS = ROOT / "assets"


@pytest.mark.parametrize(
    ("asset", "kind"),
    [
        ("view_accuracy.json", ViewsSummary),
        ("view_accuracy_spp.json", ViewsSummary),
        ("bag_of_words.json", ShuffleSummary),
        ("bag_of_words_spp.json", ShuffleSummary),
        ("level_importance.json", LevelSummary),
        ("lab_results.json", ExperimentResults),
    ],
)
def test_shipped_results_read_back_into_their_types_and_write_the_same_json(asset, kind):
    raw = json.loads((ASSETS / asset).read_text())
    typed = kind.from_json(raw)
    assert json.loads(json.dumps(typed.json())) == raw


def test_findings_read_the_typed_results():
    views = ViewsSummary.from_json(json.loads((ASSETS / "view_accuracy.json").read_text()))
    assert findings(views)[0].startswith(f"Over {views.n} these photos")
    shuffle = ShuffleSummary.from_json(json.loads((ASSETS / "bag_of_words.json").read_text()))
    assert bench_findings(shuffle)[0].startswith(f"{shuffle.rows[0].k}x{shuffle.rows[0].k} tiles")
    lab = ExperimentResults.from_json(json.loads((ASSETS / "lab_results.json").read_text()))
    assert len(paper_verdicts(lab)) == 4


def test_progress_reports_a_clamped_fraction_and_counts():
    seen = []
    report(lambda f, t: seen.append((f, t)), 1.5, "over")
    report(None, 0.5, "nobody listens")  # no callback: nothing happens
    counted(lambda f, t: seen.append((f, t)), 3, 4, "photos")
    counted(lambda f, t: seen.append((f, t)), 0, 0, "photos")  # an empty run: no division by zero
    assert seen == [(1.0, "over"), (0.75, "3 of 4 photos"), (0.0, "0 of 0 photos")]


def test_the_cli_progress_bar_follows_the_callback(capsys):
    from spp_viz.cli.commands import progress_bar

    with progress_bar("testing") as progress:
        progress(0.25, "1 of 4 things")
        progress(1.0, "4 of 4 things")
    err = capsys.readouterr().err
    assert "testing" in err and "100%" in err and "4 of 4 things" in err


SHIPPED = ["view_accuracy.json", "view_accuracy_spp.json", "bag_of_words.json", "bag_of_words_spp.json",
           "level_importance.json", "lab_results.json"]  # fmt: skip


@pytest.mark.parametrize("asset", SHIPPED)
def test_every_shipped_result_says_how_it_was_made(asset):
    made = json.loads((ASSETS / asset).read_text())["provenance"]
    assert set(made) >= {"command", "package_version", "git_commit", "torch", "date", "machine"}
    assert made["command"].startswith("python -m spp_viz ") and re.fullmatch(r"[0-9a-f]{40}", made["git_commit"])
    text = sentence(made)
    assert f"`{made['command']}`" in text and made["date"] in text and made["git_commit"][:10] in text
    assert made.get("recorded_afterwards", "") in text  # files whose run recorded nothing say so


def test_a_result_made_now_records_this_checkout_and_this_torch():
    import subprocess

    import torch

    made = record(["spp-viz", "bench", "views", "photos"])
    assert made["command"] == "spp-viz bench views photos" and made["torch"] == torch.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout (CI's fresh clone is one)
        assert made["git_commit"].split("+")[0] == head.stdout.strip()
    assert f"{os.cpu_count()} cores" in made["machine"]
    assert sentence(None) == "This file does not record how it was made."
