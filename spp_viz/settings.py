"""Where things live and what the environment may change: the shipped data, the app's files, caches, and every
``SPP_VIZ_*`` variable, in one place.

An installed wheel carries ``assets/`` as the package ``spp_viz.assets`` (found with ``importlib.resources``) and the
Streamlit app (``app.py``, ``pages/``, ``ui/``, ``.streamlit/``) in the folder ``spp_viz/webapp`` (pyproject.toml maps
them). A checkout keeps them at the top level, beside ``spp_viz/``, where they are found when no
such package is installed.
"""

from __future__ import annotations

import os
import secrets
from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent  # the source checkout, where the package runs from one

OFFLINE_ENV = "SPP_VIZ_OFFLINE"  # set: no weights are downloaded (the tests set it)
CACHE_ENV = "SPP_VIZ_CACHE"  # activation indexes, distillation views, detection features, Lab models
DEVICE_ENV = "SPP_VIZ_DEVICE"  # auto, cuda, mps or cpu
SERVER_PATHS_ENV = "SPP_VIZ_SERVER_PATHS"  # "1": students may name files and folders on the server's disk
WORKERS_ENV = "SPP_VIZ_WORKERS"  # threads of the server's queue for heavy work (default: half the cores)
MAX_MODELS_ENV = "SPP_VIZ_MAX_MODELS"  # models the server holds at once (default 3)
DATABASE_ENV = "SPP_VIZ_DATABASE_URL"  # the class database: postgresql://...; unset: SQLite in the cache folder
REPLICA_ENV = "SPP_VIZ_REPLICA"  # this app server's name behind the proxy (spp-viz serve --replicas N sets it)
REPLICAS_ENV = "SPP_VIZ_REPLICAS"  # how many replicas that serve started
TEACHER_KEY_ENV = "SPP_VIZ_TEACHER_KEY"  # the passphrase that opens classes; unset: one made at start, printed

LAB_DIR_NAME = "lab"  # the folder under cache_root() where the Lab saves its models
MAX_UPLOAD_MB = 25  # a photo's upload limit; `spp-viz app` passes it to Streamlit as server.maxUploadSize
WEIGHTS_MAX_MB = 250  # a weights file's upload limit: AlexNet's checkpoint is 233 MB


def _package_dir(package: str, checkout: Path) -> Path:
    """The folder of an installed data package, or its place in the checkout when none is installed."""
    try:
        found = resources.files(package)
    except ModuleNotFoundError:
        return checkout
    # A wheel installs into a folder; `files` returns a Traversable that is a real path there.
    return Path(str(found))


def assets_dir() -> Path:
    """The shipped data: sample photos, the distilled SPP head, the shipped results."""
    return _package_dir("spp_viz.assets", CHECKOUT / "assets")


def webapp_dir() -> Path:
    """The folder holding the Streamlit app's ``app.py`` (and its ``pages/``, ``ui/``, ``.streamlit/``)."""
    # A folder of scripts, not an importable package (no __init__.py: Streamlit runs app.py as a script).
    installed = Path(__file__).resolve().parent / "webapp"
    return installed if (installed / "app.py").is_file() else CHECKOUT


ASSETS = assets_dir()
SAMPLES_DIR = ASSETS / "samples"


def offline() -> bool:
    """Whether downloads are off (``SPP_VIZ_OFFLINE`` set to anything)."""
    return bool(os.environ.get(OFFLINE_ENV))


def cache_root() -> Path:
    """``SPP_VIZ_CACHE``, else ``~/.cache/spp_viz``: files the library computes and may compute again."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "spp_viz"))


def server_paths() -> bool:
    """Whether students may name files and folders on the server's disk (``SPP_VIZ_SERVER_PATHS=1``).

    Off by default: on a shared server those paths are the teacher's. Not decided by the client's address, since
    behind a reverse proxy every client looks local.
    """
    return os.environ.get(SERVER_PATHS_ENV, "").strip() == "1"


_GENERATED_KEY: list[str] = []  # the passphrase made for this process, once


def replica() -> tuple[str, int] | None:
    """(this app server's name, how many replicas) behind ``spp-viz serve --replicas N``; None for a lone server."""
    name = os.environ.get(REPLICA_ENV, "").strip()
    return (name, int(os.environ.get(REPLICAS_ENV, "1") or 1)) if name else None


def teacher_key() -> str:
    """``SPP_VIZ_TEACHER_KEY``, or a passphrase made once per process (``spp-viz app`` prints it to the server's
    log at start, where the teacher reads the app's address)."""
    key = os.environ.get(TEACHER_KEY_ENV, "").strip()
    if key:
        return key
    if not _GENERATED_KEY:
        _GENERATED_KEY.append("-".join(secrets.token_hex(2) for _ in range(3)))
    return _GENERATED_KEY[0]
