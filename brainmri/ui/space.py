"""Publishing the app as a Hugging Face Space: exactly the files the page needs, with a front matter whose licence is
the served weights' (a model trained on TCGA-LGG carries its non-commercial licence).

The Space gets ``app.py``, the package, the bundled release and its saved evaluation, the examples, the README's
screenshots, ``pyproject.toml`` and a ``requirements.txt`` without the editable install of this checkout (the
Space's ``app.py`` imports the package beside it). Tests, docs, benchmarks, scripts, recipes and the yardstick runs
stay local unless asked for (``extra``). huggingface_hub's ``upload_folder`` stores the large files (weights, ONNX
export) through the Hub's large-file storage itself.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from brainmri.inference.hub import MODEL_CARD, release_files
from brainmri.inference.release import verify_release

ROOT = Path(__file__).resolve().parents[2]
MODEL = "assets/model"
METRICS = "assets/metrics"
# what the page needs besides the release: the code, its words, its saved evaluation, the examples, the teaching cases,
# the README's images
PATTERNS = (
    "app.py",
    "pyproject.toml",
    "brainmri/**/*.py",
    "brainmri/locales/*.toml",
    f"{METRICS}/**/*",
    "assets/examples/*",
    "assets/teach/*",
    "assets/screenshots/*",
)
EXCLUDED = ("__pycache__", ".pyi", ".pyc")


class SpaceError(ValueError):
    """The Space cannot be published as asked; the message says why, in one line."""


def weights_licence(release: Path) -> str:
    """The licence in the release's model card (its YAML front matter), apache-2.0 when it names none."""
    card = release / MODEL_CARD
    found = re.search(r"^license:\s*(\S+)", card.read_text(), re.M) if card.is_file() else None
    return found.group(1) if found else "apache-2.0"


def space_readme(readme: str, licence: str) -> str:
    """The README with its front matter's ``license`` set to the weights' licence."""
    if not readme.startswith("---\n"):
        raise SpaceError("README.md has no front matter: a Space needs its sdk, app_file and licence there")
    end = readme.index("\n---", 4)
    head, body = readme[:end], readme[end:]
    head = (
        re.sub(r"^license:.*$", f"license: {licence}", head, flags=re.M)
        if re.search(r"^license:", head, re.M)
        else head + f"\nlicense: {licence}"
    )
    return head + body


def space_requirements(requirements: str) -> str:
    """``requirements.txt`` without the editable install of this checkout."""
    return "".join(line for line in requirements.splitlines(keepends=True) if not line.strip().startswith("-e "))


def space_files(root: Path = ROOT, extra: tuple[str, ...] = ()) -> list[str]:
    """Every file the Space gets (paths relative to ``root``), the generated README and requirements aside."""
    release = root / MODEL
    config = verify_release(release)
    found = {f"{MODEL}/{name}" for name in release_files(config) if (release / name).is_file()}
    for pattern in (*PATTERNS, *extra):
        found |= {p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file()}
    return sorted(p for p in found if not any(part in p for part in EXCLUDED))


def stage_space(folder: Path, root: Path = ROOT, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """Copy the Space's files into ``folder``; returns each file's size in bytes."""
    for name in space_files(root, extra):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    if (root / ".gitattributes").is_file():  # the large files marked for Git LFS, for those who push with git
        shutil.copy2(root / ".gitattributes", folder / ".gitattributes")
    (folder / "README.md").write_text(space_readme((root / "README.md").read_text(), weights_licence(root / MODEL)))
    (folder / "requirements.txt").write_text(space_requirements((root / "requirements.txt").read_text()))
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] != ".git"]
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in files}  # a clone's own .git/ is not ours


def publish_space(
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    api=None,
    root: Path = ROOT,
    extra: tuple[str, ...] = (),
) -> tuple[str, dict[str, int]]:
    """Create (or update) the Gradio Space ``repo_id`` with the app; returns the commit URL and what was uploaded."""
    owner, _, name = repo_id.partition("/")
    if not owner or not name or "/" in name:
        raise SpaceError(
            f"--repo-id must be USER/NAME (your Hugging Face user or organisation, then the Space's "
            f"name), not {repo_id!r}"
        )
    if api is None:
        from huggingface_hub import HfApi, get_token

        token = token or os.environ.get("HF_TOKEN") or get_token()
        if not token:
            raise SpaceError("no Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass --token")
        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        sizes = stage_space(Path(staging), root, extra)
        commit = api.upload_folder(
            folder_path=staging, repo_id=repo_id, repo_type="space", commit_message="Publish the brainmri app"
        )
    return str(getattr(commit, "commit_url", commit)), sizes
