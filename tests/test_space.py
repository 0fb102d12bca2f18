"""Publishing the app as a Hugging Face Space (brainmri.ui.space) against a stand-in HfApi: the file set, the front
matter, the sizes, the refusals; and the staged Space builds its page on its own."""

import subprocess
import sys
from pathlib import Path

import pytest

from brainmri.ui import space

ROOT = Path(__file__).resolve().parents[1]


class StandInApi:
    """Records what huggingface_hub's HfApi would be asked to do, and what the uploaded folder held."""

    def __init__(self):
        self.created, self.files, self.readme, self.requirements = None, {}, "", ""

    def create_repo(self, repo_id, **kwargs):
        self.created = (repo_id, kwargs)

    def upload_folder(self, *, folder_path, repo_id, repo_type, **kwargs):
        folder = Path(folder_path)
        self.files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
        self.readme = (folder / "README.md").read_text()
        self.requirements = (folder / "requirements.txt").read_text()
        self.upload = (repo_id, repo_type)
        return f"https://huggingface.co/spaces/{repo_id}/commit/abc"


def test_the_space_gets_exactly_what_the_page_needs():
    api = StandInApi()
    url, sizes = space.publish_space("me/brainmri", private=True, api=api)
    assert url.endswith("/commit/abc") and api.upload == ("me/brainmri", "space")
    assert api.created == (
        "me/brainmri",
        {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True},
    )
    files = set(api.files)
    assert sizes == api.files
    for needed in (
        "app.py",
        "README.md",
        "requirements.txt",
        "pyproject.toml",
        "brainmri/__init__.py",
        "brainmri/ui/page.py",
        "brainmri/locales/fr.toml",
        "assets/model/model.safetensors",
        "assets/model/config.json",
        "assets/model/README.md",
        "assets/metrics/metrics.json",
        "assets/teach/cases.json",
        "assets/teach/README.md",
    ):
        assert needed in files, needed
    assert {f for f in files if f.startswith("assets/examples/")}
    for left_out in ("tests/", "docs/", "benchmarks/", "scripts/", "recipes/", "assets/yardsticks/", "runs/"):
        assert not [f for f in files if f.startswith(left_out)], left_out
    assert not [f for f in files if "__pycache__" in f or f.endswith((".pyc", ".pyi"))]
    # the weights travel whole (upload_folder puts large files in the Hub's large-file storage)
    assert sizes["assets/model/model.safetensors"] == (ROOT / "assets/model/model.safetensors").stat().st_size
    head = api.readme.split("\n---", 1)[0]
    assert "sdk: gradio" in head and "app_file: app.py" in head
    assert f"license: {space.weights_licence(ROOT / 'assets' / 'model')}" in head
    assert "-e ." not in api.requirements and "gradio==" in api.requirements


def test_the_front_matter_licence_follows_the_weights(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: cc-by-nc-sa-4.0\nlibrary_name: timm\n---\n# a card\n")
    licence = space.weights_licence(tmp_path)
    assert licence == "cc-by-nc-sa-4.0"
    readme = space.space_readme("---\ntitle: brainmri\nlicense: apache-2.0\n---\n# brainmri\n", licence)
    assert readme == "---\ntitle: brainmri\nlicense: cc-by-nc-sa-4.0\n---\n# brainmri\n"
    assert space.weights_licence(tmp_path / "no-card") == "apache-2.0"
    with pytest.raises(space.SpaceError, match="no front matter"):
        space.space_readme("# no front matter\n", licence)


def test_bad_names_and_a_missing_token_get_one_clear_line(tmp_path, monkeypatch):
    for bad in ("brainmri", "me/", "/brainmri", "me/brain/mri"):
        with pytest.raises(space.SpaceError, match="--repo-id must be USER/NAME"):
            space.publish_space(bad, api=StandInApi())
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no token saved by `hf auth login` either
    with pytest.raises(space.SpaceError, match="no Hugging Face token"):
        space.publish_space("me/brainmri")
    import train

    assert train.main(["space", "--repo-id", "brainmri"]) == 2  # the command line says it in one line


def test_the_git_way_stages_the_same_files_into_a_clone(tmp_path, capsys):
    """`train.py space --stage DIR`: the files an upload sends (.gitattributes among them), into a clone."""
    import train

    clone = tmp_path / "brainmri-demo"
    (clone / ".git").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert train.main(["space", "--repo-id", "me/brainmri-demo", "--stage", str(clone)]) == 0
    assert "git lfs install" in capsys.readouterr().out
    staged = {p.relative_to(clone).as_posix() for p in clone.rglob("*") if p.is_file() and ".git/" not in str(p)}
    api = StandInApi()
    space.publish_space("me/brainmri", api=api)
    assert staged == set(api.files) and ".gitattributes" in staged
    assert "*.safetensors" in (clone / ".gitattributes").read_text() and "lfs" in (clone / ".gitattributes").read_text()


@pytest.mark.slow  # builds the page from the staged Space in a fresh process
def test_the_staged_space_builds_its_page_on_its_own(tmp_path):
    sizes = space.stage_space(tmp_path / "space")
    assert sum(sizes.values()) > 20 * 2**20
    code = "import app, brainmri; print(type(app.demo).__name__, app.demo.title, brainmri.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "space",
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(tmp_path / "space"),
        },
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kind, title, package = done.stdout.split()
    assert (kind, title) == ("Blocks", "brainmri")
    assert Path(package).is_relative_to(tmp_path / "space")  # the Space's own copy, not this checkout's
