"""Generates the bad-input corpus in memory (no committed binaries): name -> bytes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR that claim width x height pixels, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0"))
        + _png_chunk(b"IEND", b"")
    )


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w: int = 320, h: int = 240, seed: int = 0) -> Image.Image:
    """A smooth random picture (compresses like a photo, unlike noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


def exif_rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    exif[0x010E] = "a description long enough to put the cut inside the header " * 12
    return exif


def exif_rotated_jpeg() -> bytes:
    """A 300 x 200 JPEG whose EXIF says "rotate 90": it must come out 200 x 300."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    return save(photo(300, 200), "JPEG", exif=exif)


def corpus() -> dict[str, bytes]:
    """name -> bytes; names ending in '!' must be refused with ImageError, the rest must load."""
    jpeg = save(photo(), "JPEG", quality=90)
    png = save(photo(), "PNG")
    frames = [photo(64, 64, seed=i) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgba = photo().convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))  # fully transparent: must come out white
    gray16 = Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16))
    return {
        "empty!": b"",
        "truncated_jpeg!": jpeg[: len(jpeg) // 3],
        # Cut inside the header (EXIF makes the header long): Pillow's open itself fails, with a bare OSError.
        "truncated_header_jpeg!": save(photo(), "JPEG", quality=90, exif=exif_rotated_exif())[:600],
        "truncated_png!": png[: len(png) // 3],
        "text_named_jpg!": b"this is a text file, not a photo\n" * 10,
        "png_claims_100000x100000!": png_header_claiming(100_000, 100_000),
        "one_pixel!": save(Image.new("RGB", (1, 1), "red"), "PNG"),
        "panorama_20000x20!": save(Image.new("RGB", (20_000, 20), "blue"), "PNG"),
        "cmyk_jpeg": save(photo().convert("CMYK"), "JPEG"),
        "png_16bit": save(gray16, "PNG"),
        "rgba_transparent": save(rgba, "PNG"),
        "palette": save(photo().convert("P"), "PNG"),
        "animated_gif": gif.getvalue(),
        "exif_rotated": exif_rotated_jpeg(),
        "grayscale": save(photo().convert("L"), "JPEG"),
        "huge_valid_jpeg": save(photo(6000, 4000), "JPEG", quality=70),
    }
