"""What one request may make the server hold: the size cap every network passes before it is built, the check of a
weights file against the network it is for, and the byte count of models in memory (storage that two models share
counted once).

A class shares one process. Gradio bounds its queue per event, JupyterHub gives each user a memory limit; here the
students share the models, so the budget is kept by what may be built at all (``SPP_VIZ_MAX_MODEL_MB``) and by what
the server holds at once (``SPP_VIZ_MODEL_MEMORY_MB``, kept by the app's model shelf).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from .settings import MAX_MODEL_MB_ENV, max_model_mb

MB = 1e6  # sizes are said in decimal megabytes, as the libraries and file browsers say them
# A weights file holds the network's tensors, perhaps with an optimiser's state beside them (Adam keeps two more
# tensors per parameter): a file over three times the network's size holds something else.
WEIGHTS_FILE_FACTOR = 3


class TooLarge(ValueError):
    """A network or a file over the server's cap; the message says its size, the cap and the variable that sets it."""


def megabytes(nbytes: int | float) -> str:
    """"1,234 MB" (at least 1 decimal below 10 MB)."""
    mb = nbytes / MB
    return f"{mb:,.1f} MB" if mb < 10 else f"{mb:,.0f} MB"


def cap_bytes() -> int:
    """``SPP_VIZ_MAX_MODEL_MB`` in bytes."""
    return int(max_model_mb() * MB)


def check_model_size(name: str, nbytes: int | None, params: int | None = None) -> None:
    """Raise ``TooLarge`` when ``name``'s parameters and buffers (``nbytes``) exceed ``SPP_VIZ_MAX_MODEL_MB``.

    ``nbytes`` comes from a build on the meta device or the library's metadata, so nothing is built to refuse it.
    None (a size no metadata gives) passes here; the build is checked again once made (``check_built``).
    """
    if nbytes is None or nbytes <= cap_bytes():
        return
    count = f" ({params / 1e6:,.1f} M parameters)" if params else ""
    raise TooLarge(
        f"{name} is {megabytes(nbytes)}{count} in memory; this server builds networks of at most "
        f"{max_model_mb():,} MB ({MAX_MODEL_MB_ENV}, which whoever starts the app can raise)"
    )


def check_built(name: str, *modules: nn.Module) -> None:
    """``check_model_size`` on a network already built (for the few whose size no metadata gave beforehand)."""
    check_model_size(name, sum(storages(*modules).values()))


def check_weights_file(name: str, file_bytes: int, model_bytes: int | None) -> None:
    """Raise ``TooLarge`` for a weights file over the cap, or far larger than the network it is for, before it is
    read (reading it would hold it twice: the bytes and the tensors)."""
    if file_bytes > cap_bytes():
        raise TooLarge(
            f"this weights file is {megabytes(file_bytes)}; this server reads weights files of at most "
            f"{max_model_mb():,} MB ({MAX_MODEL_MB_ENV})"
        )
    if model_bytes is not None and file_bytes > WEIGHTS_FILE_FACTOR * model_bytes + MB:
        raise TooLarge(
            f"this weights file is {megabytes(file_bytes)}, but {name}'s weights are {megabytes(model_bytes)}: it "
            f"holds another, larger network's weights (or much more than weights), so it is not read"
        )


def storages(*modules: nn.Module) -> dict[int, int]:
    """{storage address: bytes} of the modules' parameters and buffers: a tensor that two modules (or two names)
    share is one storage, counted once."""
    return tensor_storages(t for m in modules for t in (*m.parameters(), *m.buffers()))


def tensor_storages(tensors: Iterable[Tensor]) -> dict[int, int]:
    found: dict[int, int] = {}
    for t in tensors:
        if t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        found[storage.data_ptr()] = storage.nbytes()
    return found
