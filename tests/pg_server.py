"""A PostgreSQL server of the test's own: Debian's ``postgresql`` package, ``initdb`` and ``pg_ctl`` in a temporary
folder on 127.0.0.1 and a free port (no system service), stopped at the end. Skips with the reason where the package
is absent (``.ci/run`` installs it)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from streamlit_server import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PgServer:
    """A running server: ``url``, and ``stop`` / ``start`` to take it down and bring it back on the same port and
    data (a database that goes away during a class)."""

    def __init__(self, bindir: Path, folder: Path, as_user: list[str]) -> None:
        self.bindir, self.folder, self.as_user = bindir, folder, as_user
        self.data, self.port = folder / "data", free_port()
        self.url = f"postgresql://spp@127.0.0.1:{self.port}/postgres"

    def run(self, *cmd) -> None:
        subprocess.run([*self.as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.folder / "log", "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    """A fresh server on a free port, for as long as the block runs."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql; .ci/run installs it)")
    folder = Path(tempfile.mkdtemp(prefix="spp-viz-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run it as the package's own user
        folder.chmod(0o755)
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PgServer(bindir, folder, as_user)
    server.run(bindir / "initdb", "-D", server.data, "-U", "spp", "--auth=trust", "-E", "UTF8")
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[str]:
    """The URL of a fresh server's ``postgres`` database, for as long as the block runs."""
    with postgres_server() as server:
        yield server.url
