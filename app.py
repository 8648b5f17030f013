"""SPP-net Explorer: ``spp-viz app`` (or ``streamlit run app.py``).

Builds the navigation from the files in pages/ and draws the shared sidebar (model, device, image).
"""

from __future__ import annotations

import copy
from pathlib import Path

import streamlit as st

from spp_viz.settings import keep_downloads_in_cache

keep_downloads_in_cache()  # before timm's imports: huggingface_hub reads its cache folder once

import ui  # noqa: E402
import ui.language  # noqa: E402
import ui.warmup  # noqa: E402

if st.context.headers:  # a browser's run (AppTest's come from none): the server warms up, however it was started
    ui.warmup.start()
ui.warmup.wait()  # the warm-up imports what follows and loads the network: let that finish first

from spp_viz import i18n, paper  # noqa: E402
from spp_viz.explain.level_views import classifier_reads  # noqa: E402
from spp_viz.files import disk_full  # noqa: E402
from spp_viz.i18n import _, lazy_gettext  # noqa: E402
from spp_viz.images import ImageError  # noqa: E402
from spp_viz.pyramid import num_bins  # noqa: E402

PAGES_DIR = Path(__file__).resolve().parent / "pages"
NETWORK_NOTE = lazy_gettext(
    " The menu opens on the SPP-net: EfficientNet-Lite0's ImageNet conv layers with a {6,3,2,1} max pyramid and a "
    "head distilled from Lite0 on 500 photos. Unlike the paper's ZF-5 its conv layers were never trained with the "
    "pyramid, and on 500 ImageNet photos, each scored by a head distilled without it, its accuracy shows no clear "
    "difference from Lite0's (model card: docs/model-card.md). EfficientNet-Lite0 itself, second in the menu, is "
    "the contrast: global average pooling, a one-level pyramid."
)

ui.leave_legacy_pages_mode()
LANG = ui.language.start_run()  # before any text: this run's language
st.set_page_config(page_title="SPP-net Explorer", page_icon=":material/grid_view:", layout="wide")


def home() -> None:
    """Why crop and warp exist, and what spatial pyramid pooling changes."""
    st.title("SPP-net Explorer")
    st.markdown(
        _(
            """
A CNN's **convolutional layers accept any image size**; only its fully connected layers need an input of fixed
length. So before SPP-net, every image was **cropped** or **warped** to 224 x 224 pixels: cropping loses content,
warping distorts shapes.

**Spatial pyramid pooling** (He, Zhang, Ren and Sun, *Spatial Pyramid Pooling in Deep Convolutional Networks for
Visual Recognition*, ECCV 2014, arXiv 1406.4729) replaces the last pooling layer with a pyramid of max-pooling grids
over the last conv map, "conv5". A level with n x n bins gives n x n numbers per channel, whatever the map's size,
so the output always has length k x M: k conv5 channels times M bins. With the paper's pyramid {LEVELS},
M = {SQUARES} = {M}, and ZF-5's {K} channels give {K} x {M} = **{LENGTH}** numbers for any image.
"""
        ).format(
            LEVELS="{" + ", ".join(map(str, paper.LEVELS)) + "}",
            SQUARES=" + ".join(str(n * n) for n in paper.LEVELS),
            M=num_bins(paper.LEVELS),
            K=paper.ZF5_CHANNELS,
            LENGTH=i18n.number(paper.ZF5_SPP_LENGTH),
        )
    )
    ctx = ui.context()
    if ctx.image_bytes is not None:
        try:
            picture = ui.approaches_picture(ctx.image)  # the photo decoded (checked) and drawn, once per photo
        except ImageError as e:
            st.error(_("**This image cannot be used:** {why}").format(why=ui.md(e)))
        else:
            # a caption: text, never Markdown
            st.image(picture, caption=_("{name}: what each approach feeds the network").format(name=ctx.image_name))
    st.markdown(
        _(
            """
**Pages**
- **Feature maps**: the conv5 maps of your photo at any size, ranked by their strongest response; the conv5 grid
  grows with the image while the SPP output keeps its length.
- **Pyramid pooling**: the pyramid's bins drawn on a conv5 channel and on your photo, level by level; which cell
  won each bin; the whole output vector (k x M) and its download; the same photo at many sizes giving one length;
  where the paper's training rule for bins breaks; and the bag-of-words test: shuffle your photo's tiles and
  measure which levels notice.
- **Strongest activations**: the paper's Figure 2 on your photo: the channels that respond most, with arrows at
  their peaks and the cells' boxes on the image; and over a gallery (samples, your uploads, a folder), the nine
  image patches that excite a channel most, with where your photo would rank.
- **Crop, warp or SPP**: the paper's argument in one screen: what a crop loses, what a warp bends, and what each
  view predicts, with a scale sweep; then the three views measured over 500 ImageNet photos, with intervals.
- **Attributions**: what each view's prediction rests on (GradCAM, Integrated Gradients, Occlusion), and how much
  each pyramid level carried it.
- **Detection**: SPP-net's one conv pass with per-window pyramid pooling against R-CNN's network pass per window,
  both timed, with the paper's numbers beside them; and the paper's detector (SVMs, box regression, mAP) trained
  and tested in both modes.
- **SPP Lab** and **Lab experiments**: train small SPP-nets yourself, and run the paper's comparisons (crop, warp,
  single- and multi-size SPP) over several seeds, with verdicts that say when a difference is within the noise.

Pick a model and a photo in the sidebar; every page uses them. Numbers quoted as the paper's come from
the paper itself, never from this app.
"""
        )
    )
    # The sidebar has loaded the network already: this sentence costs no forward pass.
    st.info(_("**The network in use.**") + " " + classifier_reads(ui.current_model()) + str(NETWORK_NOTE))


def page_files() -> list[st.Page]:
    """One st.Page per pages/NN_Title.py, in file-name order (files starting with "_" are helpers)."""
    # Copies: st.navigation marks the page it runs on the page object, and sessions run at once.
    return [copy.copy(page) for page in ui.page_paths(str(PAGES_DIR), LANG)]


ui.sidebar()
try:
    st.navigation([st.Page(home, title=_("Home"), icon=":material/home:", default=True), *page_files()]).run()
except OSError as e:  # a full disk reaches a student as one sentence, never as a traceback
    if not disk_full(e):
        raise
    st.error(
        _(
            "**The server's disk is full** ({why}), so this page could not save what it computed. Tell whoever runs "
            "the server: the app keeps its own cache folder within its budget, so something else filled it."
        ).format(why=e.strerror)
    )
