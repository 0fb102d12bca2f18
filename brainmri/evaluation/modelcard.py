"""The model card (README.md in the Hub's format) of a release folder, from its saved record."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from brainmri import text
from brainmri.evaluation.report import (
    headline_markdown,
    load_metrics,
    localisation_summary,
    newsource_markdown,
    testing_verdict,
    trust_markdown,
)
from brainmri.inference.release import read_config


def _dropped_text(entry: dict) -> str:
    """``, 12 near duplicates left out of training`` for a held-out entry that left some out, else ""."""
    if not entry.get("holdout"):
        return ""
    return f", {entry['holdout']['dropped_duplicates']} near duplicates left out of training"


def _stages_text(entry: dict) -> str:
    """``run `A`, 100 epochs, then `B`, 30 epochs (fine-tune)`` from a held-out entry of crossval.json."""
    stages = entry.get("stages") or [{"run": entry["run"], "epochs": entry["recipe"].get("epochs")}]
    parts = [
        f"`{stage['run']}`, {stage['epochs']} epochs" + (" (fine-tune)" if i else "") for i, stage in enumerate(stages)
    ]
    return "run " + ", then ".join(parts)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_description() -> str:
    return f"{os.cpu_count()} CPU cores ({cpu_name()}), no GPU"


RECIPE_KEYS = [
    "recipe",
    "init",
    "arch",
    "image_size",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "schedule",
    "label_smoothing",
    "augment",
    "ema_decay",
    "ls_init_value",
    "drop_rate",
    "output_stride",
    "seg_weight",
    "cam_weight",
    "cam_target",
    "paste_prob",
    "invert_prob",
    "curve_prob",
    "marker_prob",
    "gamma",
    "framing_prob",
    "balance",
    "clean_floor",
    "holdout",
    "seed",
    "split_seed",
]


def _selection_text(args: dict) -> str:
    """How the run chose its saved epoch (brainmri.training.trainer.Trainer.validate and _improves)."""
    text = (
        "lowest mean of the clean and contrast-inverted validation losses"
        if args.get("invert_prob")
        else "lowest validation loss"
    )
    floor = args.get("clean_floor")
    if floor is not None:
        text += ", among the epochs whose clean validation accuracy was at least the starting model's" + (
            f" less {100 * floor:g} points" if floor else ""
        )
    return text


LGG_LICENCE = "cc-by-nc-sa-4.0"  # weights trained on TCGA-LGG inherit its non-commercial terms


def write_model_card(
    release: str | os.PathLike,
    metrics_dir: str | os.PathLike,
    run: str | os.PathLike | list | None = None,
    command: str | list[str] = "",
    hardware: str | None = None,
) -> Path:
    """``run``/``command``: one training run, or the list of stages in order (each continuing from the
    previous one's release with ``--init``); the card records each stage and their total time."""
    release, metrics_dir = Path(release), Path(metrics_dir)
    config = read_config(release)
    meta = config.get("brainmri", {})
    metrics = load_metrics(metrics_dir)
    robustness = _read_json(metrics_dir / "robustness.json")
    runs = [Path(r) for r in (run if isinstance(run, (list, tuple)) else [run] if run else [])]
    commands = [c for c in (command if isinstance(command, (list, tuple)) else [command]) if c]
    stages = [(_read_json(r / "args.json") or {}, _read_json(r / "summary.json") or {}) for r in runs]
    audit = _read_json(metrics_dir / "audit.json")
    pcfg = config["pretrained_cfg"]
    if stages:
        seconds = sum(summary.get("train_seconds", 0) for _, summary in stages)
        walls = [summary.get("wall_seconds") for _, summary in stages]
        wall = sum(walls) if all(walls) else None
    else:
        seconds, wall = meta.get("train_seconds"), None
    several = len(stages) > 1
    crop = config.get("preprocessing", {}).get("content_crop")

    with_lgg = any(args.get("lgg") for args, _ in stages) or bool(meta.get("val_acc_lgg") is not None)
    lines = [
        "---",
        f"license: {LGG_LICENCE if with_lgg else 'apache-2.0'}",
        "library_name: timm",
        "pipeline_tag: image-classification",
        "tags: [medical-imaging, mri, brain-tumor, convnext, grad-cam, brainmri]",
        "metrics: [accuracy, f1, roc_auc]",
        "---",
        "",
        f"# brainmri — {config['architecture']} for brain-tumour MRI slices",
        "",
        f"**{text.t('notice.head')}** {text.t('notice.rest')}",
        "",
        "## Model",
        f"- Architecture: timm `{config['architecture']}` "
        f"({'ImageNet-initialised' if meta.get('pretrained') else 'trained from scratch'}), "
        f"head LayerNorm → Dropout → Linear({config.get('num_features', '?')}→{config['num_classes']}).",
        f"- Classes (output order): {', '.join(config['label_names'])}.",
        f"- Input: {pcfg['input_size'][1]}×{pcfg['input_size'][2]} px; any image or DICOM → grayscale → "
        f"{'cropped to the head → ' if crop else ''}padded to a "
        f"square on black → resized ({pcfg['interpolation']}) → replicated to 3 channels → normalised "
        f"(mean {pcfg['mean']}, std {pcfg['std']}).",
        f"- Calibration: temperature {config.get('temperature', 1.0):.3f}, fitted on the validation split "
        "(probabilities = softmax(logits / T)).",
        f"- Weights: `model.safetensors` ({config.get('weights_dtype', 'float32')}), sha256 "
        f"`{config.get('weights_sha256', '?')}`.",
        *(
            [
                f"- `model.onnx`: the same network for ONNX Runtime (opset {config['onnx']['opset']}; outputs "
                f"logits and the "
                f"last feature map), checked against torch on {config['onnx']['check']['images']} images: "
                f"largest logit "
                f"difference {config['onnx']['check']['max_abs_logit_diff']:.1e}."
            ]
            if config.get("onnx")
            else []
        ),
        "",
        "## Data",
        "Kaggle *Brain Tumor MRI Dataset* (M. Nickparvar; figshare + SARTAJ + Br35H), 5,712 Training and 1,311 Testing "
        f"slices. Training split: {meta.get('train_images', '?')} images; validation split (model selection, "
        f"early stopping, calibration): {meta.get('val_images', '?')} images carved from Training, stratified, "
        "with near-duplicate groups kept on one side. Testing was used for nothing but the final evaluation.",
    ]
    if with_lgg:
        lines += [
            "",
            "TCGA-LGG (lower-grade gliomas of The Cancer Genome Atlas, images from The Cancer Imaging Archive, "
            "as prepared by Buda, Saha and Mazurowski, *Computers in Biology and Medicine* 109, 2019; Kaggle "
            '"LGG MRI Segmentation"): FLAIR, T1 and T1 with contrast slices of its patients, split by patient '
            "between training and validation; glioma where the reader's FLAIR mask covers at least 1 % of the "
            'slice, "no tumour" where it is empty in the middle 60 % of the scan. **Licence of these weights: '
            "non-commercial** (CC BY-NC-SA 4.0, following TCGA-LGG's terms and TCIA's data usage policy); "
            "credit TCGA-LGG, TCIA and Buda et al. wherever results of this model are shown. The code is "
            "Apache-2.0.",
        ]
    newsource = newsource_markdown(
        _read_json(metrics_dir / "lgg-heldout-institution.json"), _read_json(metrics_dir / "lgg-leave-out.json")
    )
    if newsource:
        lines += ["", "## Scans from another source: TCGA-LGG", "", newsource]
    if audit:
        s = audit["summary"]
        lines += [
            "",
            f"Duplicate audit: {s['testing_with_exact_dup_in_training']} Testing images have an exact and "
            f"{s['testing_with_near_dup_in_training']} more a near duplicate in Training; the de-duplicated "
            f"Testing subset keeps {s['dedup_testing_size']} of {s['testing_images']} images.",
        ]
    lines += ["", "## Training"]
    for number, (args, summary) in enumerate(stages, 1):
        name = f"Stage {number}" if several else "Recipe"
        recipe = ", ".join(f"{k}={args.get(k)}" for k in RECIPE_KEYS if args.get(k) is not None)
        took = f" {summary['train_seconds'] / 60:.0f} min in training steps" if summary.get("train_seconds") else ""
        if several and summary.get("wall_seconds"):
            took += f", {summary['wall_seconds'] / 60:.0f} min wall-clock"
        lines.append(f"- {name}: {recipe};{took}.")
    lines += [
        f"- Best epoch ({_selection_text(stages[-1][0] if stages else {})}){' of the last stage' if several else ''}: "
        f"{meta.get('epoch', '?')}; "
        f"validation accuracy {meta.get('val_acc', float('nan')):.4f}.",
        f"- Seed: {meta.get('seed', '?')}. Hardware: {hardware or hardware_description()}. "
        f"Training time{' (all stages)' if several else ''}: "
        + (f"{wall / 60:.0f} min wall-clock (setup, epochs, validation, calibration), " if wall else "")
        + f"{seconds / 60:.0f} min in training steps."
        if seconds
        else f"- Seed: {meta.get('seed', '?')}.",
    ]
    if commands:
        lines += [f"- Command{'s, in order' if len(commands) > 1 else ''}:", "", "```", *commands, "```"]
    if metrics:
        lines += ["", "## Evaluation (Testing split)", "", headline_markdown(metrics), ""]
        lines += [
            "Per class (full Testing):",
            "",
            "| class | precision | recall | F1 | support | ROC-AUC |",
            "|---|---|---|---|---|---|",
        ]
        for label, c in metrics["full"]["per_class"].items():
            auc = metrics["full"]["roc_auc"].get(label)
            lines.append(
                f"| {label} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} | "
                f"{'—' if auc is None else f'{auc:.4f}'} |"
            )
    crossval = _read_json(metrics_dir / "crossval.json")
    if metrics and crossval:
        lines += [
            "",
            "## Scans from elsewhere: collections held out",
            "",
            "Each held-out column is a model of this recipe trained on the other collections' Training images "
            "(minus near duplicates of the held-out images) and judged on every image of the held-out "
            "collection. That is the closest stand-in here for another hospital's scans: expect figures "
            "nearer those columns than Testing's on scans from elsewhere. Neither column is a blind estimate: "
            "the recipe was chosen on these held-out runs, and the page's 90 % confidence threshold on the "
            "SARTAJ one.",
            "",
            *[
                f"- held-out {name}: {_stages_text(entry)}{_dropped_text(entry)}."
                for name, entry in crossval.get("heldout", {}).items()
            ],
            "",
            trust_markdown(metrics, crossval, testing_verdict(metrics_dir), testing_robustness=robustness),
        ]
    localisation = _read_json(metrics_dir / "localisation.json")
    if localisation:
        lines += ["", "## Where the heatmaps land", "", localisation_summary(localisation)]
    if robustness:
        from brainmri.evaluation.robustness import robustness_markdown

        lines += ["", "## Robustness (Testing, full set)", "", robustness_markdown(robustness)]
    check = config.get("sequence_check")
    if check:
        cv = check.get("cross_validation") or {}
        lines += [
            "",
            "## T2-look check",
            "",
            "The page recognises T2-weighted slices from their pixels (`brainmri/inference/sequence_check.py`; "
            "fitted on "
            f'{check.get("fitted_on", "hand-labelled slices")}) and answers "uncertain" when such a slice is '
            'answered "no tumour" (in this training data nearly every T2 slice is "no tumour")'
            f"{'' if check.get('notumor_uncertain', True) else ' (switched off in this release)'} or when the "
            "answer changes with the slice's contrast inverted."
            + (
                f" Cross-validated on the labels: AUC {cv['auc']:.3f}, {100 * cv['t2_caught']:.1f} % of T2 slices "
                f"caught, {100 * cv['others_flagged']:.1f} % of the others flagged."
                if cv.get("auc") is not None
                else ""
            )
            + (
                f" On the {cv['random_sample']['n']} randomly drawn labelled slices alone: AUC "
                f"{cv['random_sample']['auc']:.3f}, {100 * cv['random_sample']['t2_caught']:.1f} % caught, "
                f"{100 * cv['random_sample']['others_flagged']:.1f} % of the others flagged."
                if cv.get("random_sample")
                else ""
            )
            + (
                " Over all Training images it flags: "
                + ", ".join(f"{k} {100 * v:.1f} %" for k, v in cv["training_flagged_by_class"].items())
                + "."
                if cv.get("training_flagged_by_class")
                else ""
            ),
        ]
    lines += [
        "",
        "## Intended use",
        "Teaching and research: showing how a CNN classifies 2-D brain MRI slices, how sure it is and where it looked.",
        "",
        "## Limitations",
        "- One public dataset of single 2-D slices, merged from three sources with many duplicates; no "
        "patient-level split "
        "is possible, so near-duplicate detection stands in for it. Results on other hospitals' scans will be lower.",
        "- Four classes only: any other finding (stroke, metastasis, artefact) is forced into one of them; the app's "
        "screening flags inputs unlike the training data but cannot catch everything.",
        "- Grad-CAM maps are coarse and show correlation, not cause.",
        "- Not a medical device; not validated clinically.",
    ]
    path = release / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
