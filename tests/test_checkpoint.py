import os
import socket

import pytest
import timm
import torch

from brainmri.inference.release import (
    CheckpointError,
    load_release,
    read_config,
    save_release,
    sha256_file,
    verify_release,
)
from brainmri.training.model import PretrainedUnavailable, create_model, head_parameters, target_layer
from helpers import CLASSES, TINY_ARCH


def test_save_load_gives_identical_logits_and_labels(tmp_path):
    torch.manual_seed(0)
    model = create_model(TINY_ARCH, num_classes=4, image_size=32).eval().to(memory_format=torch.channels_last)
    folder = save_release(model, tmp_path / "rel", CLASSES, temperature=1.7, extra={"brainmri": {"seed": 0}})
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]
    config = read_config(folder)
    assert config["label_names"] == CLASSES and config["temperature"] == 1.7
    assert config["weights_sha256"] == sha256_file(folder / "model.safetensors")
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32] and config["pretrained_cfg"]["crop_pct"] == 1.0
    x = torch.randn(2, 3, 32, 32)
    loaded, _ = load_release(folder)
    torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    # timm's own loader reads the same folder unchanged
    direct = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    torch.testing.assert_close(direct(x), model(x), atol=0, rtol=0)
    assert direct.pretrained_cfg["label_names"] == CLASSES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_half_weights_load_as_float(tmp_path):
    model = create_model(TINY_ARCH, num_classes=4, image_size=32).eval()
    folder = save_release(model, tmp_path / "rel", CLASSES, half=True)
    loaded, release = load_release(folder)
    assert release.config["weights_dtype"] == "float16" and next(loaded.parameters()).dtype == torch.float32
    assert release.folder == folder and release.labels == CLASSES and release.config == read_config(folder)
    assert "folder" not in release.config  # config.json exactly as on disk
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=2e-2)


def test_damaged_weights_and_wrong_labels_are_refused(tiny_release, tmp_path):
    with pytest.raises(CheckpointError, match="classes"):
        verify_release(tiny_release, expected_labels=list(reversed(CLASSES)))
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        (copy / name).write_bytes((tiny_release / name).read_bytes())
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_release(copy)
    with pytest.raises(CheckpointError, match="no release folder"):
        load_release(tmp_path / "missing")


def test_failed_save_keeps_the_previous_release(tiny_release, tmp_path):
    model = create_model(TINY_ARCH, num_classes=4, image_size=32)
    folder = save_release(model, tmp_path / "rel", CLASSES)
    before = (folder / "config.json").read_text()
    with pytest.raises(CheckpointError):
        save_release(model, folder, CLASSES[:3])
    with pytest.raises(TypeError):
        save_release(model, folder, CLASSES, extra={"bad": object()})
    assert (folder / "config.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rel"]


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
