"""``spp-viz serve --replicas N``: N app servers on one machine behind HAProxy, for more students than one server's
interpreter lock serves.

Every request of a browser session (the websocket, uploads, media) must reach the replica that holds the session, or
uploads fail with "400 session invalid": HAProxy inserts a cookie naming the replica on the first answer
(``cookie ... insert indirect nocache``) and sends the session's later requests there. It checks each replica's
``/_stcore/health`` every 2 seconds; a replica that fails three checks (10 s each) is taken out, and a request that
its replica refuses goes to another at once (``option redispatch``), where the app starts again and says why
(``ui.sidebar_box``). A replica that exits is started again. The replicas share what must be shared: the class
database (``SPP_VIZ_DATABASE_URL``, else SQLite in the shared cache folder), the cache folder (files renamed into
place whole, ``files``), and one teacher's passphrase.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .settings import DATABASE_ENV, REPLICA_ENV, REPLICAS_ENV, TEACHER_KEY_ENV

REPLICA_HEADER = "X-SPP-Replica"  # the replica that answered a request, on every response
COOKIE = "SPPVIZ_REPLICA"  # HAProxy's stickiness cookie: the replica's name
# The replica that last held the browser's session: set by HAProxy when the session's websocket opens, and passed on
# with the next one. The stickiness cookie cannot tell: after a replica dies, the browser's first request (a health
# check before it reconnects) already gets a new one.
SESSION_COOKIE = "SPPVIZ_SESSION_ON"
BEFORE_HEADER = "X-SPP-Viz-Replica-Before"  # that replica's name, for the app to compare with its own
STREAM = "/_stcore/stream"  # Streamlit's websocket
STREAMED = "var(txn.stream) -m bool"  # HAProxy: this answer is to a websocket's request
MAX_REPLICAS = 16
RESTARTS = 3  # a replica that exits is started again at most this often in RESTART_WINDOW seconds, then left down
RESTART_WINDOW = 300.0
HEALTH_TIMEOUT = 180.0  # seconds a replica may take to answer its first health check (imports and the network)


class ServeError(RuntimeError):
    """Something that stops ``serve`` before it serves: one clear message, no traceback."""


@dataclass(frozen=True)
class Plan:
    """What ``serve`` starts: the proxy's address and port, and one app server per replica port."""

    replicas: int
    port: int = 8501  # the one port students open
    address: str = "0.0.0.0"  # the proxy's; replicas listen on 127.0.0.1 only
    first_replica_port: int = 0  # 0: the proxy's port + 1, + 2, ...
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ServeError(f"--replicas takes 1 to {MAX_REPLICAS}, not {self.replicas}")
        for p in (self.port, *self.replica_ports):
            if not 1 <= p <= 65535:
                raise ServeError(f"port {p} is not a port number (1 to 65535)")

    @property
    def names(self) -> list[str]:
        return [f"r{i + 1}" for i in range(self.replicas)]

    @property
    def replica_ports(self) -> list[int]:
        first = self.first_replica_port or self.port + 1
        return [first + i for i in range(self.replicas)]

    @property
    def threads(self) -> int:
        """Torch threads per replica: the cores shared out, at least one each."""
        return max(1, self.cores // self.replicas)


def haproxy_config(plan: Plan) -> str:
    """HAProxy's configuration for ``plan``: cookie stickiness, websockets, health checks, redispatch."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{port} check cookie {name}"
        for name, port in zip(plan.names, plan.replica_ports, strict=True)
    )
    return f"""# Written by spp-viz serve --replicas {plan.replicas}: HAProxy in front of {plan.replicas} app servers.
global
    maxconn 4096

defaults
    mode http
    option redispatch               # a session whose replica is down goes to another
    retries 3
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h               # a websocket, once upgraded, stays open for the whole lesson
    timeout http-request 30s
    timeout queue 60s
    # A replica busy with a class answers its health check late (one interpreter lock): taken out only after three
    # checks of 10 s each fail. A replica that is gone refuses the connection, and its requests go to another at once.
    timeout check 10s

frontend spp_viz
    bind {plan.address}:{plan.port}
    # Where the session lived before, passed on with its websocket: the app says so when it was moved.
    acl stream path_end {STREAM}
    http-request set-var(txn.stream) bool(1) if stream
    http-request set-header {BEFORE_HEADER} %[req.cook({SESSION_COOKIE})] if stream
    http-response add-header Set-Cookie "{SESSION_COOKIE}=%[srv_name]; path=/; HttpOnly" if {{ {STREAMED} }}
    default_backend replicas

backend replicas
    balance roundrobin              # a new session (no cookie yet) goes to the next replica
    cookie {COOKIE} insert indirect nocache httponly
    option httpchk GET /_stcore/health
    http-check expect string ok
    http-response set-header {REPLICA_HEADER} %[srv_name]   # which replica answered (what a browser's tools show)
    default-server inter 2s fall 3 rise 2 on-marked-down shutdown-sessions
{servers}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.path.exists(p)), None)
    if found is None:
        raise ServeError(
            "HAProxy is not installed: on Debian or Ubuntu, sudo apt-get install haproxy (serve --replicas starts it "
            "itself; no service needs to run)"
        )
    return found


def check_config(path: Path) -> None:
    """``haproxy -c``: the configuration is valid, or a ServeError with HAProxy's own words."""
    done = subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise ServeError(f"HAProxy refused its configuration {path}:\n{(done.stdout + done.stderr).strip()}")


def check_ports(plan: Plan) -> None:
    """Every port ``plan`` needs is free, or a ServeError that names the one in use and what it was for."""
    wanted = [(plan.address, plan.port, "the proxy's, which students open")]
    wanted += [("127.0.0.1", p, f"replica {n}'s") for n, p in zip(plan.names, plan.replica_ports, strict=True)]
    for address, port, what in wanted:
        with socket.socket() as s:
            # Like the servers themselves: a port left in TIME_WAIT by a stopped serve is free, a listening one not.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError as e:
                raise ServeError(
                    f"port {port} ({what}) is in use by another program ({e.strerror}): stop it, or choose other "
                    "ports with --port P (replicas take P+1, P+2, ...) or --replica-ports FIRST"
                ) from e


def check_database(log: Callable[[str], None]) -> None:
    """Say in the log whether the class database answers; a database that is down stops nothing (the Class page
    says so, and every other page works)."""
    if not os.environ.get(DATABASE_ENV):
        log("Class database: SQLite in the cache folder, shared by the replicas (SPP_VIZ_DATABASE_URL: PostgreSQL).")
        return
    from .classroom import ClassStore, DatabaseDown

    try:
        ClassStore()
        log("Class database: PostgreSQL answers.")
    except DatabaseDown as e:
        log(f"WARNING: {e}. The Class page says so until it answers; every other page works.")


def healthy(port: int, timeout: float = 2.0) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/_stcore/health")
        return conn.getresponse().read() == b"ok"
    except OSError:
        return False


class Replicas:
    """The processes of one ``serve``: N app servers and HAProxy, started, watched and stopped together."""

    def __init__(self, plan: Plan, command: Callable[[Sequence[str]], list[str]], folder: Path,
                 log: Callable[[str], None] = print) -> None:  # fmt: skip
        self.plan, self.command, self.folder, self.log = plan, command, folder, log
        self.apps: dict[str, subprocess.Popen] = {}
        self.proxy: subprocess.Popen | None = None
        self.restarts: dict[str, list[float]] = {n: [] for n in plan.names}
        self.stop_asked: list[bool] = []  # Ctrl-C or SIGTERM, also while the replicas start
        # One passphrase for every replica: a teacher's class opened on one is closed on another.
        self.key = os.environ.get(TEACHER_KEY_ENV, "").strip() or "-".join(secrets.token_hex(2) for _ in range(3))

    def env(self, name: str) -> dict[str, str]:
        threads = str(self.plan.threads)
        return {**os.environ, REPLICA_ENV: name, REPLICAS_ENV: str(self.plan.replicas), TEACHER_KEY_ENV: self.key,
                "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}  # fmt: skip

    def start_app(self, name: str) -> None:
        port = self.plan.replica_ports[self.plan.names.index(name)]
        flags = ["--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"]
        log = open(self.folder / f"replica-{name}.log", "a")  # noqa: SIM115 - the child holds it open
        # A session of its own: a terminal's Ctrl-C reaches this supervisor alone, which stops the replicas in order
        # (and does not take a replica that Ctrl-C ended for one that crashed).
        self.apps[name] = subprocess.Popen(self.command(flags), env=self.env(name), stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        log.close()
        (self.folder / f"replica-{name}.pid").write_text(str(self.apps[name].pid))  # for a teacher (or a test) to find

    def start(self) -> None:
        config = self.folder / "haproxy.cfg"
        config.write_text(haproxy_config(self.plan))
        check_config(config)
        for name in self.plan.names:
            self.start_app(name)
        deadline = time.monotonic() + HEALTH_TIMEOUT
        for name, port in zip(self.plan.names, self.plan.replica_ports, strict=True):
            while not healthy(port):
                if self.stop_asked:
                    raise ServeError("stopped before every replica served")
                if self.apps[name].poll() is not None:
                    raise ServeError(f"replica {name} exited with code {self.apps[name].returncode} before it "
                                     f"served:\n{self.tail(name)}")  # fmt: skip
                if time.monotonic() > deadline:
                    raise ServeError(f"replica {name} did not answer on port {port} within {HEALTH_TIMEOUT:.0f} s")
                time.sleep(0.3)
            self.log(f"Replica {name}: http://127.0.0.1:{port} (log: {self.folder / f'replica-{name}.log'})")
        self.proxy = subprocess.Popen([haproxy_binary(), "-W", "-db", "-f", str(config)], stdout=sys.stdout,
                                      stderr=sys.stderr, start_new_session=True)  # fmt: skip
        time.sleep(0.5)
        if self.proxy.poll() is not None:
            raise ServeError(f"HAProxy exited with code {self.proxy.returncode} at start (its message is above)")
        if not os.environ.get(TEACHER_KEY_ENV):
            self.log(f"Class mode: the teacher's passphrase is {self.key} (set {TEACHER_KEY_ENV} to choose one).")
        self.log(f"SPP-net Explorer: http://{self.plan.address}:{self.plan.port} ({self.plan.replicas} replicas, "
                 f"{self.plan.threads} torch thread(s) each; Ctrl-C stops them all)")  # fmt: skip

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.folder / f"replica-{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def watch_once(self) -> bool:
        """One look at the processes: a replica that exited is said and started again (within ``RESTARTS``);
        False when the proxy itself is gone."""
        if self.proxy is not None and self.proxy.poll() is not None:
            self.log(f"HAProxy exited with code {self.proxy.returncode}: stopping the replicas.")
            return False
        now = time.monotonic()
        for name, proc in list(self.apps.items()):
            if proc.poll() is None or self.stop_asked:
                continue
            recent = [t for t in self.restarts[name] if now - t < RESTART_WINDOW]
            said = f"Replica {name} exited with code {proc.returncode}; HAProxy sends its students to the others"
            if len(recent) >= RESTARTS:
                self.log(f"{said}. It exited {RESTARTS + 1} times in {RESTART_WINDOW:.0f} s: left down (its log: "
                         f"{self.folder / f'replica-{name}.log'}).")  # fmt: skip
                del self.apps[name]
                continue
            self.log(f"{said}; starting it again.")
            self.restarts[name] = [*recent, now]
            self.start_app(name)
        return True

    def stop(self) -> None:
        """Every process this serve started, terminated (killed after 15 s)."""
        procs = [p for p in (self.proxy, *self.apps.values()) if p is not None and p.poll() is None]
        for p in procs:
            p.terminate()
        deadline = time.monotonic() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def serve(plan: Plan, command: Callable[[Sequence[str]], list[str]], log: Callable[[str], None] = print) -> int:
    """Start the replicas and the proxy, watch them until Ctrl-C (or SIGTERM), then stop every one; 0 on a stop,
    1 when the proxy died. Raises ServeError before anything serves."""
    haproxy_binary()
    check_ports(plan)
    check_database(log)
    folder = Path(tempfile.mkdtemp(prefix="spp-viz-serve-"))
    replicas = Replicas(plan, command, folder, log)
    asked = replicas.stop_asked
    previous = {s: signal.signal(s, lambda *_: asked.append(True)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        replicas.start()
        while not asked:
            if not replicas.watch_once():
                return 1
            time.sleep(0.5)
        log("Stopping the replicas and HAProxy.")
        return 0
    finally:
        replicas.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
