"""A shared server: paths on its disk are the teacher's, students bring their own files as uploads that stay in
their session (weights, a gallery, a .zip of class folders), and a session keeps only so much."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
import torch
from badfiles import photo, save
from conftest import ROOT, plain
from streamlit.testing.v1 import AppTest

import ui.session as session
from spp_viz.lab.data import read_class_zip
from spp_viz.models import load_model
from spp_viz.weights import UploadedWeights, WeightsError, read_state_dict

TIMEOUT = 300
PATH_BOXES = {"weights_efficientnet_lite0", "gallery_folder"}


pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def png(seed: int) -> bytes:
    return save(photo(96, 80, seed=seed), "PNG")


def test_zip_of_class_folders_inside_one_enclosing_folder():
    data = make_zip(
        {
            "photos/cat/1.png": png(1),
            "photos/cat/sub/2.png": png(2),
            "photos/dog/3.png": png(3),
            "photos/dog/notes.txt": b"hello",
            "photos/readme.png": png(4),
            "__MACOSX/photos/cat/._1.png": b"junk",
        }
    )
    classes, skipped = read_class_zip(data)
    assert {k: sorted(i.name for i in v) for k, v in classes.items()} == {
        "cat": ["1.png", "sub/2.png"],
        "dog": ["3.png"],
    }
    assert classes["dog"][0].read() == png(3)
    assert sorted(skipped) == [
        ("photos/dog/notes.txt", "not an image file"),
        ("photos/readme.png", "not inside a class folder"),
    ]


@pytest.mark.parametrize("name", ["../evil/x.png", "cat/../../x.png", "/etc/cat/x.png", "C:/cat/x.png", "\\cat\\x.png"])
def test_zip_paths_that_leave_the_archive_are_refused(name):
    with pytest.raises(ValueError, match="outside the archive"):
        read_class_zip(make_zip({"cat/1.png": png(1), name: png(2)}))


def test_zip_size_and_count_limits_and_non_zips():
    big = make_zip({"cat/1.png": png(1), "dog/2.bmp": b"\0" * 3_000_000})
    with pytest.raises(ValueError, match="more than 2 MB"):
        read_class_zip(big, max_unpacked_mb=2)
    with pytest.raises(ValueError, match="holds 3 files"):
        read_class_zip(make_zip({f"c/{i}.png": png(i) for i in range(3)}), max_files=2)
    with pytest.raises(ValueError, match="not a readable .zip"):
        read_class_zip(b"PK\x03\x04 not really")


def test_zip_whose_directory_lies_about_sizes_is_caught():
    data = bytearray(make_zip({"cat/1.bmp": b"\0" * 3_000_000, "dog/2.png": png(2)}))
    # Shrink the size recorded in the central directory, a zip bomb's trick: the member no longer checks out.
    start = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))
    data[start + 24 : start + 28] = (10).to_bytes(4, "little")
    classes, skipped = read_class_zip(bytes(data), max_unpacked_mb=2)
    assert [name for name, _ in skipped] == ["cat/1.bmp"] and "cannot be unpacked" in skipped[0][1]
    assert sum(len(i.read()) for items in classes.values() for i in items) <= 2 * 1024 * 1024


def test_zip_members_zipfile_cannot_unpack_are_skipped_and_listed():
    data = bytearray(make_zip({"cat/1.png": png(1), "dog/2.png": png(2), "dog/3.png": png(3)}))
    # Mark dog/3.png (the last entry) as packed with an unknown method (99), in its local and central headers.
    local = data.rfind(b"PK\x03\x04")
    central = data.rfind(b"PK\x01\x02")
    data[local + 8 : local + 10] = (99).to_bytes(2, "little")
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    classes, skipped = read_class_zip(bytes(data))
    assert sorted(classes) == ["cat", "dog"] and [i.name for i in classes["dog"]] == ["2.png"]
    assert skipped == [("dog/3.png", "packed with compression method 99, not one zip reads")]


def test_a_zips_skipped_files_are_told_in_each_readers_language():
    """The Lab page's reading of a zip is cached for every session: keyed on the language its reasons are in."""
    import ui.cache
    from spp_viz import i18n

    data = make_zip({"cat/1.png": png(1), "cat/notes.txt": b"not a photo"})
    english, korean = ui.cache.class_zip(data, "en")[1], ui.cache.class_zip(data, "ko")[1]
    with i18n.use("ko"):
        reason = i18n._("not an image file")
    assert english == [("cat/notes.txt", "not an image file")] and korean == [("cat/notes.txt", reason)]
    assert reason != "not an image file"


def test_uploaded_weights_load_like_the_file(tmp_path):
    from safetensors.torch import save as st_save

    reference = load_model("zf5", device="cpu")
    state = {k: v + 0.01 for k, v in reference.state_dict().items()}
    path = tmp_path / "zf5.pth"
    torch.save(state, path)
    from_file = load_model("zf5", device="cpu", weights=path)
    from_upload = load_model("zf5", device="cpu", weights=UploadedWeights("zf5.pth", path.read_bytes()))
    safetensors_upload = UploadedWeights("zf5.safetensors", st_save({k: v.contiguous() for k, v in state.items()}))
    from_safetensors = load_model("zf5", device="cpu", weights=safetensors_upload)
    x = torch.rand(1, 3, 96, 96)
    assert from_upload.pretrained
    torch.testing.assert_close(from_upload(x), from_file(x))
    torch.testing.assert_close(from_safetensors(x), from_file(x))
    with pytest.raises(WeightsError, match="could not read weights from junk.pth"):
        read_state_dict(UploadedWeights("junk.pth", b"junk"))
    with pytest.raises(WeightsError, match="do not fit"):
        load_model("alexnet", device="cpu", weights=UploadedWeights("zf5.pth", path.read_bytes()))


def test_session_uploads_are_capped_in_count_and_bytes(monkeypatch):
    monkeypatch.setattr(session.st, "session_state", {})
    for i in range(session.MAX_REMEMBERED_UPLOADS + 5):
        session.remember_upload(f"{i}.jpg", bytes([i]) * 10)
    kept = session.session_uploads()
    assert [n for n, _ in kept.values()] == [f"{i}.jpg" for i in range(5, session.MAX_REMEMBERED_UPLOADS + 5)]
    monkeypatch.setattr(session, "MAX_SESSION_UPLOAD_MB", 1)
    for i in range(3):
        session.remember_upload(f"big{i}.jpg", bytes([100 + i]) * 400_000)
    names = [n for n, _ in session.session_uploads().values()]
    assert names[-2:] == ["big1.jpg", "big2.jpg"] and "big0.jpg" not in names  # 1 MB holds two of them
    assert sum(len(d) for _, d in session.session_uploads().values()) <= 1024 * 1024


def sidebar_text_boxes(at: AppTest) -> set[str]:
    return {t.key for t in at.sidebar.text_input}


def test_no_server_path_box_by_default(monkeypatch):
    monkeypatch.delenv("SPP_VIZ_SERVER_PATHS", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="model_name").set_value("efficientnet_lite0").run()  # a zoo network: it takes a weights file
    at.sidebar.expander  # noqa: B018  (the expanders render their content in AppTest whether open or not)
    assert not sidebar_text_boxes(at) & PATH_BOXES
    assert {u.key for u in at.sidebar.get("file_uploader")} >= {"upload", "weights_upload_efficientnet_lite0"}
    at.switch_page("pages/3_Strongest_activations.py").run()
    assert "The gallery folder (sidebar)" not in at.multiselect(key="act_sources").options
    at.switch_page("pages/7_SPP_Lab.py").run()
    at.radio(key="lab_data").set_value("folder").run()
    assert not [t for t in at.text_input if t.key == "lab_folder"]
    assert any("Upload a .zip" in i.value for i in at.info)


def test_server_paths_when_the_teacher_allows_them(monkeypatch):
    monkeypatch.setenv("SPP_VIZ_SERVER_PATHS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="model_name").set_value("efficientnet_lite0").run()  # a zoo network: it takes a weights file
    assert sidebar_text_boxes(at) >= PATH_BOXES
    at.switch_page("pages/7_SPP_Lab.py").run()
    at.radio(key="lab_data").set_value("folder").run()
    assert [t for t in at.text_input if t.key == "lab_folder"]


def test_weights_uploaded_in_the_sidebar_are_used(tmp_path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="model_name").set_value("zf5").run()
    at.switch_page("pages/1_Feature_maps.py").run()
    assert any("random weights" in w.value for w in at.warning)
    buf = io.BytesIO()
    torch.save(load_model("zf5", device="cpu").state_dict(), buf)
    at2 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at2.run()
    at2.selectbox(key="model_name").set_value("zf5").run()
    at2.file_uploader(key="weights_upload_zf5").upload("mine.pth", buf.getvalue(), "application/octet-stream").run()
    at2.switch_page("pages/1_Feature_maps.py").run()
    assert not at2.exception and not any("random weights" in w.value for w in at2.warning)
    at3 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at3.run()
    at3.selectbox(key="model_name").set_value("alexnet").run()
    at3.file_uploader(key="weights_upload_alexnet").upload("mine.pth", buf.getvalue(), "application/octet-stream").run()
    assert any("do not fit AlexNet" in e.value for e in at3.error)  # in the sidebar; the previous model stays
    at3.switch_page("pages/1_Feature_maps.py").run()
    assert not at3.exception


def test_lab_fine_tunes_on_an_uploaded_zip():
    entries = {
        f"shapes/{c}/{i}.png": save(photo(80, 64, seed=10 * k + i), "PNG") for k, c in enumerate("ab") for i in range(4)
    }
    entries["shapes/a/notes.txt"] = b"not an image"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="model_name").set_value("zf5").run()
    at.switch_page("pages/7_SPP_Lab.py").run()
    at.radio(key="lab_data").set_value("folder").run()
    at.file_uploader(key="lab_zip").upload("shapes.zip", make_zip(entries), "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("a: 4 files, b: 4 files" in c.value for c in at.caption)
    assert any("1 file skipped" in e.label for e in at.expander)
    at.slider(key="lab_epochs").set_value(1).run()
    at.button(key="lab_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (path,) = at.session_state["ui.heavy.lab_own"]
    assert re.fullmatch(r"shapes-zf5-421-([\w-]*-)?[0-9a-f]{12}\.safetensors", Path(path).name), path
    assert any(f"Saved as **{Path(path).name}**" in plain(s.value) for s in at.success)
