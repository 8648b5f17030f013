"""``spp-viz app``: the Streamlit app served from wherever the package lives (a checkout or an installed wheel);
``spp-viz serve --replicas N``: N of them behind HAProxy (``replicas``).

This is the ``spp-viz`` entry point. ``app`` and ``serve`` are handled here, before the command line's other commands
are imported: they load torch, and Streamlit loads it again in the processes that serve.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Sequence

from .settings import server_upload_mb, webapp_dir


def streamlit_flags() -> list[str]:
    """The app's ``.streamlit/config.toml`` as command-line flags (Streamlit reads that file from the working folder
    only, and a teacher may start the app from anywhere), with the server's upload limit from the environment
    (``settings.server_upload_mb``: it follows ``SPP_VIZ_MAX_MODEL_MB``)."""
    config = tomllib.loads((webapp_dir() / ".streamlit" / "config.toml").read_text())
    config.setdefault("server", {})["maxUploadSize"] = server_upload_mb()
    flags = []
    for section, values in config.items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{key}={text}")
    return flags


def streamlit_command(extra: Sequence[str] = ()) -> list[str]:
    """``python ui/launch.py <app.py> <flags> <extra>``, which is ``streamlit run`` with the server's warm-up begun
    first (the home page's imports and the default network load while Streamlit starts and the browser loads its
    page). Extra flags (``--server.port 8502``) come last and win."""
    webapp = webapp_dir()
    return [sys.executable, str(webapp / "ui" / "launch.py"), str(webapp / "app.py"), *streamlit_flags(), *extra]


def serve_replicas(args: Sequence[str]) -> int:
    """``spp-viz serve --replicas N [--port P] [--address A] [--replica-ports FIRST]``."""
    import argparse

    from .replicas import Plan, ServeError, serve

    parser = argparse.ArgumentParser(
        prog="spp-viz serve",
        description="Serve SPP-net Explorer from N app servers behind HAProxy (Debian's haproxy package), on one "
        "port: each browser session sticks to one replica; a replica that fails its health checks is taken out and "
        "its students go to another; Ctrl-C stops every process started.",
    )
    parser.add_argument("--replicas", type=int, default=2, help="app servers (default 2)")
    parser.add_argument("--port", type=int, default=8501, help="the port students open (default 8501)")
    parser.add_argument("--address", default="0.0.0.0", help="the proxy's address (default 0.0.0.0: the network)")
    parser.add_argument("--replica-ports", type=int, default=0, metavar="FIRST",
                        help="the first replica's port on 127.0.0.1 (default: --port + 1, then + 2 ...)")  # fmt: skip
    ns = parser.parse_args(list(args))
    try:
        plan = Plan(ns.replicas, ns.port, ns.address, ns.replica_ports)
        return serve(plan, streamlit_command)
    except ServeError as e:
        print(f"spp-viz serve: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``spp-viz app [streamlit flags]`` starts the app, ``spp-viz serve --replicas N`` several behind a proxy; any
    other command goes to ``spp_viz.cli``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return serve_replicas(args[1:])
    if args[:1] == ["app"]:
        if any(a in ("-h", "--help") for a in args[1:]):
            print("usage: spp-viz app [STREAMLIT FLAGS]\n\nServe SPP-net Explorer with Streamlit, e.g. "
                  "spp-viz app --server.port 8502 --server.address 0.0.0.0")  # fmt: skip
            return 0
        command = streamlit_command(args[1:])
        os.execv(command[0], command)  # Streamlit takes this process over: Ctrl-C and signals reach it directly
    from .cli import main as cli_main

    return cli_main(args)
