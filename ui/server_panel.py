"""The Server panel in the sidebar, for a teacher serving a class: what this server process holds against its
budgets (models, the queue, the cache folder, memory) and the settings that bound them."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from spp_viz import registry
from spp_viz.budgets import megabytes
from spp_viz.explain.attribution import hook_count
from spp_viz.files import usage
from spp_viz.i18n import _, number
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
    panel = st.expander(_("Server"), key="server_panel", on_change="rerun")
    if not panel.open:
        return
    with panel:
        loads, models = loaded_models()
        shelf, rss, here = model_shelf(), rss_mb(), replica()
        lines = []
        if here:
            lines.append(
                _("This server: replica **{name}** of {count} behind the proxy (torch threads: {threads})").format(
                    name=here[0], count=here[1], threads=torch_threads()
                )
            )
        held = ", ".join(
            _("{model} ({size}, {seconds} s to load)").format(
                model=registry.title(key.name), size=megabytes(shelf.own_bytes(key) or 0), seconds=f"{seconds:.1f}"
            )
            for key, seconds in shelf.load_times()
        )
        queue, disk = server_queue().stats(), usage()
        lines.append(
            _("Model loads in this process: **{loads}** (each model loads once, then every session shares it)").format(
                loads=loads
            )
        )
        lines.append(
            _(
                "Models held: **{count}**, **{held}** of {budget} (the least recently used goes first){which}; hooks "
                "on them now: **{hooks}** (0 unless an attribution is running)"
            ).format(
                count=len(models),
                held=megabytes(shelf.held_bytes()),
                budget=megabytes(memory_budget()),
                which=": " + held if held else "",
                hooks=sum(hook_count(m) for m in models),
            )
        )
        lines.append(
            _(
                "Heavy-work queue: **{running}** running, **{waiting}** waiting, on {workers} worker(s) ({variable}); "
                "builds and downloads of networks go through it too"
            ).format(variable=WORKERS_ENV, **queue)
        )
        cache = _("Cache folder: **{used}** of {budget} in {files} files").format(
            used=megabytes(disk.nbytes), budget=megabytes(disk.budget), files=number(disk.files)
        )
        if disk.kept_bytes:
            cache += " " + _("(and the class database, {size}, never trimmed)").format(size=megabytes(disk.kept_bytes))
        lines.append(cache)
        lines.append(
            _("Memory in use (RSS): **{mb} MB**").format(mb=f"{rss:.0f}")
            if rss is not None
            else _("Memory in use: unknown here")
        )
        st.markdown("\n".join(f"- {line}" for line in lines))
        st.markdown(
            "| {} | {} | {} |\n|---|---|---|\n".format(_("setting"), _("value"), _("bounds"))
            + "\n".join(f"| `{v}` | {value} | {what} |" for v, value, what in budgets())
        )
