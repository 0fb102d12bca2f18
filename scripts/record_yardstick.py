"""Keep a judged held-out-institution run's records in the repository (``runs/`` is not in git).

    python scripts/record_yardstick.py RUN_RELEASE_DIR NAME [--keep-release]   # e.g. runs/r22e-du-release r22e-du

Copies the stage's ``args.json`` and ``epochs.csv``, its release's ``config.json`` (as ``release-config.json``) and
``train.py lgg-eval``'s figures (``lgg.json``, ``lgg.md``, ``lgg-slices.csv``) into ``assets/yardsticks/NAME``, then
prints what the ablation row needs: the DU table, the verdict at the page's fixed 0.90 threshold counted from the
per-slice answers (the "ok" answers plus the "unsure" ones, held back only by the fitted threshold, whose top
probability reaches 0.90), the saved epoch's validation figures, the fitted threshold and the pointing game.
``--keep-release`` also keeps the release's weights, screening statistics and config in ``NAME/release``: a
starting point for a next stage (``--start-release NAME=assets/yardsticks/NAME/release``) that outlives the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from brainmri.evaluation.lgg import read_rows

ROOT = Path(__file__).resolve().parents[1]
FIXED = 0.90  # the page's confidence threshold for "ok" when none is fitted
RELEASE_FILES = ("config.json", "model.safetensors", "ood.safetensors")  # what --start-release and lgg-eval read


def fixed_threshold(rows: list[dict]) -> tuple[float, float]:
    """Share answered "ok" and the share of those right, had the verdict used :data:`FIXED`."""
    ok = [
        r
        for r in rows
        if r["verdict"] == "ok"
        or (r["code"] == "unsure" and max(float(v) for k, v in r.items() if k.startswith("p_")) >= FIXED)
    ]
    right = sum(r["predicted"] == r["label"] for r in ok)
    return len(ok) / max(1, len(rows)), right / max(1, len(ok))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the release run folder (train.py release --out)")
    parser.add_argument("name", help="the stage's name (its recipe's)")
    parser.add_argument("--keep-release", action="store_true", help="keep the release folder too (about 14 MB)")
    args = parser.parse_args()
    out = ROOT / "assets" / "yardsticks" / args.name
    out.mkdir(parents=True, exist_ok=True)
    stage, lgg = args.run / args.name, args.run / "metrics" / "lgg"
    for source in (stage / "args.json", stage / "epochs.csv", lgg / "lgg.json", lgg / "lgg.md", lgg / "lgg-slices.csv"):
        shutil.copyfile(source, out / source.name)
    shutil.copyfile(stage / "release" / "config.json", out / "release-config.json")
    if args.keep_release:
        (out / "release").mkdir(exist_ok=True)
        for name in RELEASE_FILES:
            shutil.copyfile(stage / "release" / name, out / "release" / name)
    print((out / "lgg.md").read_text())
    share, right = fixed_threshold(read_rows(out / "lgg-slices.csv"))
    print(f'at the fixed {FIXED:.2f}: {100 * share:.1f} % answered "ok", {100 * right:.1f} % of those right')
    config = json.loads((out / "release-config.json").read_text())
    saved = {k: config["brainmri"].get(k) for k in ("epoch", "val_acc", "val_acc_kaggle", "val_acc_lgg")}
    print(f"saved epoch {saved}; fitted threshold {config['screening']['min_confidence']:.3f}")
    report = json.loads((out / "lgg.json").read_text())
    print(f"pointing game {report.get('pointing_game_glioma')} {report.get('pointing_by_sequence')}")


if __name__ == "__main__":
    main()
