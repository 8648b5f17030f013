"""The package as a user installs it: the wheel built from this checkout, installed into a fresh folder and used from
outside the checkout, finds its sample photos, its distilled SPP head and its shipped results, and serves the app."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit_server import free_port

from spp_viz.settings import server_upload_mb

# A wheel built and installed, then the app run from it: an integration test, not for the edit-test loop.
pytestmark = pytest.mark.apptest

# Run in a folder outside the checkout, with the installed copy first on the path: `spp_viz` must not come from ROOT.
USE = """
import json, sys
import spp_viz
from spp_viz import registry, settings
from spp_viz.images import load_image, samples
from spp_viz.lab.experiments import ExperimentResults

sample = samples()[0]
image = load_image(sample.path.read_bytes(), name=sample.file)
model = registry.load("efficientnet_lite0_spp")
lab = ExperimentResults.from_json(json.loads((settings.ASSETS / "lab_results.json").read_text()))
print(json.dumps({
    "package": spp_viz.__file__, "assets": str(settings.ASSETS), "app": str(settings.webapp_dir()),
    "sample": sample.file, "sample_size": image.size, "levels": list(model.spp.levels),
    "length": model.spp_length, "classes": len(model.class_names), "lab_claims": len(lab.json()["claims"]),
}))
"""

RUN_APP = """
from streamlit.testing.v1 import AppTest
from spp_viz import settings
at = AppTest.from_file(str(settings.webapp_dir() / "app.py"), default_timeout=300).run()
assert not at.exception, [e.value for e in at.exception]
korean = AppTest.from_file(str(settings.webapp_dir() / "app.py"), default_timeout=300)
korean.query_params["lang"] = "ko"
korean.run()
assert not korean.exception, [e.value for e in korean.exception]
from spp_viz import i18n
mo = i18n.LOCALES / "ko" / "LC_MESSAGES" / "spp_viz.mo"
print(korean.sidebar.header[0].value, mo.is_file(), i18n.font_path() is not None)
print(at.title[0].value)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip wheel .` then `pip install --target` of that wheel alone (its dependencies are this venv's)."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("spp_viz-*.whl")
    done = subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], capture_output=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def outside(installed: Path, tmp_path: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "SPP_VIZ_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, **kw)


def test_installed_wheel_finds_its_data_outside_the_checkout(installed, tmp_path):
    done = outside(installed, tmp_path, "-c", USE, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("package", "assets", "app"):
        assert Path(found[key]).is_relative_to(installed), (key, found[key])
    assert found["sample"] == json.loads((ROOT / "assets" / "samples" / "samples.json").read_text())[0]["file"]
    assert min(found["sample_size"]) > 0
    # The distilled head read from the wheel's own copy: Lite0's 1,280 channels x 50 bins, 1,000 ImageNet classes.
    assert found["levels"] == [6, 3, 2, 1] and found["length"] == 1280 * 50 and found["classes"] == 1000
    assert found["lab_claims"] == len(json.loads((ROOT / "assets" / "lab_results.json").read_text())["claims"])


def test_installed_app_runs_and_spp_viz_app_serves_it(installed, tmp_path):
    done = outside(installed, tmp_path, "-c", RUN_APP, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "SPP-net Explorer"
    # In Korean from the wheel: its build compiled the catalog into the .mo it ships; the font for Hangul is found.
    assert done.stdout.strip().splitlines()[-2] == "모델 True True"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(installed), "SPP_VIZ_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "spp_viz", "app", "--server.port", str(port), "--server.address", "127.0.0.1"]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, health = time.monotonic() + 120, b""
        while time.monotonic() < deadline and health != b"ok":
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/_stcore/health")
                health = conn.getresponse().read()
            except OSError:
                time.sleep(0.3)
        assert health == b"ok", log.read_text()[-3000:]
        # `spp-viz app` became Streamlit (the same process, through the wheel's own ui/launch.py, which starts the
        # warm-up), given the upload limit and .streamlit/config.toml's settings as flags: Streamlit reads that file
        # only from the folder it starts in, and this is another one.
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        webapp = installed / "spp_viz" / "webapp"
        assert argv[1] == str(webapp / "ui" / "launch.py").encode() and str(webapp / "app.py").encode() in argv
        assert f"--server.maxUploadSize={server_upload_mb()}".encode() in argv
        assert b"--server.fileWatcherType=none" in argv
    finally:
        proc.terminate()
        proc.wait(timeout=30)
