"""The documentation: README short enough to read, `mkdocs build --strict` with no warning, and the library reference
generated for every module (from its docstrings, not typed by hand)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml
from conftest import ROOT
from test_layout import library_modules

README_MAX_LINES = 150


def test_readme_is_short_and_its_links_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for path in re.findall(r"`((?:docs|bench|spp_viz)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path


def test_every_library_module_has_a_reference_section():
    documented = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), flags=re.M))
    # The package __init__ files of spp_viz, explain, detection, lab and plots hold a docstring and no code.
    holders = {"spp_viz", "spp_viz.__main__", "spp_viz.explain", "spp_viz.detection", "spp_viz.lab", "spp_viz.plots"}
    missing = sorted(m for m in library_modules() if m not in documented | holders)
    assert not missing, f"docs/reference lacks {missing}"


def nav_files(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [f for v in nav.values() for f in nav_files(v)]
    return [f for item in nav for f in nav_files(item)]


def test_docs_build_strictly_and_render_the_reference(tmp_path):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_files(config["nav"])
    on_disk = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    korean = [p for p in on_disk if p.endswith(".ko.md")]  # a page's Korean version, beside it (mkdocs-static-i18n)
    assert sorted(pages) == [p for p in on_disk if p not in korean]  # every page in the menu, no missing page named
    assert all(p.replace(".ko.md", ".md") in pages for p in korean)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    html = (tmp_path / "site" / "reference" / "pyramid" / "index.html").read_text()
    # A function's docstring, rendered: its anchor and a sentence of its text (not only the page's title).
    assert 'id="spp_viz.pyramid.spatial_pyramid_pool"' in html
    from spp_viz.pyramid import spatial_pyramid_pool

    first_line = spatial_pyramid_pool.__doc__.strip().splitlines()[0]
    assert first_line.split("``")[0].strip()[:40] in html
    speed = (tmp_path / "site" / "speed" / "index.html").read_text()
    assert "bench/run_all.py" in speed  # bench/results.md is included, not copied
    # The front pages in Korean (mkdocs-static-i18n), under ko/; the glossary in both languages.
    korean = {
        "index.html": "시작하기",
        "what-it-teaches/index.html": "무엇을 가르치나",
        "pages/feature-maps/index.html": "해 볼 것",
        "pages/class/index.html": "저장하는 것",
        "pages/detection/index.html": "논문이 말하는 것",
        "glossary/index.html": "고정된 크기",
    }
    for page, words in korean.items():
        assert words in (tmp_path / "site" / "ko" / page).read_text(), page
    assert "시작하기" not in (tmp_path / "site" / "index.html").read_text()


# The "Adding" pages: each name the steps give exists where they say, and the page template is a page.
ANALYSIS_STEPS = {
    "spp_viz.explain.bag_of_words": [
        "shuffle_test",
        "ShuffleBench",
        "shuffle_bench",
        "ShuffleSummary",
        "bench_findings",
    ],
    "spp_viz.explain.analysis": ["merge"],
    "spp_viz.explain.folder_analyses": ["ANALYSES", "Analysis"],
    "spp_viz.cli.folder_benches": ["cmd_bench_shuffle"],
    "spp_viz.explain.shipped": ["FILES", "load", "heads", "first"],
    "spp_viz.plots.pyramid": ["shuffle_curves"],
    "spp_viz.stats": ["verdict"],
    "ui.cache": ["shuffle"],
}


def test_adding_an_analysis_walks_the_shuffle_test_as_the_code_has_it():
    import dataclasses
    import importlib

    from spp_viz.explain.analysis import merge
    from spp_viz.explain.bag_of_words import ShuffleBench, ShuffleSummary, bench_findings
    from spp_viz.explain.folder_analyses import ANALYSES

    text = (ROOT / "docs" / "adding-an-analysis.md").read_text()
    for module, names in ANALYSIS_STEPS.items():
        assert f"`{module.replace('.', '/')}.py`" in text or module.split(".")[-1] in text, module
        for name in names:
            assert re.search(rf"`[^`]*\b{name}\b[^`]*`", text), name
            assert hasattr(importlib.import_module(module), name), (module, name)
    fields = {f.name for f in dataclasses.fields(ShuffleBench)}
    assert {"model", "names", "skipped", "seconds", "held_out"} <= fields and set(ShuffleBench.SAME) <= fields
    shuffle = ANALYSES["shuffle"]
    assert (shuffle.bench, shuffle.summary, shuffle.findings) == (ShuffleBench, ShuffleSummary, bench_findings)
    one = ShuffleBench("m", 0, (2,), (1, 2), names=["a"], cosines={2: {1: [0.5], 2: [0.25]}}, same_top1={2: [True]})
    two = ShuffleBench("m", 0, (2,), (1, 2), names=["b"], cosines={2: {1: [0.7], 2: [0.5]}}, same_top1={2: [False]})
    both = ShuffleBench.merge([one, two], "both")
    assert both == merge([one, two], "both") and both.names == ["a", "b"] and both.held_out
    assert ShuffleSummary.from_json(both.summary().json()) == both.summary()


def test_adding_a_page_shows_a_page_that_keeps_the_rules():
    import ast

    import ui

    text = (ROOT / "docs" / "adding-a-page.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    tree = ast.parse(code)
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    assert ast.unparse(main.body[0]) == "ui.start_page()"
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == "ui"}
    assert used <= set(ui.__all__), used - set(ui.__all__)
