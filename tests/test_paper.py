"""The paper's numbers live in one module (spp_viz.paper): checked against the project's notes on the paper, and the
pages and library read them from there."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from spp_viz import paper

NOTES = ROOT.parent / "shared" / "spp-paper-notes.md"


@pytest.fixture(scope="module")
def notes() -> str:
    if not NOTES.is_file():
        pytest.skip("../shared/spp-paper-notes.md is not beside this clone")
    return NOTES.read_text()


def numbers_in(text: str) -> set[float]:
    return {float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)}


def test_every_number_quoted_from_the_paper_is_in_the_notes(notes):
    quoted = [
        *paper.LEVELS, *paper.TRAIN_SIZES, *paper.TEST_SCALES, *paper.DETECTION_SCALES,
        *(e for pair in paper.ZF5_ERRORS.values() for e in pair),
        paper.OVERFEAT7_MULTI_SIZE_TOP1, paper.OVERFEAT7_GAIN_OVER_NO_SPP, paper.OVERFEAT7_GAIN_OVER_SINGLE_SIZE,
        paper.VOC07_FULL, paper.VOC07_CROP, paper.CALTECH101_FULL, paper.CALTECH101_WARP,
        *paper.DETECTION_MAP.values(), *paper.DETECTION_CONV_SECONDS.values(),
        *paper.CONV_SPEEDUP.values(), *paper.RUN_SPEEDUP.values(),
    ]  # fmt: skip
    in_notes = numbers_in(notes)
    assert [q for q in quoted if float(q) not in in_notes] == []


def test_the_notes_headline_rows_say_what_paper_py_says(notes):
    table = [line.split("|") for line in notes.splitlines() if line.count("|") >= 3]
    rows = {cells[1].strip(): cells[2].strip() for cells in table}
    assert rows["ZF-5 with SPP {6,3,2,1} (50 bins)"] == "{} / {}".format(*paper.ZF5_ERRORS["SPP {6,3,2,1}"])
    assert rows["Full image vs 224 crop (VOC07 classification mAP)"] == f"{paper.VOC07_FULL} vs {paper.VOC07_CROP}"
    assert f"full image {paper.CALTECH101_FULL} vs warped {paper.CALTECH101_WARP}" in rows["Caltech101 accuracy"]
    speed = rows["Conv feature time per image, same ZF-5"]
    assert f"(1 scale, {paper.CONV_SPEEDUP[1]}x)" in speed and f"(5 scales, {paper.CONV_SPEEDUP[5]}x)" in speed
    assert f"R-CNN {paper.DETECTION_CONV_SECONDS['rcnn']} s" in speed
    assert f"{paper.RUN_SPEEDUP[1]}x (1 scale), {paper.RUN_SPEEDUP[5]}x (5 scales)" in rows[
        "Overall detection speed-up (conv + fc)"
    ]


def test_no_page_or_library_module_types_the_papers_numbers_again():
    """The numbers that used to be copied into four files now come from paper.py only."""
    copies = ["91.44", "89.91", "78.39", "76.45", "34.98", "35.06", "14.37", "0.053", "270x", "102x"]
    files = [*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("spp_viz/**/*.py")]
    found = [
        (p.relative_to(ROOT).as_posix(), c)
        for p in files
        if p.name != "paper.py"
        for c in copies
        if c in p.read_text()
    ]
    assert found == []
