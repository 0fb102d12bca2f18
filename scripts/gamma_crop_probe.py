"""Exploration: how much of a release's loss under a gamma change is the head crop moving, not the contrast.

The head crop (``brainmri.inference.preprocess.content_box``) thresholds at a tenth of the slice's bright end, so a
brighter
or darker export of a slice is cropped differently. On a run's validation split (Training images it never trained
on) this prints the accuracy on the clean slices, on the gamma-shifted slices as the app sees them (their own
crop), and on the gamma-shifted slices cropped where the clean slice is, and how many crop boxes moved. Run from
the repository root (docs/record/decisions.md, session f):

    python scripts/gamma_crop_probe.py runs/final-r18/release runs/final-r18 [GAMMA ...]
"""

import sys

import numpy as np

from brainmri import Predictor
from brainmri.evaluation.robustness import robustness_files
from brainmri.inference.preprocess import GammaFraming, gamma_shift
from brainmri.io.images import load_grayscale

if len(sys.argv) < 3:
    sys.exit(__doc__)
release, run, gammas = sys.argv[1], sys.argv[2], [float(g) for g in sys.argv[3:]] or [0.6, 1.6]
model = Predictor.from_pretrained(release, backend="torch")
name, chosen = robustness_files("../shared/data/brain-tumor-mri", validation_of=run)
grays = [load_grayscale(path) for path, _ in chosen]
labels = np.array([model.labels.index(label) for _, label in chosen])


def accuracy(fitted: list[np.ndarray]) -> float:
    return float((model.probabilities(model.logits(fitted)).argmax(1) == labels).mean())


clean = accuracy([model.preprocess.fit(g) for g in grays])
print(f"{release} on {name} ({len(grays)} slices): clean {100 * clean:.2f} %")
for gamma in gammas:
    shifted = [gamma_shift(g, gamma) for g in grays]  # as train.py robustness shifts them
    own = accuracy([model.preprocess.fit(s) for s in shifted])
    kept = accuracy([model.preprocess._fit(s, model.preprocess.box(g)) for s, g in zip(shifted, grays)])
    framing = GammaFraming.of(model.preprocess, gamma)
    moved = sum(framing.box(g) != model.preprocess.box(g) for g in grays)
    print(
        f"gamma {gamma:g}: own crop {100 * own:.2f} % ({100 * (own - clean):+.2f}), clean slice's crop "
        f"{100 * kept:.2f} % ({100 * (kept - clean):+.2f}); crop box moved on {moved} of {len(grays)}"
    )
