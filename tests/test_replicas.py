"""`spp-viz serve --replicas N` (issue 34), its rules and faults, with HAProxy in front of stand-in app servers
(tests/fake_replica.py: they start at once, so no network is loaded here; tests/test_replicas_browser.py serves the
real app to browsers in the release tier). Each browser sticks to the replica its cookie names; a new one goes to
the next replica; a replica that dies is taken out, its browsers go to another (which sees which one they asked for)
and it is started again; every process stops at the end; each mistake is one clear message."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit_server import free_port
from test_deploy import haproxy_or_skip

from spp_viz import replicas
from spp_viz.replicas import Plan, Replicas, ServeError, check_ports
from spp_viz.serve import main as spp_viz

FAKE = ROOT / "tests" / "fake_replica.py"


def fake(flags) -> list[str]:
    return [sys.executable, str(FAKE), *flags]


def ports(n: int) -> int:
    """A port P with P .. P + n free (the proxy's and the replicas')."""
    for _ in range(50):
        p = free_port()
        if p + n < 65535 and all(_free(p + i) for i in range(n + 1)):
            return p
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def get(port: int, cookie: str | None = None, path: str = "/") -> tuple[dict, list[str]]:
    """(what the replica answered, the cookies the proxy set) for one request through the proxy."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = conn.getresponse()
    data = response.read()
    # HAProxy's own error page while it finds out that a replica is gone: no replica answered
    body = json.loads(data) if response.status == 200 else {"replica": None, "status": response.status}
    return body, [v for k, v in response.getheaders() if k.lower() == "set-cookie"]


def test_a_plan_shares_the_cores_and_refuses_what_cannot_be_served():
    plan = Plan(3, 9000, cores=8)
    assert plan.names == ["r1", "r2", "r3"] and plan.replica_ports == [9001, 9002, 9003] and plan.threads == 2
    assert Plan(4, 9000, cores=2).threads == 1 and Plan(2, 9000, first_replica_port=9100).replica_ports == [9100, 9101]
    with pytest.raises(ServeError, match="--replicas takes 1 to 16, not 0"):
        Plan(0)
    with pytest.raises(ServeError, match="port 65536 is not a port number"):
        Plan(2, 65535)


def test_a_port_in_use_is_named_with_what_it_was_for():
    base = ports(2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 2))
        busy.listen()
        with pytest.raises(ServeError, match=rf"port {base + 2} \(replica r2's\) is in use by another program"):
            check_ports(Plan(2, base, "127.0.0.1"))


def test_serve_says_what_is_wrong_and_starts_nothing(capsys, monkeypatch):
    base = ports(2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base))
        busy.listen()
        assert spp_viz(["serve", "--replicas", "2", "--port", str(base), "--address", "127.0.0.1"]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"spp-viz serve: port {base} (the proxy's, which students open) is in use")
    assert spp_viz(["serve", "--replicas", "40"]) == 2
    assert "--replicas takes 1 to 16, not 40" in capsys.readouterr().err
    monkeypatch.setattr(replicas.shutil, "which", lambda _: None)
    monkeypatch.setattr(replicas.os.path, "exists", lambda _: False)
    assert spp_viz(["serve", "--replicas", "2", "--port", str(base)]) == 2
    assert "HAProxy is not installed: on Debian or Ubuntu, sudo apt-get install haproxy" in capsys.readouterr().err


def test_a_replica_that_exits_before_serving_stops_the_start_with_its_log(tmp_path):
    base = ports(1)
    crash = Replicas(Plan(1, base, "127.0.0.1"), lambda flags: [sys.executable, "-c", "print('boom'); exit(3)"],
                     tmp_path, log=lambda _: None)  # fmt: skip
    try:
        with pytest.raises(ServeError, match="replica r1 exited with code 3 before it served:\nboom"):
            crash.start()
    finally:
        crash.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_sessions_stick_move_when_their_replica_dies_and_every_process_stops(tmp_path, monkeypatch):
    haproxy_or_skip()
    monkeypatch.delenv("SPP_VIZ_TEACHER_KEY", raising=False)
    base = ports(2)
    said: list[str] = []
    group = Replicas(Plan(2, base, "127.0.0.1", cores=2), fake, tmp_path, log=said.append)
    try:
        group.start()
        # A new browser (no cookie) goes to the next replica and is given a cookie naming it.
        first, second = get(base), get(base)
        assert {first[0]["replica"], second[0]["replica"]} == {"r1", "r2"}
        assert first[1] == [f"SPPVIZ_REPLICA={first[0]['replica']}; path=/; HttpOnly"]
        # Every later request with the cookie reaches the same replica, which never sees the cookie itself; the
        # websocket's answer also records which replica holds the session.
        for _ in range(4):
            body, _ = get(base, "SPPVIZ_REPLICA=r2; other=1")
            assert body["replica"] == "r2" and body["cookie"] == "other=1" and body["before"] is None
        body, cookies = get(base, "SPPVIZ_REPLICA=r2", "/_stcore/stream")
        assert body["replica"] == "r2" and body["before"] == ""
        assert cookies == ["SPPVIZ_SESSION_ON=r2; path=/; HttpOnly"]
        # Shared by all: one teacher's passphrase (made once, said once), the cores shared out.
        assert body["key"] == group.key and sum(group.key in line for line in said) == 1 and body["threads"] == "1"
        pid = int((tmp_path / "replica-r2.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        moved_at = time.monotonic()
        while True:  # the browser whose replica died is served by the other (a browser first checks the health)
            body, cookies = get(base, "SPPVIZ_REPLICA=r2; SPPVIZ_SESSION_ON=r2")
            if body["replica"] == "r1":
                break
            assert time.monotonic() - moved_at < 10, "still sent to the dead replica after 10 s"
        assert cookies == ["SPPVIZ_REPLICA=r1; path=/; HttpOnly"]
        # ... then its websocket reaches r1 too, which is told where the session was
        body, cookies = get(base, "SPPVIZ_REPLICA=r1; SPPVIZ_SESSION_ON=r2", "/_stcore/stream")
        assert body["replica"] == "r1" and body["before"] == "r2"
        assert cookies == ["SPPVIZ_SESSION_ON=r1; path=/; HttpOnly"]
        assert group.watch_once()
        assert "Replica r2 exited with code -9; HAProxy sends its students to the others; starting it again." in said
        restarted = int((tmp_path / "replica-r2.pid").read_text())
        assert restarted != pid and alive(restarted)
        procs = [group.proxy.pid, *(p.pid for p in group.apps.values())]
    finally:
        group.stop()
    assert not any(alive(p) for p in procs)


def test_ctrl_c_stops_serve_and_every_process_it_started(tmp_path):
    """`spp-viz serve` in a process of its own, with stand-in replicas: SIGINT (Ctrl-C) ends the proxy and every
    replica, and serve exits 0."""
    haproxy_or_skip()
    import subprocess

    base = ports(2)
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); from test_replicas import fake; "
              "from spp_viz.replicas import Plan, serve; "
              f"sys.exit(serve(Plan(2, {base}, '127.0.0.1'), fake))")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env={**os.environ, "SPP_VIZ_DATABASE_URL": ""})  # fmt: skip
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("SPP-net Explorer: "):
            break
    folder = Path(next(x for x in lines if x.startswith("Replica r1:")).split("(log: ")[1].rstrip(")\n")).parent
    pids = [int((folder / f"replica-{n}.pid").read_text()) for n in ("r1", "r2")]
    assert get(base)[0]["replica"] in ("r1", "r2")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines) + out
    assert "Stopping the replicas and HAProxy." in out
    time.sleep(0.5)
    assert not any(alive(p) for p in pids)
    for port in (base, base + 1, base + 2):  # nothing listens any more
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))


def test_a_database_down_at_start_is_a_warning_not_a_stop(monkeypatch):
    said: list[str] = []
    monkeypatch.setenv("SPP_VIZ_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    started = time.monotonic()
    replicas.check_database(said.append)
    assert time.monotonic() - started < 10  # refused at once: no hang
    assert len(said) == 1 and said[0].startswith("WARNING: the class database cannot be reached")
    assert said[0].endswith("The Class page says so until it answers; every other page works.")
    monkeypatch.delenv("SPP_VIZ_DATABASE_URL")
    replicas.check_database(said.append)
    assert said[-1].startswith("Class database: SQLite in the cache folder, shared by the replicas")
