"""The network (brainmri.training.model): timm models by name, ImageNet weights failing fast offline, the head."""

import socket

import pytest

from brainmri.training.model import PretrainedUnavailable, create_model, head_parameters, target_layer


def test_pretrained_offline_fails_fast_with_the_way_out(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(PretrainedUnavailable) as err:
        create_model("convnext_tiny", pretrained=True)
    assert "--no-pretrained" in str(err.value) and "--init DIR" in str(err.value)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="not a timm architecture"):
        create_model("convnext_nonexistent")


def test_head_and_target_layer():
    model = create_model("convnext_atto", num_classes=4, drop_rate=0.3)
    names = {n for n, p in model.named_parameters() if any(p is q for q in head_parameters(model))}
    assert names == {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}
    assert model.head.drop.p == 0.3 and model.head.fc.in_features == 320
    assert target_layer(model) is model.stages[-1]
    resnet = create_model("test_resnet", num_classes=4)
    assert target_layer(resnet) is resnet.layer4  # the last stage, whatever the family
