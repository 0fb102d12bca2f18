"""Heatmaps: what a class's map explains (the class against the others), and how it is drawn on the slice."""

import cv2
import numpy as np
import pytest
import torch

from brainmri.inference.explain import AmongAlternatives, ClassOverOthers, feature_maps_cams, overlay
from helpers import CLASSES, TINY_ARCH, TINY_SIZE


def test_class_over_others_is_the_logit_less_the_mean_of_the_others():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [0.0, 1.0, 2.0, 3.0]])
    assert torch.allclose(ClassOverOthers(0)(logits), torch.tensor([2.0 - 2.5 / 3, 0.0 - 2.0]))
    assert torch.isclose(ClassOverOthers(3)(logits[1]), torch.tensor(3.0 - 1.0))  # one image's logits


def test_among_alternatives_keeps_the_predicted_class_and_sets_the_others_against_each_other():
    """The predicted class: ReST, as before. Another class: its logit less the mean of the other classes not
    predicted; one image at a time or a batch, the same scores."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST

    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [0.0, 4.0, 2.0, 1.0]])
    assert torch.allclose(AmongAlternatives(3)(logits)[0], ClassifierOutputReST(3)(logits[0]))  # predicted: 3
    assert torch.isclose(AmongAlternatives(0)(logits[0]), torch.tensor(2.0 - (-1.0 + 0.5) / 2))  # 1 and 2 left
    assert torch.isclose(AmongAlternatives(2)(logits[1]), torch.tensor(2.0 - (0.0 + 1.0) / 2))  # 0 and 3 left
    for category in range(4):
        batched = AmongAlternatives(category)(logits)
        assert torch.allclose(batched, torch.stack([AmongAlternatives(category)(row) for row in logits]))


def test_the_bundled_models_class_maps_differ_where_the_evidence_differs(bundled):
    """On real Testing slices the four class maps of the page's target barely correlate (issue 28: mean at most
    0.6; r22: 0.12 over all of Testing, 0.20 on these eight; r21: 0.07 and 0.08) while ReST's correlate far more
    (r22: 0.57 here; r21: 0.60), and the predicted class's map is ReST's either way."""
    from brainmri.evaluation.localisation import class_map_similarity
    from brainmri.io.images import load_grayscale
    from helpers import REAL_DATA

    if not REAL_DATA.is_dir():
        pytest.skip("the real dataset is not beside the repository")
    files = [sorted((REAL_DATA / "Testing" / name).glob("*.jpg"))[k] for name in CLASSES for k in (3, 30)]
    images = np.stack([bundled.preprocess.fit(load_grayscale(f)) for f in files])
    page = class_map_similarity(bundled, images, "gradcam")
    before = class_map_similarity(bundled, images, "gradcam", target_kind="rest")
    assert page["target"] == "alternatives" and page["images"] == len(files) == 8
    assert page["mean_correlation"] <= 0.3 and before["mean_correlation"] >= page["mean_correlation"] + 0.3
    _, feature_map = bundled.backend(bundled._inputs(list(images)))
    ours = feature_maps_cams(bundled.model, feature_map, None, images.shape[1:3])
    rest = feature_maps_cams(bundled.model, feature_map, None, images.shape[1:3], target_kind="rest")
    np.testing.assert_allclose(ours.heatmaps, rest.heatmaps, atol=1e-5)


@pytest.fixture(scope="module")
def features():
    """The tiny model's head with weights that tell the classes apart, and a 4 x 4 feature map of three images."""
    from brainmri.training.model import create_model

    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=TINY_SIZE).eval()
    with torch.no_grad():
        model.get_classifier().weight.copy_(torch.randn_like(model.get_classifier().weight))
    return model, torch.randn(3, model.num_features, 4, 4)


def test_the_maps_follow_the_target_kind_and_the_default_is_the_predicted_class(features):
    model, feature_map = features
    predicted = feature_maps_cams(model, feature_map, None, (32, 32)).logits.argmax(1).tolist()
    default = feature_maps_cams(model, feature_map, None, (32, 32)).heatmaps
    explicit = feature_maps_cams(model, feature_map, predicted, (32, 32)).heatmaps
    np.testing.assert_array_equal(default, explicit)
    contrast = feature_maps_cams(model, feature_map, [0, 1, 2], (32, 32), target_kind="contrast").heatmaps
    logit = feature_maps_cams(model, feature_map, [0, 1, 2], (32, 32), target_kind="logit").heatmaps
    assert contrast.shape == logit.shape == (3, 32, 32) and contrast.max() > 0 and not np.allclose(contrast, logit)
    with pytest.raises(ValueError, match="unknown heatmap target"):
        feature_maps_cams(model, feature_map, [0], (32, 32), target_kind="saliency")


def test_a_network_in_training_mode_is_explained_in_eval_mode(features):
    """Dropout and the like off while a map is drawn, as pytorch-grad-cam's own eval() did, and the same maps."""
    model, feature_map = features
    expected = feature_maps_cams(model, feature_map, None, (32, 32)).heatmaps
    model.train()
    try:
        np.testing.assert_array_equal(feature_maps_cams(model, feature_map, None, (32, 32)).heatmaps, expected)
        assert not model.training and not any(m.training for m in model.modules())
    finally:
        model.eval()


def test_the_overlay_colours_only_where_the_heat_is():
    gray = np.full((4, 4), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0], heat[1, 1] = 1.0, 0.5
    drawn = overlay(gray, heat, opacity=0.6).astype(int)
    assert (drawn[heat == 0] == 100).all()  # cold: the slice as it is
    top = cv2.applyColorMap(np.uint8([[255]]), cv2.COLORMAP_VIRIDIS)[0, 0, ::-1].astype(int)  # viridis' hottest
    np.testing.assert_allclose(drawn[0, 0], 0.4 * 100 + 0.6 * top, atol=1)  # the hottest point: opacity 0.6
    assert 0 < np.abs(drawn[1, 1] - 100).max() < np.abs(drawn[0, 0] - 100).max()  # half the heat, less colour
    assert (overlay(gray, heat, opacity=0.0) == 100).all()
