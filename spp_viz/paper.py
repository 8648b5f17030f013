"""Every number and claim the app quotes from the paper (He et al., arXiv 1406.4729), in one place.

Each constant names the part of the paper it comes from (as the project's notes on the paper file it); pages, the
CLI and the library read them from here, never from copies. Nothing here was measured by this project.
"""

from __future__ import annotations

from .i18n import N_, filled

# Notes, "ZF-5": the pyramid of the paper's detection and ImageNet networks (50 bins).
LEVELS = (6, 3, 2, 1)
# Notes, "ZF-5": conv5's 256 filters; with LEVELS, fc6 reads 256 x 50 = 12,800 numbers whatever the input's size.
ZF5_CHANNELS = 256
ZF5_SPP_LENGTH = ZF5_CHANNELS * sum(n * n for n in LEVELS)
# Notes, "Bin geometry": the (a, n) where the training rule (window ceil(a/n), stride floor(a/n)) gives the wrong
# number of bins, for a <= 30 and n in {1, 2, 3, 4, 6}.
TRAINING_RULE_WRONG_COUNTS = (
    (5, 3), (6, 4), (7, 4), (8, 6), (9, 6), (10, 6), (11, 4), (11, 6), (15, 6), (16, 6), (17, 6), (22, 6), (23, 6),
    (29, 6),
)  # fmt: skip
# Notes, "Multi-size training": the two training sizes (conv5 13 x 13 and 10 x 10 on ZF-5).
TRAIN_SIZES = (224, 180)
# Notes, "Testing views": the multi-view test scales (18 crops per scale in the paper, plus full images).
TEST_SCALES = (224, 256, 300, 360, 448, 560)
# Notes, "Detection pipeline": the five detection scales; each window goes to the one where it is closest to 224^2.
DETECTION_SCALES = (480, 576, 688, 864, 1200)

# Notes, "Headline numbers": ImageNet val, ZF-5, top-1 / top-5 error (%).
ZF5_ERRORS = {
    "no SPP": (35.99, 14.76),
    "SPP {4,3,2,1}": (35.06, 14.04),
    "SPP {6,3,2,1}": (34.98, 14.14),
}
# Notes, "Headline numbers": Overfeat-7 trained multi-size (180 + 224), top-1 error, and its gains (points).
OVERFEAT7_MULTI_SIZE_TOP1 = 29.68
OVERFEAT7_GAIN_OVER_NO_SPP = 2.33
OVERFEAT7_GAIN_OVER_SINGLE_SIZE = 0.68
# Notes, "Headline numbers": VOC 2007 classification mAP, full image against the 224 crop.
VOC07_FULL, VOC07_CROP = 78.39, 76.45
# Notes, "Headline numbers": Caltech101 accuracy, full image against warped.
CALTECH101_FULL, CALTECH101_WARP = 91.44, 89.91

# Notes, "Headline numbers": VOC 2007 detection mAP (ZF-5, fine-tuned fc, box regression), by the app's mode names.
DETECTION_MAP = {"spp": 58.0, "spp-5": 59.2, "rcnn": 58.5}
# Notes, "Headline numbers": conv feature seconds per image, same ZF-5 on a GPU.
DETECTION_CONV_SECONDS = {"spp": 0.053, "spp-5": 0.293, "rcnn": 14.37}
CONV_SPEEDUP = {1: 270, 5: 49}  # R-CNN's conv time over SPP-net's, at 1 and 5 scales
RUN_SPEEDUP = {1: 102, 5: 38}  # conv + fc, overall, at 1 and 5 scales
# What the detection numbers above amount to, as the Detection page tests it: SPP-net within 2 mAP points of R-CNN
# (58.0 and 59.2 against 58.5).
DETECTION_MARGIN_POINTS = 2.0

# The same numbers as sentences and table rows, for the pages, the CLI and the findings: in English here (the CLI and
# the results files), in the reader's language through ``i18n.translate``.
CALTECH101_CLAIM = filled(
    N_("Caltech101: {full} full against {warp} warped"), full=CALTECH101_FULL, warp=CALTECH101_WARP
)
VOC07_CLAIM = filled(N_("VOC 2007: {full} full against {crop} crop"), full=VOC07_FULL, crop=VOC07_CROP)
MULTI_SIZE_CLAIM = filled(N_("Overfeat-7: {points} points better"), points=OVERFEAT7_GAIN_OVER_SINGLE_SIZE)
LEVELS_CLAIM = filled(
    N_("ZF-5: top-1 error {finer} with {{6,3,2,1}} against {coarser} with {{4,3,2,1}}"),
    finer=ZF5_ERRORS["SPP {6,3,2,1}"][0], coarser=ZF5_ERRORS["SPP {4,3,2,1}"][0],
)  # fmt: skip
CLASSIFICATION_ROWS = [
    (N_("ZF-5, no SPP (ImageNet val, top-1 / top-5 error)"), "{} / {}".format(*ZF5_ERRORS["no SPP"])),
    ("ZF-5, SPP {4,3,2,1}", "{} / {}".format(*ZF5_ERRORS["SPP {4,3,2,1}"])),
    ("ZF-5, SPP {6,3,2,1}", "{} / {}".format(*ZF5_ERRORS["SPP {6,3,2,1}"])),
    (
        N_("Overfeat-7, multi-size (180 + 224), top-1 error"),
        filled(N_("{error}: {over_none} better than no SPP, {over_single} better than single-size"),
               error=OVERFEAT7_MULTI_SIZE_TOP1, over_none=OVERFEAT7_GAIN_OVER_NO_SPP,
               over_single=OVERFEAT7_GAIN_OVER_SINGLE_SIZE),
    ),
    (N_("Full image vs 224 crop (VOC 2007 classification mAP)"), f"{VOC07_FULL} vs {VOC07_CROP}"),
    (N_("Caltech101: full image vs warped"), f"{CALTECH101_FULL} vs {CALTECH101_WARP}"),
]  # fmt: skip
DETECTION_SPEED = filled(
    N_("conv features per image R-CNN {rcnn} s, SPP-net {spp} s at one scale ({conv}x); conv + fc {run}x overall at "
       "one scale, {run5}x at five"),
    rcnn=DETECTION_CONV_SECONDS["rcnn"], spp=DETECTION_CONV_SECONDS["spp"], conv=CONV_SPEEDUP[1], run=RUN_SPEEDUP[1],
    run5=RUN_SPEEDUP[5],
)  # fmt: skip
