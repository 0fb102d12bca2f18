"""Heatmaps: what a class's map explains (the class against the others), and how it is drawn on the slice."""

import cv2
import numpy as np
import pytest
import torch

from brainmri.inference.explain import ClassOverOthers, feature_maps_cams, overlay
from helpers import TINY_ARCH, TINY_SIZE


def test_class_over_others_is_the_logit_less_the_mean_of_the_others():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [0.0, 1.0, 2.0, 3.0]])
    assert torch.allclose(ClassOverOthers(0)(logits), torch.tensor([2.0 - 2.5 / 3, 0.0 - 2.0]))
    assert torch.isclose(ClassOverOthers(3)(logits[1]), torch.tensor(3.0 - 1.0))  # one image's logits


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
