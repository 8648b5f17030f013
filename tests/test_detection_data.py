"""Detection data: the built-in scenes, and the VOC-format reader on good and broken folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from voc_files import write_voc

from spp_viz.detection.data import SCENE_CLASSES, VOCError, paste_objects, read_voc, synthetic_scenes


def test_scenes_are_deterministic_and_splits_differ():
    a, b = synthetic_scenes("train", 5, seed=3), synthetic_scenes("train", 5, seed=3)
    assert [i.digest() for i in a.images] == [i.digest() for i in b.images]
    assert all(np.array_equal(x.boxes, y.boxes) for x, y in zip(a.images, b.images, strict=True))
    test = synthetic_scenes("test", 5, seed=3)
    other = synthetic_scenes("train", 5, seed=4)
    assert not {i.digest() for i in a.images} & {i.digest() for i in test.images}
    assert [i.digest() for i in a.images] != [i.digest() for i in other.images]


def test_scenes_follow_the_spec():
    data = synthetic_scenes("train", 60, seed=0, num_classes=4)
    assert data.classes == SCENE_CLASSES[:4]
    counts = [len(i.boxes) for i in data.images]
    assert min(counts) >= 1 and max(counts) <= 5 and len(set(counts)) >= 3
    labels = np.concatenate([i.labels for i in data.images])
    assert set(labels.tolist()) == {0, 1, 2, 3}
    sizes, aspects = [], []
    for item in data.images:
        w, h = item.size
        assert item.image().size == (w, h)
        b = item.boxes
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= h).all()
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        sizes += list(np.sqrt(bw * bh) / min(w, h))
        aspects += list(bw / bh)
    # Sizes 1/10 to 1/2 of the shorter side (the geometric mean of the sides), aspect ratios 1:2 to 2:1.
    assert 0.09 <= min(sizes) < 0.2 and 0.4 < max(sizes) <= 0.52
    assert 0.45 <= min(aspects) < 0.7 and 1.5 < max(aspects) <= 2.2


def test_each_box_is_its_objects_pixel_extent():
    """On a flat background, the pixels an object changed span exactly its box."""
    for seed in range(10):
        background = Image.new("RGB", (160, 120), (128, 128, 128))
        img, boxes, _ = paste_objects(background, np.random.default_rng(seed), num_classes=5, max_objects=1)
        changed = np.nonzero((np.asarray(img) != 128).any(axis=2))
        extent = [changed[1].min(), changed[0].min(), changed[1].max() + 1, changed[0].max() + 1]
        assert extent == pytest.approx(boxes[0].tolist(), abs=1.0), seed


def test_voc_round_trip(tmp_path):
    train, test = synthetic_scenes("train", 4, seed=1), synthetic_scenes("test", 3, seed=1)
    root = write_voc(tmp_path / "voc", {"trainval": train, "test": test})
    back = read_voc(root, "trainval")
    assert back.skipped == []
    assert set(back.classes) <= set(train.classes)
    for a, b in zip(train.images, back.images, strict=True):
        assert b.name == a.name and b.size == a.size
        assert np.array_equal(b.boxes, a.boxes)
        assert [back.classes[k] for k in b.labels] == [train.classes[k] for k in a.labels]
        assert b.image().size == a.size
    # The test split is read with the training split's classes.
    t = read_voc(root, "test", classes=back.classes)
    assert t.classes == back.classes


def test_voc_difficult_flag_and_broken_files(tmp_path):
    data = synthetic_scenes("train", 6, seed=2)
    root = write_voc(tmp_path / "voc", {"train": data})
    names = [i.name for i in data.images]
    ann = root / "Annotations"
    # 0: difficult flag on its first object.
    text = (ann / f"{names[0]}.xml").read_text()
    (ann / f"{names[0]}.xml").write_text(text.replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    # 1: malformed XML.
    (ann / f"{names[1]}.xml").write_text("<annotation><object>")
    # 2: its image is missing.
    (root / "JPEGImages" / f"{names[2]}.jpg").unlink()
    # 3: a box outside the image.
    text = (ann / f"{names[3]}.xml").read_text()
    start = text.index("<xmax>") + len("<xmax>")
    (ann / f"{names[3]}.xml").write_text(text[:start] + "5000" + text[text.index("</xmax>") :])
    # 4: a coordinate that is not a number.
    text = (ann / f"{names[4]}.xml").read_text()
    start = text.index("<ymin>") + len("<ymin>")
    (ann / f"{names[4]}.xml").write_text(text[:start] + "abc" + text[text.index("</ymin>") :])
    got = read_voc(root, "train")
    assert [i.name for i in got.images] == [names[0], names[5]]
    assert bool(got.images[0].difficult[0]) and not got.images[0].difficult[1:].any()
    why = dict(got.skipped)
    assert "malformed XML" in why[names[1]]
    assert "missing" in why[names[2]]
    assert "outside" in why[names[3]] and "5000" in why[names[3]]
    assert "not a number" in why[names[4]]


def test_voc_folder_errors(tmp_path):
    with pytest.raises(VOCError, match="is missing"):
        read_voc(tmp_path, "train")
    root = write_voc(tmp_path / "voc", {"train": synthetic_scenes("train", 2, seed=0)})
    with pytest.raises(VOCError, match="test.txt is missing"):
        read_voc(root, "test")
    with pytest.raises(VOCError, match="unknown split"):
        read_voc(root, "everything")
    shutil.rmtree(root / "JPEGImages")
    (root / "JPEGImages").mkdir()
    with pytest.raises(VOCError, match="no image of the train split"):
        read_voc(root, "train")


def test_test_split_objects_of_unknown_classes_are_listed(tmp_path):
    train = synthetic_scenes("train", 3, seed=0, num_classes=3)
    test = synthetic_scenes("test", 3, seed=0, num_classes=3)
    root = write_voc(tmp_path / "voc", {"trainval": train, "test": test})
    got = read_voc(root, "test", classes=("disc",))
    assert all(set(i.labels.tolist()) <= {0} for i in got.images)
    assert any("not trained on" in why for _, why in got.skipped)
