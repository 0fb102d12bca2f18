"""Publishing a release to the Hugging Face Hub (a stand-in HfApi) and loading it back."""

from pathlib import Path

import numpy as np
import pytest

from brainmri.inference.hub import push_release
from helpers import TINY_SIZE

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # trains, exports or serves
def test_push_uploads_only_the_release_files(run):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs))
            return "https://huggingface.co/me/brainmri/commit/abc"

    url = push_release(run / "release", "me/brainmri", api=FakeApi())
    assert url.endswith("abc")
    assert calls[0][:2] == ("create", "me/brainmri")
    assert calls[1][1]["folder_path"] == str(run / "release")
    assert "model.safetensors" in calls[1][1]["allow_patterns"]
    with pytest.raises(ValueError):
        push_release(run / "release", "no-slash", api=FakeApi())


@pytest.mark.slow  # trains, exports or serves
def test_push_then_load_gives_the_same_model(run, tmp_path):
    """What ``push`` sends (huggingface_hub's own allow_patterns filter over the folder) loads back."""
    import shutil

    from huggingface_hub.utils import filter_repo_objects

    from brainmri import Predictor
    from brainmri.training.export import export_release

    release = tmp_path / "release"
    shutil.copytree(run / "release", release)
    export_release(release)  # a release that lists model.onnx too
    (release / "last.pt").write_bytes(b"training state stays local")
    hub = tmp_path / "hub"

    class CopyingApi:
        def create_repo(self, repo_id, **kwargs):
            hub.mkdir()

        def upload_folder(self, folder_path, allow_patterns, **kwargs):
            names = [p.name for p in Path(folder_path).iterdir() if p.is_file()]
            for name in filter_repo_objects(names, allow_patterns=allow_patterns):
                shutil.copy(Path(folder_path) / name, hub / name)
            return "https://huggingface.co/me/brainmri/commit/abc"

    push_release(release, "me/brainmri", api=CopyingApi())
    card = {"README.md"} if (release / "README.md").exists() else set()
    assert {p.name for p in hub.iterdir()} == {
        "config.json",
        "model.onnx",
        "model.safetensors",
        "ood.safetensors",
    } | card
    original, published = Predictor.from_pretrained(release), Predictor.from_pretrained(hub)
    assert published.backend.name == original.backend.name == "onnxruntime"
    inputs = np.random.default_rng(0).integers(0, 255, (4, TINY_SIZE, TINY_SIZE), dtype=np.uint8)
    np.testing.assert_allclose(
        published.probabilities(published.logits(inputs)), original.probabilities(original.logits(inputs)), atol=1e-6
    )


def test_a_bare_user_name_is_no_hub_download(tmp_path):
    from brainmri.inference.release import CheckpointError, resolve_release

    with pytest.raises(CheckpointError, match="hf-hub:someone/brainmri"):
        resolve_release("someone/brainmri")
