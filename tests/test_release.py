"""Release folders: save and load, sha256 checks, the preprocessing they carry (brainmri.inference.release)."""

import os

import pytest
import timm
import torch

from brainmri.inference.preprocess import Preprocess
from brainmri.inference.release import (
    CheckpointError,
    load_release,
    read_config,
    save_release,
    sha256_file,
    verify_release,
)
from brainmri.training.model import create_model
from helpers import CLASSES, TINY_ARCH, plain_preprocess


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


def test_release_config_carries_the_preprocessing(tmp_path):
    from brainmri.inference.release import read_config, save_release
    from brainmri.training.model import create_model

    folder = save_release(create_model("test_convnext", image_size=32), tmp_path / "r", list("abcd"), content_crop=True)
    config = read_config(folder)
    assert config["preprocessing"] == {"grayscale": True, "content_crop": True, "pad_to_square": True}
    assert Preprocess.from_release_config(config).content_crop is True


def test_the_crop_travels_with_the_release(tmp_path):
    from dataclasses import replace

    import pytest

    from brainmri.inference.release import read_config, save_release
    from brainmri.training.model import create_model

    pre = replace(plain_preprocess(content_crop=True), crop="head")
    folder = save_release(
        create_model("test_convnext", image_size=32), tmp_path / "r", list("abcd"), preprocessing=pre.release_steps()
    )
    config = read_config(folder)
    rebuilt = Preprocess.from_release_config(config)
    assert config["preprocessing"]["crop"] == "head" and rebuilt.crop == "head" and rebuilt.content_crop
    del config["preprocessing"]["crop"]  # a release from before the head-region crop
    assert Preprocess.from_release_config(config).crop == "threshold"
    assert repr(pre) != repr(replace(pre, crop="threshold"))  # the decoded cache keeps them apart
    with pytest.raises(ValueError, match="unknown head crop"):
        replace(pre, crop="circle")
