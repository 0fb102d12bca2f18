"""Training augmentation: framing after a gamma change, inversion and curves, pasted lesions."""

import dataclasses

import numpy as np
import pytest
import torch

from brainmri.data.augment import AugmentConfig, augment_batch, draw_donors, paste_lesions
from brainmri.inference.preprocess import GammaFraming
from helpers import plain_preprocess


def test_gamma_framing_crops_as_the_head_crop_would_after_a_gamma_change():
    """A faint rim below the crop's threshold joins the box once gamma 0.6 brightens it; gamma 1.6 drops it."""
    gray = np.zeros((160, 160), np.uint8)
    gray[20:140, 20:140] = 12  # faint: below a tenth of the bright end (the 99th percentile, 160)
    gray[40:120, 40:120] = 160
    gray[60:70, 60:70] = 255
    preprocess = plain_preprocess(content_crop=True)
    brighter, darker = GammaFraming.of(preprocess, 0.6), GammaFraming.of(preprocess, 1.6)
    top, bottom, left, right = preprocess.box(gray)
    assert 30 <= top < 40 and 120 < bottom <= 130  # the head only, with its margin
    assert brighter.box(gray) == preprocess.box(np.clip(255 * (gray / 255) ** 0.6, 0, 255).astype(np.uint8))
    b_top, b_bottom, *_ = brighter.box(gray)
    assert b_top < 20 and b_bottom > 140  # the rim is in
    assert darker.box(gray) == preprocess.box(gray)  # darker: nothing new crosses the threshold here
    assert GammaFraming.of(preprocess, 1.0).box(gray) == preprocess.box(gray)
    assert not np.array_equal(brighter.fit(gray), preprocess.fit(gray))  # smaller head in the same input size
    assert brighter.fit(gray).shape == preprocess.fit(gray).shape
    assert brighter.fit(gray).max() == preprocess.fit(gray).max()  # intensities stay the slice's own
    mask = np.zeros_like(gray)
    mask[60:70, 60:70] = 255
    assert (brighter.fit_mask(gray, mask) > 0).sum() < (preprocess.fit_mask(gray, mask) > 0).sum()
    assert str(brighter) != str(preprocess) != str(darker)  # the decoded cache keeps them apart
    uncropped = dataclasses.replace(preprocess, content_crop=False)
    assert GammaFraming.of(uncropped, 0.6).box(gray) == (0, 160, 0, 160)  # no head crop: nothing to frame


def test_inversion_and_curves():
    images = torch.zeros(4, 1, 16, 16)
    images[:, :, 4:12, 4:12] = torch.linspace(0.2, 0.9, 8).view(1, 1, 1, 8)
    inverted = augment_batch(
        images.clone(),
        AugmentConfig(rotate_deg=0, hflip=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0, invert_prob=1.0),
        torch.Generator().manual_seed(0),
    )
    assert torch.allclose(inverted[:, :, 6, 4:12], 1 - images[:, :, 6, 4:12]) and inverted[:, :, 0, 0].abs().max() == 0
    curved = augment_batch(
        images.clone(),
        AugmentConfig(rotate_deg=0, hflip=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0, curve_prob=1.0),
        torch.Generator().manual_seed(0),
    )
    row = curved[:, 0, 6, 4:12]
    assert (row[:, 1:] >= row[:, :-1]).all() and not torch.allclose(row, images[:, 0, 6, 4:12])
    assert curved[:, :, 0, 0].abs().max() == 0  # background stays black


def test_paste_lesions_moves_tumour_mask_and_class():
    images = torch.full((3, 1, 16, 16), 0.3)
    masks = torch.zeros(3, 1, 16, 16)
    labels = torch.tensor([2, 0, 2])
    donor = torch.full((1, 1, 16, 16), 0.3)
    donor[:, :, 5:9, 5:9] = 0.9
    donor_mask = (donor > 0.5).float()
    recipients = torch.tensor([True, False, False])
    out, out_masks, out_labels = paste_lesions(images, masks, labels, recipients, donor, donor_mask, torch.tensor([3]))
    assert out_labels.tolist() == [3, 0, 2]
    assert torch.equal(out_masks[0], donor_mask[0]) and out_masks[1:].abs().max() == 0
    scaled = 0.9 * 0.3 / ((0.3 * 240 + 0.9 * 16) / 256)  # the donor brought to the recipient's brightness
    assert (
        out[0, 0, 7, 7].item() == pytest.approx(scaled, rel=1e-5)
        and torch.allclose(out[0, 0, 0, 0], torch.tensor(0.3))
        and torch.equal(out[1:], images[1:])
    )
    with pytest.raises(ValueError, match="recipients"):
        paste_lesions(images, masks, labels, torch.tensor([True, True, False]), donor, donor_mask, torch.tensor([3]))


def test_donors_come_from_the_recipients_own_group():
    """``--paste-prob``: a FLAIR lesion goes into a FLAIR slice, a Kaggle one into a Kaggle slice; a recipient
    whose group has no donor gets nothing."""
    donors = torch.tensor([10, 11, 12, 13, 14])
    donor_groups = torch.tensor([0, 1, 1, 3, 0])
    recipients = torch.tensor([1, 0, 2, 1, 3, 0, 1])
    gen = torch.Generator().manual_seed(0)
    kept, drawn = draw_donors(recipients, donors, donor_groups, gen)
    assert kept.tolist() == [True, True, False, True, True, True, True]
    group_of = dict(zip(donors.tolist(), donor_groups.tolist()))
    assert [group_of[d] for d in drawn.tolist()] == recipients[kept].tolist()
    many = draw_donors(torch.ones(400, dtype=torch.int64), donors, donor_groups, gen)[1]
    assert set(many.tolist()) == {11, 12}  # uniform within the group: both drawn
    none = draw_donors(torch.tensor([], dtype=torch.int64), donors, donor_groups, gen)
    assert none[0].shape == (0,) and none[1].shape == (0,)


def test_markers_land_near_the_edges_and_leave_the_head_alone():
    """``--marker-prob``: letters, arrows and scale bars burnt in within the outer band, as a viewer exports them."""
    from brainmri.data.augment import EDGE_BAND, MARKERS, marker_stamps

    stamps = marker_stamps(14)
    assert stamps.shape == (len(MARKERS), 14, 14) and all(stamp.max() > 0.9 for stamp in stamps)
    images = torch.zeros(32, 1, 112, 112)
    images[:, :, 30:82, 30:82] = 0.5  # a head in the middle
    cfg = AugmentConfig(rotate_deg=0, hflip=0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0, marker_prob=1.0)
    out = augment_batch(images, cfg, torch.Generator().manual_seed(0))
    changed = (out - images).abs() > 1e-6
    assert changed.flatten(1).any(1).all()  # every slice got a marker
    band = int(EDGE_BAND * 112)
    inner = torch.zeros(112, 112, dtype=torch.bool)
    inner[band:-band, band:-band] = True
    assert not changed[:, 0][:, inner].any()  # nothing inside the band: the head is untouched
    again = augment_batch(images, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded: the same markers again (a resumed run draws the same)
    none = augment_batch(
        images, AugmentConfig(**{**cfg.__dict__, "marker_prob": 0.0}), torch.Generator().manual_seed(0)
    )
    assert torch.equal(none, images)


def test_augment_batch_shape_range_and_seed():
    images = torch.rand(8, 1, 32, 32)
    for name in ("report", "strong"):
        cfg = AugmentConfig.named(name)
        a = augment_batch(images, cfg, torch.Generator().manual_seed(3))
        b = augment_batch(images, cfg, torch.Generator().manual_seed(3))
        assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, images)


def test_augment_none_is_identity():
    images = torch.rand(4, 1, 32, 32)
    out = augment_batch(images, AugmentConfig.named("none"), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_horizontal_flip_only():
    images = torch.rand(2, 1, 16, 16)
    cfg = AugmentConfig(rotate_deg=0, hflip=1.0, scale=(1, 1), ratio=(1, 1), brightness=0, contrast=0)
    out = augment_batch(images, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images.flip(-1), atol=1e-5, rtol=0)
