"""The paper's detection comparison (Sec. 4): a detector per mode trained and tested on the same data, windows and
backbone, its report, and what the numbers say.

Both modes read the same frozen conv layers and the same pyramid: SPP-net runs the conv layers once per image (at one
scale, or five with the closest-to-224 rule) and pools each window's cells; R-CNN warps each window to the network's
input size and runs the conv layers on it. On those features: per-class linear SVMs with hard negative mining, box
regression, class-wise NMS, and VOC mAP, with and without the regression.

Differences from the paper, on purpose: the SVMs read the pooled conv features directly (the paper's ZF-5 has fc6 and
fc7 fine-tuned on VOC between them); the default backbone is EfficientNet-Lite0 cut at its last stride-16 stage (the
paper's conv5 stride; its last map, stride 32 with an 851-pixel receptive field, cannot tell windows apart); and the
built-in scenes are synthetic. Window features are computed once per image, mode and settings, and cached on disk in
float16, so a second run only trains and an interrupted run resumes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from .. import paper
from ..i18n import N_, _
from ..models import SPPNet
from ..progress import Progress, span
from ..stats import Interval
from .data import DetectionSet
from .detector import DEFAULT_CONFIG, DetectorConfig
from .evaluate import BOOTSTRAP_SAMPLES, ModeReport, bootstrap_map, compare_sentence, evaluate_detector, margin_verdict
from .features import WINDOW_MODES, FeatureCache
from .train import train_detector


@dataclass(frozen=True)
class ModeSpec:
    """One row of the comparison: a mode and, for SPP-net, its scales."""

    name: str
    mode: str
    scales: tuple[int, ...] = ()


def mode_specs(modes: Sequence[str], scales: Sequence[int]) -> list[ModeSpec]:
    """Rows for mode names: "spp" (at ``scales``), "spp-5" (the paper's five scales), "rcnn"."""
    out = []
    for m in modes:
        if m == "spp":
            out.append(ModeSpec("spp", "spp", tuple(scales)))
        elif m == "spp-5":
            out.append(ModeSpec("spp-5", "spp", paper.DETECTION_SCALES))
        elif m == "rcnn":
            out.append(ModeSpec("rcnn", "rcnn"))
        else:
            raise ValueError(f"unknown mode {m!r}: use spp, spp-5 or rcnn")
    return out


@dataclass
class DetectionComparison:
    """The comparison's result: each mode's detector tested on the same test images (``modes``), what it ran on, and
    the files that could not be used."""

    data: str
    classes: tuple[str, ...]
    train_images: int
    test_images: int
    backbone: str
    config: DetectorConfig
    modes: dict[str, ModeReport]
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @cached_property
    def spp_minus_rcnn(self) -> Interval | None:
        """SPP-net's mAP minus R-CNN's, paired over the same resampled test images (None without both modes)."""
        if "spp" not in self.modes or "rcnn" not in self.modes:
            return None
        return bootstrap_map(self.modes["spp"].per_class, self.modes["rcnn"].per_class, samples=BOOTSTRAP_SAMPLES)

    def json(self) -> dict:
        out = {
            "data": self.data,
            "classes": list(self.classes),
            "train_images": self.train_images,
            "test_images": self.test_images,
            "backbone": self.backbone,
            "levels": list(self.config.levels),
            "windows": self.config.windows,
            "seconds": self.seconds,
            "modes": {name: r.json() for name, r in self.modes.items()},
            "skipped": [list(s) for s in self.skipped],
        }
        if (diff := self.spp_minus_rcnn) is not None:
            spp, rcnn = self.modes["spp"], self.modes["rcnn"]
            out["spp_minus_rcnn_map"] = {"value": diff.value, "se": diff.se, "low": diff.low, "high": diff.high}
            out["feature_speedup"] = rcnn.feature_seconds_per_image / spp.feature_seconds_per_image
        return out


def compare_detectors(
    backbone: SPPNet,
    train: DetectionSet,
    test: DetectionSet,
    modes: Sequence[str] = WINDOW_MODES,
    config: DetectorConfig = DEFAULT_CONFIG,
    cache: FeatureCache | None = None,
    progress: Progress | None = None,
) -> DetectionComparison:
    """Train and test a detector per mode on the same data, windows and backbone: the paper's comparison."""
    config.validate()
    cache = cache if cache is not None else FeatureCache()
    specs = mode_specs(modes, config.scales)
    start = time.perf_counter()
    reports = {}
    for k, spec in enumerate(specs):

        def part(lo: float, hi: float, k: int = k) -> Progress | None:
            return span(progress, (k + lo) / len(specs), (k + hi) / len(specs))

        t0 = time.perf_counter()
        detector = train_detector(backbone, train, spec.mode, spec.scales or config.scales, config, cache, part(0, 0.7))
        trained = time.perf_counter() - t0
        report = evaluate_detector(detector, backbone, test, cache, part(0.7, 1.0), name=spec.name)
        report.train_seconds = trained
        reports[spec.name] = report
    return DetectionComparison(
        data=train.name,
        classes=train.classes,
        train_images=len(train),
        test_images=len(test),
        backbone=backbone.name,
        config=config,
        modes=reports,
        seconds=time.perf_counter() - start,
        skipped=[*train.skipped, *test.skipped],
    )


# ----------------------------------------------------------------------------- what the numbers say

# The paper's claim, SPP-net within 2 mAP points of R-CNN (paper.DETECTION_MAP), judged by margin_verdict.
CLAIM = {
    "holds": N_(
        "The paper's claim, SPP-net within {points} mAP points of R-CNN, holds here: the interval lies above -{points}."
    ),
    "fails": N_(
        "Unlike the paper, SPP-net falls more than {points} mAP points behind R-CNN here: the interval is "
        "below -{points}."
    ),
    "unclear": N_(
        "These data cannot tell if SPP-net stays within {points} points of R-CNN, as in the paper "
        "(interval spans -{points})."
    ),
}


def paper_claim(diff: Interval) -> str:
    """The sentence on the paper's claim for SPP-net's mAP minus R-CNN's (fractions, not points)."""
    verdict = margin_verdict(diff, paper.DETECTION_MARGIN_POINTS / 100)
    return _(CLAIM[verdict]).format(points=f"{paper.DETECTION_MARGIN_POINTS:g}")


def findings(report: DetectionComparison) -> list[str]:
    """What the numbers say, each with its uncertainty: box regression in each mode, and SPP-net against R-CNN in
    mAP (with the paper's claim) and in feature time."""
    out = []
    for name, m in report.modes.items():
        gain = compare_sentence(_("with it"), _("without it"), m.regression_gain)
        out.append(_("**{mode}, box regression:** {sentence}").format(mode=name, sentence=gain))
    if (diff := report.spp_minus_rcnn) is not None:
        spp, rcnn = report.modes["spp"], report.modes["rcnn"]
        t_spp, t_rcnn = spp.feature_seconds_per_image, rcnn.feature_seconds_per_image
        out.append(
            _("**SPP-net against R-CNN:** {sentence} {claim} SPP-net's features took {spp} s per image against "
              "R-CNN's {rcnn} s: {ratio}x faster on the same windows.").format(
                sentence=compare_sentence("SPP-net", "R-CNN", diff), claim=paper_claim(diff), spp=f"{t_spp:.3f}",
                rcnn=f"{t_rcnn:.3f}", ratio=f"{t_rcnn / t_spp:.1f}")
        )  # fmt: skip
    return out
