"""Detection: SPP-net's one conv pass against R-CNN's conv pass per window, both timed; then the paper's detector
(SVMs, hard negatives, box regression), trained on labelled boxes and measured in both modes."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui
from spp_viz import paper
from spp_viz.detection.classify import label_windows, parts_of_larger
from spp_viz.detection.compare import DetectionComparison, findings
from spp_viz.detection.data import SCENES
from spp_viz.detection.detector import DetectorConfig
from spp_viz.detection.evaluate import mark_detections
from spp_viz.detection.proposals import PROPOSAL_MODES
from spp_viz.detection.windows import ModeResult, agreement, speedup
from spp_viz.i18n import N_, _, translate
from spp_viz.models import SPPNet
from spp_viz.paper import DETECTION_SCALES
from spp_viz.plots.base import encode_image
from spp_viz.plots.detection import detections_figure, marked_figure, pr_figure, timing_figure


def paper_numbers() -> str:
    return _("The paper's numbers (ZF-5 on a GPU, VOC 2007): {numbers} (see {notes}).").format(
        numbers=translate(paper.DETECTION_SPEED), notes=ui.NOTES
    )


def controls(n_max: int = 5000) -> tuple[str, int, tuple[int, ...]]:
    a, b, c = st.columns(3)
    mode = a.selectbox(
        _("Proposals"),
        PROPOSAL_MODES,
        key="det_mode",
        format_func={
            "fast": _("Selective Search, fast"),
            "quality": _("Selective Search, quality"),
            "sliding": _("sliding windows"),
        }.get,
    )
    windows = int(b.number_input(_("At most this many windows"), 1, n_max, 2000, 100, key="det_windows"))
    scales = c.multiselect(
        _("SPP scales (shorter side)"),
        DETECTION_SCALES,
        default=[688],
        key="det_scales",
        help=_("With several, each window is pooled at the scale where it is closest to 224 x 224."),
    )
    if not scales:
        st.error(_("Choose at least one scale."))
    return mode, windows, tuple(sorted(scales))


def results_panel(model: SPPNet, img, spp: ModeResult) -> None:
    """The image with the top windows, a class filter, a threshold and the proposals."""
    a, b, c = st.columns([2, 2, 1])
    threshold = a.slider(_("Score threshold"), 0.0, 1.0, 0.3, 0.05, key="det_threshold")
    found = label_windows(spp, model.class_names, score_threshold=threshold, top=100)
    names = sorted({d.name for d in found})
    chosen = b.multiselect(_("Classes"), names, default=names, key=f"det_classes-{ui.image_key()}-{threshold}")
    show = c.toggle(_("Show proposals"), key="det_show")
    shown = [d for d in found if d.name in chosen][:20]
    enc = encode_image(img)
    st.plotly_chart(detections_figure(enc, shown, spp.boxes if show else None), width="stretch")
    parts = parts_of_larger(shown)
    top = max((p.score for p, _larger in parts), default=0.0)
    if parts:
        on_photo = _(
            "On this photo {parts} of the {shown} windows shown lie inside a larger window of the same class (parts "
            "of it), scoring up to {top}: the classifier's scores do not tell an object from its parts."
        ).format(parts=len(parts), shown=len(shown), top=f"{top:.0%}")
    else:
        on_photo = _("On this photo none of the {shown} windows shown lies inside a larger one of its class.").format(
            shown=len(shown)
        )
    st.caption(
        _(
            "{shown} windows after class-wise non-maximum suppression (IoU 0.3), from {proposals} proposals. **This is "
            "an ImageNet classifier applied to each window**, not a detector trained for detection. {on_photo} "
            "Below, the paper's detector is trained on labelled boxes and measured against them."
        ).format(shown=len(shown), proposals=len(spp.boxes), on_photo=on_photo)
    )


def speedup_metrics(conv_ratio: float, run_ratio: float, agree) -> None:
    """The measured speed-ups beside the paper's, and how often the two modes agree."""
    a, b, c = st.columns(3)
    paper_says = _("paper: {ratio}x")
    a.metric(_("conv speed-up"), f"{conv_ratio:.0f}x", help=paper_says.format(ratio=paper.CONV_SPEEDUP[1]))
    b.metric(_("conv + pooling/fc speed-up"), f"{run_ratio:.0f}x", help=paper_says.format(ratio=paper.RUN_SPEEDUP[1]))
    c.metric(
        _("same top-1 class"),
        f"{agree.top1_agreement:.0%}",
        help=_("on {windows} windows; mean cosine {cosine} on the first {compared}").format(
            windows=agree.windows, cosine=f"{agree.mean_cosine:.2f}", compared=agree.compared
        ),
    )


def timing_panel(model: SPPNet, img, spp: ModeResult) -> None:
    """R-CNN behind a button; both modes' timings, the ratios and the paper's."""
    n_all = len(spp.boxes)
    n = st.slider(
        _("R-CNN windows (R-CNN runs the network once per window: slow on a CPU)"),
        1,
        n_all,
        min(64, n_all),
        key="det_rcnn_n",
    )
    rc = ui.heavy.rcnn(spp.boxes[:n], start=False)  # kept from an earlier run on these windows, of any session
    if rc is None:
        if not st.button(_("Run R-CNN mode on {n} windows").format(n=n), key="det_rcnn_run"):
            st.info(paper_numbers())
            return
        rc = ui.heavy.rcnn(spp.boxes[:n])
    ratio = speedup(rc.timing, n, spp.timing, n_all)
    st.plotly_chart(timing_figure({"R-CNN": vars(ratio.rcnn), "SPP-net": vars(ratio.spp)}), width="stretch")
    per = (
        _(", per window: R-CNN ran on {n} of {all} windows and its times are scaled to {all}").format(n=n, all=n_all)
        if ratio.scaled
        else ""
    )
    agree = agreement(rc, spp)
    speedup_metrics(ratio.conv, ratio.run, agree)
    st.caption(
        _(
            "Measured here, on {seconds} s of SPP conv at {scales} scale(s){per}. On the first {compared} windows the "
            "two modes' feature vectors have mean cosine similarity {cosine}: SPP pools a window's cells from the "
            "whole-image conv5 (context included, coarser grid); R-CNN sees the warped window alone. {paper}"
        ).format(
            seconds=f"{spp.timing.conv:.2f}",
            scales=len(set(spp.scales.tolist())),
            per=per,
            compared=agree.compared,
            cosine=f"{agree.mean_cosine:.2f}",
            paper=paper_numbers(),
        )
    )


# ----------------------------------------------------------------------------- step 2: the paper's detector

ROWS = {"spp": N_("SPP-net, 1 scale"), "spp-5": N_("SPP-net, 5 scales"), "rcnn": "R-CNN"}


def lab_settings() -> tuple[str, tuple[int, int], tuple[str, ...], DetectorConfig]:
    """Data, sizes, the table's rows and the SPP-net scale."""
    source = "synthetic"
    if ui.server_paths():
        folder = st.text_input(_("VOC-format folder on this server (empty: the built-in scenes)"), key="det_voc")
        source = folder.strip() or source
    a, b, c, d = st.columns(4)
    train = int(a.number_input(_("Training images"), 4, 5000, SCENES["train"], key="det_train_n"))
    test = int(b.number_input(_("Test images"), 2, 5000, SCENES["test"], key="det_test_n"))
    windows = int(c.number_input(_("Windows per image"), 10, 2000, DetectorConfig.windows, 10, key="det_lab_windows"))
    scale = int(
        d.selectbox(_("SPP-net's one scale"), DETECTION_SCALES, DETECTION_SCALES.index(688), key="det_lab_scale")
    )
    titles = {k: _(v) for k, v in ROWS.items()}
    rows = st.multiselect(_("Rows of the table"), list(ROWS), ["spp", "rcnn"], format_func=titles.get, key="det_rows")
    if not rows:
        st.error(_("Choose at least one row."))
        st.stop()
    return source, (train, test), tuple(rows), DetectorConfig(windows=windows, scales=(scale,))


def train_button(
    source: str, counts: tuple[int, int], modes: tuple[str, ...], config: DetectorConfig
) -> DetectionComparison | None:
    """The detector of these settings: kept from an earlier run (of any session), or trained and tested on a click."""
    report = ui.heavy.detection_lab(source, counts, modes, config, start=False)
    if st.session_state.get("det_stop"):
        st.info(_("Training stopped. Press Train and test to start again (features already computed are kept)."))
    if not st.button(_("Train and test"), type="primary", key="det_train"):
        return report
    with ui.stop_button(_("Stop"), "det_stop"):
        try:
            return ui.heavy.detection_lab(source, counts, modes, config)
        except ValueError as err:
            st.error(_("**This data cannot be used:** {why}").format(why=ui.md(err)))
            return None


def table_panel(report: DetectionComparison) -> None:
    """mAP with and without box regression, intervals, feature time and speed-up; the paper's beside them."""
    rcnn = report.modes.get("rcnn")
    rows = []
    for name, m in report.modes.items():
        band = m.interval
        speed = rcnn.feature_seconds_per_image / m.feature_seconds_per_image if rcnn else None
        rows.append(
            {
                _("mode"): name,
                _("mAP (box regression)"): f"{m.map:.1%}",
                _("{percent} interval").format(percent="95%"): f"{band.low:.1%} - {band.high:.1%}",
                _("mAP without"): f"{m.map_no_bbox_reg:.1%}",
                _("features s / image"): f"{m.feature_seconds_per_image:.3f}",
                _("faster than R-CNN"): "-" if speed is None or name == "rcnn" else f"{speed:.1f}x",
                _("paper mAP"): f"{paper.DETECTION_MAP[name]:.1f}" if name in paper.DETECTION_MAP else "n/a",
                _("paper features s / image"): str(paper.DETECTION_CONV_SECONDS.get(name, "n/a")),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        _(
            "Measured here: {train} training and {test} test images of {data}, {windows} windows each, {backbone} "
            "with a {levels} pyramid, {seconds} s in all. mAP is VOC 2007's 11-point AP at IoU 0.5; intervals by "
            "bootstrap over test images. Paper: ZF-5 with fc6/fc7 fine-tuned, VOC 2007 test, conv features on a GPU "
            "(see {notes})."
        ).format(
            train=report.train_images,
            test=report.test_images,
            data=report.data,
            windows=report.config.windows,
            backbone=report.backbone,
            levels=list(report.config.levels),
            seconds=f"{report.seconds:.0f}",
            notes=ui.NOTES,
        )
    )
    for sentence in findings(report):
        st.markdown("- " + sentence)


def curves_panel(report: DetectionComparison) -> None:
    shown_as = {c: _(c) for c in report.classes}  # the built-in shapes' names in the reader's language
    c = st.selectbox(_("Precision-recall curves of"), report.classes, format_func=shown_as.get, key="det_pr_class")
    k = report.classes.index(c)
    curves = {name: (*m.per_class[k].curve(), m.per_class[k].ap()) for name, m in report.modes.items()}
    title = _("{name}: every test detection, by falling score").format(name=shown_as[c])
    st.plotly_chart(pr_figure(curves, title), width="stretch")


def image_panel(report: DetectionComparison, test) -> None:
    a, b = st.columns([1, 3])
    name = a.selectbox(_("Mode"), list(report.modes), key="det_img_mode")
    i = int(a.number_input(_("Test image"), 1, len(test.images), 1, key="det_img_i")) - 1
    threshold = a.slider(_("Show detections scoring above"), -1.0, 1.0, 0.0, 0.1, key="det_img_thr")
    item = test.images[i]
    shown, missed = mark_detections(report.modes[name].detections[i], item, threshold)
    fig = marked_figure(encode_image(item.image()), shown, item.boxes, missed, [_(c) for c in report.classes])
    b.plotly_chart(fig, width="stretch")
    wrong = int((~shown.correct).sum())
    b.caption(
        _(
            "{name}: {objects} objects (dashed), {shown} detections above {threshold} (SVM score), {wrong} of them "
            "false (red), {missed} objects missed (yellow)."
        ).format(
            name=item.name,
            objects=len(item.boxes),
            shown=len(shown),
            threshold=f"{threshold:+.1f}",
            wrong=wrong,
            missed=len(missed),
        )
    )


def downloads_panel(report: DetectionComparison) -> None:
    cols = st.columns(len(report.modes) + 1)
    for col, (name, m) in zip(cols, report.modes.items(), strict=False):
        col.download_button(
            _("Detector, {mode} (.safetensors)").format(mode=name), m.detector.to_bytes(),
            f"detector-{name}.safetensors", "application/octet-stream", on_click="ignore", key=f"det_dl_{name}",
        )  # fmt: skip
    cols[-1].download_button(
        _("Results (JSON)"), json.dumps(report.json(), default=float, indent=1), "detection_lab.json",
        "application/json", on_click="ignore", key="det_dl_json",
    )  # fmt: skip


def detector_step() -> None:
    """Step 2: train SVMs and box regression on labelled boxes, in each mode, and test them."""
    st.markdown(
        _(
            "The paper trains one linear SVM per class on each window's pooled features (positives: the labelled "
            "boxes; negatives: windows overlapping no box of the class by 0.3 IoU, mined hard), adds box regression, "
            "and measures mAP on held-out images. Both modes here read the **same** conv layers and pyramid; only how "
            "the window's features are computed differs. The backbone is the sidebar's network (for the SPP-net, the "
            "Lite0 conv layers it shares) cut at its last stride-16 stage (the paper's conv5 stride): its last map, "
            "stride 32 with a receptive field of hundreds of pixels, cannot tell neighbouring windows apart. Unlike "
            "the paper, the SVMs read pooled conv features (no fine-tuned fc6/fc7), and the built-in scenes are "
            "synthetic shapes on cluttered backgrounds."
        )
    )
    with st.expander(_("What the built-in scenes look like")):
        train, _test = ui.detection_sets("synthetic", (6, 2))
        names = [", ".join(_(train.classes[k]) for k in i.labels) for i in train.images]
        st.image([i.image() for i in train.images], caption=names)
    source, counts, modes, config = lab_settings()
    report = train_button(source, counts, modes, config)
    if report is None:
        return
    table_panel(report)
    curves_panel(report)
    image_panel(report, ui.detection_sets(source, counts)[1])
    downloads_panel(report)
    saved_panel(source, counts)


def saved_panel(source: str, counts: tuple[int, int]) -> None:
    """A detector downloaded before (here or from the command line), tested again on this test set."""
    label = _("Test a saved detector (.safetensors) on these test images")
    upload = st.file_uploader(label, ["safetensors"], key="det_up")
    if upload is None:
        return
    try:
        m = ui.heavy.detection_test(upload.getvalue(), source, counts)
    except ValueError as err:
        st.error(_("**{file} cannot be used here:** {why}").format(file=ui.md(upload.name), why=ui.md(err)))
        return
    band = m.interval
    st.success(
        _(
            "{file} ({mode}, trained on {data}): mAP {map} ({percent} interval {low} - {high}), {raw} without box "
            "regression."
        ).format(
            file=ui.md(upload.name),
            mode=m.mode,
            data=ui.md(m.detector.meta.get("data", "?")),
            map=f"{m.map:.1%}",
            percent="95%",
            low=f"{band.low:.1%}",
            high=f"{band.high:.1%}",
            raw=f"{m.map_no_bbox_reg:.1%}",
        )
    )


def classifier_step() -> None:
    """Step 1: the ImageNet classifier on the windows of this session's photo, both modes timed."""
    st.markdown(
        _(
            "R-CNN warps **every** candidate window to 224 x 224 and runs the whole network on each, about 2,000 "
            "times per image. SPP-net runs the conv layers **once** on the whole image, maps each window to conv5 "
            "(Appendix A) and pools it with the pyramid (He et al., Sec. 4; see {notes})."
        ).format(notes=ui.NOTES)
    )
    model = ui.current_model()
    img, _name = ui.current_image()
    mode, windows, scales = controls()
    if not scales:
        return  # step 2 below still runs
    try:
        spp = ui.cached_spp_detection(mode, windows, scales)
    except ValueError as e:
        st.error(_("**These settings cannot be used:** {why}").format(why=ui.md(e)))
        return
    if len(spp.boxes) == 0:
        st.warning(_("No usable window was found in this image."))
        return
    results_panel(model, img, spp)
    st.subheader(_("Timing"))
    timing_panel(model, img, spp)


def main() -> None:
    ui.start_page()
    st.title(_("Detection: SPP-net against R-CNN"))
    st.header(_("1. Windows scored by the ImageNet classifier"))
    classifier_step()
    st.header(_("2. The paper's detector: trained, then measured"))
    detector_step()


main()
