"""Exploration: Grad-CAM and LayerCAM at earlier stages (finer grids) against the last stage, on the
validation figshare slices of a finished run (default runs/final-r8, the bundled model's run folder; run
folders are not in git). Run from the repository root: ``python scripts/cam_layers.py [RUN]``."""

import sys

import numpy as np
from pytorch_grad_cam import GradCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from brainmri import Predictor
from brainmri.data.folders import load_run_split
from brainmri.data.masks import load_masks
from brainmri.evaluation.localisation import localisation_scores

run = sys.argv[1] if len(sys.argv) > 1 else "runs/final-r8"
p = Predictor.from_pretrained(f"{run}/release", backend="torch")
_, val = load_run_split(run)
val = val.relabel(p.labels)
masks = load_masks(val, "../shared/data/brain-tumor-mri-masks", p.preprocess, cache_dir=".cache/brainmri")
keep = np.flatnonzero(masks.masks.reshape(len(masks.masks), -1).max(1) > 0)
images, m, labels = val.images[keep], masks.masks[keep], val.labels[keep]
model = p.model.float().eval()
model.requires_grad_(True)
print(len(keep), "slices")
for name, layer in (("stage3 (final)", model.stages[3]), ("stage2", model.stages[2]), ("stage1", model.stages[1])):
    for cls in (GradCAM, LayerCAM):
        cam = cls(model=model, target_layers=[layer])
        heat = []
        for s in range(0, len(images), 32):
            x = p._inputs(list(images[s : s + 32]))
            heat.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in labels[s : s + 32]]))
        sc = localisation_scores(np.concatenate(heat), m, 2)
        print(
            name,
            cls.__name__,
            "pointing",
            round(float(np.mean(sc["pointing"])), 3),
            "energy ratio",
            round(float(np.mean(sc["energy_inside"]) / np.mean(sc["mask_share"])), 2),
        )
