"""What the home page costs to start, checked by what gets imported (not by a clock, so the machine's speed does not
matter): the home page's modules leave the detection code, Captum and the Lab unimported, and `spp-viz app`'s warm-up
loads the default network before the first page asks for it (issue 31)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# Imported only where a page uses them: the home page needs none (the detection code pulls in torchvision.ops, the
# detector and the proposals; Captum the attribution methods; the Lab its training loop and data).
NOT_ON_THE_HOME_PAGE = ("spp_viz.detection", "captum", "spp_viz.lab")
# The ui modules the home page's run reaches: app.py's ``ui.context``, ``ui.sidebar``, ``ui.decode_image`` and
# ``ui.current_model`` (ui/__init__.py maps them onto these), and the warm-up.
HOME_UI = ("ui.session", "ui.sidebar_box", "ui.cache", "ui.page", "ui.warmup")


def app_imports() -> list[str]:
    """The modules app.py imports, read from its source."""
    tree = ast.parse((ROOT / "app.py").read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            names.append(node.module)
    return names


def plotly_peeks() -> list[str]:
    """The installed modules that Plotly looks up in sys.modules without importing them, read from its source."""
    import importlib.util

    import _plotly_utils
    import plotly

    found = set()
    for package in (_plotly_utils, plotly):
        for path in Path(package.__file__).parent.rglob("*.py"):
            found |= set(re.findall(r'get_module\(\s*"([\w.]+)",\s*should_load=False', path.read_text()))
    return sorted(m for m in found if importlib.util.find_spec(m.split(".")[0]) is not None)


def run_fresh(code: str) -> dict:
    """Run code in a fresh interpreter at the checkout's root; it prints one JSON object as its last line."""
    env = {**os.environ, "SPP_VIZ_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def loaded(prefixes: tuple[str, ...]) -> str:
    """Python source for the sorted names of the loaded modules under these prefixes."""
    # A copy first: the warm-up's thread goes on importing (the class database's modules) after it says it is done.
    return f"sorted(m for m in list(sys.modules) if any(m == p or m.startswith(p + '.') for p in {prefixes!r}))"


def test_the_home_pages_modules_import_no_detection_captum_or_lab():
    modules = [*app_imports(), *HOME_UI]
    assert {"streamlit", "ui", "spp_viz.explain.level_views"} <= set(modules)  # the parse found app.py's imports
    code = "import importlib, json, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += f"print(json.dumps({{'found': {loaded(NOT_ON_THE_HOME_PAGE)}}}))"
    assert run_fresh(code)["found"] == []


def test_the_guard_sees_a_module_that_pulls_them_in():
    # The same check on a module known to import the detection code: the guard can fail.
    code = "import importlib, json, sys\nimportlib.import_module('spp_viz.detection.boxes')\n"
    code += f"print(json.dumps({{'found': {loaded(NOT_ON_THE_HOME_PAGE)}}}))"
    assert "spp_viz.detection" in run_fresh(code)["found"]


@pytest.mark.apptest
def test_the_home_pages_run_and_the_warm_up_import_none_and_the_network_is_loaded_once():
    """The warm-up (what `spp-viz app` starts) loads the default network into the shelf, the home page's run then
    finds it there (no second load), and neither imports the detection code, Captum or the Lab. It freezes the
    objects it made, so that the collection Streamlit runs after every script run skips them."""
    code = f"""
import gc, json, sys
PLOTLY_PEEKS = {plotly_peeks()!r}
import ui.warmup
ui.warmup.start()
ui.warmup.wait()
frozen = gc.get_freeze_count()
import ui.cache
from spp_viz import registry
shelf = ui.cache.model_shelf()
after_warm_up = (shelf.loads, sorted(m.name for _, m in shelf.models()), {loaded(NOT_ON_THE_HOME_PAGE)})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=300).run()
print(json.dumps({{
    "warm": after_warm_up, "loads": shelf.loads, "exceptions": [e.value for e in at.exception],
    "found": {loaded(NOT_ON_THE_HOME_PAGE)}, "default": registry.DEFAULT_MODEL,
    "steps": sorted(ui.warmup.seconds()),
    "frozen": frozen, "objects": len(gc.get_objects()),
    "peeked": {{name: (name in sys.modules and not getattr(sys.modules[name].__spec__, "_initializing", False))
               for name in PLOTLY_PEEKS}},
}}))
"""
    out = run_fresh(code)
    loads, names, found = out["warm"]
    assert out["default"] in names and loads >= 1 and found == []
    assert out["exceptions"] == []
    assert out["loads"] == loads  # the home page loaded nothing more: the warm-up's network is the one it uses
    assert out["found"] == []
    assert out["steps"] == ["imports", "network"]
    # Every installed module that Plotly reads from sys.modules without importing was imported by the warm-up, before
    # any page: none can be half-imported by one page while another builds a figure.
    assert {"numpy", "pandas"} <= set(out["peeked"]) and all(out["peeked"].values()), out["peeked"]
    # The warm-up froze what it made: Streamlit's gc.collect(2) after each run skips those objects (issue 31).
    # (gc.get_objects() leaves frozen objects out: what a collection still walks is far less than what was frozen.)
    assert out["frozen"] > 100_000 and out["objects"] < out["frozen"]


def test_spp_viz_app_runs_the_launcher_that_starts_the_warm_up():
    from spp_viz.serve import streamlit_command

    cmd = streamlit_command(["--server.port", "8502"])
    launcher = cmd[1]
    assert launcher.endswith(os.path.join("ui", "launch.py")) and os.path.isfile(launcher)
    assert cmd[2].endswith("app.py") and cmd[-2:] == ["--server.port", "8502"]  # the browser tests serve through it
