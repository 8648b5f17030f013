"""The folder analyses by name, each keeping ``explain.analysis``'s contract: its bench (per-photo outcomes,
``merge``, ``summary()``), its summary (``json`` / ``from_json``, what ships in ``assets/``) and its sentences.
The CLI's ``bench`` commands and ``explain.shipped`` find them here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .bag_of_words import ShuffleBench, ShuffleSummary, bench_findings
from .level_importance import LevelBench, LevelSummary, level_findings
from .view_accuracy import ViewsReport
from .view_summary import ViewsSummary, findings


@dataclass(frozen=True)
class Analysis:
    """One folder analysis as the CLI, the shipped files and the pages use it."""

    name: str  # the CLI's verb (``spp-viz bench NAME``) and the shipped files' key
    bench: type  # its Bench: ``summary()``; merged by ``merge``
    summary: type  # its Summary: ``from_json``
    findings: Callable[[Any], list[str]]  # its summary in sentences


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis("views", ViewsReport, ViewsSummary, findings),
        Analysis("shuffle", ShuffleBench, ShuffleSummary, bench_findings),
        Analysis("levels", LevelBench, LevelSummary, level_findings),
    )
}
