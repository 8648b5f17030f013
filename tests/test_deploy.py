"""The deployment files (issue 34): neither Docker nor Kubernetes runs here, so each file is parsed and checked for
what the app needs behind a proxy: the same port everywhere, a health check on Streamlit's /_stcore/health, a sticky
cookie and long-lived websockets, the class database shared through SPP_VIZ_DATABASE_URL; HAProxy's configurations
pass `haproxy -c`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

DEPLOY = ROOT / "deploy"
PORT = 8501
INSTRUCTIONS = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "EXPOSE", "HEALTHCHECK", "CMD", "LABEL", "USER"}


def haproxy_or_skip() -> str:
    """HAProxy's path; skips where it is missing, except on CI, where .ci/run installs it."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        if os.environ.get("CI") == "true":
            raise RuntimeError("haproxy is missing on CI: .ci/run should have installed it")
        pytest.skip("HAProxy is not installed here (apt-get install haproxy; .ci/run installs it)")
    return found


def dockerfile(path) -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfiles_build_the_app_from_the_checkout_and_serve_it_on_one_port(name):
    steps = dockerfile(DEPLOY / name)
    assert {w for w, _ in steps} <= INSTRUCTIONS, [w for w, _ in steps if w not in INSTRUCTIONS]
    assert [w for w, _ in steps if w not in ("ARG",)][0] == "FROM"
    for word, args in steps:
        if word == "COPY":  # every source exists in the checkout (the build's context is its root)
            sources = args.split()[:-1]
            assert all((ROOT / s).exists() for s in sources), args
    cmd = json.loads(next(a for w, a in steps if w == "CMD"))
    assert cmd[:2] == ["spp-viz", "app"] and cmd[cmd.index("--server.port") + 1] == str(PORT)
    assert next(a for w, a in steps if w == "EXPOSE") == str(PORT)
    assert "/_stcore/health" in next(a for w, a in steps if w == "HEALTHCHECK")
    pins = {line.split("==")[0]: line for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line}
    run = " ".join(a for w, a in steps if w == "RUN")
    assert "pip install -r requirements.txt" in run
    if "torch==" in run:  # the CPU image installs torch itself: the version requirements.txt pins
        assert pins["torch"] in run and pins["torchvision"] in run
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored)


def test_compose_runs_replicas_a_proxy_and_postgresql():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    app, proxy, db = (compose["services"][s] for s in ("app", "proxy", "db"))
    assert app["deploy"]["replicas"] >= 2 and app["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / app["build"]["dockerfile"]).exists()
    assert app["environment"]["SPP_VIZ_DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in (
        app["environment"]["SPP_VIZ_DATABASE_URL"]
    )
    assert "cache:/data" in app["volumes"] and app["environment"]["SPP_VIZ_CACHE"] == "/data"
    assert proxy["ports"] == [f"{PORT}:{PORT}"]
    config = proxy["volumes"][0].split(":")[0]
    assert (DEPLOY / config).exists()
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"


def test_the_proxy_configurations_pass_haproxy_check(tmp_path):
    from spp_viz.replicas import Plan, haproxy_config

    haproxy = haproxy_or_skip()
    written = tmp_path / "replicas.cfg"
    written.write_text(haproxy_config(Plan(3, 18500, "127.0.0.1")))
    for path in (written, DEPLOY / "haproxy-compose.cfg"):
        done = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        text = path.read_text()
        assert "cookie SPPVIZ_REPLICA insert indirect nocache" in text and "option redispatch" in text
        assert "option httpchk GET /_stcore/health" in text and "timeout tunnel 1h" in text


def test_kubernetes_manifests_stick_sessions_to_pods_and_share_the_database():
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), (path.name, doc)
            docs[doc["kind"], doc["metadata"]["name"]] = doc
    deployment = docs["Deployment", "spp-viz"]["spec"]
    assert deployment["replicas"] >= 2
    assert deployment["selector"]["matchLabels"] == deployment["template"]["metadata"]["labels"]
    (app,) = deployment["template"]["spec"]["containers"]
    assert app["ports"][0]["containerPort"] == PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["path"] == "/_stcore/health"
    env = {e["name"]: e for e in app["env"]}
    secret = docs["Secret", "spp-viz"]["stringData"]
    for name, key in (("SPP_VIZ_DATABASE_URL", "database-url"), ("SPP_VIZ_TEACHER_KEY", "teacher-key")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "spp-viz", "key": key}
        assert key in secret
    assert secret["database-url"].startswith("postgresql://") and "@spp-viz-db:5432/" in secret["database-url"]
    service = docs["Service", "spp-viz"]["spec"]
    assert service["selector"] == deployment["template"]["metadata"]["labels"]
    ingress = docs["Ingress", "spp-viz"]
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # a websocket lasts a lesson
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "spp-viz" and backend["port"]["name"] == service["ports"][0]["name"]
    db = docs["StatefulSet", "spp-viz-db"]["spec"]["template"]["spec"]["containers"][0]
    assert db["image"].startswith("postgres:")
    assert docs["Service", "spp-viz-db"]["spec"]["ports"][0]["port"] == 5432
