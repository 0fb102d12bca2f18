"""Exploration: the average of two SARTAJ-held-out models' probabilities (r8-sartaj100 and the inversion
fine-tune r9b-sartaj-ft; run folders, not in git) on all SARTAJ images, clean and contrast-inverted.
Run from the repository root: ``python scripts/inversion_ensemble.py``."""
import sys

sys.path.insert(0, ".")

import numpy as np  # noqa: E402
from brainmri import Predictor
from brainmri.appearance import invert_inside_head
from brainmri.robustness import robustness_files
from brainmri.imageio import load_grayscale

a = Predictor.from_pretrained("runs/r8-sartaj100/release", backend="torch")
b = Predictor.from_pretrained("runs/r9b-sartaj-ft/release", backend="torch")
_, chosen = robustness_files("../shared/data/brain-tumor-mri", origins="../shared/data/brain-tumor-mri-origins.csv",
                             collection="sartaj")
files = [path for path, _ in chosen]
labels = np.array([a.labels.index(name) for _, name in chosen])
grays = [load_grayscale(f) for f in files]
for name, shift in (("clean", lambda g: g), ("inverted", invert_inside_head)):
    fitted = [a.preprocess.fit(shift(g)) for g in grays]
    pa, pb = (p.probabilities(p.logits(fitted)) for p in (a, b))
    acc = lambda p: float((p.argmax(1) == labels).mean())
    print(name, "r8", round(acc(pa), 4), "r9", round(acc(pb), 4), "mean", round(acc((pa + pb) / 2), 4))
