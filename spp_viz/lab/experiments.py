"""The paper's comparisons re-run in the Lab: five networks per seed, their accuracies, and a verdict per claim."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context

import numpy as np
import torch

from .. import paper, verdicts
from ..i18n import N_, _, ngettext, translate
from ..progress import Progress, report
from ..provenance import entry as provenance_entry
from ..provenance import sentence as provenance_sentence
from ..stats import SeedVerdict, seed_verdict
from .ceiling import VIEWS_WITH_CEILING, view_ceiling
from .models import LabConfig
from .train import TEST_VIEWS, TrainResult, synthetic_data, train

EXPERIMENTS: tuple[tuple[str, dict], ...] = (
    (N_("no SPP (crop)"), {"regime": "crop"}),
    (N_("no SPP (warp)"), {"regime": "warp"}),
    ("SPP {4,2,1} single-size", {"regime": "single-size", "levels": (4, 2, 1)}),
    ("SPP {4,2,1} multi-size", {"regime": "multi-size", "levels": (4, 2, 1)}),
    ("SPP {6,3,2,1} multi-size", {"regime": "multi-size", "levels": (6, 3, 2, 1)}),
)


EXPERIMENT_SEEDS = (0, 1, 2)  # data and initialisation: the comparison's verdicts need the seed-to-seed spread
EXPERIMENT_EPOCHS = 7  # with 3 seeds, 15 networks train in under 5 minutes on a 2-core CPU (README, Lab)
EXPERIMENT_CONFIG = LabConfig(epochs=EXPERIMENT_EPOCHS, fresh_data=True)  # the classroom button's: quick, not converged
# The shipped results' recipe (``lab-experiments --recipe shipped``): a new generated training set every epoch, up to
# 40 epochs with early stopping on the validation view, GroupNorm (see LabConfig.norm), larger validation and test
# sets (a test set of 1000 puts a network's binomial standard error near 1 point), 5 seeds.
SHIPPED_CONFIG = LabConfig(
    epochs=40, lr=2e-3, train_count=1600, val_count=600, test_count=1000, fresh_data=True, patience=8, norm="group"
)
SHIPPED_SEEDS = (0, 1, 2, 3, 4)
RECIPES = {"classroom": (EXPERIMENT_CONFIG, EXPERIMENT_SEEDS), "shipped": (SHIPPED_CONFIG, SHIPPED_SEEDS)}
NOT_APPLICABLE = N_("no SPP: the network takes only its fixed training size, never a whole image")


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value: one seed gives no spread)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


@dataclass(frozen=True)
class ExperimentRow:
    """One configuration of the comparison, per test view: the mean over seeds (``test``), the standard deviation
    (``std``, None for one seed), each seed's accuracy (``per_seed``); None and the reason (``not_applicable``) for
    a view the network cannot take."""

    name: str
    changes: dict  # what this configuration sets on the base config (regime, levels)
    test: dict[str, float | None]
    std: dict[str, float | None]
    per_seed: dict[str, list[float] | None]
    not_applicable: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # of training, over the seeds
    # Each seed's validation accuracy per epoch, on the view trained for, and the epoch whose weights were kept
    # (early stopping's choice; the last epoch without it).
    val_curves: list[list[float]] = field(default_factory=list)
    kept_epochs: list[int] = field(default_factory=list)

    def json(self) -> dict:
        changes = {k: list(v) if isinstance(v, tuple) else v for k, v in self.changes.items()}
        return {"name": self.name, **changes, "test": self.test, "std": self.std, "per_seed": self.per_seed,
                "not_applicable": self.not_applicable, "seconds": self.seconds, "val_curves": self.val_curves,
                "kept_epochs": self.kept_epochs}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> ExperimentRow:
        known = {"name", "test", "std", "per_seed", "not_applicable", "seconds", "val_curves", "kept_epochs"}
        none = dict.fromkeys(d["test"])
        return cls(
            name=d["name"],
            changes={k: v for k, v in d.items() if k not in known},
            test=d["test"],
            std=d.get("std", none),
            per_seed=d.get("per_seed", none),
            not_applicable=d.get("not_applicable", {}),
            seconds=d.get("seconds", 0.0),
            val_curves=d.get("val_curves", []),
            kept_epochs=d.get("kept_epochs", []),
        )


@dataclass(frozen=True)
class ExperimentResults:
    """The comparison's result: the base config, the seeds, one row per configuration, the training time."""

    config: dict
    seeds: list[int]
    rows: list[ExperimentRow]
    seconds: float = 0.0
    torch_threads: int = 0
    ceilings: dict[str, float] = field(default_factory=dict)  # per view: the best any classifier can do (ceiling.py)
    jobs: int = 1  # networks trained at once, in separate processes
    provenance: dict | None = None  # how it was made (spp_viz.provenance); None in files that never recorded it

    def how_run(self) -> str:
        """How the networks shared the CPU, in words: "2 torch threads", "2 processes of one torch thread each"."""
        if self.jobs > 1:
            return _("{n} processes of one torch thread each").format(n=self.jobs)
        return ngettext("{n} torch thread", "{n} torch threads", self.torch_threads).format(n=self.torch_threads)

    def row(self, name: str) -> ExperimentRow:
        return next(r for r in self.rows if r.name == name)

    def json(self) -> dict:
        """The rows, and the four claims computed from them (``claims``: read by the page and the CLI)."""
        return {"config": self.config, "seeds": self.seeds, "rows": [r.json() for r in self.rows],
                "claims": [c.json() for c in claims(self)], "seconds": self.seconds,
                "torch_threads": self.torch_threads, "ceilings": self.ceilings, "jobs": self.jobs,
                **provenance_entry(self.provenance)}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> ExperimentResults:
        return cls(
            config=d.get("config", {}),
            seeds=list(d["seeds"]),
            rows=[ExperimentRow.from_json(r) for r in d["rows"]],
            seconds=d.get("seconds", 0.0),
            torch_threads=d.get("torch_threads", 0),
            ceilings=d.get("ceilings", {}),
            jobs=d.get("jobs", 1),
            provenance=d.get("provenance"),
        )


def run_experiments(
    base: LabConfig = EXPERIMENT_CONFIG,
    seeds: Sequence[int] = EXPERIMENT_SEEDS,
    progress: Progress | None = None,
    jobs: int = 1,
) -> ExperimentResults:
    """Train the five configurations with each seed (same data and seed for all five); test accuracy per view.

    ``jobs`` > 1 trains that many networks at once in separate processes of one torch thread each (a network's
    result depends only on its configuration and seed)."""
    if not seeds:
        raise ValueError("give at least one seed")
    start = time.perf_counter()
    tasks = [(seed, name, changes) for seed in seeds for name, changes in EXPERIMENTS]
    results: list[TrainResult] = []
    if jobs > 1:
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(network_run, base, seed, changes, threads=1) for seed, _, changes in tasks]
            for done, future in enumerate(as_completed(futures), 1):
                future.result()  # raises here, in the caller, if a network failed
                report(progress, done / len(tasks), _("{done} of {n} networks").format(done=done, n=len(tasks)))
            results = [f.result() for f in futures]  # in the tasks' order, whatever order they finished in
    else:
        data: dict[int, dict] = {}
        for step, (seed, name, changes) in enumerate(tasks):
            report(
                progress,
                step / len(tasks),
                _("{step} of {n}: {name}, seed {seed}").format(step=step + 1, n=len(tasks), name=_(name), seed=seed),
            )
            # One draw of data per seed, shared by its five networks (network_run would draw the same again).
            data = data if seed in data else {seed: synthetic_data(replace(base, seed=seed))}
            results.append(network_run(base, seed, changes, data[seed]))
    report(progress, 1.0, _("{n} of {n}: done").format(n=len(tasks)))
    runs = {name: [r for (_, n, _), r in zip(tasks, results, strict=True) if n == name] for name, _ in EXPERIMENTS}
    return ExperimentResults(
        config={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(base).items() if k != "seed"},
        seeds=list(seeds),
        rows=[_row(name, changes, runs[name]) for name, changes in EXPERIMENTS],
        seconds=round(time.perf_counter() - start, 1),
        torch_threads=1 if jobs > 1 else torch.get_num_threads(),
        ceilings={v: round(view_ceiling(v, size=base.size), 4) for v in VIEWS_WITH_CEILING},
        jobs=jobs,
    )


def network_run(
    base: LabConfig, seed: int, changes: dict, data: dict | None = None, threads: int | None = None
) -> TrainResult:
    """One configuration of the comparison trained with one seed (on ``data``, else the seed's draw), its model
    dropped: the comparison keeps the numbers, not 25 networks."""
    if threads is not None:
        torch.set_num_threads(threads)
    result = train(replace(base, seed=seed, **changes), data=data)
    result.model = None
    return result


def _row(name: str, changes: dict, runs: Sequence[TrainResult]) -> ExperimentRow:
    test, std, seeds, missing = {}, {}, {}, {}
    for v in TEST_VIEWS:
        values = [r.test[v] for r in runs]
        if any(x is None for x in values):
            test[v] = std[v] = seeds[v] = None
            missing[v] = NOT_APPLICABLE
        else:
            test[v], std[v] = _mean_std(values)
            seeds[v] = values
    return ExperimentRow(
        name=name, changes=dict(changes), test=test, std=std, per_seed=seeds, not_applicable=missing,
        seconds=round(sum(r.seconds for r in runs), 2),
        val_curves=[[round(h.val_accuracy, 4) for h in r.history] for r in runs],
        kept_epochs=[r.best_epoch or len(r.history) for r in runs],
    )  # fmt: skip


# (a, b, the paper's claim that a beats b, its numbers, what the built-in data were made to contain for it): each
# tested on the per-seed accuracies.
PAPER_CLAIMS = (
    (
        ("SPP {4,2,1} multi-size", "full"),
        ("no SPP (warp)", "warp"),
        N_("Full-image SPP against the warped baseline"),
        paper.CALTECH101_CLAIM,
        N_(
            "half the images are 2:1 or 1:2 and hold circles and 2:1 ellipses, so a warp to a square can make a "
            "circle look like an ellipse and the reverse"
        ),
    ),
    (
        ("SPP {4,2,1} multi-size", "full"),
        ("no SPP (crop)", "crop"),
        N_("Full-image SPP against the cropped baseline"),
        paper.VOC07_CLAIM,
        N_("shapes often sit at an end of the long side, where a centre crop cuts them away"),
    ),
    (
        ("SPP {4,2,1} multi-size", "full"),
        ("SPP {4,2,1} single-size", "full"),
        N_("Multi-size against single-size training"),
        paper.MULTI_SIZE_CLAIM,
        N_("the test images come at their own sizes, which a network trained at two scales has seen more of"),
    ),
    (
        ("SPP {6,3,2,1} multi-size", "full"),
        ("SPP {4,2,1} multi-size", "full"),
        N_("{6,3,2,1} against {4,2,1}, both multi-size"),
        paper.LEVELS_CLAIM,
        N_("nothing favours the finer level on purpose: four shapes on flat backgrounds need little layout"),
    ),
)


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims re-run: a minus b in points, paired by seed, its standard error, and the verdict."""

    name: str
    difference: float  # points, mean over seeds of a - b
    se: float | None  # points; None for one seed
    seeds: int
    verdict: str
    per_seed: list[float]  # points, a - b for each seed
    paper: str  # the paper's numbers for it
    design: str  # what the built-in data were made to contain for it

    def json(self) -> dict:
        return asdict(self)

    def sentence(self, a: str, b: str) -> str:
        """The claim in words, with ``a`` and ``b`` the two accuracies as shown; what the data hold; what a "no
        clear difference" rules out (differences under about twice the standard error cannot be told from noise)."""
        diff = f"{self.difference:+.1f}"
        spread = (
            _("{diff} points, standard error {se} over {seeds} seeds").format(
                diff=diff, se=f"{self.se:.1f}", seeds=self.seeds
            )
            if self.se is not None
            else _("{diff} points from one seed, which gives no error bar").format(diff=diff)
        )
        out = _("{name} ({a} against {b}; {spread}): **{verdict}** (the paper: {paper}). The data: {design}.").format(
            name=_(self.name), a=a, b=b, spread=spread, verdict=_(self.verdict), paper=translate(self.paper),
            design=_(self.design),
        )  # fmt: skip
        if self.se is not None and self.verdict == verdicts.UNCLEAR_HERE:
            out += " " + _("A difference under about {points} points cannot be told from noise here.").format(
                points=f"{2 * self.se:.1f}"
            )
        return out


def claims(results: ExperimentResults) -> list[Claim]:
    """The four claims of ``PAPER_CLAIMS`` on the per-seed accuracies (see ``claim_verdict``)."""
    out = []
    for (name_a, view_a), (name_b, view_b), what, claim, design in PAPER_CLAIMS:
        a, b = results.row(name_a).per_seed[view_a], results.row(name_b).per_seed[view_b]
        verdict, v = claim_verdict(a, b)
        per_seed = [round(100 * (x - y), 2) for x, y in zip(a, b, strict=True)]
        se = round(100 * v.se, 2) if v.seeds > 1 else None
        out.append(Claim(what, round(100 * v.diff, 2), se, v.seeds, verdict, per_seed, claim, design))
    return out


def claim_verdict(a: Sequence[float], b: Sequence[float]) -> tuple[str, SeedVerdict]:
    """ "matches the paper", "the opposite of the paper" or "no clear difference on these data", for the paper's
    claim that a beats b, from accuracies paired by seed: clear only when |mean difference| > 2 standard errors."""
    v = seed_verdict(a, b)
    return verdicts.paper_claim(v.direction), v


def paper_verdicts(results: ExperimentResults) -> list[str]:
    """What matches the paper and what does not, read off the per-seed numbers, one sentence per claim."""
    return [
        c.sentence(accuracy_cell(results.row(a), va), accuracy_cell(results.row(b), vb))
        for c, ((a, va), (b, vb), *_rest) in zip(claims(results), PAPER_CLAIMS, strict=True)
    ]


def shipped_caption(shipped: ExperimentResults) -> str:
    """How the shipped results were made, in one sentence for the page: networks, epochs (and early stopping's
    kept epochs), data, time, threads, and the command that reproduces them."""
    c = shipped.config
    kept = [k for r in shipped.rows for k in r.kept_epochs]
    how = _("{epochs} epochs each").format(epochs=c["epochs"])
    if c.get("patience"):
        how = _(
            "up to {epochs} epochs each with early stopping (patience {patience}; the kept epochs: {low} to {high})"
        ).format(epochs=c["epochs"], patience=c["patience"], low=min(kept), high=max(kept))
    data = (
        _("a new set of {n} generated images every epoch").format(n=c["train_count"])
        if c.get("fresh_data")
        else _("{n} training images").format(n=c["train_count"])
    )
    recipe = f" --recipe shipped --jobs {shipped.jobs}" if c.get("fresh_data") else ""
    made = (provenance_sentence(shipped.provenance) if shipped.provenance else
            _("Reproduce with {command}.").format(
                command=f"`python -m spp_viz lab-experiments{recipe} --out assets/lab_results.json`"))  # fmt: skip
    shipped_text = _(
        "Results shipped with the app: {networks} networks, {how}, {data}; {seconds} s of training ({threads})."
    )
    return shipped_text.format(
        networks=len(shipped.rows) * len(shipped.seeds), how=how, data=data, seconds=f"{shipped.seconds:.0f}",
        threads=shipped.how_run(),
    ) + " " + made  # fmt: skip


def accuracy_cell(row: ExperimentRow, view: str) -> str:
    """A row of the comparison at one view as the page, the CLI and the verdicts show it: "86.0 ± 1.0%" (mean
    ± standard deviation over seeds; the mean alone for one seed), or "n/a: " and why the network cannot take it."""
    mean, std = row.test[view], row.std[view]
    if mean is None:
        return _("n/a: {why}").format(why=_(row.not_applicable.get(view, N_("not measured"))))
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}") + "%"
