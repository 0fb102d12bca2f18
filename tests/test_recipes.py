"""Recipes as files (train.py --config), the one-command release of a chain (resumable), and shipping rules."""

import json
from pathlib import Path

import pytest

import train as cli
from brainmri.evaluation.modelcard import kept_training_section
from brainmri.training.recipes import RecipeError, check_rules, read_chain, read_stage, to_argv
from helpers import TINY_ARCH, TINY_SIZE

ROOT = Path(__file__).resolve().parents[1]
AUDIT_SUMMARY = {
    "testing_with_exact_dup_in_training": 7,
    "testing_with_near_dup_in_training": 3,
    "dedup_testing_size": 20,
    "testing_images": 30,
}

FIRST = f"""
args:
  arch: {TINY_ARCH}
  pretrained: false
  image_size: {TINY_SIZE}
  recipe: scratch
  epochs: 2
  batch_size: 16
  steps_per_epoch: 2
  val_fraction: 0.2
  threads: 1
  seed: 0
"""
SECOND = """
init: first
args:
  recipe: scratch
  lr: 5.0e-4
  epochs: 1
  batch_size: 16
  steps_per_epoch: 2
  val_fraction: 0.2
  threads: 1
  seed: 1
  invert_prob: 0.5
  gamma: [0.5, 1.5]
release:
  steps: [export, evaluate, robustness, card]
  yardsticks: {lgg-heldout-institution.json: ../held-out.json}
  rules:
    - {name: Testing accuracy at least zero, file: metrics/metrics.json, key: full.accuracy, min: 0.0}
    - {name: an impossible accuracy, file: metrics/metrics.json, key: full.accuracy, min: 2.0}
    - {name: a figure nobody wrote, file: metrics/nothing.json, key: a.b, min: 0.0}
"""


@pytest.fixture()
def recipes(tmp_path) -> Path:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "first.yaml").write_text(FIRST)
    (folder / "second.yaml").write_text(SECOND)
    return folder


def _release(recipes, dataset, cache_dir, out, *extra):
    where = ["--data", str(dataset), "--out", str(out), "--cache-dir", str(cache_dir)]
    return cli.main(["release", "--recipe", str(recipes / "second.yaml"), *where, *extra])


@pytest.mark.slow  # trains, exports or serves
def test_release_runs_the_chain_resumes_after_a_kill_and_checks_its_rules(
    recipes, dataset, cache_dir, tmp_path, capsys
):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _release(recipes, dataset, cache_dir, whole) == 2  # the yardstick it shows is not there yet
    assert "no " in capsys.readouterr().err
    figures = {
        "sites": ["DU"],
        "patients": 2,
        "n": 10,
        "notumor": {"accuracy": 0.5},
        "by_sequence": {},
        "all": {"ok_share": 0.5, "ok_accuracy": 0.8},
    }
    (tmp_path / "held-out.json").write_text(json.dumps(figures))
    assert _release(recipes, dataset, cache_dir, whole) == 0
    printed = capsys.readouterr().out
    assert "met      Testing accuracy at least zero" in printed and "NOT MET  an impossible accuracy" in printed
    assert "NOT MET  a figure nobody wrote: missing" in printed
    release = whole / "second" / "release"
    for artefact in ("model.safetensors", "model.onnx", "config.json", "README.md"):
        assert (release / artefact).is_file(), artefact
    assert "institution held out (DU: 2 patients" in (release / "README.md").read_text()  # gathered before the card
    for artefact in ("metrics.json", "robustness.json", "lgg-heldout-institution.json"):
        assert (whole / "metrics" / artefact).is_file(), artefact
    config = json.loads((release / "config.json").read_text())
    from brainmri.inference.release import sha256_file

    assert config["weights_sha256"] == sha256_file(release / "model.safetensors")
    assert all(sha256_file(release / name) == digest for name, digest in config.get("files_sha256", {}).items())
    args = json.loads((whole / "second" / "args.json").read_text())
    assert (
        args["init"] == str(whole / "first" / "release") and args["invert_prob"] == 0.5 and args["gamma"] == [0.5, 1.5]
    )
    recorded = json.loads((whole / "recipe.json").read_text())
    assert recorded["chain"] == ["first", "second"]

    # killed after the first stage, then the same command again: the same release as the uninterrupted run
    assert _release(recipes, dataset, cache_dir, killed, "--until", "stage-first") == 0
    assert (killed / "first" / "release").is_dir() and not (killed / "second").exists()
    assert _release(recipes, dataset, cache_dir, killed) == 0
    assert sha256_file(killed / "second" / "release" / "model.safetensors") == sha256_file(
        release / "model.safetensors"
    )
    assert (
        json.loads((killed / "metrics" / "metrics.json").read_text())["full"]["accuracy"]
        == json.loads((whole / "metrics" / "metrics.json").read_text())["full"]["accuracy"]
    )

    # a third run finds every step up to date and trains nothing
    stamps = {p.name: p.stat().st_mtime_ns for p in (killed / ".steps").iterdir()}
    assert _release(recipes, dataset, cache_dir, killed) == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (killed / ".steps").iterdir()}

    capsys.readouterr()
    assert cli.main(["check-rules", str(whole), "--recipe", str(recipes / "second.yaml")]) == 1
    assert "1 of 3 rules met" in capsys.readouterr().out
    results = check_rules(whole, recipes / "second.yaml")
    assert [r["met"] for r in results] == [True, False, False] and results[0]["figure"] >= 0

    # --install refuses while a rule is not met; --start-release refuses another model than the recorded one
    assets = tmp_path / "assets"
    assert _release(recipes, dataset, cache_dir, whole, "--install", "--assets", str(assets)) == 2
    assert not (assets / "model").exists()
    # with its rules met, --install copies the release and its metrics into assets/ (and trains nothing again)
    met_only = SECOND.split("    - {name: an impossible")[0]
    (recipes / "second.yaml").write_text(met_only)
    trained = (whole / "second" / "last.pt").stat().st_mtime_ns
    (assets / "metrics").mkdir(parents=True)  # a file the chain does not make: the card installed says it too
    (assets / "metrics" / "audit.json").write_text(json.dumps({"summary": AUDIT_SUMMARY}))
    assert _release(recipes, dataset, cache_dir, whole, "--install", "--assets", str(assets)) == 0
    card = (assets / "model" / "README.md").read_text()
    assert "Duplicate audit: 7 Testing images" in card and "Duplicate audit" not in (release / "README.md").read_text()
    assert kept_training_section(assets / "model") == kept_training_section(release)
    for name in ("epochs.csv", "curves.png", "args.json"):  # the last stage's training record beside its evaluation
        assert (assets / "metrics" / name).read_bytes() == (whole / "second" / name).read_bytes(), name
    assert sha256_file(assets / "model" / "model.safetensors") == sha256_file(release / "model.safetensors")
    assert (assets / "metrics" / "metrics.json").read_bytes() == (whole / "metrics" / "metrics.json").read_bytes()
    assert (whole / "second" / "last.pt").stat().st_mtime_ns == trained  # a change of rules retrains nothing
    (recipes / "second.yaml").write_text(SECOND + "runs:\n  first: {weights_sha256: '0000'}\n")
    assert (
        _release(
            recipes, dataset, cache_dir, tmp_path / "started", "--start-release", f"first={whole / 'first' / 'release'}"
        )
        == 2
    )
    assert "is not the recorded first" in capsys.readouterr().err


@pytest.mark.slow  # trains, exports or serves
def test_config_file_gives_the_defaults_and_flags_win(recipes, dataset, cache_dir, tmp_path):
    out = tmp_path / "run"
    where = ["--data", str(dataset), "--out", str(out), "--cache-dir", str(cache_dir)]
    assert cli.main(["train", "--config", str(recipes / "first.yaml"), *where, "--epochs", "1", "--no-evaluate"]) == 0
    args = json.loads((out / "args.json").read_text())
    assert args["arch"] == TINY_ARCH and args["image_size"] == TINY_SIZE and args["epochs"] == 1  # the flag won
    assert args["steps_per_epoch"] == 2 and args["pretrained"] is False


def test_recipe_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("args: {learning_rate: 1}\n", "not training options"),
        ("colour: red\n", "unknown keys"),
        ("args: [1, 2\n", "not valid YAML"),
        ("args: {out: x}\n", "set by the chain"),
        ("release: {steps: [dance]}\n", "unknown release steps"),
    ):
        bad.write_text(text)
        with pytest.raises(RecipeError, match=message):
            read_stage(bad)
    (tmp_path / "a.yaml").write_text("init: b\n")
    (tmp_path / "b.yaml").write_text("init: a\n")
    with pytest.raises(RecipeError, match="loops"):
        read_chain(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("args: {masks: '{masks}'}\n")
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--data", "x", "--out", str(tmp_path / "o")]) == 2
    assert "needs --masks" in capsys.readouterr().err
    assert to_argv({"lr": 0.1, "pretrained": False, "gamma": [0.5, 1.5], "resume": True, "seed": None}) == [
        "--lr",
        "0.1",
        "--no-pretrained",
        "--gamma",
        "0.5",
        "1.5",
        "--resume",
    ]


def test_the_shipped_chain_is_in_the_repository():
    chain = read_chain(ROOT / "recipes" / "r21.yaml")
    assert [s.name for s in chain] == ["r8", "r14", "r16", "r21"]
    assert chain[0].init is None and chain[0].args["epochs"] == 100 and chain[-1].args["framing_prob"] == 0.5
    bundled_before = "1495e028cfc9e30989309a1d61be2c24982040904727d71a9b2f1ba5a3261240"
    assert chain[-1].runs["r21"]["weights_sha256"] == bundled_before
    yardstick = read_chain(ROOT / "recipes" / "r22-du.yaml")
    assert yardstick[-1].args["lgg_holdout"] == ["DU"] and yardstick[-1].release["lgg_sites"] == ["DU"]
    assert {
        k: v for k, v in yardstick[-1].args.items() if k not in ("lgg", "lgg_holdout", "crop", "ok_target")
    } == chain[-1].args


def test_the_next_bundled_recipe_is_its_yardstick_with_the_held_out_institution_put_back():
    """recipes/r22.yaml trains what its DU yardstick trained, DU included, from a start pinned to a release kept in the
    repository, and its shipping rules read that yardstick's figures: a yardstick that passed speaks for the model."""
    from brainmri.inference.release import sha256_file

    shipped = read_stage(ROOT / "recipes" / "r22.yaml")
    shown = Path(shipped.release["yardsticks"]["lgg-heldout-institution.json"])
    (name,) = [part for part in shown.parts if (ROOT / "recipes" / f"{part}.yaml").is_file()]
    yardstick = read_stage(ROOT / "recipes" / f"{name}.yaml")
    assert yardstick.args["lgg_holdout"] == yardstick.release["lgg_sites"] == ["DU"]
    assert shipped.init == yardstick.init and "lgg_holdout" not in shipped.args
    assert shipped.args == {k: v for k, v in yardstick.args.items() if k != "lgg_holdout"}
    read = {rule["file"] for rule in shipped.release["rules"] if rule["file"].startswith("..")}
    assert read == {shown.as_posix()}  # every yardstick rule reads the figures the card shows
    kept = [ROOT / "assets" / "yardsticks" / shipped.init / "release", ROOT / "assets" / "model"]
    pinned = shipped.runs[shipped.init]["weights_sha256"]
    assert pinned in {sha256_file(f / "model.safetensors") for f in kept if (f / "model.safetensors").is_file()}


@pytest.mark.slow  # trains, exports or serves
def test_a_held_out_collection_yardstick_is_a_release_too(dataset, cache_dir, tmp_path, capsys):
    """A stage trained without SARTAJ (``holdout``), then the release step that judges it on every SARTAJ image."""
    import csv

    origins = tmp_path / "origins.csv"
    with open(origins, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "origin"])
        for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
            number = int(path.stem.split("-")[-1]) if path.stem.split("-")[-1].isdigit() else 1
            other = "br35h" if "notumor" in path.parts else "figshare"
            writer.writerow([path.relative_to(dataset).as_posix(), other if number % 2 == 0 else "sartaj"])
    sartaj = sum(
        1
        for row in csv.DictReader(open(origins))
        if row["origin"] == "sartaj" and not row["file"].endswith("corrupt.jpg")
    )
    recipe = tmp_path / "yardstick.yaml"
    recipe.write_text(
        FIRST + '  origins: "{origins}"\n  holdout: sartaj\n'
        "release:\n  steps: [heldout-eval]\n  rules:\n"
        "    - {name: held-out SARTAJ, file: metrics/heldout/metrics.json, key: heldout.accuracy, min: 0.0}\n"
    )
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "release",
                "--recipe",
                str(recipe),
                "--data",
                str(dataset),
                "--origins",
                str(origins),
                "--out",
                str(out),
                "--cache-dir",
                str(cache_dir),
            ]
        )
        == 0
    )
    assert "met      held-out SARTAJ" in capsys.readouterr().out
    metrics = json.loads((out / "metrics" / "heldout" / "metrics.json").read_text())
    assert metrics["heldout"]["n"] == metrics["meta"]["holdout"]["heldout_images"] == sartaj
    with open(out / "yardstick" / "split.csv") as handle:  # trained without any SARTAJ image
        trained = {row["path"] for row in csv.DictReader(handle)}
    assert not trained & {
        row["file"].split("/", 1)[1]
        for row in csv.DictReader(open(origins))
        if row["origin"] == "sartaj" and row["file"].startswith("Training/")
    }


def test_a_step_that_writes_into_the_release_config_stays_up_to_date(tmp_path):
    """sequence-check and flair-check write their blocks into config.json: their own inputs leave those blocks out
    (else the next run of the release would do them again), the later steps' inputs keep them."""
    from brainmri.training.chain import folder_digest, written_from

    steps = ["sequence-check", "flair-check", "export", "evaluate"]
    assert written_from(steps, "sequence-check") == ("sequence_check", "flair_check")
    assert written_from(steps, "flair-check") == ("flair_check",) and written_from(steps, "export") == ()
    release = tmp_path / "release"
    release.mkdir()
    config = {"weights_sha256": "0" * 64}
    (release / "config.json").write_text(json.dumps(config))
    before = {s: folder_digest(release, leave_out=written_from(steps, s)) for s in steps}
    for key in ("sequence_check", "flair_check"):  # what the two steps write, in order
        config[key] = {"threshold": 0.5}
        (release / "config.json").write_text(json.dumps(config))
    after = {s: folder_digest(release, leave_out=written_from(steps, s)) for s in steps}
    assert after["sequence-check"] == before["sequence-check"] and after["flair-check"] != before["flair-check"]
    assert after["export"] != before["export"]
    config["flair_check"] = {"threshold": 0.7}  # flair-check's own output again: its inputs have not changed
    (release / "config.json").write_text(json.dumps(config))
    assert folder_digest(release, leave_out=written_from(steps, "flair-check")) == after["flair-check"]
