"""A corpus of awkward and hostile inputs, generated on the fly (no committed binaries)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from helpers import dicom_bytes


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _slice(size=128, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    head = ((yy - size / 2) ** 2 / (0.4 * size) ** 2 + (xx - size / 2) ** 2 / (0.35 * size) ** 2) < 1
    return np.clip(head * 110 + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)


def corpus() -> dict[str, tuple[str, bytes]]:
    """name → (file name, bytes)."""
    rng = np.random.default_rng(0)
    gray = _slice()
    jpeg, png = _encode(Image.fromarray(gray), "JPEG"), _encode(Image.fromarray(gray), "PNG")
    frames = [Image.fromarray(_slice(seed=i)) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    photo = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).resize((256, 192))
    return {
        "empty file": ("empty.png", b""),
        "random bytes named .jpg": ("random.jpg", rng.bytes(4096)),
        "truncated JPEG": ("truncated.jpg", jpeg[: len(jpeg) // 2]),
        "truncated PNG": ("truncated.png", png[: len(png) // 2]),
        "PDF renamed .png": ("document.png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\n" * 30),
        "HTML renamed .png": ("page.png", b"<!DOCTYPE html><html><script>alert(1)</script></html>" * 20),
        "1x1 image": ("tiny.png", _encode(Image.new("L", (1, 1), 128), "PNG")),
        "3x3000 image": ("sliver.png", _encode(Image.new("L", (3000, 3), 128), "PNG")),
        "30000x30000 PNG (decompression bomb)": ("bomb.png", _png_header(30_000, 30_000)),
        "16-bit TIFF": ("sixteen.tif", _encode(Image.fromarray(gray.astype(np.uint16) * 200), "TIFF")),
        "float TIFF": ("float.tif", _encode(Image.fromarray(gray.astype(np.float32) / 3.0, mode="F"), "TIFF")),
        "CMYK JPEG": ("cmyk.jpg", _encode(Image.fromarray(gray).convert("CMYK"), "JPEG")),
        "palette PNG": ("palette.png", _encode(Image.fromarray(gray).convert("P"), "PNG")),
        "RGBA PNG": ("rgba.png", _encode(Image.fromarray(gray).convert("RGBA"), "PNG")),
        "animated GIF": ("animated.gif", gif.getvalue()),
        "all-black slice": ("black.png", _encode(Image.new("L", (256, 256), 0), "PNG")),
        "all-white slice": ("white.png", _encode(Image.new("L", (256, 256), 255), "PNG")),
        "pure noise": ("noise.png", _encode(Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)), "PNG")),
        "colour photograph": ("photo.jpg", _encode(photo, "JPEG")),
        "DICOM without pixel data": ("nopixels.dcm", dicom_bytes(None)),
        "DICOM with compressed pixel data": ("compressed.dcm", dicom_bytes(gray, compressed=True)),
        "multi-frame DICOM": ("series.dcm", dicom_bytes(np.stack([gray] * 3).astype(np.uint16) * 16)),
        "file over the upload limit": ("huge.png", png + b"\0" * (26 * 2**20)),
        "filename with separators and non-ASCII": ("..\\..\\étrange ∕ scan ☢.png", png),
    }


NORMAL = ("normal.png", _encode(Image.fromarray(_slice(seed=7)), "PNG"))
