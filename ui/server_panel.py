"""The Server panel in the sidebar, for a teacher serving a class: what this server process holds against its
budgets (models, the queue, the cache folder, memory) and the settings that bound them."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from spp_viz import registry
from spp_viz.budgets import megabytes
from spp_viz.explain.attribution import hook_count
from spp_viz.files import usage
from spp_viz.settings import WORKERS_ENV, budgets, replica

from .cache import loaded_models, model_shelf
from .jobs import server_queue
from .model_shelf import memory_budget


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def rss_mb() -> float | None:
    """This process's resident memory in MB (Linux), or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def server_panel() -> None:
    """For a teacher serving a class: what this server process holds against its budgets, to check it stays
    healthy: the models, the queue, the cache folder, memory, and the settings that bound them."""
    # Drawn only while open: its figures (the cache folder's walk among them) cost every student's every run otherwise.
    panel = st.expander("Server", key="server_panel", on_change="rerun")
    if not panel.open:
        return
    with panel:
        loads, models = loaded_models()
        shelf, rss, here = model_shelf(), rss_mb(), replica()
        where = (f"- This server: replica **{here[0]}** of {here[1]} behind the proxy (torch threads: "
                 f"{torch_threads()})\n" if here else "")  # fmt: skip
        held = ", ".join(
            f"{registry.title(key.name)} ({megabytes(shelf.own_bytes(key) or 0)}, {seconds:.1f} s to load)"
            for key, seconds in shelf.load_times()
        )
        queue, disk = server_queue().stats(), usage()
        st.markdown(
            where
            + f"- Model loads in this process: **{loads}** (each model loads once, then every session shares it)\n"
            f"- Models held: **{len(models)}**, **{megabytes(shelf.held_bytes())}** of "
            f"{megabytes(memory_budget())} (the least recently used goes first){': ' + held if held else ''}; "
            f"hooks on them now: **{sum(hook_count(m) for m in models)}** (0 unless an attribution is running)\n"
            f"- Heavy-work queue: **{queue['running']}** running, **{queue['waiting']}** waiting, on "
            f"{queue['workers']} worker(s) ({WORKERS_ENV}); builds and downloads of networks go through it too\n"
            f"- Cache folder: **{megabytes(disk.nbytes)}** of {megabytes(disk.budget)} in {disk.files:,} files"
            f"{f' (and the class database, {megabytes(disk.kept_bytes)}, never trimmed)' if disk.kept_bytes else ''}\n"
            + (f"- Memory in use (RSS): **{rss:.0f} MB**" if rss is not None else "- Memory in use: unknown here")
        )
        st.markdown(
            "| setting | value | bounds |\n|---|---|---|\n"
            + "\n".join(f"| `{v}` | {value} | {what} |" for v, value, what in budgets())
        )
