"""Class maps' mean correlation (all Testing slices) and the true class's pointing game (figshare Testing with
masks) for heatmap targets and methods, on the bundled model: docs/record/ablations.md, "heatmap targets".

    python scripts/cam_target_trials.py gradcam:rest gradcam:alternatives gradcam:vspred layercam:alternatives

``vspred`` (tried, not kept): the predicted class as ReST, another class against the predicted class alone.
"""

import sys

import numpy as np
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST

from brainmri import Predictor
from brainmri.data.folders import list_classes, load_folder, split_roots
from brainmri.data.masks import load_masks
from brainmri.evaluation.localisation import localisation_scores
from brainmri.inference.explain import TARGETS, feature_maps_cams

torch.set_num_threads(1)
p = Predictor.from_pretrained("assets/model", backend="torch")
_, test_root = split_roots("../shared/data/brain-tumor-mri")
s = load_folder(test_root, p.preprocess, cache_dir=".cache/brainmri", classes=list_classes(test_root)).relabel(p.labels)
m = load_masks(s, "../shared/data/brain-tumor-mri-masks", p.preprocess, cache_dir=".cache/brainmri")
feats = []
for i in range(0, len(s.images), 64):
    _, f = p.backend(p._inputs(list(s.images[i : i + 64])))
    feats.append(f)
feats = torch.cat(feats)
size = s.images.shape[1:3]


class VsPredicted:
    def __init__(self, c):
        self.c = c

    def __call__(self, out):
        o = out if out.ndim == 2 else out[None]
        pred = int(o.argmax(1)[0])
        if pred == self.c:
            return ClassifierOutputReST(self.c)(out)
        score = o[:, self.c] - o[:, pred]
        return score if out.ndim == 2 else score[0]


TARGETS["vspred"] = VsPredicted
C = len(p.labels)
upper = np.triu_indices(C, 1)
has = np.flatnonzero(m.masks.reshape(len(m.masks), -1).max(1) > 0)
for method, target in [a.split(":") for a in sys.argv[1:]]:
    corr, flat, maps_true = [], 0, np.zeros((len(s.images), *size), np.float32)
    for i in range(0, len(s.images), 32):
        f = feats[i : i + 32]
        n = len(f)
        cams = feature_maps_cams(p.model, f.repeat_interleave(C, 0), list(range(C)) * n, size, method, target)
        maps = cams.heatmaps.reshape(n, C, *size)
        for k in range(n):
            mm = maps[k].reshape(C, -1)
            if (mm.std(1) == 0).any():
                flat += 1
            else:
                corr.append(np.corrcoef(mm)[upper].mean())
            maps_true[i + k] = maps[k, s.labels[i + k]]
    sc = localisation_scores(maps_true[has], m.masks[has], 2)
    ratio = sc["energy_inside"].mean() / sc["mask_share"].mean()
    print(
        f"{method} {target}: mean corr {np.mean(corr):.3f} (median {np.median(corr):.3f}, flat {flat}); "
        f"pointing {100 * sc['pointing'].mean():.1f} % of {len(has)}; energy ratio {ratio:.1f}",
        flush=True,
    )
