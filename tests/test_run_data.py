"""The training data of a run: the validation split, class- and source-balanced batches, framed copies of each slice."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from brainmri.data.augment import AugmentConfig, paste_lesions
from brainmri.inference.preprocess import GammaFraming
from brainmri.training.config import TrainConfig
from helpers import parsed_train_options, tiny_trainer


def test_class_balanced_batches_draw_every_class_equally(dataset, cache_dir, tmp_path):
    """--balance classes: a class with a tenth of the images is drawn as often as the others, the same each epoch."""
    trainer = tiny_trainer(dataset, tmp_path / "run", cache_dir, balance="classes")
    trainer.setup()
    n = len(trainer.train_set)
    skewed = torch.tensor([0] * (n // 10) + [1 + i % 3 for i in range(n - n // 10)])  # class 0 is rare
    trainer.train_labels = skewed
    gen = torch.Generator().manual_seed(1)
    drawn = torch.cat([torch.tensor(list(trainer._balanced_sampler(gen))) for _ in range(200)])
    assert len(drawn) == 200 * n
    shares = torch.bincount(skewed[drawn], minlength=4).double() / len(drawn)
    assert torch.allclose(shares, torch.full((4,), 0.25, dtype=torch.double), atol=0.02), shares
    assert set(drawn[skewed[drawn] == 0].tolist()) == set(range(n // 10))  # every rare image is drawn
    first = [y.tolist() for _, y, *_ in trainer._batches(epoch=3)]
    assert first == [y.tolist() for _, y, *_ in trainer._batches(epoch=3)]  # deterministic per epoch (resume)
    assert first != [y.tolist() for _, y, *_ in trainer._batches(epoch=4)]

    with pytest.raises(ValueError, match="--balance"):
        TrainConfig(data="d", out="o", balance="collections").resolved()
    assert parsed_train_options("--balance", "classes")["balance"] == "classes"


def test_split_seed_keeps_the_split_and_changes_the_batches(dataset, cache_dir, tmp_path):
    """--seed 1 --split-seed 0: the validation split of seed 0 (a run after --init must not validate on images its
    starting model trained on), with batches of its own."""

    def setup(name, **kw):
        trainer = tiny_trainer(dataset, tmp_path / name, cache_dir, val_fraction=0.2, **kw)
        trainer.setup()
        return trainer

    base, same_split, other = setup("a", seed=0), setup("b", seed=1, split_seed=0), setup("c", seed=1)
    assert same_split.val_set.paths == base.val_set.paths
    assert other.val_set.paths != base.val_set.paths

    def batches(t):
        return [y.tolist() for _, y, *_ in t._batches(epoch=0)]

    assert torch.equal(same_split.train_labels, base.train_labels)  # the same training images ...
    assert batches(same_split) != batches(base)  # ... drawn in another order


def test_framing_swaps_slices_and_their_masks_for_the_framed_copies(dataset, cache_dir, collections, tmp_path):
    from dataclasses import replace

    from brainmri.io.images import load_grayscale
    from brainmri.training.trainer import TrainConfig

    _, masks = collections
    common = dict(masks=str(masks), seg_weight=1.0)
    trainer = tiny_trainer(dataset, tmp_path / "a", cache_dir, framing_prob=1.0, **common)
    trainer.setup()
    assert trainer.framed_images.shape == (2, *trainer.train_images.shape)
    assert trainer.framed_masks.shape == trainer.framed_images.shape
    # real copies: each is its slice cropped as after gamma 0.6 and 1.6 (the scratch recipe's range)
    for row in (0, len(trainer.train_set) - 1):
        gray = load_grayscale(trainer.train_set.root / trainer.train_set.paths[row])
        for view, box_gamma in enumerate((0.6, 1.6)):
            expected = GammaFraming.of(trainer.preprocess, box_gamma).fit(gray)
            assert np.array_equal(trainer.framed_images[view, row].numpy(), expected)
    assert not torch.equal(trainer.framed_images[0], trainer.train_images)  # the brighter crop moved somewhere

    trainer.aug = AugmentConfig.named("none")  # so a batch shows exactly which copy it took
    trainer.framed_images = torch.stack(
        [torch.full_like(trainer.train_images, 7), torch.full_like(trainer.train_images, 200)]
    )
    trainer.framed_masks = torch.stack(
        [torch.zeros_like(trainer.train_images), torch.full_like(trainer.train_images, 255)]
    )
    mean, std = (
        torch.tensor(trainer.preprocess.mean).view(1, 3, 1, 1),
        torch.tensor(trainer.preprocess.std).view(1, 3, 1, 1),
    )
    seen = set()
    for x, _, batch_masks, _ in trainer._batches(epoch=0):
        pixels = (x.float() * std + mean).mul(255).round()[:, 0]
        for image, mask in zip(pixels, batch_masks[:, 0]):
            value = int(image.flatten()[0])
            assert value in (7, 200) and torch.all(image == value)  # every slice swapped (framing_prob 1)
            assert torch.all(mask == (1.0 if value == 200 else 0.0))  # its mask is the same copy's
            seen.add(value)
    assert seen == {7, 200}  # both ends of the gamma range

    plain = tiny_trainer(dataset, tmp_path / "b", cache_dir, **common)
    plain.setup()
    assert plain.framed_images is None and plain.framed_masks is None
    with pytest.raises(ValueError, match="gamma range"):
        tiny_trainer(dataset, tmp_path / "c", cache_dir, framing_prob=0.5, recipe="report", **common).setup()
    with pytest.raises(ValueError, match="--framing-prob"):
        replace(TrainConfig(data="d", out="o"), framing_prob=1.5).resolved()
    assert parsed_train_options("--framing-prob", "0.5")["framing_prob"] == 0.5


@pytest.mark.slow  # trains, exports or serves
def test_source_balance_draws_each_source_and_class_alike(dataset, cache_dir, lgg_root, tmp_path):
    trainer = tiny_trainer(dataset, tmp_path / "t", cache_dir, val_fraction=0.3, lgg=str(lgg_root), balance="sources")
    trainer.setup()
    cells = trainer.train_source * 4 + trainer.train_labels
    draws = torch.cat(
        [torch.tensor(list(trainer._balanced_sampler(torch.Generator().manual_seed(s)))) for s in range(40)]
    )
    shares = torch.bincount(cells[draws]).double() / len(draws)
    present = torch.unique(cells)
    assert len(present) == 6  # Kaggle's four classes, TCGA-LGG's glioma and notumor
    assert torch.allclose(shares[present], torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.02)


@pytest.mark.slow  # trains, exports or serves
def test_pasted_lesions_stay_within_their_source_and_sequence(
    dataset, cache_dir, collections, lgg_root, tmp_path, monkeypatch
):
    """``--paste-prob`` with TCGA-LGG: the donors are the slices whose mask has a lesion, and a tumour-free slice
    takes its lesion from its own group (the Kaggle folder, or its TCGA-LGG sequence)."""
    import brainmri.training.run_data as run_data

    _, masks = collections
    options = dict(masks=str(masks), seg_weight=1.0, paste_prob=1.0, lgg=str(lgg_root), val_fraction=0.3)
    trainer = tiny_trainer(dataset, tmp_path / "t", cache_dir, **options)
    trainer.setup()
    lgg = trainer.train_source == 1
    donors = trainer.donors
    assert lgg[donors].any() and (~lgg[donors]).any()
    assert (trainer.train_masks[donors].flatten(1).amax(1) > 0).all()  # no empty mask among the donors
    assert set(trainer.paste_group[lgg].tolist()) == {1, 2, 3} and (trainer.paste_group[~lgg] == 0).all()

    def key(image):  # a training slice as the batch holds it (B x 1 x H x W in [0, 1]) -> its stored bytes
        return (image[0] * 255).round().to(torch.uint8).numpy().tobytes()

    groups = {}
    for row in range(len(trainer.train_set)):
        groups.setdefault(trainer.train_images[row].numpy().tobytes(), set()).add(int(trainer.paste_group[row]))
    pairs = []

    def spy(images, masks, labels, recipients, donor_images, donor_masks, donor_labels):
        pairs.extend(zip(images[recipients], donor_images))
        return paste_lesions(images, masks, labels, recipients, donor_images, donor_masks, donor_labels)

    monkeypatch.setattr(run_data, "paste_lesions", spy)
    list(trainer._batches(0))
    assert {next(iter(groups[key(r)])) for r, _ in pairs} >= {0, 1}  # Kaggle and TCGA-LGG slices received one
    for recipient, donor in pairs:
        assert groups[key(recipient)] & groups[key(donor)]


@pytest.mark.slow  # trains, exports or serves
def test_paste_into_tcga_lgg_leaves_the_kaggle_slices_alone(
    dataset, cache_dir, collections, lgg_root, tmp_path, monkeypatch
):
    """``--paste-into tcga-lgg``: only TCGA-LGG's tumour-free slices receive a lesion; a Kaggle slice keeps its
    look and its class. Without --lgg the option is refused."""
    import brainmri.training.run_data as run_data

    _, masks = collections
    options = dict(masks=str(masks), seg_weight=1.0, paste_prob=1.0, paste_into="tcga-lgg", val_fraction=0.3)
    trainer = tiny_trainer(dataset, tmp_path / "t", cache_dir, lgg=str(lgg_root), **options)
    trainer.setup()
    lgg_rows = {trainer.train_images[row].numpy().tobytes() for row in torch.nonzero(trainer.train_source == 1)[:, 0]}
    kaggle_rows = {
        trainer.train_images[row].numpy().tobytes() for row in torch.nonzero(trainer.train_source == 0)[:, 0]
    }
    recipients = []

    def spy(images, masks, labels, chosen, donor_images, donor_masks, donor_labels):
        recipients.extend((image[0] * 255).round().to(torch.uint8).numpy().tobytes() for image in images[chosen])
        return paste_lesions(images, masks, labels, chosen, donor_images, donor_masks, donor_labels)

    monkeypatch.setattr(run_data, "paste_lesions", spy)
    list(trainer._batches(0))
    assert recipients and all(r in lgg_rows for r in recipients)
    assert not any(r in kaggle_rows for r in recipients)
    with pytest.raises(ValueError, match="--paste-into tcga-lgg needs --lgg"):
        replace(TrainConfig(data="d", out="o", masks="m"), paste_prob=0.3, paste_into="tcga-lgg").resolved()
    with pytest.raises(ValueError, match="--paste-into"):
        replace(TrainConfig(data="d", out="o", masks="m"), paste_into="kaggle").resolved()
    assert parsed_train_options("--paste-into", "tcga-lgg")["paste_into"] == "tcga-lgg"
