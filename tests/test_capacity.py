"""Simulated students at class size (release tier): 30 of them, each with a photo of its own, burst through HAProxy
onto two replicas (`spp-viz serve --replicas 2`): every upload in use, every page finished with no exception and no
error box, sessions on both replicas (neither with fewer than a third); then Locust drives a class on the same
server, alone and as a master with one worker (its distributed mode, on this machine), with no failure."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.release]

if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
    if os.environ.get("CI") == "true":
        raise RuntimeError("haproxy is missing on CI: .ci/run should have installed it")
    pytest.skip("HAProxy is not installed (apt-get install haproxy)", allow_module_level=True)

sys.path.insert(0, str(ROOT / "bench"))
import capacity  # noqa: E402

STUDENTS = 30
LOCUST = str(ROOT / ".venv" / "bin" / "locust") if (ROOT / ".venv" / "bin" / "locust").exists() else "locust"


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    server = capacity.Server("serve", tmp_path_factory.mktemp("serve") / "serve.log", replicas=2)
    try:
        server.warm()
        yield server
    finally:
        server.stop()


def test_thirty_students_burst_onto_two_replicas(two_replicas, tmp_path):
    photos = capacity.photo_files(STUDENTS, tmp_path)
    result = capacity.burst(two_replicas, STUDENTS, photos)
    print(result)
    assert result["problems"] == []  # every upload in use, no exception, no error box, no lost connection
    assert result["pages"] == STUDENTS * (len(capacity.PAGES) + 2)  # Home, the upload and three pages each
    assert sorted(result["replicas"]) == ["r1", "r2"] and sum(result["replicas"].values()) == STUDENTS
    assert min(result["replicas"].values()) >= STUDENTS / 3


def locust(server, tmp_path, *extra: str) -> dict:
    env = {**os.environ, "SPP_VIZ_WAIT": "1,3", "SPP_VIZ_PHOTOS": str(ROOT / "assets" / "samples")}
    cmd = [LOCUST, "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--host", server.url,
           "--only-summary", *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(f"{tmp_path}/run_stats.csv") as f:
        rows = list(csv.DictReader(f))
    return next(r for r in rows if r["Name"] == "Aggregated")


def test_locust_drives_a_class_with_no_failure(two_replicas, tmp_path):
    total = locust(two_replicas, tmp_path, "--users", str(STUDENTS), "--spawn-rate", str(STUDENTS),
                   "--run-time", "45s", "--csv", f"{tmp_path}/run")  # fmt: skip
    assert int(total["Request Count"]) >= 2 * STUDENTS and int(total["Failure Count"]) == 0, total


def test_locust_in_distributed_mode_with_one_worker(two_replicas, tmp_path):
    """A school loads a bigger server from several machines: one master and one worker, here on one machine."""
    port = capacity.free_port()
    worker = subprocess.Popen([LOCUST, "-f", str(ROOT / "bench" / "locustfile.py"), "--worker", "--master-host",
                               "127.0.0.1", "--master-port", str(port)], cwd=ROOT,
                              env={**os.environ, "SPP_VIZ_WAIT": "1,3"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        total = locust(two_replicas, tmp_path, "--master", "--master-bind-port", str(port), "--expect-workers",
                       "1", "--users", "6", "--spawn-rate", "6", "--run-time", "30s", "--csv", f"{tmp_path}/run")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert int(total["Request Count"]) >= 12 and int(total["Failure Count"]) == 0, total
