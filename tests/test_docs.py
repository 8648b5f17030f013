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
    assert sorted(pages) == on_disk  # every page is in the menu, and the menu names no missing page
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
