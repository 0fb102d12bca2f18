"""ONNX export, the backend choice, and the one-pass Grad-CAM against pytorch-grad-cam's default call."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget

import train as cli
from brainmri import Predictor
from brainmri.inference.backends import BackendUnavailable, OnnxBackend, TorchBackend, select_backend
from brainmri.inference.explain import AmongAlternatives, feature_maps_cams
from brainmri.inference.release import CheckpointError, load_release
from brainmri.training.export import ONNX_FILE, ExportError, export_release, first_testing_inputs
from brainmri.training.model import create_model, target_layer
from helpers import REAL_DATA

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tiny_release, tmp_path_factory):
    """A copy of the tiny release with model.onnx, exported through the command line."""
    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(tiny_release, folder)
    args = ["export", "--checkpoint", str(folder), "--format", "onnx"]
    if REAL_DATA.is_dir():
        args += ["--data", str(REAL_DATA), "--check-images", "64"]
    assert cli.main(args) == 0
    return folder


@pytest.mark.slow  # trains, exports or serves
def test_export_matches_torch_on_the_first_64_testing_images(exported):
    if not REAL_DATA.is_dir():
        pytest.skip("the real dataset is not beside the repository")
    model, release = load_release(exported)
    config = release.config
    assert config["onnx"]["check"]["images"] == 64
    assert config["onnx"]["check"]["max_abs_logit_diff"] <= 1e-4
    assert config["files_sha256"][ONNX_FILE] and (exported / ONNX_FILE).is_file()
    # Checked again here, independently of what the export recorded.
    inputs = first_testing_inputs(exported, REAL_DATA, 64)
    onnx = OnnxBackend(exported / ONNX_FILE)
    with torch.no_grad():
        reference = model(inputs)
    logits, features = onnx(inputs)
    assert torch.allclose(logits, reference, atol=1e-4, rtol=0)
    assert features.shape[0] == 64 and features.ndim == 4


@pytest.mark.slow  # trains, exports or serves
def test_predictor_picks_onnx_and_agrees_with_torch(exported, dataset):
    fast = Predictor.from_pretrained(exported)
    plain = Predictor.from_pretrained(exported, backend="torch")
    assert isinstance(fast.backend, OnnxBackend) and isinstance(plain.backend, TorchBackend)
    files = sorted((dataset / "Testing").rglob("*.jpg"))[:24]
    for a, b in zip(fast.predict_batch(files), plain.predict_batch(files)):
        np.testing.assert_allclose(list(a.values()), list(b.values()), atol=1e-5)
    one, two = fast.explain(files[0]), plain.explain(files[0])
    np.testing.assert_allclose(one.heatmap, two.heatmap, atol=1e-3)
    assert fast.screen(files[0])[1].status == plain.screen(files[0])[1].status


@pytest.mark.slow  # trains, exports or serves
def test_stale_missing_or_damaged_exports_are_never_used(exported, tmp_path, monkeypatch):
    stale = tmp_path / "stale"
    shutil.copytree(exported, stale)
    config = json.loads((stale / "config.json").read_text())
    config["onnx"]["weights_sha256"] = "0" * 64
    (stale / "config.json").write_text(json.dumps(config))
    assert isinstance(Predictor.from_pretrained(stale).backend, TorchBackend)
    with pytest.raises(BackendUnavailable, match="other weights"):
        Predictor.from_pretrained(stale, backend="onnx")

    damaged = tmp_path / "damaged"
    shutil.copytree(exported, damaged)
    (damaged / ONNX_FILE).write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="model.onnx"):
        Predictor.from_pretrained(damaged)

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    model, release = load_release(exported)
    assert isinstance(select_backend(model, release, "auto"), TorchBackend)
    with pytest.raises(BackendUnavailable, match="not installed"):
        select_backend(model, release, "onnx")


def test_release_without_export_runs_on_torch(tiny_release):
    assert isinstance(Predictor.from_pretrained(tiny_release).backend, TorchBackend)
    with pytest.raises(BackendUnavailable, match="no model.onnx"):
        Predictor.from_pretrained(tiny_release, backend="onnx")


@pytest.mark.slow  # trains, exports or serves
def test_export_refuses_a_graph_that_does_not_match(tiny_release, tmp_path, monkeypatch):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_release, folder)
    with pytest.raises(ExportError, match="differs from torch"):
        export_release(folder, tolerance=-1.0)  # nothing can meet a negative tolerance
    assert not (folder / ONNX_FILE).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


@pytest.mark.parametrize("arch", ["test_convnext", "test_resnet"])
@pytest.mark.parametrize(
    "cam_class,method", [(GradCAM, "gradcam"), (GradCAMPlusPlus, "gradcam++"), (HiResCAM, "hirescam")]
)
@pytest.mark.parametrize(
    "kind,target_class",
    [("logit", ClassifierOutputTarget), ("rest", ClassifierOutputReST), ("alternatives", AmongAlternatives)],
)
def test_head_only_cam_equals_the_library_default_on_the_whole_network(arch, cam_class, method, kind, target_class):
    torch.manual_seed(0)
    model = create_model(arch, num_classes=4, image_size=128).eval()
    inputs = torch.randn(3, 3, 128, 128)
    targets = [0, 2, 3]
    with cam_class(model=model, target_layers=[target_layer(model)]) as cam:
        expected = cam(input_tensor=inputs, targets=[target_class(t) for t in targets])
        expected_logits = cam.outputs.detach()
    model.requires_grad_(False)
    with torch.no_grad():
        features = model.forward_features(inputs)
    result = feature_maps_cams(model, features, targets, (128, 128), method, target_kind=kind)
    assert result.heatmaps.shape == expected.shape
    torch.testing.assert_close(result.logits, expected_logits, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(result.heatmaps, expected):
        if theirs.std() == 0:  # a flat map (nothing speaks for the class): flat here too
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
        else:
            assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= 0.999
