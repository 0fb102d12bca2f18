"""Exploration: the average of two SARTAJ-held-out models' probabilities (r8-sartaj100 and the inversion
fine-tune r9b-sartaj-ft; run folders, not in git) on all SARTAJ images, clean and contrast-inverted.
Run from the repository root: ``python scripts/inversion_ensemble.py``."""
import csv
import sys
from pathlib import Path

sys.path.insert(0, ".")
import numpy as np  # noqa: E402
from brainmri import Predictor
from brainmri.appearance import invert_inside_head
from brainmri.data import list_classes, list_files
from brainmri.imageio import load_grayscale
root = Path("../shared/data/brain-tumor-mri")
origins = {r["file"]: r["origin"] for r in csv.DictReader(open("../shared/data/brain-tumor-mri-origins.csv"))}
a = Predictor.from_pretrained("runs/r8-sartaj100/release", backend="torch")
b = Predictor.from_pretrained("runs/r9b-sartaj-ft/release", backend="torch")
files, labels = [], []
for split in ("Training", "Testing"):
    classes = list_classes(root / split)
    for rel, k in list_files(root / split, classes):
        if origins.get(f"{split}/{rel}") == "sartaj":
            files.append(root / split / rel); labels.append(a.labels.index(classes[k]))
labels = np.array(labels)
grays = [load_grayscale(f) for f in files]
for name, shift in (("clean", lambda g: g), ("inverted", invert_inside_head)):
    fitted = [a.preprocess.fit(shift(g)) for g in grays]
    pa, pb = (p.probabilities(p.logits(fitted)) for p in (a, b))
    acc = lambda p: float((p.argmax(1) == labels).mean())
    print(name, "r8", round(acc(pa), 4), "r9", round(acc(pb), 4), "mean", round(acc((pa + pb) / 2), 4))
