"""The deployment files (issue 34): neither Docker nor Kubernetes runs here, so each file is parsed and checked for
what the app needs behind a proxy: the same port everywhere, a health check on Streamlit's /_stcore/health, a sticky
cookie and long-lived websockets, the class database shared through SPP_VIZ_DATABASE_URL; HAProxy's configurations
pass `haproxy -c`."""

from __future__ import annotations

import json
import os
import re
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
    assert "pip install --no-cache-dir -r requirements.txt" in run
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
        if path.name == "kustomization.yaml":
            continue
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
    # No Secret in git: Kustomize makes it from secrets.env, which .gitignore names; its keys are the ones read.
    assert ("Secret", "spp-viz") not in docs
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert generator["name"] == "spp-viz" and generator["envs"] == ["secrets.env"]
    assert "deploy/k8s/secrets.env" in (ROOT / ".gitignore").read_text().split()
    assert set(kustomization["resources"]) == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {
        "kustomization.yaml"
    }
    keys = set(re.findall(r"^#\s+([a-z-]+)=", (DEPLOY / "k8s" / "kustomization.yaml").read_text(), re.M))
    for name, key in (("SPP_VIZ_DATABASE_URL", "database-url"), ("SPP_VIZ_TEACHER_KEY", "teacher-key")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "spp-viz", "key": key}
        assert key in keys
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
    # PostgreSQL reads its password from the Secret's file (as checkov prefers), the key the Secret is made with.
    password = {e["name"]: e["value"] for e in db["env"]}["POSTGRES_PASSWORD_FILE"]
    pod = docs["StatefulSet", "spp-viz-db"]["spec"]["template"]["spec"]
    mount = next(m for m in db["volumeMounts"] if password.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "spp-viz" and "db-password" in keys
    assert {i["path"]: i["key"] for i in volume["secret"]["items"]}[password.rsplit("/", 1)[1]] == "db-password"
    assert docs["Service", "spp-viz-db"]["spec"]["ports"][0]["port"] == 5432


# Hardening: what an admission policy (Pod Security "restricted") and a school's IT office check.
SCAN_VENV = Path(os.environ.get("SPP_VIZ_SCAN_VENV", ROOT / ".venv-scan"))


def scanner(name: str) -> str:
    """A scanner from requirements-scan.txt (run.sh test installs them in .venv-scan); CI must have it."""
    path = SCAN_VENV / "bin" / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"{path} is missing on CI: bash run.sh test installs requirements-scan.txt")
        pytest.skip(f"{name} is not installed ({SCAN_VENV}/bin/pip install -r requirements-scan.txt)")
    return str(path)


def manifests() -> list[dict]:
    return [doc for p in sorted((DEPLOY / "k8s").glob("*.yaml")) if p.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(p.read_text())]  # fmt: skip


def upload_cap_mb() -> int:
    return int(re.search(r"^maxUploadSize\s*=\s*(\d+)", (ROOT / ".streamlit" / "config.toml").read_text(), re.M)[1])


def test_no_secret_is_committed_and_compose_refuses_to_start_without_one():
    found = subprocess.run(["grep", "-ril", "change-me", str(DEPLOY)], capture_output=True, text=True)
    assert found.stdout == "", found.stdout
    text = (DEPLOY / "compose.yaml").read_text()
    assert "spp:spp@" not in text
    compose = yaml.safe_load(text)
    app, db = compose["services"]["app"], compose["services"]["db"]
    for value in (app["environment"]["SPP_VIZ_TEACHER_KEY"], app["environment"]["SPP_VIZ_DATABASE_URL"],
                  db["environment"]["POSTGRES_PASSWORD"]):  # fmt: skip
        assert re.search(r"\$\{SPP_VIZ_[A-Z_]+:\?[^}]+\}", value), value
    assert "deploy/.env" in (ROOT / ".gitignore").read_text().split()
    example = (DEPLOY / "env.example").read_text()
    assert re.findall(r"^(SPP_VIZ_\w+)=$", example, re.M) == ["SPP_VIZ_TEACHER_KEY", "SPP_VIZ_DB_PASSWORD"]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_images_are_pinned_and_run_unprivileged(name):
    steps = dockerfile(DEPLOY / name)
    base = next(a for w, a in steps if w == "FROM")
    assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", base), base  # a version, never latest
    user = [a for w, a in steps if w == "USER"]
    assert user and user[-1] not in ("root", "0")
    run = " ".join(a for w, a in steps if w == "RUN")
    assert f"--uid {user[-1]}" in run


def test_pods_pass_pod_security_restricted_and_stay_within_the_apps_budgets():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in manifests()}
    # Kubernetes itself refuses, in the app's namespace, any pod that "restricted" would not admit.
    labels = docs["Namespace", "spp-viz"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["metadata"].get("namespace") == "spp-viz" for d in docs.values() if d["kind"] != "Namespace")
    for kind, name in (("Deployment", "spp-viz"), ("StatefulSet", "spp-viz-db")):
        pod = docs[kind, name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", container["image"].split()[0]), container["image"]
            for side in ("requests", "limits"):
                assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"][side])
    app = docs["Deployment", "spp-viz"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in app["containers"][0]["env"]}
    limit = app["containers"][0]["resources"]["limits"]
    mebi = {"Mi": 1, "Gi": 1024}

    def mb(quantity: str) -> int:
        return int(quantity[:-2]) * mebi[quantity[-2:]]

    assert int(env["SPP_VIZ_MODEL_MEMORY_MB"]) < mb(limit["memory"])  # the models' budget fits in the pod
    cache = next(v for v in app["volumes"] if v["name"] == "cache")
    assert int(env["SPP_VIZ_CACHE_MB"]) < mb(cache["emptyDir"]["sizeLimit"]) <= mb(limit["ephemeral-storage"])
    # Only the app's pods reach PostgreSQL.
    policy = docs["NetworkPolicy", "spp-viz-db"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app": "spp-viz-db"} and policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app": "spp-viz"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    # TLS, and a request body as large as the app's upload cap (plus Streamlit's form framing), no larger.
    ingress = docs["Ingress", "spp-viz"]
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert upload_cap_mb() <= int(body.rstrip("m")) <= upload_cap_mb() + 1


def test_checkov_passes_on_deploy_and_names_every_skip_with_its_reason():
    checkov = scanner("checkov")
    done = subprocess.run([checkov, "-d", str(DEPLOY), "--quiet", "--compact", "--skip-download", "-o", "cli"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    # A skipped check is named with its reason: "# checkov:skip=ID: why" in a Dockerfile, an annotation
    # "checkov.io/skipN: ID=why" on a Kubernetes resource (checkov reads no comments there).
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            skips = re.findall(r"checkov:skip=(\S+?):\s*(.*)", text)
            skips += re.findall(r'checkov\.io/skip\d+: "(\S+?)=(.*)"', text)
            for check, why in skips:
                assert re.fullmatch(r"CKV2?_[A-Z0-9_]+", check) and len(why) > 20 and "=" not in why, (path, check)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_hadolint_passes_on_the_dockerfiles(name):
    done = subprocess.run([scanner("hadolint"), str(DEPLOY / name)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_manifest_is_valid_against_the_kubernetes_schema():
    files = [str(p) for p in sorted((DEPLOY / "k8s").glob("*.yaml")) if p.name != "kustomization.yaml"]
    done = subprocess.run([scanner("kubernetes-validate"), "--strict", *files], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(manifests()), done.stdout
