"""What a class's photos say, for the class's question: counts, each arm's accuracy with the app's own paired
statistics (or, for the shuffle question, where the top-1 first changed), the poll against what happened, the photos
where the arms disagree; and the class's exports (CSV, JSON)."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np

from .. import paper, verdicts
from ..explain.bag_of_words import SHUFFLE_TILES
from ..explain.views import view_title
from ..i18n import _, translate
from ..stats import mcnemar, paired_bootstrap, wilson
from .questions import NEVER, Question, first_change
from .store import NONE_OF_THESE, ClassInfo, Entry


@dataclass(frozen=True)
class ClassResults:
    """The teacher's screen: counts, a table (one row per arm), sentences computed from it, the poll against what
    happened, and the entries whose arms disagree."""

    count: int  # entries
    labelled: int  # entries whose photo shows one of ImageNet's classes
    table: list[dict[str, str]]  # one row per arm (per k for the shuffle question); empty when nothing to show
    findings: list[str]
    poll: dict[str, int]  # answer -> how many students gave it
    happened: dict[str, int]  # answer -> photos for which it came true
    disagreements: list[Entry]  # entries whose arms' top-1 differ
    summary: object | None = None  # the views question's explain.view_summary.ViewsSummary (None otherwise)


def class_results(entries: list[Entry], info: ClassInfo, short_side: int = 256) -> ClassResults:
    """``entries`` summed up for the class's question, with the app's own statistics (bootstrap intervals over
    photos, McNemar's test, "no clear difference" when an interval spans 0)."""
    q = info.asks
    labelled = [e for e in entries if e.true_class != NONE_OF_THESE]
    poll = {c: sum(e.poll == c for e in entries) for c in q.poll}
    disagree = [e for e in entries if len(set(e.top1.values())) > 1]
    if q.key == "shuffle":
        table, said, happened = _shuffle(entries)
        return ClassResults(len(entries), len(labelled), table, said, poll, happened, disagree)
    happened = {a: sum(e.right(a) for e in labelled) for a in q.arms}
    happened["none"] = sum(not any(e.right(a) for a in q.arms) for e in labelled)
    if q.key == "views":
        summary, table, said = _views(labelled, info.model, short_side)
        return ClassResults(len(entries), len(labelled), table, said, poll, happened, disagree, summary)
    table, said = _paired(labelled, q)
    return ClassResults(len(entries), len(labelled), table, said, poll, happened, disagree)


def _views(labelled: list[Entry], model: str, short_side: int) -> tuple[object | None, list[dict], list[str]]:
    """The views question: the views bench's own summary, table and sentences."""
    from ..explain.view_accuracy import ViewsReport
    from ..explain.view_summary import findings, table_rows

    if not labelled:
        return None, [], []
    views = tuple(labelled[0].top5)
    report = ViewsReport(
        model=model, short_side=short_side, views=views,
        names=[_("photo {i}").format(i=i + 1) for i in range(len(labelled))],
        labels=np.array([e.true_class for e in labelled]),
        top1={v: np.array([e.right(v, 1) for e in labelled]) for v in views},
        top5={v: np.array([e.right(v, 5) for e in labelled]) for v in views},
    )  # fmt: skip
    summary = report.summary()
    return summary, table_rows(summary), findings(summary, where=_("photos of this class"))


def _paired(labelled: list[Entry], q: Question) -> tuple[list[dict], list[str]]:
    """Two arms on the same photos (the heads question): each one's accuracy, the first minus the second with its
    95% paired bootstrap interval, and McNemar's p."""
    if not labelled:
        return [], []
    a, b = q.arms
    hits = {(arm, k): [e.right(arm, k) for e in labelled] for arm in q.arms for k in (1, 5)}
    rows = []
    titles = {arm: translate(q.arm_titles[arm]) for arm in q.arms}
    for arm in q.arms:
        row = {_("head"): titles[arm], **{f"top-{k}": f"{np.mean(hits[arm, k]):.1%}" for k in (1, 5)}}
        for k, label in ((1, "top-1"), (5, "top-5")):
            column = _("{label} difference ({percent} interval)").format(label=label, percent="95%")
            if arm == b:
                row[column] = _("reference")
                continue
            d = paired_bootstrap(hits[a, k], hits[b, k])
            row[column] = _("{value} ({low} to {high}) points").format(
                value=f"{100 * d.value:+.1f}", low=f"{100 * d.low:+.1f}", high=f"{100 * d.high:+.1f}"
            )
        row[_("McNemar p, top-1")] = "" if arm == b else f"{mcnemar(hits[a, 1], hits[b, 1]).p_value:.2g}"
        rows.append(row)
    d, test = paired_bootstrap(hits[a, 1], hits[b, 1]), mcnemar(hits[a, 1], hits[b, 1])
    first, second = titles[a], titles[b][0].lower() + titles[b][1:]
    verdict = verdicts.paired(d.value, d.low, d.high, test.p_value, second)
    return rows, [
        _("Over {n} photos of this class, top-1: {first} {first_accuracy}, {second} {second_accuracy}.").format(
            n=len(labelled), first=first, first_accuracy=f"{np.mean(hits[a, 1]):.1%}", second=second,
            second_accuracy=f"{np.mean(hits[b, 1]):.1%}",
        ),
        _("On the same photos the {first} {verdict}; right only with it: {only_first} photo(s), only with the "
          "{second}: {only_second}.").format(
            first=first, verdict=verdict, only_first=test.only_a, second=second, only_second=test.only_b
        ),
    ]  # fmt: skip


def span(low: float, high: float) -> str:
    return _("{low} to {high}").format(low=f"{low:.1f}", high=f"{high:.1f}")


def _shuffle(entries: list[Entry]) -> tuple[list[dict], list[str], dict[str, int]]:
    """The shuffle question: per k, the photos whose top-1 survived (with a 95% Wilson interval); where each photo's
    top-1 first changed."""
    firsts = [first_change(e.top1) for e in entries]
    happened = {str(k): firsts.count(str(k)) for k in SHUFFLE_TILES}
    happened[NEVER] = firsts.count(NEVER)
    if not entries:
        return [], [], happened
    rows = []
    for k in SHUFFLE_TILES:
        kept = [e.top1[f"k{k}"] == e.top1["original"] for e in entries]
        iv = wilson(kept)
        rows.append({
            _("tiles"): f"{k}x{k}", _("top-1 unchanged"): f"{iv.value:.1%}",
            _("{percent} interval").format(percent="95%"): span(100 * iv.low, 100 * iv.high) + "%",
            _("first changed here"): str(happened[str(k)]),
        })  # fmt: skip
    kept = [list(r.values())[1:3] for r in (rows[0], rows[-1])]  # (top-1 unchanged, its interval) at both ends
    n = len(entries)
    where = ", ".join(f"{k}x{k}: {happened[str(k)]}" for k in SHUFFLE_TILES)
    return rows, [
        _("Over {n} photos of this class, the top-1 first changed at {where}; it never changed up to {k}x{k} for "
          "{never}.").format(n=n, where=where, k=SHUFFLE_TILES[-1], never=happened[NEVER]),
        _("With {k}x{k} tiles the top-1 stayed for {kept} of the photos ({percent} interval {interval}); with "
          "{last}x{last} for {last_kept} ({last_interval}).").format(
            k=SHUFFLE_TILES[0], kept=kept[0][0], percent="95%", interval=kept[0][1], last=SHUFFLE_TILES[-1],
            last_kept=kept[1][0], last_interval=kept[1][1],
        ),
    ], happened  # fmt: skip


def shipped_findings(asks: str) -> list[str]:
    """What the app's own 500-photo run and the paper say on the question, for beside a class's figures."""
    from ..explain import shipped as runs
    from ..explain.view_summary import head_findings

    one, four = runs.heads("shuffle" if asks == "shuffle" else "views")
    if asks == "views" and four is not None:
        shipped = four
        acc = ", ".join(f"{view_title(v)} {shipped.accuracy[v]['top1']:.1%}" for v in shipped.accuracy)
        return [
            _("Beside it: the app's own run over {n} ImageNet photos ({model}, top-1: {accuracy}; the Crop, warp or "
              "SPP page has its intervals), and the paper's ({voc}, mAP; {caltech}, in %; ZF-5 trained with SPP). A "
              "class's few photos give wide intervals: read the sentences above, not the points.").format(
                n=shipped.n, model=shipped.model, accuracy=acc, voc=translate(paper.VOC07_CLAIM),
                caltech=translate(paper.CALTECH101_CLAIM),
            )
        ]  # fmt: skip
    if asks == "heads" and one is not None and four is not None:
        same_image = head_findings(one, four)[0]  # HEAD_PAIRS starts with the full image against the full image
        return [
            _("Beside it: the app's own run over {n} ImageNet photos: {sentence}").format(
                n=four.n, sentence=same_image),
            _("The paper ({levels}; without SPP {error}, in %, ImageNet val) trained each network with its own head; "
              "here the pyramid head was distilled from the one-level head on the same frozen conv layers, so a small "
              "or no difference is what to expect.").format(
                levels=translate(paper.LEVELS_CLAIM), error=paper.ZF5_ERRORS["no SPP"][0]
            ),
        ]  # fmt: skip
    if asks == "shuffle" and four is not None:
        shipped = four

        def kept(row) -> str:
            m, half = row.top1_unchanged.mean, 1.96 * row.top1_unchanged.se
            return f"{row.k}x{row.k} {m:.1%} ({span(100 * (m - half), 100 * (m + half))}%)"

        return [
            _("The app's own run over {n} ImageNet photos ({model}; each photo cut to its k's grid): top-1 unchanged "
              "at {kept}. The paper makes no such measurement: it likens SPP to spatial-pyramid bag-of-words, where "
              "the 1x1 level ignores where a feature is.").format(
                n=shipped.n, model=shipped.model, kept=", ".join(kept(r) for r in shipped.rows)
            )
        ]  # fmt: skip
    return []


def export(entries: list[Entry], info: ClassInfo) -> dict:
    """The class's results as the page's JSON download and ``spp-viz class export CODE --json`` write them."""
    return {**asdict(info), "entries": [e.row() for e in entries]}


def export_csv(entries: list[Entry]) -> str:
    """One row per entry: the true class, the poll, each arm's top-1, top-5 and probability of the true class."""
    import csv

    buf = io.StringIO()
    rows = [e.row() for e in entries]
    fields = list(rows[0]) if rows else ["true_class", "poll", "submitted_at"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()
