"""Reading and checking any image a student uploads (EXIF, modes, bombs, sizes), the shipped sample photos, tensors."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .settings import SAMPLES_DIR

MAX_SIDE = 2048  # larger photos are shrunk on reading: conv5 of a 2048 image already has 64 cells a side
MAX_PIXELS = 100_000_000  # refuse before decoding: 100 MP is far past any phone photo
MIN_SIDE = 16  # below this the picture holds nothing a network trained on 224 could see


class ImageError(ValueError):
    """An image that cannot be used; the message is written for a student."""


def _open(data: bytes | str | Path, name: str | None) -> tuple[Image.Image, str]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise ImageError(f"no image file at {path}")
        data, label = path.read_bytes(), path.name
    else:
        label = name or "the uploaded file"
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageError(f"{label} is not an image that Pillow can read (JPEG, PNG, GIF, WebP, BMP, TIFF ...)") from e
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageError(
            f"{label} claims too many pixels to decode safely (the limit is {MAX_PIXELS // 1_000_000} MP)"
        ) from e
    except Exception as e:  # a file cut inside its header fails in the format's parser: OSError, SyntaxError, ...
        raise ImageError(f"{label} is damaged or truncated and cannot be decoded ({type(e).__name__}: {e})") from e
    return img, label


def load_image(
    data: bytes | str | Path, max_side: int = MAX_SIDE, min_side: int = MIN_SIDE, name: str | None = None
) -> Image.Image:
    """Read an image as RGB, ready for the network.

    Applies the EXIF orientation; converts grayscale, palette, RGBA/LA (composited over white), CMYK and 16-bit
    images to 8-bit RGB; takes the first frame of an animation; shrinks images whose longer side exceeds
    ``max_side``, recording the original size in ``img.info["downsized_from"]`` as (width, height). ``name``
    labels bytes in error messages (e.g. the uploaded file's name).

    Raises:
        ImageError: for empty, truncated or non-image data, absurd sizes, or images too small to classify.
    """
    img, label = _open(data, name)
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"{label} is {w} x {h} pixels ({w * h / 1e6:.0f} MP); the limit is {MAX_PIXELS // 1_000_000} MP"
        )
    if min(w, h) < min_side:
        raise ImageError(f"{label} is {w} x {h} pixels; each side needs at least {min_side} pixels")
    try:
        if img.format == "JPEG" and max(w, h) > max_side:
            # Decode at a reduced scale directly (much faster and lighter for huge JPEGs).
            img.draft("RGB", (max_side, max_side))
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label} decodes to too many pixels (the limit is {MAX_PIXELS // 1_000_000} MP)") from e
    except Exception as e:  # Pillow's decoders fail on damaged data in many ways; each means "cannot be used"
        raise ImageError(f"{label} is damaged or truncated and cannot be decoded ({type(e).__name__}: {e})") from e
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if min(new) < min_side:
            raise ImageError(
                f"{label} is {w} x {h} pixels: shrunk to at most {max_side} pixels a side it would be "
                f"{new[0]} x {new[1]}, too thin to classify (at least {min_side} pixels a side)"
            )
        img = img.resize(new, Image.Resampling.LANCZOS)
    if img.size != (w, h):
        img.info["downsized_from"] = (w, h)
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode Pillow decodes."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale the used range to 0..255 instead of clipping everything to white.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
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
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)  # (H, W, 3) -> (1, 3, H, W)
    return t.to(device=device, dtype=torch.float32).div_(255.0)


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
    entries = json.loads((SAMPLES_DIR / "samples.json").read_text())
    return [SamplePhoto(**{**e, "classes": tuple(e["classes"])}) for e in entries]
