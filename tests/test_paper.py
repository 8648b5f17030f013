"""The paper's numbers live in one module (spp_viz.paper): checked against the project's notes on the paper, and the
pages and library read them from there."""

from __future__ import annotations

import ast
import re

import pytest
from conftest import ROOT

from spp_viz import paper
from spp_viz.pyramid import output_length

NOTES = ROOT.parent / "shared" / "spp-paper-notes.md"


@pytest.fixture(scope="module")
def notes() -> str:
    if not NOTES.is_file():
        pytest.skip("../shared/spp-paper-notes.md is not beside this clone")
    return NOTES.read_text()


def numbers_in(text: str) -> set[float]:
    return {float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)}


def test_the_sets_of_sizes_are_the_notes_own(notes):
    """Small whole numbers (1, 2, 6, 224) are in any text: each set is checked where the notes write it."""
    assert "{" + ",".join(map(str, paper.LEVELS)) + "} -> 50 bins" in notes
    assert f"{paper.TRAIN_SIZES[0]} (conv5 13x13) and {paper.TRAIN_SIZES[1]} (conv5 10x10" in notes
    assert "s in {" + ", ".join(map(str, paper.TEST_SCALES)) + "}" in notes
    assert "s in {" + ", ".join(map(str, paper.DETECTION_SCALES)) + "}" in notes
    assert f"ZF-5 has k = {paper.ZF5_CHANNELS}, so {paper.ZF5_CHANNELS}*50 = {paper.ZF5_SPP_LENGTH:,}" in notes
    assert output_length(paper.ZF5_CHANNELS, paper.LEVELS) == paper.ZF5_SPP_LENGTH


def test_the_training_rules_wrong_counts_are_the_notes_list(notes):
    line = next(x for x in notes.splitlines() if "Wrong counts for a <= 30" in x)
    following = notes[notes.index(line) :].split("; a < n gives stride 0")[0]
    listed = [(int(a), int(n)) for a, n in re.findall(r"\((\d+),(\d+)\)", following)]
    assert tuple(listed) == paper.TRAINING_RULE_WRONG_COUNTS


def test_every_decimal_quoted_from_the_paper_is_in_the_notes(notes):
    quoted = [
        *(e for pair in paper.ZF5_ERRORS.values() for e in pair),
        paper.OVERFEAT7_MULTI_SIZE_TOP1, paper.OVERFEAT7_GAIN_OVER_NO_SPP, paper.OVERFEAT7_GAIN_OVER_SINGLE_SIZE,
        paper.VOC07_FULL, paper.VOC07_CROP, paper.CALTECH101_FULL, paper.CALTECH101_WARP,
        *paper.DETECTION_MAP.values(), *paper.DETECTION_CONV_SECONDS.values(),
    ]  # fmt: skip
    assert [q for q in quoted if str(q) not in notes] == []
    for scales, speedup in paper.CONV_SPEEDUP.items():
        assert f"{scales} scale{'s' if scales > 1 else ''}, {speedup}x" in notes


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


def paper_numbers() -> set[str]:
    """Every number in paper.py as a page would write it: the decimals (34.98), the speed-ups (270x), and the
    derived ZF-5 length (12,800 and 12800). Whole numbers under 1000 (1, 6, 224) are everyday sizes in the code."""
    tree = ast.parse((ROOT / "spp_viz" / "paper.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is float and not node.value.is_integer():
            found.add(str(node.value))
    found |= {f"{s}x" for s in (*paper.CONV_SPEEDUP.values(), *paper.RUN_SPEEDUP.values())}
    found |= {f"{paper.ZF5_SPP_LENGTH:,}", str(paper.ZF5_SPP_LENGTH)}
    return found


def test_no_page_or_library_module_types_the_papers_numbers_again():
    """The paper's numbers come from paper.py only: none of them is typed in app.py, a page, ui/ or the library."""
    numbers = paper_numbers()
    assert {"34.98", "91.44", "0.053", "270x", "12,800"} <= numbers  # the guard knows what it guards
    files = [ROOT / "app.py", *ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("spp_viz/**/*.py")]
    found = [
        (p.relative_to(ROOT).as_posix(), c)
        for p in files
        if p.name != "paper.py"
        for c in sorted(numbers)
        if re.search(rf"(?<![\d.]){re.escape(c)}(?![\d])", p.read_text())
    ]
    assert found == []
