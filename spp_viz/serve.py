"""``spp-viz app``: the Streamlit app served from wherever the package lives (a checkout or an installed wheel).

This is the ``spp-viz`` entry point. ``app`` is handled here, before the command line's other commands are imported:
they load torch, and Streamlit loads it again in the process that replaces this one.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Sequence

from .settings import MAX_UPLOAD_MB, webapp_dir


def streamlit_flags() -> list[str]:
    """The app's ``.streamlit/config.toml`` as command-line flags (Streamlit reads that file from the working folder
    only, and a teacher may start the app from anywhere), with the upload limit from ``settings.MAX_UPLOAD_MB``."""
    config = tomllib.loads((webapp_dir() / ".streamlit" / "config.toml").read_text())
    config.setdefault("server", {})["maxUploadSize"] = MAX_UPLOAD_MB
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


def main(argv: Sequence[str] | None = None) -> int:
    """``spp-viz app [streamlit flags]`` starts the app; any other command goes to ``spp_viz.cli``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["app"]:
        if any(a in ("-h", "--help") for a in args[1:]):
            print("usage: spp-viz app [STREAMLIT FLAGS]\n\nServe SPP-net Explorer with Streamlit, e.g. "
                  "spp-viz app --server.port 8502 --server.address 0.0.0.0")  # fmt: skip
            return 0
        command = streamlit_command(args[1:])
        os.execv(command[0], command)  # Streamlit takes this process over: Ctrl-C and signals reach it directly
    from .cli import main as cli_main

    return cli_main(args)
