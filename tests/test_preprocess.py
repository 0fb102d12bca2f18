"""One preprocessing path: the head crop, padding, resizing as timm does (brainmri.inference.preprocess)."""

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform

from brainmri.inference.preprocess import Preprocess, pad_to_square
from brainmri.io.images import load_grayscale
from helpers import png_bytes

CFG = {
    "input_size": (3, 64, 64),
    "interpolation": "bicubic",
    "crop_pct": 1.0,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}


def test_pad_to_square_centres_on_black():
    gray = np.full((20, 40), 200, np.uint8)
    out = pad_to_square(gray)
    assert out.shape == (40, 40)
    assert (out[:10] == 0).all() and (out[30:] == 0).all() and (out[10:30] == 200).all()


def test_matches_timm_eval_transform_on_square_images():
    """Our path is timm's create_transform (on the padded gray image replicated to RGB)."""
    pre = Preprocess.from_config(CFG)
    gray = np.random.default_rng(0).integers(0, 255, (90, 90), dtype=np.uint8)
    ours = pre.to_tensor(pre.fit(gray))[0]
    timm_t = create_transform(**{k: CFG[k] for k in ("input_size", "interpolation", "crop_pct", "mean", "std")})
    theirs = timm_t(Image.fromarray(gray).convert("RGB"))
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=0)


def test_size_aspect_and_mode_do_not_reach_the_model():
    """The same slice as L/RGB/P, at two sizes, gives the same model input (up to resampling)."""
    pre = Preprocess.from_config(CFG)
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 255, (60, 60), dtype=np.uint8)).resize((120, 120), Image.BICUBIC)
    fitted = [pre.fit(load_grayscale(png_bytes(base.convert(m)))) for m in ("L", "RGB")]
    assert np.abs(fitted[0].astype(int) - fitted[1].astype(int)).max() <= 1
    bigger = pre.fit(load_grayscale(png_bytes(base.resize((240, 240), Image.BICUBIC))))
    assert np.abs(bigger.astype(float) - fitted[0]).mean() < 3
    wide = pre.fit(load_grayscale(png_bytes(base.crop((0, 20, 120, 100)))))  # 120 x 80
    assert wide.shape == (64, 64) and (wide[:5] == 0).all()  # padded, not stretched


def test_content_crop_removes_the_file_framing():
    """The same head with wide black margins or none gives the same model input."""
    from brainmri.inference.preprocess import crop_to_content

    head = np.zeros((60, 50), np.uint8)
    head[5:55, 5:45] = 120
    framed = np.zeros((200, 300), np.uint8)
    framed[70:130, 120:170] = head
    assert crop_to_content(framed).shape == crop_to_content(head).shape
    pre = Preprocess.from_config(CFG, content_crop=True)
    assert np.array_equal(pre.fit(framed), pre.fit(head))
    plain = Preprocess.from_config(CFG)
    assert not np.array_equal(plain.fit(framed), plain.fit(head))
    assert np.array_equal(crop_to_content(np.zeros((40, 40), np.uint8)), np.zeros((40, 40), np.uint8))


def _with_markers(gray: np.ndarray) -> np.ndarray:
    """Orientation letters at the four edges, an arrow head in a corner and a scale bar in the bottom margin, as
    teaching-case images carry them."""
    from PIL import ImageDraw, ImageFont

    image = Image.fromarray(gray.copy())
    draw = ImageDraw.Draw(image)
    height, width = gray.shape
    size = max(12, int(0.06 * min(height, width)))
    font = ImageFont.load_default(size=size)
    for letter, place in (
        ("A", (width // 2, 1)),
        ("P", (width // 2, height - size - 3)),
        ("R", (1, height // 2)),
        ("L", (width - size, height // 2)),
    ):
        draw.text(place, letter, fill=255, font=font)
    draw.polygon([(width - 3, 3), (width - 23, 8), (width - 8, 23)], fill=255)
    draw.line([(width - int(0.3 * width), height - 3), (width - int(0.1 * width), height - 3)], fill=255, width=3)
    return np.asarray(image)


def test_head_crop_ignores_letters_and_markers_at_the_edges():
    """Real slices with a margin around the head: the head-region crop finds the same box with markers drawn at
    the edges (within 3 px); the threshold crop is pulled out to them."""
    from brainmri.inference.preprocess import content_box, head_box
    from helpers import REAL_DATA, real_images

    real_images()  # skips without the real dataset
    files = [
        f
        for name in ("glioma", "meningioma", "notumor", "pituitary")
        for f in sorted((REAL_DATA / "Testing" / name).iterdir())[:30]
    ]
    tried = widened = 0
    for path in files[::3] + files[1::3] + files[2::3]:  # every class early on; ten slices with a margin are enough
        if tried == 10:
            break
        gray = load_grayscale(path)
        height, width = gray.shape

        def margin(box):
            return min(box[0] / height, 1 - box[1] / height, box[2] / width, 1 - box[3] / width)

        if margin(content_box(gray)) < 0.07 or margin(clean := head_box(gray)) < 0.07:
            continue  # the markers would touch the head: nothing to tell them apart by (the cheap box first)
        marked = _with_markers(gray)
        assert np.abs(np.subtract(head_box(marked), clean)).max() <= 3, path.name
        widened += np.abs(np.subtract(content_box(marked), content_box(gray))).max() > 10
        tried += 1
    assert tried >= 8 and widened >= tried // 2


def test_head_crop_keeps_the_scalp_and_drops_what_lies_apart():
    from brainmri.inference.preprocess import content_box, head_box

    yy, xx = np.mgrid[:200, :200]
    radius = np.hypot(yy - 100, xx - 100)
    gray = np.where(radius < 60, 120, 0).astype(np.uint8)
    ring = (radius >= 63) & (radius < 68)
    gray[ring] = 200  # a thin bright scalp ring beyond a dark skull gap
    gray[5:20, 5:20] = 255  # a marker in the corner
    gray[190:193, 40:160] = 255  # a ruler
    rows, cols = np.flatnonzero(ring.any(1)), np.flatnonzero(ring.any(0))
    # the ring, not the brain alone and not the marks
    assert head_box(gray, margin=0) == (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    assert content_box(gray, margin=0)[0] == 5
    assert head_box(np.zeros((30, 30), np.uint8)) == (0, 30, 0, 30)


def test_head_crop_opening_and_reach_match_scipy():
    """The head crop's OpenCV opening and distance give scipy's pixels (the crop every head-crop release was
    trained with was written with ``binary_opening`` and ``distance_transform_edt``), at the image's border too."""
    from scipy import ndimage

    from brainmri.inference.preprocess import REACH, _open_square, head_box

    rng = np.random.default_rng(0)
    for side in (3, 7, 11):
        mask = ndimage.binary_dilation(rng.random((61, 47)) > 0.9, iterations=2)  # blobs, some on the border
        expected = ndimage.binary_opening(mask, structure=np.ones((3, 3), bool), iterations=(side - 1) // 2)
        np.testing.assert_array_equal(_open_square(np.ascontiguousarray(mask), side), expected)

    def scipy_head_box(gray):  # the first implementation, for the cases below (a head is always found in them)
        bright = gray > 0.1 * np.percentile(gray, 99)
        radius = max(1, round(0.01 * max(gray.shape)))
        core, _ = ndimage.label(ndimage.binary_opening(bright, structure=np.ones((3, 3), bool), iterations=radius))
        core = core == 1 + np.bincount(core.ravel())[1:].argmax()
        near = ndimage.distance_transform_edt(~core) <= REACH * max(gray.shape)
        regions, _ = ndimage.label(ndimage.binary_opening(bright, structure=np.ones((3, 3), bool)))
        keep = np.isin(regions, np.unique(regions[near & (regions > 0)]))
        rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
        return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1

    yy, xx = np.mgrid[:300, :260]
    for trial in range(12):
        gray = np.where(np.hypot(yy - 150, xx - 130) < 80 + 4 * trial, 110, 0).astype(np.uint8)
        for _ in range(8):  # bright specks, some within reach of the head, some far out
            y, x = rng.integers(0, 295), rng.integers(0, 255)
            gray[y : y + rng.integers(2, 9), x : x + rng.integers(2, 9)] = 255
        assert head_box(gray, margin=0) == tuple(int(v) for v in scipy_head_box(gray)), trial


def _disc_slice(level: int, lesion: int, size: int = 96) -> np.ndarray:
    """A dark background, a head (a disc at ``level``) and a brighter lesion (``lesion``, 2 % of the head) inside it."""
    yy, xx = np.mgrid[:size, :size]
    gray = np.zeros((size, size), np.uint8)
    gray[(yy - 48) ** 2 + (xx - 48) ** 2 < 40**2] = level
    gray[(yy - 40) ** 2 + (xx - 52) ** 2 < 6**2] = lesion
    return gray


def test_head_levelling_gives_a_dark_and_a_bright_export_of_a_slice_one_input():
    """``intensity: head``: the same slice exported at two overall levels reaches the model alike; black stays
    black, the lesion keeps its contrast against the brain, and masks are not rescaled."""
    from dataclasses import replace

    from brainmri.inference.preprocess import HEAD_LEVEL, head_level

    plain = Preprocess.from_config(CFG, content_crop=True, crop="head")
    levelled = replace(plain, intensity="head")
    dark, bright = _disc_slice(50, 80), _disc_slice(100, 160)
    assert np.abs(plain.fit(dark).astype(int) - plain.fit(bright)).max() > 40  # as they are: far apart
    a, b = levelled.fit(dark).astype(int), levelled.fit(bright).astype(int)
    assert np.abs(a - b).max() <= 6  # levelled: one input, up to the dark export's rounding
    assert np.percentile(b[b > 0], 99) >= HEAD_LEVEL - 2 and a.min() == 0 and a[0, 0] == 0
    inside = levelled.fit(dark)  # the lesion is the head's brightest 2 %: it goes to the level, the brain ...
    assert HEAD_LEVEL - 3 <= inside.max() <= HEAD_LEVEL + 8  # (bicubic overshoots at the lesion's edge)
    assert 1.5 < inside.max() / np.median(inside[inside > 0]) < 1.7  # ... keeps its ratio to it (80 : 50)
    scalp = _disc_slice(50, 80)
    yy, xx = np.mgrid[:96, :96]
    scalp[((yy - 48) ** 2 + (xx - 48) ** 2 >= 36**2) & ((yy - 48) ** 2 + (xx - 48) ** 2 < 40**2)] = 200
    assert levelled.fit(scalp).max() == 255  # a bright rim of scalp, outside the head's inside, saturates
    mask = np.zeros_like(dark)
    mask[36:44, 48:56] = 1
    assert set(np.unique(levelled.fit_mask(dark, mask))) == {0, 255}  # masks stay masks
    blank = np.zeros((40, 40), np.uint8)
    assert (head_level(blank) == 0).all()  # no head: unchanged


def test_the_intensity_step_travels_with_the_release_and_keeps_caches_apart():
    from dataclasses import replace

    import pytest

    pre = Preprocess.from_config(CFG, content_crop=True, crop="head", intensity="head")
    steps = pre.release_steps()
    assert steps["intensity"] == "head"
    config = {"pretrained_cfg": CFG, "preprocessing": steps}
    assert Preprocess.from_release_config(config).intensity == "head"
    plain = replace(pre, intensity="none")
    assert "intensity" not in plain.release_steps()  # the releases before the step read back unchanged
    assert Preprocess.from_release_config({"pretrained_cfg": CFG, "preprocessing": plain.release_steps()}) == plain
    assert repr(pre) != repr(plain)  # the decoded cache keys on the preprocessing's repr
    with pytest.raises(ValueError, match="unknown intensity step"):
        replace(pre, intensity="zscore")
