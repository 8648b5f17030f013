"""How a result was made: the command, the package and torch versions, the git commit where known, the date and the
machine. Every result JSON the command line writes carries one (its ``provenance`` key); the pages that show a
shipped result say it in their caption.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .i18n import _
from .settings import CHECKOUT

KEY = "provenance"


def entry(provenance: dict | None) -> dict:
    """``{"provenance": ...}`` to merge into a result's JSON, or nothing for a result that never recorded one (its
    file then reads back and writes out the same)."""
    return {KEY: provenance} if provenance else {}


def git_commit(folder: Path = CHECKOUT) -> str | None:
    """The checkout's commit (with "+changes" when files differ from it), or None outside a git checkout."""
    if not (folder / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def machine() -> str:
    """The processor, its cores and the GPU if torch sees one, in words."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}"


def record(command: Sequence[str]) -> dict:
    """The provenance of a result being made now by ``command`` (e.g. ``["spp-viz", "bench", "views", ...]``)."""
    import torch

    return {
        "command": " ".join(command),
        "package_version": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }


def sentence(provenance: dict | None) -> str:
    """How a result was made, in one sentence for a caption; says so where the file does not record it."""
    if not provenance:
        return _("This file does not record how it was made.")
    commit = provenance.get("git_commit")
    parts = [f"spp_viz {provenance.get('package_version', '?')}"]
    if commit:
        parts.append(f"commit {commit[:10]}{'+changes' if commit.endswith('+changes') else ''}")
    parts.append(f"torch {provenance.get('torch', '?')}")
    text = _("Made by `{command}` on {date} ({versions}; {machine}).").format(
        command=provenance.get("command", "?"),
        date=provenance.get("date", "?"),
        versions=", ".join(parts),
        machine=provenance["machine"] if "machine" in provenance else _("machine not recorded"),
    )
    if provenance.get("recorded_afterwards"):
        text += f" {provenance['recorded_afterwards']}"
    return text
