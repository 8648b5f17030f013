"""Pretrained weights of a network by name: where they are, how large, and a download's progress and failure, all
without a network (the download is a stand-in that writes a file in steps)."""

from __future__ import annotations

import threading
import time

import pytest

from spp_viz.pretrained import Source, fetch, source
from spp_viz.weights import WeightsError


def test_progress_counts_the_bytes_as_they_land(tmp_path):
    seen: list[tuple[int, int | None]] = []
    step = threading.Event()

    def download() -> None:  # the library's download, as torch hub's: a temporary file that grows, then renamed
        part = tmp_path / "checkpoints" / "tmp123.partial"
        part.parent.mkdir()
        with part.open("wb") as f:
            for _ in range(4):
                f.write(b"x" * 1000)
                f.flush()
                time.sleep(0.6)
        part.rename(part.with_name("resnet.pth"))
        step.set()

    fetch(download, tmp_path, 4000, lambda got, total: seen.append((got, total)))
    assert step.is_set() and seen[-1] == (4000, 4000)
    got = [g for g, _ in seen]
    assert got == sorted(got) and 0 < got[1] < 4000  # it grew while the download ran: the bar moved


def test_a_failed_download_raises_with_the_library_reason(tmp_path):
    def download() -> None:
        raise OSError("Name or service not known")

    with pytest.raises(WeightsError, match="the download failed .OSError: Name or service not known.; is this"):
        fetch(download, tmp_path, 100, None)


def test_sources_offline(monkeypatch, tmp_path):
    """torchvision's size comes from its weights' metadata before any byte arrives; a file already in torch hub's
    cache is "cached" with its own size; Lite1 is a pip package on this disk."""
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    where = source("torchvision", "resnet18")
    meta_mb = ResNet18_Weights.IMAGENET1K_V1.meta["_file_size"]  # torchvision's own record of the file's size
    assert where.kind == "download" and where.size == round(meta_mb * 1e6) and where.url.endswith("f37072fd.pth")
    assert f"a download of {meta_mb:.1f} MB" in where.describe()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"x" * 123)
    file = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert source("torchvision", "resnet18") == Source("cached", 123, str(file.parent), where.url, file=str(file))
    lite1 = source("timm", "tf_efficientnet_lite1")
    assert lite1.kind == "package" and lite1.size > 20e6 and "no download" in lite1.describe()
