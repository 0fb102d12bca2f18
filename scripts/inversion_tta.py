"""Exploration: averaging a model's probabilities over a slice and its contrast-inverted copy (test-time
symmetrisation), on all SARTAJ images, clean and inverted. Run from the repository root:
``python scripts/inversion_tta.py runs/r9b-sartaj-ft/release`` (run folders are not in git)."""
import sys
sys.path.insert(0, ".")

import numpy as np  # noqa: E402

from brainmri import Predictor  # noqa: E402
from brainmri.appearance import invert_inside_head  # noqa: E402
from brainmri.robustness import robustness_files  # noqa: E402
from brainmri.imageio import load_grayscale  # noqa: E402

b = Predictor.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else "runs/r9b-sartaj-ft/release", backend="torch")
_, chosen = robustness_files("../shared/data/brain-tumor-mri", origins="../shared/data/brain-tumor-mri-origins.csv",
                             collection="sartaj")
files = [path for path, _ in chosen]
labels = np.array([b.labels.index(name) for _, name in chosen])
grays = [load_grayscale(f) for f in files]
acc = lambda p: float((p.argmax(1) == labels).mean())
P = {}
for name, shift in (("clean", lambda g: g), ("inv", invert_inside_head), ("invinv", lambda g: invert_inside_head(invert_inside_head(g)))):
    fitted = [b.preprocess.fit(shift(g)) for g in grays]
    P[name] = b.probabilities(b.logits(fitted))
    print(name, round(acc(P[name]), 4), flush=True)
print("sym clean", round(acc((P["clean"] + P["inv"]) / 2), 4), "sym inverted", round(acc((P["inv"] + P["invinv"]) / 2), 4))
