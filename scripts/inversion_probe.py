"""Exploration: SARTAJ-held-out models (run folders, not in git) on all 2,579 SARTAJ images, clean and with the
contrast inverted inside the head. For each model: accuracy, the confusion matrix under inversion, and the model
averaged over a slice and its inverted copy (test-time symmetrisation); for two models, also the mean of their
probabilities. Run from the repository root:

    python scripts/inversion_probe.py runs/r16-sartaj-ft/release
    python scripts/inversion_probe.py runs/r8-sartaj100/release runs/r9b-sartaj-ft/release
"""

import sys

import numpy as np
from sklearn.metrics import confusion_matrix

from brainmri import Predictor
from brainmri.evaluation.robustness import robustness_files
from brainmri.inference.sequence_check import invert_inside_head
from brainmri.io.images import load_grayscale

releases = sys.argv[1:] or ["runs/r8-sartaj100/release", "runs/r9b-sartaj-ft/release"]
models = [Predictor.from_pretrained(release, backend="torch") for release in releases]
_, chosen = robustness_files(
    "../shared/data/brain-tumor-mri", origins="../shared/data/brain-tumor-mri-origins.csv", collection="sartaj"
)
labels = np.array([models[0].labels.index(name) for _, name in chosen])
views = {"clean": [load_grayscale(path) for path, _ in chosen]}
views["inverted"] = [invert_inside_head(g) for g in views["clean"]]
views["inverted twice"] = [
    invert_inside_head(g) for g in views["inverted"]
]  # not the original: the background stays black


def accuracy(probabilities: np.ndarray) -> float:
    return round(float((probabilities.argmax(1) == labels).mean()), 4)


probs = {}
for release, model in zip(releases, models):
    p = {
        view: model.probabilities(model.logits([model.preprocess.fit(g) for g in grays]))
        for view, grays in views.items()
    }
    probs[release] = p
    print(
        release,
        "clean",
        accuracy(p["clean"]),
        "inverted",
        accuracy(p["inverted"]),
        "| symmetrised: clean",
        accuracy((p["clean"] + p["inverted"]) / 2),
        "inverted",
        accuracy((p["inverted"] + p["inverted twice"]) / 2),
        flush=True,
    )
    print("confusion under inversion (rows: true, columns: predicted)", model.labels)
    print(confusion_matrix(labels, p["inverted"].argmax(1), labels=range(len(model.labels))))
if len(models) == 2:
    for view in ("clean", "inverted"):
        print("mean of the two models,", view, accuracy((probs[releases[0]][view] + probs[releases[1]][view]) / 2))
