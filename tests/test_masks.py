"""Tumour masks through exactly the geometry their image goes through, and through the augmentation."""

import numpy as np
import pytest
import torch

from brainmri.data.augment import AugmentConfig, augment_batch
from brainmri.inference.preprocess import Preprocess
from helpers import plain_preprocess


def test_mask_follows_the_image_through_crop_pad_and_resize():
    gray = np.zeros((120, 200), np.uint8)
    gray[20:100, 40:180] = 70  # the head, off-centre and not square
    gray[30:50, 60:80] = 240  # the tumour
    mask = (gray == 240).astype(np.uint8) * 255
    for crop in (True, False):
        preprocess = plain_preprocess(content_crop=crop)
        fitted, fitted_mask = preprocess.fit(gray), preprocess.fit_mask(gray, mask)
        assert set(np.unique(fitted_mask)) <= {0, 255}
        bright = fitted > (240 + 70) / 2  # the tumour's edge: halfway between tumour and tissue
        inside = fitted_mask > 0
        assert inside.sum() > 0 and (bright & inside).sum() / (bright | inside).sum() >= 0.9
    with pytest.raises(ValueError, match="mask of size"):
        preprocess.fit_mask(gray, mask[:10])


def test_masks_follow_the_augmentation_geometry():
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(8, 1, 32, 32)
    images[:, :, 4:12, 18:28] = 1.0
    cfg = AugmentConfig.named("strong")
    out, masks = augment_batch(
        images.clone(),
        AugmentConfig(rotate_deg=20, brightness=0, contrast=0),
        torch.Generator().manual_seed(1),
        masks=images.clone(),
    )
    assert torch.allclose(out, masks, atol=1e-6)
    plain = augment_batch(images.clone(), cfg, torch.Generator().manual_seed(2))
    with_masks, _ = augment_batch(images.clone(), cfg, torch.Generator().manual_seed(2), masks=images.clone())
    assert torch.equal(plain, with_masks)  # same random draws with or without masks
    del gen


def test_unfit_maps_a_model_input_map_back_onto_the_original():
    gray = np.zeros((150, 260), np.uint8)
    gray[20:130, 50:230] = 70
    gray[40:70, 80:120] = 240
    mask = (gray == 240).astype(np.uint8) * 255
    for crop, crop_pct in ((True, 1.0), (False, 1.0), (True, 0.9)):
        preprocess = Preprocess.from_config(
            {
                "input_size": (3, 64, 64),
                "interpolation": "bilinear",
                "crop_pct": crop_pct,
                "mean": (0.5,) * 3,
                "std": (0.5,) * 3,
            },
            content_crop=crop,
        )
        heat = preprocess.fit_mask(gray, mask).astype(np.float32) / 255  # a heatmap exactly on the tumour
        back = preprocess.unfit(heat, gray.shape, preprocess.box(gray)) > 0.5
        inside = mask > 0
        assert back.shape == gray.shape and (back & inside).sum() / (back | inside).sum() >= 0.8, (crop, crop_pct)
