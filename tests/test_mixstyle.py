"""brainmri.training.mixstyle: feature statistics mixed in training, nothing changed in eval or in the weights."""

import pytest
import torch

from brainmri.training.mixstyle import MixStyle, add_mixstyle
from helpers import TINY_SIZE


@pytest.fixture
def tiny_model():
    from brainmri.training.model import create_model
    from helpers import TINY_ARCH

    torch.manual_seed(0)
    return create_model(TINY_ARCH, num_classes=4, image_size=TINY_SIZE)


def _stage_outputs(model, x):
    seen = []
    handle = model.get_submodule(model.feature_info[0]["module"]).register_forward_hook(
        lambda module, inputs, output: seen.append(output.detach().clone())
    )
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


def test_in_training_each_image_takes_a_mixture_of_the_batch_statistics(tiny_model):
    model = tiny_model.train()
    looks = torch.linspace(0.5, 3.0, 6)[:, None, None, None]  # six images, six different "looks"
    x = torch.randn(6, 3, TINY_SIZE, TINY_SIZE) * looks
    torch.manual_seed(0)
    plain = _stage_outputs(model, x)
    handles = add_mixstyle(model, p=1.0, alpha=0.1)
    mixed = _stage_outputs(model, x)  # the hook that records runs after MixStyle's, on what it returned
    assert len(handles) == 2
    assert not torch.allclose(plain, mixed)
    # the spatial pattern within each channel is kept: a per-channel affine map of the plain output
    flat_p, flat_m = plain.flatten(2), mixed.flatten(2)
    corr = torch.nn.functional.cosine_similarity(
        flat_p - flat_p.mean(-1, keepdim=True), flat_m - flat_m.mean(-1, keepdim=True), dim=-1
    )
    assert corr.min() > 0.999
    # the per-channel means lie between the batch's own (a convex mixture)
    means_p, means_m = plain.mean((2, 3)), mixed.mean((2, 3))
    assert (means_m >= means_p.min(0).values - 1e-4).all() and (means_m <= means_p.max(0).values + 1e-4).all()


def test_in_eval_and_at_p_zero_the_model_is_unchanged(tiny_model):
    x = torch.randn(4, 3, TINY_SIZE, TINY_SIZE)
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    expected = tiny_model.eval()(x)
    add_mixstyle(tiny_model, p=1.0)
    assert torch.equal(tiny_model.eval()(x), expected)
    assert tiny_model.state_dict().keys() == state.keys()  # nothing learned, nothing saved
    off = MixStyle(p=0.0)
    assert off(tiny_model.train(), (x,), torch.randn(4, 8, 4, 4)) is None


def test_bad_settings_are_refused(tiny_model):
    with pytest.raises(ValueError, match="alpha"):
        MixStyle(p=0.5, alpha=0.0)
    with pytest.raises(ValueError, match="p="):
        MixStyle(p=1.5)
    with pytest.raises(ValueError, match="feature stages"):
        add_mixstyle(torch.nn.Linear(2, 2), p=0.5)


@pytest.mark.slow  # trains
def test_a_mixstyle_run_trains_and_releases_without_its_hooks(dataset, cache_dir, tmp_path):
    from helpers import tiny_trainer

    trainer = tiny_trainer(dataset, tmp_path / "m", cache_dir, epochs=1, steps_per_epoch=2, mixstyle=0.5)
    trainer.run()
    hooked = trainer.model.get_submodule(trainer.model.feature_info[0]["module"])
    assert len(hooked._forward_hooks) == 1
    assert (tmp_path / "m" / "release" / "model.safetensors").is_file()
