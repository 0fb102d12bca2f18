import re

import numpy as np
import pytest
import torch
from PIL import Image

from brainmri import ImageLoadError, Predictor
from brainmri.inference.explanation import OUTLINE_RGB
from helpers import CLASSES, png_bytes, real_images


@pytest.fixture(scope="module")
def predictor(tiny_release):
    return Predictor.from_pretrained(tiny_release)


def test_predict_returns_calibrated_probabilities_in_label_order(predictor, dataset):
    path = next((dataset / "Testing" / "glioma").iterdir())
    probs = predictor.predict(path)
    assert list(probs) == CLASSES and abs(sum(probs.values()) - 1) < 1e-5
    logits = predictor.logits([predictor.prepare(path)])
    expected = torch.softmax(logits / 1.5, dim=-1)[0].numpy()
    np.testing.assert_allclose(list(probs.values()), expected, rtol=1e-5)


def test_all_input_kinds_agree_and_batch_matches_single(predictor, dataset):
    path = next((dataset / "Testing" / "meningioma").iterdir())
    image = Image.open(path)
    inputs = [path, str(path), path.read_bytes(), image, np.asarray(image.convert("L"))]
    batch = predictor.predict_batch(inputs)
    for out in batch:
        np.testing.assert_allclose(list(out.values()), list(batch[0].values()), atol=1e-6)
    np.testing.assert_allclose(list(predictor.predict(path).values()), list(batch[0].values()), atol=1e-6)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam"])
def test_explain_is_one_forward_pass(predictor, dataset, method):
    path = next((dataset / "Testing" / "pituitary").iterdir())
    explanation = predictor.explain(path, method=method)
    np.testing.assert_allclose(
        list(explanation.probabilities.values()), list(predictor.predict(path).values()), atol=1e-5
    )
    assert explanation.target == explanation.label
    assert explanation.heatmap.shape == (32, 32) and explanation.heatmap.dtype == np.float32
    assert 0 <= explanation.heatmap.min() and explanation.heatmap.max() <= 1
    assert explanation.overlay.shape == (32, 32, 3) and explanation.overlay.dtype == np.uint8
    assert np.array_equal(explanation.image, predictor.prepare(path))
    chosen = predictor.explain(path, target="notumor", method=method)
    assert chosen.target == "notumor"


def test_explain_finds_the_crop_box_once(predictor, dataset, monkeypatch):
    """The box the model's input was cut with is the one the heatmap is mapped back through, found once per image
    (the head crop is the slowest step of preprocessing), for one explanation and for one per class."""
    from brainmri.inference.explanation import on_original
    from brainmri.inference.preprocess import Preprocess
    from brainmri.io.images import load_grayscale

    path = next((dataset / "Testing" / "glioma").iterdir())
    gray = load_grayscale(path)
    expected = on_original(predictor.preprocess, gray, np.zeros((32, 32), np.float32))[1]  # the box, as displayed
    calls = []
    real_box = Preprocess.box
    monkeypatch.setattr(Preprocess, "box", lambda self, gray: calls.append(1) or real_box(self, gray))
    explanation = predictor.explain(path)
    assert len(calls) == 1 and explanation.box == expected
    calls.clear()
    every = predictor.explain_all(path)
    assert len(calls) == 1 and all(e.box == expected for e in every)


def test_bad_inputs_raise_one_clear_error(predictor):
    for bad in (b"", b"%PDF-1.7 ...", png_bytes(Image.new("L", (1, 1)))):
        with pytest.raises(ImageLoadError):
            predictor.predict(bad)
    with pytest.raises(ValueError, match="unknown class"):
        predictor.explain(png_bytes(Image.new("L", (40, 40))), target="cat")
    with pytest.raises(ValueError, match="unknown explanation method"):
        predictor.explain(png_bytes(Image.new("L", (40, 40))), method="magic")


def test_real_images_run_through_the_predictor(predictor):
    images = real_images()
    out = predictor.predict_batch([p for p, _ in images])
    assert len(out) == 4 and all(abs(sum(o.values()) - 1) < 1e-5 for o in out)


def test_explain_prepared_uses_the_image_as_given(predictor, dataset):
    path = next((dataset / "Testing" / "glioma").iterdir())
    fitted = predictor.prepare(path)
    direct = predictor.explain(path)
    prepared = predictor.explain_prepared(fitted)
    np.testing.assert_allclose(prepared.heatmap, direct.heatmap, atol=1e-5)
    assert np.array_equal(prepared.image, fitted) and prepared.verdict is None


def test_screen_batch_matches_screen_and_keeps_going_past_bad_files(predictor, dataset):
    good = [next((dataset / "Testing" / c).iterdir()) for c in CLASSES]
    photo = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    inputs = [good[0], b"", good[1], photo, b"%PDF-1.4", *good[2:]]
    results = predictor.screen_batch(inputs)
    assert len(results) == len(inputs)
    assert isinstance(results[1], ImageLoadError) and "empty" in str(results[1])
    assert isinstance(results[4], ImageLoadError)
    for source, result in zip(inputs, results):
        if isinstance(result, ImageLoadError):
            with pytest.raises(ImageLoadError, match=re.escape(str(result))):
                predictor.screen(source)
            continue
        probs, verdict = predictor.screen(source)
        np.testing.assert_allclose(list(result[0].values()), list(probs.values()), atol=1e-6)
        assert (result[1].status, result[1].reason) == (verdict.status, verdict.reason)
    assert predictor.screen_batch([]) == []


def test_view_probabilities_are_those_of_the_changed_images(predictor, dataset):
    files = sorted((dataset / "Testing" / "pituitary").iterdir())[:3]
    fitted = [predictor.prepare(f) for f in files]
    views = predictor.view_probabilities(fitted, batch_size=8)
    flipped = predictor.probabilities(predictor.logits([f[:, ::-1].copy() for f in fitted]))
    np.testing.assert_allclose(views["hflip"], flipped, atol=1e-5)
    darker = [np.round(255 * (f / 255.0) ** 1.4) for f in fitted]
    assert np.abs(views["gamma 1.4"] - predictor.probabilities(predictor.logits(darker))).max() < 0.02  # 8-bit rounding


def test_unstable_answers_are_uncertain_when_the_release_asks(tiny_release, dataset):
    predictor = Predictor.from_pretrained(tiny_release)
    path = sorted((dataset / "Testing" / "glioma").iterdir())[0]
    predictor.screening.update(min_confidence=0.0, feature_threshold=None)
    predictor.feature_model = None
    assert predictor.screen(path)[1].status == "ok"  # no min_agreement: the check is off
    predictor.screening["min_agreement"] = 1.01  # nothing agrees that much
    _, verdict = predictor.screen(path)
    assert verdict.status == "uncertain" and "Small changes" in verdict.reason
    explained = predictor.explain(path).verdict
    assert (explained.status, explained.reason) == (verdict.status, verdict.reason)
    predictor.screening["min_agreement"] = 0.0
    assert predictor.screen(path)[1].status == "ok"


def test_explanation_on_the_original_slice(predictor):
    slice_ = np.zeros((90, 140), np.uint8)
    slice_[10:80, 20:120] = 80
    slice_[30:45, 40:60] = 230
    e = predictor.explain(slice_)
    assert e.heatmap_original.shape == slice_.shape and e.overlay_original.shape == (90, 140, 3)
    top, bottom, left, right = e.box
    outside = np.ones(slice_.shape, bool)
    outside[top:bottom, left:right] = False
    assert e.box == predictor.preprocess.box(slice_) and not e.heatmap_original[outside].any()
    assert 0 <= e.heatmap_original.min() and e.heatmap_original.max() <= 1
    assert abs(e.heatmap_original.max() - e.heatmap.max()) < 0.1  # the same map, resampled
    big = np.zeros((2048, 1536), np.uint8)
    big[200:1800, 200:1300] = 90
    assert predictor.explain(big).overlay_original.shape == (1024, 768, 3)  # long side capped for display


def test_drawing_on_the_original_slice_opacity_and_outline(predictor):
    slice_ = np.zeros((120, 160), np.uint8)
    slice_[20:100, 30:130] = 90
    e = predictor.explain(slice_)
    top, bottom, left, right = e.box
    bare = e.draw(opacity=0.0, outline=False)
    np.testing.assert_array_equal(bare, np.repeat(slice_[..., None], 3, axis=2))  # the slice itself
    outlined = e.draw(opacity=0.0, outline=True)
    edge = outlined[top, left:right]
    assert (edge == OUTLINE_RGB).all() and (
        outlined[top + 2 : bottom - 2, left + 2 : right - 2] == bare[top + 2 : bottom - 2, left + 2 : right - 2]
    ).all()
    np.testing.assert_array_equal(e.overlay_original, e.draw())
    # the tiny model's map is flat: a heat that rises across the box, to see the opacity at work
    e.heatmap_original = np.zeros(slice_.shape, np.float32)
    e.heatmap_original[top:bottom, left:right] = np.linspace(0.1, 1.0, right - left, dtype=np.float32)
    strong, faint = e.draw(opacity=1.0, outline=False), e.draw(opacity=0.2, outline=False)
    inside = (slice(top + 1, bottom - 1), slice(left + 1, right - 1))
    # more opacity: further from the gray slice, inside the box only
    assert (
        np.abs(strong[inside].astype(int) - bare[inside]).mean()
        > np.abs(faint[inside].astype(int) - bare[inside]).mean()
        > 0
    )
    assert (strong[:top] == bare[:top]).all() and (strong[:, :left] == bare[:, :left]).all()
    with pytest.raises(ValueError, match="opacity"):
        e.draw(opacity=1.5)


def test_explain_all_classes_matches_one_class_at_a_time(predictor, dataset):
    path = sorted((dataset / "Testing" / "meningioma").iterdir())[0]
    every = predictor.explain_all(path, method="gradcam++")
    assert [e.target for e in every] == CLASSES and len({id(e.verdict) for e in every}) == 1
    for e in every:
        single = predictor.explain(path, target=e.target, method="gradcam++")
        np.testing.assert_allclose(e.heatmap, single.heatmap, atol=1e-5)
        assert e.probabilities == pytest.approx(single.probabilities, abs=1e-6)
        assert e.overlay_original.shape == single.overlay_original.shape


def test_the_heatmap_grid_and_ok_threshold_are_the_served_releases(predictor):
    """What the About tab says of the served model: its heatmap's cells and its "ok" threshold."""
    size = predictor.preprocess.image_size
    with torch.no_grad():
        cells = predictor.model.forward_features(predictor.preprocess.to_tensor(np.zeros((size, size), np.uint8)))
    assert predictor.heatmap_grid == tuple(cells.shape[-2:])
    assert predictor.min_confidence == 0.9  # the tiny release fits none: the verdict's default
