"""The training losses: the differentiable Grad-CAM and its target cells."""

import numpy as np
import pytest
import torch

from brainmri.evaluation.localisation import localisation_scores
from helpers import TINY_ARCH


def test_differentiable_cam_is_grad_cam_and_its_loss_counts_heat_outside():
    from pytorch_grad_cam.utils.image import scale_cam_image

    from brainmri.inference.explain import feature_maps_cams
    from brainmri.training.losses import WithTumourMap, cam_outside_loss
    from brainmri.training.model import create_model

    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=64).eval()
    net = WithTumourMap(model, seg=False, cam=True).eval()
    x = torch.randn(3, 3, 64, 64)
    targets = torch.tensor([0, 2, 3])
    logits, tumour_map, cam = net(x, targets)
    assert tumour_map is None and cam.shape[0] == 3 and cam.requires_grad
    features = model.forward_features(x).detach()  # the loss's map: Grad-CAM of the true class's logit
    library = feature_maps_cams(model, features, targets.tolist(), (64, 64), target_kind="logit").heatmaps
    ours = scale_cam_image(cam.detach().numpy(), (64, 64))
    for a, b in zip(ours, library):
        if a.max() > 0:
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    heat = torch.zeros(2, 4, 4)
    heat[0, 1, 1] = 1.0  # all on the tumour
    heat[1, 3, 3] = 1.0  # all far from it
    masks = torch.zeros(2, 1, 32, 32)
    masks[:, :, 8:16, 8:16] = 1
    assert cam_outside_loss(heat, masks).item() == pytest.approx(0.5)  # mean of 0 and 1
    assert cam_outside_loss(heat, masks, "centres").item() == pytest.approx(0.5)
    assert cam_outside_loss(heat, torch.zeros(2, 1, 32, 32)).item() == 0.0  # no tumour: nothing asked
    heat[1] = 0
    heat[1, 2, 2] = 1.0  # beside the tumour: inside the one-cell widening, not on a centre in the mask
    assert cam_outside_loss(heat, masks).item() == pytest.approx(0.0)
    assert cam_outside_loss(heat, masks, "centres").item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="centres"):
        cam_outside_loss(heat, masks, "nearby")


def test_centres_target_is_the_pointing_games_rule():
    """A one-hot heatmap on a "centres" cell, scaled to the input as the app does, hits the mask in the
    localisation yardstick; on any other cell it misses (where some centre can hit at all)."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    from brainmri.training.losses import cam_target_cells

    rng = np.random.default_rng(0)
    masks = np.zeros((24, 112, 112), np.uint8)
    for m in masks:  # ellipses of 3 to 30 px, anywhere
        cy, cx = rng.integers(10, 102, 2)
        ry, rx = rng.integers(2, 16, 2)
        yy, xx = np.mgrid[:112, :112]
        m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 255
    cells = cam_target_cells(torch.from_numpy(masks / 255.0).float()[:, None], (7, 7), "centres").numpy()
    touching = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(masks > 0).float()[:, None], 7)[:, 0].numpy()
    checked = 0
    for index in range(len(masks)):
        hits = []
        for cell in range(49):
            one_hot = np.zeros((1, 7, 7), np.float32)
            one_hot.flat[cell] = 1.0
            heat = scale_cam_image(one_hot, (112, 112))
            hits.append(bool(localisation_scores(heat, masks[index : index + 1])["pointing"][0]))
        if any(hits):
            assert np.array_equal(np.array(hits).reshape(7, 7), cells[index] > 0)
            checked += 1
        else:  # no centre can hit: the cells touching the mask
            assert np.array_equal(cells[index], touching[index])
    assert 10 < checked < 40  # both kinds of tumour were drawn


def test_group_robust_weighs_the_worst_group_most():
    from brainmri.training.losses import GroupRobust

    robust = GroupRobust(groups=3, step=1.0)
    groups = torch.tensor([0, 0, 1, 1])
    same = robust(torch.tensor([0.5, 0.5, 0.5, 0.5]), groups)
    assert float(same) == pytest.approx(0.5)  # equal losses: the mean, whatever the weights
    assert robust.weights[0] == robust.weights[1] > robust.weights[2]  # group 2 absent: not raised
    for _ in range(5):
        loss = robust(torch.tensor([0.1, 0.1, 2.0, 2.0], requires_grad=True), groups)
    assert robust.weights[1] > 0.9 * (robust.weights[0] + robust.weights[1])  # the worse group dominates
    assert 1.8 < float(loss.detach()) < 2.0  # the batch's loss leans to it
    assert float(robust.weights.sum()) == pytest.approx(1.0)
    loss.backward()  # differentiable through the per-image losses


@pytest.mark.slow  # trains, exports or serves
def test_a_group_robust_run_keeps_its_weights_across_a_resume(dataset, cache_dir, tmp_path):
    from helpers import tiny_trainer

    settings = dict(epochs=2, steps_per_epoch=3, group_robust=0.5)
    trainer = tiny_trainer(dataset, tmp_path / "g", cache_dir, **settings)
    trainer.run()
    history = trainer.history
    assert all(len(row["group_weights"].split()) == 2 * len(trainer.classes) for row in history)
    saved = torch.load(tmp_path / "g" / "last.pt", weights_only=True)["group_weights"]
    assert float(saved.sum()) == pytest.approx(1.0) and not torch.allclose(saved, torch.full_like(saved, saved[0]))
    resumed = tiny_trainer(dataset, tmp_path / "g", cache_dir, **settings, resume=True)
    resumed.setup()
    assert torch.equal(resumed.robust.weights, saved)
