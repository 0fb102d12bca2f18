"""Reading one image: formats, modes, bit depths, DICOM and the clear errors (brainmri.io.images)."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from brainmri.io.images import ImageLoadError, load_grayscale
from helpers import dicom_bytes, png_bytes, real_images


def gradient(width=64, height=48) -> np.ndarray:
    return np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "JPEG"])
def test_formats_give_the_same_gray(fmt):
    image = Image.fromarray(gradient())
    lossless = fmt not in ("JPEG", "WEBP")
    out = load_grayscale(encode(image, fmt, **({} if lossless else {"quality": 95})))
    assert out.shape == (48, 64) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - gradient()).max() <= (0 if lossless else 6)


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "LA", "I;16"])
def test_modes_collapse_to_one_gray(mode):
    base = Image.fromarray(gradient())
    out = load_grayscale(png_bytes(base.convert(mode)))
    assert out.shape == (48, 64)
    assert np.abs(out.astype(int) - gradient()).max() <= 2


def test_rgba_transparent_background_is_black():
    image = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    image.paste((200, 200, 200, 255), (8, 8, 24, 24))
    out = load_grayscale(png_bytes(image))
    assert out[0, 0] == 0 and out[16, 16] == 200


def test_sixteen_bit_png_is_stretched_not_clipped():
    wide = (gradient().astype(np.uint16) * 200).astype(np.uint16)  # 0..51000
    out = load_grayscale(png_bytes(Image.fromarray(wide)))
    assert out.min() == 0 and out.max() == 255
    assert np.corrcoef(out.ravel(), wide.ravel())[0, 1] > 0.999


def test_float_tiff():
    data = encode(Image.fromarray(gradient().astype(np.float32) / 7.0, mode="F"), "TIFF")
    out = load_grayscale(data)
    assert out.max() == 255 and out.min() == 0


def test_png_named_jpg_is_read_by_content(tmp_path):
    path = tmp_path / "scan.jpg"
    path.write_bytes(png_bytes(Image.fromarray(gradient())))
    assert np.array_equal(load_grayscale(path), gradient())


def test_exif_rotation_is_applied():
    image = Image.fromarray(gradient(64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = load_grayscale(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (64, 32)


def test_pil_array_bytes_and_path_agree(tmp_path):
    image = Image.fromarray(gradient())
    path = tmp_path / "a.png"
    image.save(path)
    outputs = [load_grayscale(x) for x in (image, gradient(), path.read_bytes(), path, str(path))]
    for out in outputs[1:]:
        assert np.array_equal(out, outputs[0])


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (np.random.default_rng(0).bytes(5000), "not a recognised image"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" * 20, "not a recognised image"),
        (b"<!doctype html><html><body>hello</body></html>" * 10, "not a recognised image"),
        (_png_header_only(30_000, 30_000), "too large"),
    ],
)
def test_bad_bytes_get_one_clear_message(data, message):
    with pytest.raises(ImageLoadError, match=message):
        load_grayscale(data)


def test_truncated_files():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (128, 128), dtype=np.uint8))
    for fmt in ("PNG", "JPEG"):
        data = encode(image, fmt)
        with pytest.raises(ImageLoadError):
            load_grayscale(data[: len(data) // 2])


def test_tiny_and_animated_images_are_refused():
    with pytest.raises(ImageLoadError, match="too small"):
        load_grayscale(png_bytes(Image.new("L", (1, 1))))
    frames = [Image.new("L", (32, 32), v) for v in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageLoadError, match="animated"):
        load_grayscale(buffer.getvalue())


def test_oversized_file_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 2048)
    with pytest.raises(ImageLoadError, match="limit"):
        load_grayscale(path, max_bytes=1024)


_dicom = dicom_bytes


def test_dicom_rescale_window_and_monochrome1():
    pixels = gradient().astype(np.uint16) * 16  # 0..4080
    plain = load_grayscale(_dicom(pixels))
    assert plain.shape == (48, 64) and plain.max() == 255
    windowed = load_grayscale(_dicom(pixels, RescaleSlope=1, RescaleIntercept=0, WindowCenter=1000, WindowWidth=400))
    assert (windowed == 255).mean() > 0.5  # everything above the window saturates
    inverted = load_grayscale(_dicom(pixels, PhotometricInterpretation="MONOCHROME1"))
    assert np.array_equal(inverted, 255 - plain)


def test_dicom_multi_frame_takes_the_middle_frame():
    frames = np.stack([np.full((32, 32), v, np.uint16) for v in (0, 100, 4000)])
    frames[:, :, :16] = 0
    out = load_grayscale(_dicom(frames))
    # windowed as the whole file would be as a scan (the same reader): 100 of the frames' 0..4000
    assert out.shape == (32, 32) and out[0, 31] == round(100 / 4000 * 255)


def test_dicom_without_pixels():
    with pytest.raises(ImageLoadError, match="no pixel data"):
        load_grayscale(_dicom(None))


def test_real_images_load():
    for path, _ in real_images():
        out = load_grayscale(path)
        assert out.ndim == 2 and out.dtype == np.uint8 and out.std() > 5


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"SeriesDescription": "AX T2 FSE"}, "T2"),
        ({"SeriesDescription": "Ax FLAIR"}, "FLAIR"),
        ({"ProtocolName": "DWI b1000"}, "diffusion"),
        ({"SeriesDescription": "AX T1 FLAIR POST"}, None),  # T1-weighted FLAIR is T1
        ({"SeriesDescription": "T1 MPRAGE +C"}, None),
        ({"SeriesDescription": "T2*"}, "T2"),
        ({}, None),
    ],
)
def test_dicom_header_names_the_sequence(tags, expected):
    from brainmri.io.images import load_image

    loaded = load_image(_dicom(gradient().astype(np.uint16), **tags))
    assert loaded.sequence == expected


def test_a_t2_dicom_is_uncertain_whatever_the_scores(tiny_release):
    from brainmri import Predictor

    predictor = Predictor.from_pretrained(tiny_release)
    predictor.screening.update(min_confidence=0.0)
    predictor.feature_model = None
    head = np.zeros((64, 64), np.uint16)
    head[8:56, 10:54] = 1500
    head[20:30, 20:30] = 3500
    _, t1 = predictor.screen(_dicom(head, SeriesDescription="AX T1 POST"))
    _, t2 = predictor.screen(_dicom(head, SeriesDescription="AX T2 FSE"))
    assert t1.status == "ok" and t2.status == "uncertain" and "T2 series" in t2.reason
    assert "Secret" not in t2.reason


def test_every_reason_a_reader_gives_is_said_in_each_language():
    """Every ImageLoadError raised under brainmri/io names a reason of the catalogue (so the page can say it in
    French); a reason keeps its figures, in English by default, in the language's number format on request, and
    through pickling (a worker process's error)."""
    import pickle
    import re
    from pathlib import Path

    from brainmri import text
    from brainmri.io.errors import ImageLoadError

    io = Path(__file__).resolve().parents[1] / "brainmri" / "io"
    raised = set()
    for module in io.glob("*.py"):
        source = module.read_text()
        assert not re.search(r"ImageLoadError\(\s*f?[\"'][^\"']*[ {]", source), module  # a key, not a sentence
        raised |= set(re.findall(r"ImageLoadError\(\s*\"(\w+)\"", source))
    assert len(raised) >= 35
    for lang in text.LANGUAGES:
        assert raised <= set(text.catalogue(lang)["unreadable"]), (
            lang,
            raised - set(text.catalogue(lang)["unreadable"]),
        )
    err = ImageLoadError("file_too_big", size=12.25, limit=10.0)
    assert str(err) == "file is 12.2 MB; the limit is 10 MB"
    assert err.said_in("fr") == "le fichier fait 12,2 Mo ; la limite est de 10 Mo"
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ImageLoadError) and again.said_in("fr") == err.said_in("fr")
    assert ImageLoadError("a sentence of its own").said_in("fr") == "a sentence of its own"
