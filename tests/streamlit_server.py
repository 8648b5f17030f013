"""A real `spp-viz app` (Streamlit) on a loopback port, and the Chromium that Playwright drives (browser tests)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_or_skip() -> None:
    """Skip the calling module without Chromium, except on CI, where .ci/run installs it."""
    import pytest

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"{CHROMIUM} is missing on CI: .ci/run should have installed it")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)


@contextmanager
def streamlit_server(
    timeout: float = 120, procs: list | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start `spp-viz app` offline on a free loopback port; yield its URL once healthy; stop it after. ``procs``
    gets the server's process; ``env`` adds to its environment."""
    port = free_port()
    env = {**os.environ, "SPP_VIZ_OFFLINE": "1", **(env or {})}
    # The command a teacher runs (`spp-viz app`), which passes .streamlit/config.toml and the upload limit as flags.
    cmd = [
        sys.executable,
        "-m",
        "spp_viz",
        "app",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    # A file, not a pipe: nobody reads a pipe while tests run, and a full one would block the server's logging.
    # Kept in test-artifacts/ (CI keeps that folder), so a failure can be read against what the server logged.
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / f"server-{port}.log", "w+") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        if procs is not None:
            procs.append(proc)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read()[-3000:]}")
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/_stcore/health")
                    if conn.getresponse().read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.3)
            else:
                raise RuntimeError(f"streamlit did not start within {timeout:.0f} s")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
