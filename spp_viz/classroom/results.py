"""What a class's photos say: counts, each view's accuracy with the app's own paired statistics, the poll against
what happened, the photos where the views disagree; and the class's exports (CSV, JSON)."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np

from .store import NONE_OF_THESE, POLL_CHOICES, VIEWS, ClassInfo, Entry


@dataclass(frozen=True)
class ClassResults:
    """The teacher's screen: counts, each view's accuracy and the paired differences (the app's own views bench
    statistics, ``explain.view_accuracy``), its sentences, the poll against what happened, and the disagreements."""

    count: int  # entries
    labelled: int  # entries whose photo shows one of ImageNet's classes
    summary: object | None  # explain.view_summary.ViewsSummary over the labelled entries; None when there are none
    findings: list[str]
    poll: dict[str, int]  # answer -> how many students gave it
    happened: dict[str, int]  # view -> labelled photos it got right (top-1); "none": photos no view got right
    disagreements: list[Entry]  # entries whose three views' top-1 differ


def class_results(entries: list[Entry], model: str, short_side: int = 256) -> ClassResults:
    """``entries`` summed up as the views bench sums up its photos (bootstrap intervals, McNemar's test)."""
    from ..explain.view_accuracy import ViewsReport
    from ..explain.view_summary import findings

    labelled = [e for e in entries if e.true_class != NONE_OF_THESE]
    summary, said = None, []
    if labelled:
        report = ViewsReport(
            model=model, short_side=short_side, views=VIEWS, names=[f"photo {i + 1}" for i in range(len(labelled))],
            labels=np.array([e.true_class for e in labelled]),
            top1={v: np.array([e.right(v, 1) for e in labelled]) for v in VIEWS},
            top5={v: np.array([e.right(v, 5) for e in labelled]) for v in VIEWS},
        )  # fmt: skip
        summary = report.summary()
        said = findings(summary, where="photos of this class")
    poll = {c: sum(e.poll == c for e in entries) for c in POLL_CHOICES}
    happened = {v: sum(e.right(v) for e in labelled) for v in VIEWS}
    happened["none"] = sum(not any(e.right(v) for v in VIEWS) for e in labelled)
    disagree = [e for e in entries if len({e.top5[v][0] for v in VIEWS}) > 1]
    return ClassResults(len(entries), len(labelled), summary, said, poll, happened, disagree)


def export(entries: list[Entry], info: ClassInfo) -> dict:
    """The class's results as the page's JSON download and ``spp-viz class export CODE --json`` write them."""
    return {**asdict(info), "entries": [e.row() for e in entries]}


def export_csv(entries: list[Entry]) -> str:
    """One row per entry: the true class, the poll, each view's top-1, top-5 and probability of the true class."""
    import csv

    buf = io.StringIO()
    rows = [e.row() for e in entries]
    fields = list(rows[0]) if rows else ["true_class", "poll", "submitted_at"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()
