"""AppTest: app.py and every page, with a sample and with an upload, and bad uploads."""

from __future__ import annotations

from pathlib import Path

import pytest
from badfiles import corpus
from conftest import ROOT, SAMPLES, plain
from streamlit.testing.v1 import AppTest

PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("[0-9]*.py"))
TIMEOUT = 300


pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


def start(model_name: str | None = None) -> AppTest:
    """Run the Home page and pick a model there: AppTest only shows the main script's sidebar before a page switch."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if model_name:
        at.selectbox(key="model_name").set_value(model_name).run()
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="upload").upload(name, data, "image/jpeg").run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def image_captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_home_explains_and_lists_pages():
    at = start()
    no_exception(at)
    assert at.title[0].value == "SPP-net Explorer"
    text = " ".join(m.value for m in at.markdown)
    assert "12,800" in text and "arXiv 1406.4729" in text
    assert len(at.get("image")) == 1  # the crop / warp / SPP picture of the current image
    assert [s.key for s in at.selectbox][:2] == ["model_name", "device"]


TITLES = {
    "pages/1_Feature_maps.py": "Feature maps",
    "pages/2_Pyramid_pooling.py": "Pyramid pooling",
    "pages/3_Strongest_activations.py": "Strongest activations",
    "pages/4_Crop_warp_SPP.py": "Crop, warp or SPP",
    "pages/5_Attributions.py": "Attributions",
    "pages/6_Detection.py": "Detection: SPP-net against R-CNN",
    "pages/7_SPP_Lab.py": "SPP Lab: train your own",
    "pages/8_Lab_experiments.py": "SPP Lab: the paper's comparisons",
    "pages/9_Class.py": "Class",
}
PHOTO_FREE = {"pages/7_SPP_Lab.py", "pages/8_Lab_experiments.py"}  # the Lab pages train on their own images


def page_text(at: AppTest) -> str:
    """What a page says and shows: text, captions, metrics, notes, tables, image captions and the images."""
    said = [e.value for kind in (at.markdown, at.caption, at.metric, at.info, at.warning, at.success) for e in kind]
    # Images by their media URL, which Streamlit derives from the picture's bytes: a heatmap of another photo differs.
    pictures = [img.url for element in at.get("image") for img in element.proto.imgs]
    return " ".join(said + [d.value.to_csv() for d in at.dataframe] + image_captions(at) + pictures)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_with_a_sample_and_with_an_upload(page):
    """Each page opens on the default sample and on an upload, with its own title and no error; a page that reads
    the photo says something else about the upload (its sentences are computed from the photo, not fixed)."""
    assert set(TITLES) == set(PAGES)
    sample = start().switch_page(page).run()
    no_exception(sample)
    uploaded = upload(start(), "coffee.jpg", (SAMPLES / "coffee.jpg").read_bytes()).switch_page(page).run()
    no_exception(uploaded)
    for at in (sample, uploaded):
        assert at.title[0].value == TITLES[page] and not at.error
    if page in PHOTO_FREE:
        assert page_text(uploaded) == page_text(sample)
    else:
        assert page_text(uploaded) != page_text(sample)


def test_feature_maps_sizes_for_sample():
    """The default network (the SPP-net) pools conv5 into 1,280 x 50 = 64,000 numbers at any size."""
    at = start().switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    m = metrics(at)
    assert m["Input (H x W)"] == "256 x 385"
    assert m["conv5 (H x W x C)"] == "8 x 13 x 1280"
    assert m["SPP output length"] == "64,000"
    # The size slider changes conv5's grid but not the SPP length; the history plot appears.
    at.slider[0].set_value(512).run()
    no_exception(at)
    m = metrics(at)
    assert m["conv5 (H x W x C)"] == "16 x 25 x 1280" and m["SPP output length"] == "64,000"
    assert len(at.get("plotly_chart")) >= 4
    # Pick a channel by number.
    at.number_input[0].set_value(7).run()
    no_exception(at)
    assert any("channel 7 (before ReLU6): max" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_feature_maps_with_upload_shows_its_size():
    at = upload(start(), "coffee.jpg", (SAMPLES / "coffee.jpg").read_bytes())
    at.switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    assert metrics(at)["Input (H x W)"] == "256 x 384"


def test_zf5_is_labelled_untrained_and_pyramid_length():
    at = start(model_name="zf5")
    at.switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    assert any("random weights" in w.value for w in at.warning)
    assert metrics(at)["SPP output length"] == "12,800"


def test_missing_alexnet_weights_are_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = start(model_name="alexnet")
    # The sidebar says why (AppTest shows the sidebar only before a page switch), and the previous model stays.
    assert any("weights are not on this machine" in plain(e.value) for e in at.error)
    assert any("Still using **SPP-net" in plain(c.value) for c in at.sidebar.caption)
    at.switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    assert metrics(at)["SPP output length"] == "64,000"


@pytest.mark.parametrize("name", ["empty!", "truncated_jpeg!", "text_named_jpg!", "png_claims_100000x100000!"])
def test_bad_upload_shows_message_and_app_keeps_working(name):
    at = upload(start(), f"{name.rstrip('!')}.jpg", corpus()[name])
    at.switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    assert any("This image cannot be used" in e.value for e in at.error)
    # The same session goes on: back to a sample, and the page computes again.
    at2 = start()
    at2.switch_page("pages/1_Feature_maps.py").run()
    no_exception(at2)
    assert metrics(at2)["SPP output length"] == "64,000"


PYRAMID = "pages/2_Pyramid_pooling.py"


def open_tab(at: AppTest, label: str) -> AppTest:
    """Click one of the Pyramid page's tabs (each runs only when open): its state is the tabs' key."""
    at.session_state["pyramid_section"] = label
    return at.run()


@pytest.mark.parametrize("rule", ["adaptive", "paper"])
def test_pyramid_page_every_preset_and_rule(rule):
    from spp_viz.explain.level_views import PRESETS

    at = start().switch_page(PYRAMID).run()
    at.radio(key="pyramid_rule").set_value(rule).run()
    for preset, levels in PRESETS.items():
        at.selectbox(key="pyramid_preset").set_value(preset).run()
        no_exception(at)
        m = sum(n * n for n in levels)
        assert metrics(at)["Output length k x M"] == f"1,280 x {m} = {1280 * m:,}"
        if rule == "paper":  # conv5 is 8 x 13 at the default size: 6 bins over 8 cells break, and the page says why
            broken = 6 in levels
            assert any("training rule" in w.value for w in at.warning) == broken
    assert not at.dataframe  # the tables' tabs are closed: they are not drawn
    assert len(open_tab(at, "Fixed length, shown").dataframe) == 1  # seven sizes, one output length
    open_tab(at, "Rule inspector: where the training rule breaks")
    no_exception(at)
    assert len(at.dataframe) == 2  # the rule check for this size, the failures up to 40
    # The first broken case drawn is a map smaller than its bins (a = 1): said in words, not only drawn.
    assert any("No window exists here" in w.value for w in at.warning)


def test_pyramid_page_custom_levels_and_bad_levels():
    at = start().switch_page(PYRAMID).run()
    at.selectbox(key="pyramid_preset").set_value("custom levels").run()
    at.text_input(key="pyramid_custom").set_value("5, 2, 1").run()
    no_exception(at)
    assert metrics(at)["Output length k x M"] == "1,280 x 30 = 38,400"
    for bad in ("", "0", "-1,2", "1000", "a,b", "6,6", "1,1,1", "64,64,64"):
        at.text_input(key="pyramid_custom").set_value(bad).run()
        no_exception(at)
        assert any("These levels cannot be used" in e.value for e in at.error), bad


def test_pyramid_page_tiny_image_smaller_than_the_level():
    from badfiles import photo, save

    at = upload(start(), "tiny.png", save(photo(20, 20), "PNG"))
    at.switch_page(PYRAMID).run()
    at.slider(key="pyramid_size").set_value(32).run()  # 32 x 32 input: conv5 is 1 x 1, the 6x6 level has 36 bins
    no_exception(at)
    assert metrics(at)["conv5 (H x W x C)"] == "1 x 1 x 1280"
    assert metrics(at)["Output length k x M"] == "1,280 x 50 = 64,000"
    at.radio(key="pyramid_rule").set_value("paper").run()
    no_exception(at)
    assert any("smaller than the level" in w.value for w in at.warning)


def test_pyramid_page_very_wide_image():
    from badfiles import photo, save

    at = upload(start(), "wide.png", save(photo(2000, 100), "PNG"))
    at.switch_page(PYRAMID).run()
    at.slider(key="pyramid_size").set_value(64).run()
    no_exception(at)
    assert metrics(at)["conv5 (H x W x C)"] == "2 x 40 x 1280"
    assert metrics(at)["Output length k x M"] == "1,280 x 50 = 64,000"


def test_pyramid_page_zf5_output_is_12800():
    at = start(model_name="zf5").switch_page(PYRAMID).run()
    no_exception(at)
    assert metrics(at)["Output length k x M"] == "256 x 50 = 12,800"


ACTIVATIONS = "pages/3_Strongest_activations.py"


def test_activations_page_with_sample_gallery():
    at = start().switch_page(ACTIVATIONS).run()
    no_exception(at)
    assert len(at.get("plotly_chart")) == 2 * 4 + 2  # 4 top channels and the picked one: map + image each
    assert any("Index of 4 images" in c.value for c in at.caption)
    assert any("would rank **#" in m.value for m in at.markdown)
    assert len(at.get("image")) == 1  # the 3 x 3 patch grid
    at.number_input[0].set_value(5).run()
    no_exception(at)
    assert any("channel 5" in m.value for m in at.markdown)


def test_activations_page_gallery_from_uploads_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SPP_VIZ_SERVER_PATHS", "1")
    from badfiles import photo, save

    for i in range(3):
        (tmp_path / f"p{i}.png").write_bytes(save(photo(240, 200, seed=i), "PNG"))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    at = upload(start(), "coffee.jpg", (SAMPLES / "coffee.jpg").read_bytes())
    at.text_input(key="gallery_folder").set_value(str(tmp_path)).run()
    at.switch_page(ACTIVATIONS).run()
    at.multiselect(key="act_sources").set_value(
        ["Images uploaded in this session", "The gallery folder (sidebar)"]
    ).run()
    no_exception(at)
    assert any("Index of 4 images" in c.value for c in at.caption)  # the upload and 3 folder images
    assert any("1 file(s) skipped" in e.label for e in at.expander)


def test_activations_page_missing_folder_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("SPP_VIZ_SERVER_PATHS", "1")
    at = start()
    at.text_input(key="gallery_folder").set_value(str(tmp_path / "nope")).run()
    at.switch_page(ACTIVATIONS).run()
    at.multiselect(key="act_sources").set_value(["The gallery folder (sidebar)"]).run()
    no_exception(at)
    assert any("gallery folder cannot be used" in e.value for e in at.error)


CROPWARP = "pages/4_Crop_warp_SPP.py"
ATTRIBUTIONS = "pages/5_Attributions.py"
FEATURE_MAPS = "pages/1_Feature_maps.py"


def test_crop_warp_page_views_agreement_multiscale_and_sweep():
    at = start().switch_page(CROPWARP).run()
    no_exception(at)
    assert len(at.get("image")) == 3 and len(at.get("plotly_chart")) == 3 + 1  # three top-5s, the shipped bench
    assert any("keeps 51% of the image" in c for c in image_captions(at))  # what the crop keeps
    assert at.success or at.warning  # agreement is stated either way
    at.checkbox(key="cw_multi").check().run()
    no_exception(at)
    assert len(at.get("plotly_chart")) == 4 + 1  # the multi-scale column
    at.button(key="sweep_run").click().run()
    no_exception(at)
    assert any("against input size" in c.proto.spec for c in at.get("plotly_chart"))
    assert any(d.proto.label == "Download the predictions (CSV)" for d in at.get("download_button"))
    # The sweep is kept for the server: another student on the same photo sees it at once, with no button to press.
    other = start().switch_page(CROPWARP).run()
    no_exception(other)
    assert any("against input size" in c.proto.spec for c in other.get("plotly_chart"))
    assert not [b for b in other.button if b.label == "Run the scale sweep"]


@pytest.mark.parametrize(
    ("model_name", "file"), [(None, "view_accuracy_spp.json"), ("efficientnet_lite0", "view_accuracy.json")]
)
def test_crop_warp_page_shows_the_shipped_views_bench(model_name, file):
    """The shipped bench of the sidebar's network comes first: the SPP-net's by default, Lite0's when asked for."""
    import json

    shipped = json.loads((ROOT / "assets" / file).read_text())
    at = start(model_name).switch_page(CROPWARP).run()
    no_exception(at)
    table = next(d.value for d in at.dataframe if "view" in d.value.columns)
    assert list(table["view"]) == ["Centre crop", "Warp", "Full image (SPP)", "SPP, multi-scale"]
    assert list(table["top-1"]) == [f"{shipped['views'][v]['top1']:.1%}" for v in ("crop", "warp", "full", "multi")]
    text = " ".join(m.value for m in at.markdown)
    assert f"Over {shipped['n']} ImageNet photos this network's top-1 accuracy is" in text
    assert "McNemar p" in text and any(f"Shipped with the app: {shipped['model']}," in c.value for c in at.caption)
    # The caption says how the shipped file was made: its command, date and commit, from the file itself.
    made = shipped["provenance"]
    assert any(f"Made by `{made['command']}` on {made['date']}" in c.value for c in at.caption)
    assert any(d.proto.label == "Download these results (JSON)" for d in at.get("download_button"))


def test_the_spp_model_on_every_page_says_what_its_classifier_reads():
    """A fresh session opens on efficientnet_lite0_spp (the default) and keeps it through every page: its
    64,000-number vector, its four levels, the shipped side-by-side rows of both heads, the per-level figures."""
    import json

    one = json.loads((ROOT / "assets" / "view_accuracy.json").read_text())
    four = json.loads((ROOT / "assets" / "view_accuracy_spp.json").read_text())
    at = start()
    assert at.sidebar.selectbox(key="model_name").value == "efficientnet_lite0_spp"
    assert at.sidebar.selectbox(key="model_name").options[:2] == [
        "SPP-net: Lite0 conv layers + {6,3,2,1} head, distilled from Lite0 (default)",
        "EfficientNet-Lite0 (ImageNet; global average pooling: a one-level pyramid)",
    ]
    assert any("classifier reads the {6,3,2,1} pyramid" in i.value and "menu opens on the SPP-net" in i.value
               for i in at.info)  # fmt: skip
    for page in PAGES:
        at.switch_page(page).run()
        no_exception(at)
    at.switch_page(FEATURE_MAPS).run()
    assert metrics(at)["SPP output length"] == "64,000"
    assert any("reads the {6,3,2,1} pyramid (max pooling): 1,280 channels x 50 bins" in i.value for i in at.info)
    at.switch_page(CROPWARP).run()
    table = next(d.value for d in at.dataframe if "efficientnet_lite0_spp top-1" in d.value.columns)
    assert list(table["efficientnet_lite0 top-1"]) == [f"{one['views'][v]['top1']:.1%}" for v in VIEW_KEYS]
    assert list(table["efficientnet_lite0_spp top-1"]) == [f"{four['views'][v]['top1']:.1%}" for v in VIEW_KEYS]
    text = " ".join(m.value for m in at.markdown)
    assert f"efficientnet_lite0_spp, full image ({four['views']['full']['top1']:.1%})" in text
    at.switch_page(PYRAMID).run()
    assert any("efficientnet_lite0_spp's classifier reads these four levels (max pooling)" in m.value
               for m in at.markdown)  # fmt: skip
    text = " ".join(m.value for m in open_tab(at, "Position: the bag-of-words test").markdown)
    assert "the top-1 class survives in" in text and "under efficientnet_lite0_spp" in text
    assert "**Over 500 ImageNet photos** (efficientnet_lite0_spp, shipped with the app)" in text  # its curves first
    at.switch_page(ATTRIBUTIONS).run()
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("logit lost" in s for s in specs) and any("mean over 500 photos" in s for s in specs)


VIEW_KEYS = ("crop", "warp", "full", "multi")


def test_a_session_on_the_default_network_holds_one_lite0_and_the_head(fresh_models):
    """The SPP-net reads Lite0's conv layers and fc (the same tensors): a fresh server with one session on it holds
    Lite0's bytes and the head's, the head's size read off its file (float32 in memory), not a second Lite0."""
    import itertools
    import math

    from safetensors import safe_open

    from spp_viz.registry import PYRAMID_MODELS
    from ui.cache import loaded_models

    no_exception(start().switch_page(FEATURE_MAPS).run())
    _, models = loaded_models()
    assert sorted(m.name for m in models) == ["efficientnet_lite0", "efficientnet_lite0_spp"]

    def held(*ms) -> int:  # bytes of the distinct tensors' storage
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                    for m in ms for t in itertools.chain(m.parameters(), m.buffers())}  # fmt: skip
        return sum(storages.values())

    with safe_open(str(PYRAMID_MODELS["efficientnet_lite0_spp"].file), "pt") as f:
        head = 4 * sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (not a dict)
    lite0 = next(m for m in models if m.name == "efficientnet_lite0")
    assert head > 40e6 and held(*models) - held(lite0) <= head + 1024  # 1 KB: the head's own normalisation buffers


def test_crop_warp_page_measures_the_gallery_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SPP_VIZ_SERVER_PATHS", "1")
    from badfiles import photo, save

    (tmp_path / "tench").mkdir()
    for i in range(3):
        (tmp_path / "tench" / f"p{i}.png").write_bytes(save(photo(240, 200, seed=i), "PNG"))
    (tmp_path / "n01443537_7.png").write_bytes(save(photo(200, 240, seed=7), "PNG"))  # goldfish, by WordNet id
    (tmp_path / "holiday.png").write_bytes(save(photo(200, 200, seed=8), "PNG"))  # no label
    at = start()
    at.text_input(key="gallery_folder").set_value(str(tmp_path)).run()
    at.switch_page(CROPWARP).run()
    no_exception(at)
    assert any("5 image files" in m.value and "4 with a label" in m.value for m in at.markdown)
    assert any("1 file(s) without a readable label" in e.label for e in at.expander)
    at.button(key="cw_folder_run").click().run()
    no_exception(at)
    assert any("Over 4 of your photos" in m.value for m in at.markdown)
    tables = [d.value for d in at.dataframe if list(d.value.columns[:3]) == ["view", "top-1", "top-5"]]
    assert len(tables) == 2  # the shipped run and this folder's (beside the two heads' side-by-side table)


def test_feature_maps_before_and_after_relu6():
    at = start().switch_page("pages/1_Feature_maps.py").run()
    no_exception(at)
    assert any("before ReLU6" in c.value for c in at.caption)
    assert any("(before ReLU6)" in c.proto.spec for c in at.get("plotly_chart"))
    at.toggle(key="fm_clipped").set_value(True).run()
    no_exception(at)
    assert any("values stop at 6" in c.value for c in at.caption)
    assert any("(after ReLU6): max 6.000" in c.proto.spec for c in at.get("plotly_chart"))


def test_pyramid_page_bag_of_words_test():
    import json

    at = start().switch_page("pages/2_Pyramid_pooling.py").run()
    no_exception(at)
    assert "With 4x4 tiles shuffled" not in " ".join(m.value for m in at.markdown)  # its tab is closed: not run
    open_tab(at, "Position: the bag-of-words test")
    no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    assert "position is ignored by the coarse level and kept by the fine ones" in text
    assert "With 4x4 tiles shuffled, the 1x1 level" in text
    shipped = json.loads((ROOT / "assets" / "bag_of_words.json").read_text())
    assert f"Over {shipped['n']} ImageNet photos" in text and "2x2 tiles: mean cosine" in text
    at.select_slider(key="bow_k").set_value(8).run()
    no_exception(at)
    assert "With 8x8 tiles shuffled" in " ".join(m.value for m in at.markdown)
    assert any("8x8 tiles shuffled (seed 0)" in c for c in image_captions(at))
    # A student looks at another tab and comes back: the tiles they chose are still chosen.
    open_tab(at, "Winner map")
    assert not any("tiles shuffled" in c for c in image_captions(at))
    open_tab(at, "Position: the bag-of-words test")
    assert at.select_slider(key="bow_k").value == 8
    assert any("8x8 tiles shuffled (seed 0)" in c for c in image_captions(at))


def test_attributions_page_gradcam_levels_and_slow_warning():
    at = start(model_name="zf5").switch_page(ATTRIBUTIONS).run()
    no_exception(at)
    assert len(at.get("image")) == 6  # three views, three GradCAM overlays
    assert any("s, 2 passes" in c for c in image_captions(at))
    assert any("logit lost" in c.proto.spec for c in at.get("plotly_chart"))  # ZF-5 reads four levels
    at.multiselect(key="attr_methods").set_value(["gradcam", "occlusion"]).run()
    no_exception(at)
    assert any("Occlusion is slow here" in w.value for w in at.warning)
    assert any(b.label == "Run Occlusion" for b in at.button)


@pytest.mark.release  # 15 s of Integrated Gradients; GradCAM and Occlusion stay in the default tier
def test_attributions_page_runs_integrated_gradients_after_the_warning():
    at = start(model_name="zf5").switch_page(ATTRIBUTIONS).run()
    at.multiselect(key="attr_methods").set_value(["integrated_gradients"]).run()
    no_exception(at)
    if any(b.label == "Run Integrated Gradients" for b in at.button):
        at.button(key="run-integrated_gradients").click().run()
        no_exception(at)
    assert len(at.get("image")) == 6
    assert any("24 passes" in c for c in image_captions(at))


def test_attributions_page_single_level_model_explains():
    at = start(model_name="efficientnet_lite0").switch_page(ATTRIBUTIONS).run()
    no_exception(at)
    assert any("reads one pyramid level" in i.value for i in at.info)


DETECTION = "pages/6_Detection.py"


def test_detection_page_spp_then_rcnn_on_few_windows():
    at = start().switch_page(DETECTION).run()
    at.number_input(key="det_windows").set_value(100).run()
    no_exception(at)
    assert any("ImageNet classifier applied to each window" in c.value for c in at.caption)
    assert any("270x" in i.value for i in at.info)  # the paper's numbers, before R-CNN has run
    at.slider(key="det_rcnn_n").set_value(8).run()
    at.button(key="det_rcnn_run").click().run()
    no_exception(at)
    m = metrics(at)
    assert m["conv speed-up"].endswith("x") and m["conv + pooling/fc speed-up"].endswith("x")
    assert any("R-CNN ran on 8 of 100 windows" in c.value for c in at.caption)
    at.toggle(key="det_show").set_value(True).run()
    no_exception(at)


def test_detection_page_sliding_windows_and_bad_settings():
    at = start().switch_page(DETECTION).run()
    at.selectbox(key="det_mode").set_value("sliding").run()
    at.number_input(key="det_windows").set_value(30).run()
    no_exception(at)
    at.multiselect(key="det_scales").set_value([]).run()
    no_exception(at)
    assert any("at least one scale" in e.value for e in at.error)


def test_detection_page_trains_tests_and_reloads_a_detector():
    at = start().switch_page(DETECTION).run()
    at.number_input(key="det_windows").set_value(30).run()
    at.number_input(key="det_train_n").set_value(4).run()
    at.number_input(key="det_test_n").set_value(2).run()
    at.number_input(key="det_lab_windows").set_value(20).run()
    at.selectbox(key="det_lab_scale").set_value(480).run()
    no_exception(at)
    at.button(key="det_train").click().run()
    no_exception(at)
    table = at.dataframe[-1].value
    assert list(table["mode"]) == ["spp", "rcnn"]
    assert list(table["paper mAP"]) == ["58.0", "58.5"]
    text = " ".join(m.value for m in at.markdown)
    assert "box regression:" in text and "SPP-net against R-CNN:" in text
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("recall" in c and "precision" in c for c in charts)
    assert any("test_0000" in c.value and "objects (dashed)" in c.value for c in at.caption)
    # The detector saved from this run, uploaded again, gives the same mAP on the same test images.
    from spp_viz.detection.detector import DetectorConfig
    from ui.jobs import finished_result
    from ui.session import ModelChoice

    # The page's result, finished_result for every session under what it depends on (the conv layers, data, sizes, rows,
    # settings): for the default SPP-net, the Lite0 conv layers it shares, so the SPP-net and Lite0 share detectors.
    settings = ("synthetic", (4, 2), ("spp", "rcnn"), DetectorConfig(windows=20, scales=(480,)))
    report = finished_result(("detection-lab", ModelChoice("efficientnet_lite0", "cpu"), *settings))
    assert report is not None and set(report.modes) == {"spp", "rcnn"}
    at.file_uploader(key="det_up").upload("det.safetensors", report.modes["spp"].detector.to_bytes(), "x").run()
    no_exception(at)
    assert any(f"mAP {report.modes['spp'].map:.1%}" in s.value for s in at.success)
    at.file_uploader(key="det_up").upload("bad.safetensors", b"not a detector", "x").run()
    no_exception(at)
    assert any("cannot be used here" in e.value for e in at.error)


LAB = "pages/7_SPP_Lab.py"
EXPERIMENTS = "pages/8_Lab_experiments.py"


def test_lab_trains_saves_and_every_page_can_use_the_model():
    at = start().switch_page(LAB).run()
    no_exception(at)
    at.selectbox(key="lab_regime-synthetic").set_value("single-size").run()
    at.slider(key="lab_epochs").set_value(2).run()
    at.select_slider(key="lab_count").set_value(40).run()
    at.button(key="lab_train").click().run()
    no_exception(at)
    assert any("Saved as" in s.value for s in at.success)
    # Early stopping (patience 4 by default) had 2 epochs to choose from: it kept the better one and said so.
    history = at.session_state["ui.heavy.lab_run"].history  # this session's last run (ui.heavy.last_lab_training)
    best = 1 + max(range(len(history)), key=lambda i: (history[i].val_accuracy, -i))
    assert any(f"Early stopping kept epoch {best}" in c.value and "ran every epoch" in c.value for c in at.caption)
    assert set(metrics(at)) == {"test accuracy, crop view", "test accuracy, warp view", "test accuracy, full view"}
    # Once training is over: the curves once (the live chart gives way to the result's), and no Stop button.
    assert len(at.get("plotly_chart")) == 1
    assert not [b for b in at.button if b.label == "Stop training"]
    # This session's sidebar offers the model (another session's does not); pages run with it, its class names too.
    (own,) = at.session_state["ui.heavy.lab_own"]
    assert f"Lab: {Path(own).stem}" not in start().selectbox(key="model_name").options
    at2 = at
    at2.session_state["model_name"] = f"lab:{own}"
    for page in ("pages/1_Feature_maps.py", ATTRIBUTIONS):
        at2.switch_page(page).run()
        no_exception(at2)
    assert any("logit lost" in c.proto.spec for c in at2.get("plotly_chart"))  # {4,2,1}: the level split


def test_lab_experiments_page_shows_shipped_results_and_runs_a_small_comparison():
    at = start().switch_page(EXPERIMENTS).run()
    no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Full-image SPP" in text and ("matches" in text)
    assert len(at.dataframe) >= 2  # our results and the paper's
    at.slider(key="exp_epochs").set_value(2).run()
    at.select_slider(key="exp_count").set_value(40).run()
    at.slider(key="exp_seeds").set_value(2).run()
    at.button(key="exp_run").click().run()
    no_exception(at)
    assert any("Run here:" in c.value and "10 networks" in c.value for c in at.caption)
    ours = [d.value for d in at.dataframe if "configuration" in d.value.columns]
    assert len(ours) == 2  # the shipped comparison and this run
    cells = list(ours[1]["full view"])
    assert cells[0].startswith("n/a: no SPP") and all(" ± " in c for c in cells[2:])
    assert any("over 2 seed(s)" in c.value for c in at.caption)
    verdicts = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert len(verdicts) >= 8 and all("over 2 seeds" in v for v in verdicts[-4:])
    # How much less this run decides than the shipped one, from both runs' numbers.
    assert any(i.value.startswith("This run's networks are not converged") for i in at.info)


@pytest.mark.parametrize("page", PAGES)
def test_every_bad_file_on_every_page_gives_a_message(page):
    """The bad-file corpus through the real uploader, then each page: a clear message, never a traceback."""
    for name, data in corpus().items():
        if not name.endswith("!"):
            continue
        at = upload(start(), f"{name.rstrip('!')}.jpg", data)
        at.switch_page(page).run()
        no_exception(at)
        if "Lab" not in page:  # the Lab pages do not use the photo
            assert any("This image cannot be used" in e.value for e in at.error), (page, name)
