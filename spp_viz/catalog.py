"""The CNNs this installation offers: every classification model timm and torchvision list, by family, with its
parameter count, where its pretrained weights would come from and whether the app can split it at conv5.

A family is the library's own module for the architecture (timm's ``resnet``, ``byobnet``; torchvision's
``densenet``). Listing a name builds nothing; ``entry`` builds it on the meta device (no memory, no weights);
``representative`` builds a family's smallest accepted member with random weights and measures its conv5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .external import build_external, listed, meta_facts, meta_net


@dataclass(frozen=True)
class Entry:
    """One listed classification model, read from its meta-device build."""

    name: str  # "timm:resnet18"
    family: str  # the library's module that defines it
    params: int | None  # None when the meta device cannot build it (the real build decides)
    weights: str  # "offline" (a pip package or already downloaded), "download", or "none" (no pretrained weights)
    refused: str  # why the app cannot split it at conv5; "": accepted here, and its real build checks the split
    nbytes: int | None = None  # parameters and buffers, in bytes: what the server's size cap is checked against

    def describe(self) -> str:
        size = "" if self.params is None else f"{self.params / 1e6:.1f} M parameters, "
        size += "" if self.nbytes is None else f"{self.nbytes / 1e6:,.0f} MB, "
        weights = {"offline": "pretrained weights on this disk", "download": "pretrained weights would download",
                   "none": "no pretrained weights"}[self.weights]  # fmt: skip
        return f"{self.family} family, {size}{weights}" + (f"; refused: it {self.refused}" if self.refused else "")


@dataclass(frozen=True)
class Measured:
    """A family's smallest accepted member, built with random weights: its conv5 as measured."""

    name: str
    family: str
    members: int  # the family's listed names
    accepted: int  # how many of them the meta-device check accepts
    channels: int | None
    stride: int | None
    field: str  # the receptive field in words (``Footprint.describe``), or why the build failed


@functools.cache
def families(library: str) -> dict[str, str]:
    """{architecture: family} for every name the library lists."""
    if library == "timm":
        import timm

        return {m: module for module in timm.list_modules() for m in timm.list_models(module=module)}
    import torchvision

    return {n: torchvision.models.get_model_builder(n).__module__.rsplit(".", 1)[-1] for n in listed(library)}


def members(library: str, family: str) -> list[str]:
    """The family's architectures, by name."""
    return sorted(a for a, f in families(library).items() if f == family)


def names() -> list[str]:
    """Every listed name, "library:architecture", by library then family then name."""
    return [f"{lib}:{a}" for lib in ("torchvision", "timm") for a, _ in sorted(families(lib).items(), key=_by_family)]


def _by_family(item: tuple[str, str]) -> tuple[str, str]:
    return item[1], item[0]


@functools.cache
def entry(name: str) -> Entry:
    """``name``'s family, size, weights and verdict, from one build on the meta device (no weights are read)."""
    library, _, arch = name.partition(":")
    facts = meta_facts(library, arch)
    # torchvision: the weights' own metadata (RegNet's widths cannot be computed on the meta device)
    size = params(library, arch) if library == "torchvision" else facts.params
    return Entry(name, families(library).get(arch, "?"), size, _weights(library, arch), facts.refused, facts.nbytes)


def params(library: str, arch: str) -> int | None:
    """The parameter count: torchvision's weights metadata, or a build on the meta device; None when neither says."""
    if library == "torchvision":
        import torchvision

        return torchvision.models.get_model_weights(arch).DEFAULT.meta["num_params"]
    try:
        return sum(p.numel() for p in meta_net(library, arch).parameters())
    except (NotImplementedError, RuntimeError):
        return None


def _weights(library: str, arch: str) -> str:
    """Where pretrained weights would come from, asking no server and building nothing."""
    if library == "torchvision":
        from .pretrained import source

        return "download" if source(library, arch).kind == "download" else "offline"
    import timm
    from huggingface_hub import try_to_load_from_cache

    from .pretrained import LITE_PACKAGES

    if arch in LITE_PACKAGES:
        return "offline"
    repo = getattr(timm.models.get_pretrained_cfg(arch), "hf_hub_id", None)  # the default weights' repository
    if not repo:
        return "none"
    return "offline" if isinstance(try_to_load_from_cache(repo, "model.safetensors"), str) else "download"


def representative(family: str, library: str, progress: Callable[[str], None] | None = None) -> Measured:
    """The family's smallest accepted member built (random weights, the split checked on a probe) and measured."""
    archs = members(library, family)
    accepted = [e for e in (entry(f"{library}:{a}") for a in archs) if not e.refused]
    if not accepted:
        why = entry(f"{library}:{archs[0]}").refused
        return Measured(f"{library}:{archs[0]}", family, len(archs), 0, None, None, f"refused: it {why}")
    smallest = min(accepted, key=lambda e: (e.params is None, e.params or 0, e.name))
    if progress is not None:
        progress(smallest.name)
    try:
        model = build_external(smallest.name)
    except Exception as e:  # noqa: BLE001  a survey of every family: record what went wrong, go on to the next
        return Measured(smallest.name, family, len(archs), len(accepted), None, None, f"build failed: {e}")
    fp = model.footprint
    return Measured(smallest.name, family, len(archs), len(accepted), model.channels, fp.stride[1], fp.describe())


def as_dict(m: Measured | Entry) -> dict:
    return asdict(m)
