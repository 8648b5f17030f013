"""Reading and checking any image a student uploads (EXIF, modes, bombs, sizes), the shipped sample photos, tensors."""

from __future__ import annotations

import functools
import io
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .i18n import N_, _
from .settings import SAMPLES_DIR

if TYPE_CHECKING:  # torch is imported where a tensor is made: decoding a photo needs only Pillow and NumPy
    import torch

MAX_SIDE = 2048  # larger photos are shrunk on reading: conv5 of a 2048 image already has 64 cells a side
MAX_PIXELS = 100_000_000  # refuse before decoding: 100 MP is far past any phone photo
MIN_SIDE = 16  # below this the picture holds nothing a network trained on 224 could see

LIMIT_MP = MAX_PIXELS // 1_000_000  # as the messages write it


class ImageError(ValueError):
    """An image that cannot be used; the message is written for a student."""


def damaged(label: str, e: Exception) -> str:
    return _("{file} is damaged or truncated and cannot be decoded ({why})").format(
        file=label, why=f"{type(e).__name__}: {e}"
    )


def _open(data: bytes | str | Path, name: str | None) -> tuple[Image.Image, str]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise ImageError(_("no image file at {path}").format(path=path))
        data, label = path.read_bytes(), path.name
    else:
        label = name or _("the uploaded file")
    if not data:
        raise ImageError(_("{file} is empty (0 bytes)").format(file=label))
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 MP on; the caller checks the header's size against MAX_PIXELS itself, with a
            # message that states that limit. Pillow's own error (from 179 MP) is still caught below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageError(
            _("{file} is not an image that Pillow can read (JPEG, PNG, GIF, WebP, BMP, TIFF ...)").format(file=label)
        ) from e
    except Image.DecompressionBombError as e:
        raise ImageError(
            _("{file} claims too many pixels to decode safely (the limit is {limit} MP)").format(
                file=label, limit=LIMIT_MP
            )
        ) from e
    except Exception as e:  # a file cut inside its header fails in the format's parser: OSError, SyntaxError, ...
        raise ImageError(damaged(label, e)) from e
    return img, label


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# At most one full-size decode per core at once: a class uploading together waits here instead of holding ten
# full-size images in memory at the same moment.
_DECODES = threading.BoundedSemaphore(cores())


def fitted(w: int, h: int, max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so that the longer side is at most ``max_side``, keeping the aspect ratio."""
    if max(w, h) <= max_side:
        return w, h
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def load_image(
    data: bytes | str | Path, max_side: int = MAX_SIDE, min_side: int = MIN_SIDE, name: str | None = None
) -> Image.Image:
    """Read an image as RGB, ready for the network.

    Applies the EXIF orientation; converts grayscale, palette, RGBA/LA (composited over white), CMYK and 16-bit
    images to 8-bit RGB; takes the first frame of an animation; shrinks images whose longer side exceeds
    ``max_side``, recording the original size in ``img.info["downsized_from"]`` as (width, height). ``name``
    labels bytes in error messages (e.g. the uploaded file's name).

    Memory: the size is read from the header before anything is decoded; a large image is shrunk in the mode it was
    decoded in (by bands where that mode cannot be shrunk directly) before any conversion, so the peak is the
    decoded image (at most 4 bytes a pixel) plus a few MB, whatever the format. At most one decode per core runs.

    Raises:
        ImageError: for empty, truncated or non-image data, absurd sizes, or images too small to classify.
    """
    img, label = _open(data, name)
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(
            _("{file} is {w} x {h} pixels ({mp} MP); the limit is {limit} MP").format(
                file=label, w=w, h=h, mp=f"{w * h / 1e6:.0f}", limit=LIMIT_MP
            )
        )
    if min(w, h) < min_side:
        raise ImageError(
            _("{file} is {w} x {h} pixels; each side needs at least {least} pixels").format(
                file=label, w=w, h=h, least=min_side
            )
        )
    target = fitted(w, h, max_side)
    if min(target) < min_side:
        raise ImageError(
            _(
                "{file} is {w} x {h} pixels: shrunk to at most {most} pixels a side it would be {tw} x {th}, too "
                "thin to classify (at least {least} pixels a side)"
            ).format(file=label, w=w, h=h, most=max_side, tw=target[0], th=target[1], least=min_side)
        )
    try:
        with _DECODES:
            img = _decoded(img, target)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(
            _("{file} decodes to too many pixels (the limit is {limit} MP)").format(file=label, limit=LIMIT_MP)
        ) from e
    except MemoryError as e:
        raise ImageError(
            _("{file} is too large to decode on this server now ({w} x {h} pixels)").format(file=label, w=w, h=h)
        ) from e
    except Exception as e:  # Pillow's decoders fail on damaged data in many ways; each means "cannot be used"
        raise ImageError(damaged(label, e)) from e
    if target != (w, h):
        img.info["downsized_from"] = (w, h)
    return img


def _decoded(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """``img`` decoded as 8-bit RGB of at most ``target`` (its size before the EXIF orientation)."""
    if target == img.size:  # no shrink: decoded, turned upright and converted, as it always was
        img.load()
        return _to_rgb(ImageOps.exif_transpose(img))
    if img.format == "JPEG":
        img.draft("RGB", target)  # decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself, still at least ``target``
    img.load()
    orientation = img.getexif().get(ORIENTATION, 1)
    top, span = _value_range(img)  # of the whole image: the shrink averages its extremes away
    factor = min(img.width // target[0], img.height // target[1])
    small = _reduced(img, factor) if factor > 1 else _workable(img)
    if small is not img:
        img.close()  # frees the full-size pixels now: what follows works on the small image only
    small = small.resize(target, Image.Resampling.LANCZOS)
    if small.mode in PREMULTIPLIED.values():
        small = small.convert({v: k for k, v in PREMULTIPLIED.items()}[small.mode])
    if orientation in TRANSPOSE:
        small = small.transpose(TRANSPOSE[orientation])
    return _to_rgb(small, top, span)


ORIENTATION = 0x0112  # EXIF's orientation tag
TRANSPOSE = {  # what ImageOps.exif_transpose does for each orientation
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # fmt: skip
# Alpha is averaged premultiplied, so a transparent pixel's hidden colour does not bleed into its neighbours.
PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
REDUCIBLE = {"L", "RGB", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "RGBa", "La"}  # modes Image.reduce takes
BAND_BYTES = 4 * 2**20  # a band converted at a time, for modes Image.reduce does not take


def _work_mode(img: Image.Image) -> str:
    """The mode a shrink works in: 16-bit as 32-bit integers, palettes as colours, alpha premultiplied."""
    mode = img.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
    elif mode == "PA":
        mode = "RGBA"
    elif mode == "1":
        mode = "L"
    elif mode.startswith("I;16"):
        mode = "I"
    return PREMULTIPLIED.get(mode, mode)


def _workable(img: Image.Image) -> Image.Image:
    mode = _work_mode(img)
    if mode == img.mode:
        return img
    if mode in PREMULTIPLIED.values() and img.mode not in PREMULTIPLIED:
        return img.convert("RGBA").convert(mode)
    return img.convert(mode)


def _reduced(img: Image.Image, factor: int) -> Image.Image:
    """``img.reduce(factor)`` (a box average), in the work mode, never holding a second full-size image: a mode
    Image.reduce does not take is converted and reduced one band of rows at a time."""
    mode = _work_mode(img)
    if mode == img.mode and mode in REDUCIBLE:
        return img.reduce(factor)
    rows = max(factor, BAND_BYTES // (4 * img.width) // factor * factor)  # whole blocks of ``factor`` rows a band
    out = Image.new(mode, (-(-img.width // factor), -(-img.height // factor)))
    for top in range(0, img.height, rows):
        band = _workable(img.crop((0, top, img.width, min(img.height, top + rows))))
        out.paste(band.reduce(factor), (0, top // factor))
    return out


def _value_range(img: Image.Image) -> tuple[float | None, tuple[float, float] | None]:
    """(the top a 16- or 32-bit grey image is scaled from, the (low, high) a float image is stretched over), read
    with ``getextrema`` (no copy of the pixels); None for 8-bit modes."""
    if img.mode.startswith("I;16"):
        return 65535.0, None
    if img.mode == "I":
        return (65535.0 if img.getextrema()[1] > 255 else 255.0), None
    if img.mode == "F":
        lo, hi = img.getextrema()
        return None, (float(lo), float(hi))
    return None, None


def _to_rgb(img: Image.Image, top: float | None = None, span: tuple[float, float] | None = None) -> Image.Image:
    """8-bit RGB from any mode Pillow decodes; ``top`` and ``span`` as ``_value_range`` gives them for the image
    this one was shrunk from (None: read from this one)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale the used range to 0..255 instead of clipping everything to white.
        top = top if top is not None else _value_range(img)[0]
        arr = np.asarray(img, dtype=np.float32)
        return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        lo, hi = span if span is not None else _value_range(img)[1]
        arr = np.asarray(img, dtype=np.float32)
        arr = np.clip((arr - lo) / (hi - lo) * 255.0, 0, 255) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def resize_short_side(img: Image.Image, short_side: int) -> Image.Image:
    """Resize so that min(w, h) = short_side, keeping the aspect ratio (the paper's full-image view)."""
    if short_side < 1:
        raise ValueError(f"short side must be >= 1, got {short_side}")
    w, h = img.size
    scale = short_side / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if size == img.size else img.resize(size, Image.Resampling.BILINEAR)


def to_tensor(img: Image.Image, device: torch.device | str | None = None) -> torch.Tensor:
    """RGB PIL image -> Tensor[1, 3, H, W] in [0, 1]."""
    import torch

    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)  # (H, W, 3) -> (1, 3, H, W)
    return t.to(device=device, dtype=torch.float32).div_(255.0)


# The samples' titles (assets/samples/samples.json), marked for the catalogs: a page shows ``_(sample.title)``.
SAMPLE_TITLES = (
    N_("Chelsea the cat"), N_("Coffee cup"), N_("Falcon 9 launch (DSCOVR)"), N_("Astronaut Eileen Collins"),
)  # fmt: skip


@dataclass(frozen=True)
class SamplePhoto:
    """A sample photo shipped in assets/samples, with what it shows and its licence."""

    file: str
    title: str
    classes: tuple[int, ...]  # ImageNet class indices that correctly describe it (empty: none fits)
    credit: str
    licence: str

    @property
    def path(self) -> Path:
        return SAMPLES_DIR / self.file


def samples() -> list[SamplePhoto]:
    """The sample images listed in assets/samples/samples.json."""
    return list(_samples())


@functools.cache
def _samples() -> tuple[SamplePhoto, ...]:
    """Read once per process: the sidebar asks on every click of every student."""
    entries = json.loads((SAMPLES_DIR / "samples.json").read_text())
    return tuple(SamplePhoto(**{**e, "classes": tuple(e["classes"])}) for e in entries)


@functools.cache
def sample_bytes(file: str) -> bytes:
    """A sample photo's bytes, read once per process."""
    return (SAMPLES_DIR / file).read_bytes()
