"""Detection: SPP-net's one conv pass against R-CNN's conv pass per window, both timed."""

from __future__ import annotations

import streamlit as st

import ui
from spp_viz.detection import PAPER_SCALES, PROPOSAL_MODES, ModeResult, agreement, detect, speedup
from spp_viz.models import SPPNet
from spp_viz.plots.base import encode_image
from spp_viz.plots.detection import detections_figure, timing_figure

PAPER = (
    "The paper's numbers (ZF-5 on a GPU, VOC 2007): conv features per image R-CNN 14.37 s, SPP-net 0.053 s at one "
    "scale (270x); conv + fc 102x overall at one scale, 38x at five (see " + ui.NOTES + ")."
)


def controls(n_max: int = 5000) -> tuple[str, int, tuple[int, ...]]:
    a, b, c = st.columns(3)
    mode = a.selectbox(
        "Proposals",
        PROPOSAL_MODES,
        key="det_mode",
        format_func={
            "fast": "selective search, fast",
            "quality": "selective search, quality",
            "sliding": "sliding windows",
        }.get,
    )
    windows = int(b.number_input("At most this many windows", 1, n_max, 2000, 100, key="det_windows"))
    scales = c.multiselect(
        "SPP scales (shorter side)",
        PAPER_SCALES,
        default=[688],
        key="det_scales",
        help="With several, each window is pooled at the scale where it is closest to 224 x 224.",
    )
    if not scales:
        st.error("Choose at least one scale.")
        st.stop()
    return mode, windows, tuple(sorted(scales))


def results_panel(model: SPPNet, img, spp: ModeResult) -> None:
    """The image with the top windows, a class filter, a threshold and the proposals."""
    a, b, c = st.columns([2, 2, 1])
    threshold = a.slider("Score threshold", 0.0, 1.0, 0.3, 0.05, key="det_threshold")
    found = detect(spp, model.class_names, score_threshold=threshold, top=100)
    names = sorted({d.name for d in found})
    chosen = b.multiselect("Classes", names, default=names, key=f"det_classes-{ui.image_key()}-{threshold}")
    show = c.toggle("Show proposals", key="det_show")
    shown = [d for d in found if d.name in chosen][:20]
    enc = encode_image(img)
    st.plotly_chart(detections_figure(enc, shown, spp.boxes if show else None), width="stretch")
    st.caption(
        f"{len(shown)} windows after class-wise non-maximum suppression (IoU 0.3), from {len(spp.boxes)} proposals. "
        "**This is an ImageNet classifier applied to each window**, not a detector trained on VOC (the paper trains "
        "SVMs and box regression on its features): expect whole-object windows to score well, parts poorly."
    )


def timing_panel(model: SPPNet, img, spp: ModeResult) -> None:
    """R-CNN behind a button; both modes' timings, the ratios and the paper's."""
    n_all = len(spp.boxes)
    n = st.slider(
        "R-CNN windows (R-CNN runs the network once per window: slow on a CPU)",
        1,
        n_all,
        min(64, n_all),
        key="det_rcnn_n",
    )
    key = ("rcnn", ui.image_key(), n, tuple(map(tuple, spp.boxes[:n].tolist())))
    result = st.session_state.get("det_rcnn")
    if result is None or result[0] != key:
        if not st.button(f"Run R-CNN mode on {n} windows", key="det_rcnn_run"):
            st.info(PAPER)
            return
        st.session_state["det_rcnn"] = (key, ui.heavy.rcnn(spp.boxes[:n]))
    rc = st.session_state["det_rcnn"][1]
    ratio = speedup(rc.timing, n, spp.timing, n_all)
    st.plotly_chart(timing_figure({"R-CNN": vars(ratio.rcnn), "SPP-net": vars(ratio.spp)}), width="stretch")
    conv_ratio, run_ratio = ratio.conv, ratio.run
    per = (
        f", per window: R-CNN ran on {n} of {n_all} windows and its times are scaled to {n_all}" if ratio.scaled else ""
    )
    a, b, c = st.columns(3)
    a.metric("conv speed-up", f"{conv_ratio:.0f}x", help="paper: 270x")
    b.metric("conv + pooling/fc speed-up", f"{run_ratio:.0f}x", help="paper: 102x")
    agree = agreement(rc, spp)
    c.metric("same top-1 class", f"{agree.top1_agreement:.0%}", help=f"mean cosine {agree.mean_cosine:.2f}")
    st.caption(
        f"Measured here, on {spp.timing.conv:.2f} s of SPP conv at {len(set(spp.scales.tolist()))} scale(s){per}. "
        f"On {agree.windows} windows the two modes' feature vectors have mean cosine similarity "
        f"{agree.mean_cosine:.2f}: SPP pools a window's cells from the whole-image conv5 (context included, coarser "
        "grid); R-CNN sees the warped window alone. " + PAPER
    )


def main() -> None:
    st.title("Detection: SPP-net against R-CNN")
    st.markdown(
        "R-CNN warps **every** candidate window to 224 x 224 and runs the whole network on each, about 2,000 times "
        "per image. SPP-net runs the conv layers **once** on the whole image, maps each window to conv5 (Appendix A) "
        "and pools it with the pyramid (He et al., Sec. 4; see " + ui.NOTES + ")."
    )
    model = ui.current_model()
    img, _ = ui.current_image()
    mode, windows, scales = controls()
    try:
        spp = ui.cached_spp_detection(mode, windows, scales)
    except ValueError as e:
        st.error(f"**These settings cannot be used:** {e}")
        st.stop()
    if len(spp.boxes) == 0:
        st.warning("No usable window was found in this image.")
        return
    results_panel(model, img, spp)
    st.subheader("Timing")
    timing_panel(model, img, spp)


main()
