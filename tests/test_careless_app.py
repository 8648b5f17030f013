"""A careless student meets the server's budgets in the app: each careless action gets one clear message, the page
keeps working, and builds and downloads go through the server's queue (AppTest; the browser test with a real
server is tests/test_careless_class.py, release tier)."""

from __future__ import annotations

import errno
import tomllib

import pytest
import torch
from conftest import ROOT, plain
from streamlit.testing.v1 import AppTest
from test_external_app import errors, other_network, start

from spp_viz.settings import MAX_UPLOAD_MB, downloads_dir, server_upload_mb

pytestmark = pytest.mark.usefixtures("fresh_models")


def sidebar_text(at: AppTest) -> str:
    return "\n".join(plain(e.value) for e in [*at.sidebar.markdown, *at.sidebar.caption, *at.sidebar.info])


def test_a_network_over_the_cap_is_one_message_and_the_previous_network_stays():
    at = other_network(start(), "timm:convnext_xxlarge")
    assert errors(at) == [
        "**timm:convnext_xxlarge could not be loaded.** timm:convnext_xxlarge is 3,386 MB (846.5 M parameters) in "
        "memory; this server builds networks of at most 600 MB (SPP_VIZ_MAX_MODEL_MB, which whoever starts the app "
        "can raise)"
    ]
    assert not at.exception and "Still using **SPP-net" in sidebar_text(at)
    at.switch_page("pages/1_Feature_maps.py").run()
    assert not at.exception and not errors(at)


def test_a_network_is_built_on_the_queue_once_and_a_stop_leaves_the_previous_one():
    from ui.builds import BUILD_KIND, build_stop_key
    from ui.cache import model_shelf
    from ui.jobs import server_queue
    from ui.session import ModelChoice

    at = start()
    before = server_queue().finished(BUILD_KIND)
    choice = ModelChoice("timm:resnet18", "cpu")
    # A Stop clicked while it waited (the button's callback, as the browser's click runs it): the page says so, the
    # previous network stays, and nothing is built until the student asks again.
    at.session_state["ui.jobs.stopped"] = {build_stop_key(choice)}
    other_network(at, "timm:resnet18")
    assert "Building timm:resnet18 (47 MB)** was stopped" in sidebar_text(at)
    assert "Still using **SPP-net" in sidebar_text(at) and not model_shelf().held(choice)
    at.button(key="build_again").click().run()
    assert not errors(at) and not at.exception and model_shelf().held(choice)
    assert "Loaded in" in sidebar_text(at)
    assert server_queue().finished(BUILD_KIND) == before + 1  # built by the queue's worker, once
    at.switch_page("pages/1_Feature_maps.py").run()
    assert {m.label: m.value for m in at.metric}["conv5 (H x W x C)"].endswith("x 512")
    assert server_queue().finished(BUILD_KIND) == before + 1  # held now: no second build


def test_a_download_goes_through_the_queue_into_the_cache_folder_and_the_network_uses_it(monkeypatch):
    """torchvision's download replaced by one that writes seeded weights (no test reaches the network): the file
    lands in the app's cache folder, the queue ran one download, and the network built from it is those weights."""
    import torchvision

    from ui.builds import DOWNLOAD_KIND
    from ui.jobs import server_queue

    monkeypatch.delenv("SPP_VIZ_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(downloads_dir() / "torch"))  # where the app points torch hub
    torch.manual_seed(5)
    net = torchvision.models.resnet18().eval()

    def fake_download(url, dst, hash_prefix=None, progress=True):
        assert url.endswith("resnet18-f37072fd.pth") and hash_prefix == "f37072fd"
        torch.save(net.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    before = server_queue().finished(DOWNLOAD_KIND)
    at = other_network(start(), "torchvision:resnet18", "pretrained")
    at.checkbox(key="download_torchvision:resnet18").check().run()
    assert not errors(at) and not at.exception, errors(at)
    assert server_queue().finished(DOWNLOAD_KIND) == before + 1
    file = downloads_dir() / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert file.is_file()
    from ui.cache import model_shelf

    model = next(m for k, m in model_shelf().models() if k.name == "torchvision:resnet18")
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        assert torch.allclose(model(x), net(model.normalize(x)), atol=1e-5)
    assert model.pretrained


def test_a_finished_lab_training_on_a_full_disk_is_offered_as_a_download(monkeypatch):
    from safetensors.torch import load

    import spp_viz.weights
    from spp_viz.files import DiskFull

    def full(path, write):
        raise DiskFull(errno.ENOSPC, f"the server's disk is full: {path.name} could not be saved")

    monkeypatch.setattr(spp_viz.weights, "write_atomically", full)
    at = start()
    at.switch_page("pages/7_SPP_Lab.py").run()
    at.slider(key="lab_epochs").set_value(1).run()
    at.button(key="lab_train").click().run()
    assert not at.exception
    assert len(errors(at)) == 1 and "disk is full" in errors(at)[0] and "Download it now" in errors(at)[0]
    button = next(d for d in at.get("download_button") if d.proto.label == "Download the model (.safetensors)")
    data = at.session_state["ui.heavy.lab_run"].unsaved
    state = load(data)  # the trained network's tensors, whole
    assert button is not None and any(k.startswith("features.") for k in state)


def test_a_photo_over_the_upload_limit_is_refused_by_the_server_too():
    """The browser refuses it (the uploader's own limit); a hand-made request is refused by the app, which drops its
    bytes at once and gives the student an empty uploader."""
    at = start()
    assert at.sidebar.file_uploader(key="upload").proto.max_upload_size_mb == MAX_UPLOAD_MB
    big = b"\xff\xd8" + b"\0" * (MAX_UPLOAD_MB * 2**20 + 1)
    at.sidebar.file_uploader(key="upload").upload("big.jpg", big, "image/jpeg").run()
    assert not at.exception
    said = f"**Your photo was not read:** that file is over {MAX_UPLOAD_MB} MB, the most a photo may be."
    assert errors(at) == [said]
    assert any("a sample" in c.value for c in at.sidebar.caption)
    assert at.sidebar.file_uploader(key="upload-1").value is None  # a fresh, empty uploader


def test_a_weights_file_far_larger_than_its_network_is_refused_before_it_is_kept(monkeypatch):
    """35 MB of "weights" for MobileNetV3-Small (10 MB): refused from its size, never read or kept in the session;
    a file over the cap is refused whatever the network; a good file afterwards is taken."""
    from test_external_app import state_dict_file

    name = "torchvision:mobilenet_v3_small"
    at = other_network(start(), name, "file")
    at.file_uploader(key=f"weights_upload_{name}").upload("big.pth", b"\0" * 35_000_000, "x").run()
    assert not at.exception and len(errors(at)) == 1
    assert "That file was not read:** this weights file is 35 MB, but torchvision:mobilenet_v3_small's weights are " \
        "10 MB: it holds another, larger network's weights" in errors(at)[0]
    assert "weights_upload" not in at.session_state  # nothing kept
    at.file_uploader(key=f"weights_upload_{name}-1").upload("mine.pth", state_dict_file(name), "x").run()
    assert not errors(at) and not at.exception and "Loaded in" in sidebar_text(at)


def test_the_upload_limits_hold_whatever_the_command():
    """Streamlit checks one number on the server for every upload: .streamlit/config.toml (read by `streamlit run
    app.py`) carries the largest uploader's own limit, as `spp-viz app` passes it."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == server_upload_mb()
    from spp_viz.serve import streamlit_flags

    assert f"--server.maxUploadSize={server_upload_mb()}" in streamlit_flags()


def test_the_server_panel_shows_the_budgets():
    at = start()
    assert not any("Models held" in m.value for m in at.sidebar.markdown)  # closed: nothing computed for it
    at.session_state["server_panel"] = True  # what a click on it sets
    at.run()
    panel = "\n".join(m.value for m in at.sidebar.markdown)
    assert "Models held: **" in panel and " MB** of " in panel and "Heavy-work queue:" in panel
    assert "Cache folder: **" in panel
    for variable in ("SPP_VIZ_MAX_MODEL_MB", "SPP_VIZ_MODEL_MEMORY_MB", "SPP_VIZ_CACHE_MB"):
        assert f"| `{variable}` |" in panel
