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

from .i18n import _

CHECKOUT = Path(__file__).resolve().parent.parent  # the source checkout, where the package runs from one

OFFLINE_ENV = "SPP_VIZ_OFFLINE"  # set: no weights are downloaded (the tests set it)
CACHE_ENV = "SPP_VIZ_CACHE"  # activation indexes, distillation views, detection features, Lab models
DEVICE_ENV = "SPP_VIZ_DEVICE"  # auto, cuda, mps or cpu
SERVER_PATHS_ENV = "SPP_VIZ_SERVER_PATHS"  # "1": students may name files and folders on the server's disk
WORKERS_ENV = "SPP_VIZ_WORKERS"  # threads of the server's queue for heavy work (default: half the cores)
MAX_MODEL_MB_ENV = "SPP_VIZ_MAX_MODEL_MB"  # the largest network the server builds, in MB (default 600)
MODEL_MEMORY_MB_ENV = "SPP_VIZ_MODEL_MEMORY_MB"  # what the models held at once may take (default: memory / 4)
CACHE_MB_ENV = "SPP_VIZ_CACHE_MB"  # what the cache folder may hold, in MB (default 5,000)
CLASS_MAX_ENTRIES_ENV = "SPP_VIZ_CLASS_MAX_ENTRIES"  # entries a class takes (default 200)
DATABASE_ENV = "SPP_VIZ_DATABASE_URL"  # the class database: postgresql://...; unset: SQLite in the cache folder
REPLICA_ENV = "SPP_VIZ_REPLICA"  # this app server's name behind the proxy (spp-viz serve --replicas N sets it)
REPLICAS_ENV = "SPP_VIZ_REPLICAS"  # how many replicas that serve started
TORCH_HOME_ENV = "TORCH_HOME"  # torch hub's folder: torchvision's downloaded weights (its hub/checkpoints)
HF_CACHE_ENV = "HF_HUB_CACHE"  # the Hugging Face cache: timm's downloaded weights
TEACHER_KEY_ENV = "SPP_VIZ_TEACHER_KEY"  # the passphrase that opens classes; unset: one made at start, printed

# The network the app and the command line open on: an SPP-net, whose classifier reads the pyramid the pages draw.
# Its accuracy shows no clear difference from its teacher Lite0 (docs/model-card.md); Lite0 stays in the menu as the
# one-level contrast. Named here, below every module that means it (spp_viz.registry builds it).
DEFAULT_MODEL = "efficientnet_lite0_spp"
LAB_DIR_NAME = "lab"  # the folder under cache_root() where the Lab saves its models
MAX_UPLOAD_MB = 25  # a photo's upload limit (the uploader's own; weights files have theirs: weights_max_mb())
ZIP_MAX_MB = 100  # a Lab archive's upload limit
DEFAULT_MAX_MODEL_MB = 600  # VGG-16 (528 MB) fits; ConvNeXt-XXLarge (3.4 GB) does not
DEFAULT_CACHE_MB = 5000


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


def downloads_dir() -> Path:
    """Where the app keeps the pretrained weights its students download: inside the cache folder, under its budget."""
    return cache_root() / "downloads"


def keep_downloads_in_cache() -> None:
    """Point torch hub (``TORCH_HOME``) and the Hugging Face cache (``HF_HUB_CACHE``) into ``downloads_dir()``,
    unless whoever started the app set them (a folder of their own, then not trimmed). The app calls this at start,
    before timm or huggingface_hub are imported (the latter reads its variable once)."""
    os.environ.setdefault(TORCH_HOME_ENV, str(downloads_dir() / "torch"))
    os.environ.setdefault(HF_CACHE_ENV, str(downloads_dir() / "huggingface"))


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


def _megabytes(env: str, default: int) -> int:
    """A positive whole number (of MB, for most) from the environment, or ``default`` when unset.

    Raises:
        ValueError: for anything but a positive whole number, naming the variable.
    """
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise ValueError(f"{env} must be a positive whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{env} must be a positive whole number, got {value}")
    return value


def max_model_mb() -> int:
    """``SPP_VIZ_MAX_MODEL_MB``: the largest network (parameters and buffers) the server builds, in MB."""
    return _megabytes(MAX_MODEL_MB_ENV, DEFAULT_MAX_MODEL_MB)


def machine_memory_mb() -> int:
    """This machine's memory in MB (4 GB where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (AttributeError, ValueError, OSError):
        return 4096


def model_memory_mb() -> int:
    """``SPP_VIZ_MODEL_MEMORY_MB``: what the models the server holds at once may take together, in MB (default: a
    quarter of the machine's memory: the rest is for the students' sessions, their photos and the work)."""
    return _megabytes(MODEL_MEMORY_MB_ENV, machine_memory_mb() // 4)


def cache_mb() -> int:
    """``SPP_VIZ_CACHE_MB``: what the cache folder may hold, in MB; the least recently used files go first."""
    return _megabytes(CACHE_MB_ENV, DEFAULT_CACHE_MB)


def class_max_entries() -> int:
    """``SPP_VIZ_CLASS_MAX_ENTRIES``: the entries one class takes (default 200)."""
    return _megabytes(CLASS_MAX_ENTRIES_ENV, 200)


def weights_max_mb() -> int:
    """A weights file's upload limit: the largest network the server builds (``max_model_mb``)."""
    return max_model_mb()


def server_upload_mb() -> int:
    """Streamlit's ``server.maxUploadSize``: it checks this one number for every upload, so it is the largest of the
    uploaders' own limits (each uploader states and enforces its own in the browser; the app checks again)."""
    return max(MAX_UPLOAD_MB, ZIP_MAX_MB, weights_max_mb())


def budgets() -> list[tuple[str, str, str]]:
    """(variable, its value now, what it bounds) of every budget a student's actions meet, for the Server panel and
    the docs (``docs/serving.md`` lists the same variables)."""
    fixed = _("(fixed)")
    return [
        (MAX_MODEL_MB_ENV, f"{max_model_mb():,} MB", _("the largest network built, and a weights file's upload limit")),
        (MODEL_MEMORY_MB_ENV, f"{model_memory_mb():,} MB", _("the models held at once (least recently used dropped)")),
        (CACHE_MB_ENV, f"{cache_mb():,} MB",
         _("the cache folder {folder} (least recently used files removed)").format(folder=cache_root())),
        (fixed, f"{MAX_UPLOAD_MB} MB", _("a photo's upload limit")),
        (fixed, f"{ZIP_MAX_MB} MB", _("a Lab archive's upload limit")),
    ]  # fmt: skip


def teacher_key() -> str:
    """``SPP_VIZ_TEACHER_KEY``, or a passphrase made once per process (``spp-viz app`` prints it to the server's
    log at start, where the teacher reads the app's address)."""
    key = os.environ.get(TEACHER_KEY_ENV, "").strip()
    if key:
        return key
    if not _GENERATED_KEY:
        _GENERATED_KEY.append("-".join(secrets.token_hex(2) for _ in range(3)))
    return _GENERATED_KEY[0]
