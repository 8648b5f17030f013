"""Lab models on disk: .safetensors files holding the weights and, in their metadata, what rebuilds the model."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import torch

from ..devices import resolve_device
from ..external import PRETRAINED, build_external, is_external
from ..files import DiskFull, in_use
from ..models import SPPNet, fc_classifier, load_model
from ..pyramid import SpatialPyramidPool
from ..weights import load_into, read_tagged, save_tagged, tagged_bytes
from .models import LabConfig, build_lab_model, head_on

LAB_KEY = "spp_viz_lab"  # the metadata key of a Lab model's file

class NotSaved(DiskFull):
    """A trained model the full disk could not take: ``data`` is its file, made in memory, to offer as a download,
    ``result`` what the training gave."""

    def __init__(self, name: str, data: bytes, result: object) -> None:
        super().__init__(errno.ENOSPC, f"the server's disk is full: {name} could not be saved")
        self.name, self.data, self.result = name, data, result


def save_model(model: SPPNet, path: str | Path, meta: dict, result: object = None, by_content: bool = False) -> Path:
    """safetensors: the weights, and in the metadata the config and class names needed to rebuild the model.

    Args:
        by_content: name the file after its content too (``{path's stem}-{its SHA-256's first 12}``), so that two
            trainings of the same name never overwrite each other.

    Raises:
        NotSaved: when the disk is full; it carries the file's bytes and ``result``.
    """
    info = {**meta, "class_names": list(model.class_names)}
    try:
        saved = save_tagged(model.state_dict(), path, LAB_KEY, info)
    except DiskFull as e:
        raise NotSaved(Path(path).name, tagged_bytes(model.state_dict(), LAB_KEY, info), result) from e
    if not by_content:
        return saved
    named = saved.with_name(f"{saved.stem}-{hashlib.sha256(saved.read_bytes()).hexdigest()[:12]}{saved.suffix}")
    os.replace(saved, named)  # the same content under the same name: the same file
    return named


def read_meta(path: str | Path) -> dict:
    """The Lab metadata of a saved model (raises WeightsError for other files)."""
    return read_tagged(path, LAB_KEY, "Lab model")


def load_base(name: str, weights: str | None = None) -> SPPNet:
    """The network whose frozen conv layers a folder's model reads: a zoo name, or "timm:NAME" / "torchvision:NAME"
    with ``weights`` None (random, seeded) or ``external.PRETRAINED``: what a saved model can find again by name.

    Raises:
        ValueError: for other weights (a file's: the saved model could not find them again).
    """
    if not is_external(name):
        return load_model(name, device="cpu")
    if weights not in (None, PRETRAINED):
        raise ValueError(
            f"fine-tuning on {name} with weights from a file: the saved model reads its base again by name, and "
            "would not find your file; choose the library's pretrained weights (or random ones)"
        )
    return build_external(name, weights)


def load_trained(path: str | Path, device: str | torch.device | None = None) -> SPPNet:
    """Rebuild a Lab model (synthetic, or fine-tuned on a folder) from its file, in eval mode."""
    from safetensors.torch import load_file

    with in_use(path):
        meta = read_meta(path)
        state = load_file(str(path))
    if meta["kind"] == "synthetic":
        cfg = meta["config"]
        config = LabConfig(**{**cfg, "levels": tuple(cfg["levels"])})  # files from before LabConfig.norm: "batch"
        model = build_lab_model(config, meta["class_names"])
    else:
        base = load_base(meta["base"], meta.get("base_weights"))
        spp = SpatialPyramidPool(tuple(meta["levels"]), "max")
        classifier = fc_classifier(spp.output_length(base.channels), len(meta["class_names"]), hidden=meta["hidden"])
        model = head_on(base, spp, classifier, meta["class_names"])
    load_into(model, state, "this Lab model")
    model.name = f"lab:{Path(path).stem}"
    return model.eval().requires_grad_(False).to(resolve_device(device))
