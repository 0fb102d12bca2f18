"""Publishing a release folder to the Hugging Face Hub, unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from brainmri.inference.release import CONFIG, WEIGHTS, verify_release

MODEL_CARD = "README.md"


def release_files(config: dict) -> list[str]:
    """The files a release consists of: weights, config, model card and every file ``config.json`` lists
    with a sha256 (screening statistics, ONNX export), so what is published loads back."""
    return [WEIGHTS, CONFIG, MODEL_CARD, *sorted(config.get("files_sha256", {}))]


def push_release(
    checkpoint: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None, api=None
) -> str:
    """Verify ``checkpoint`` (sha256, labels), create the model repo if needed and upload the folder.

    Only the release files are uploaded (weights, config, model card); training state
    and anything else in the folder stay local. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    folder = Path(checkpoint)
    config = verify_release(folder)
    if repo_id.count("/") != 1:
        raise ValueError(f"--repo-id must look like USER/NAME, not {repo_id!r}")
    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        allow_patterns=release_files(config),
        commit_message="Upload brainmri release",
    )
    return str(getattr(commit, "commit_url", commit))
