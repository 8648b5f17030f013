"""Choosing where the network runs: CUDA, then MPS, then CPU, unless the user says otherwise."""

from __future__ import annotations

import os

import torch

from .settings import DEVICE_ENV


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Device names usable on this machine, best first (always ends with "cpu")."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on.

    Order: the argument, then the ``SPP_VIZ_DEVICE`` environment variable, then the best available
    (CUDA, MPS, CPU). ``None`` or ``"auto"`` mean "best available".

    Raises:
        ValueError: for a device name torch does not know, or one this machine does not have.
    """
    if isinstance(device, torch.device):
        wanted = str(device)
    else:
        wanted = (device or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if wanted == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(wanted)
    except RuntimeError as e:
        raise ValueError(f"unknown device {wanted!r}: use auto, cuda, mps or cpu") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but this machine has no CUDA GPU that torch can use")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {wanted!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) exist")
    if dev.type == "mps" and not _mps_available():
        raise ValueError("device 'mps' asked for, but Apple's MPS backend is not available here")
    if dev.type not in ("cuda", "mps", "cpu"):
        raise ValueError(f"device {wanted!r} is not supported: use auto, cuda, mps or cpu")
    return dev
