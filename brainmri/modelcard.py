"""The model card (README.md in the Hub's format) of a release folder, from its saved record."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from .checkpoint import read_config
from .report import headline_markdown, load_metrics


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def hardware_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), no GPU"


def write_model_card(release: str | os.PathLike, metrics_dir: str | os.PathLike, run: str | os.PathLike | None = None,
                     command: str = "", hardware: str | None = None) -> Path:
    release, metrics_dir = Path(release), Path(metrics_dir)
    config = read_config(release)
    meta = config.get("brainmri", {})
    metrics = load_metrics(metrics_dir)
    robustness = _read_json(metrics_dir / "robustness.json")
    args = _read_json(Path(run) / "args.json") if run else None
    summary = _read_json(Path(run) / "summary.json") if run else None
    audit = _read_json(metrics_dir / "audit.json")
    pcfg = config["pretrained_cfg"]
    seconds = meta.get("train_seconds") or (summary or {}).get("train_seconds")

    lines = [
        "---",
        "license: apache-2.0",
        "library_name: timm",
        "pipeline_tag: image-classification",
        "tags: [medical-imaging, mri, brain-tumor, convnext, grad-cam, brainmri]",
        "metrics: [accuracy, f1, roc_auc]",
        "---",
        "",
        f"# brainmri — {config['architecture']} for brain-tumour MRI slices",
        "",
        "**Research and teaching model — not a medical device.** It must not be used to diagnose, treat or triage anyone.",
        "",
        "## Model",
        f"- Architecture: timm `{config['architecture']}` ({'ImageNet-initialised' if meta.get('pretrained') else 'trained from scratch'}), "
        f"head LayerNorm → Dropout → Linear({config.get('num_features', '?')}→{config['num_classes']}).",
        f"- Classes (output order): {', '.join(config['label_names'])}.",
        f"- Input: {pcfg['input_size'][1]}×{pcfg['input_size'][2]} px; any image or DICOM → grayscale → padded to a "
        f"square on black → resized ({pcfg['interpolation']}) → replicated to 3 channels → normalised "
        f"(mean {pcfg['mean']}, std {pcfg['std']}).",
        f"- Calibration: temperature {config.get('temperature', 1.0):.3f}, fitted on the validation split "
        "(probabilities = softmax(logits / T)).",
        f"- Weights: `model.safetensors` ({config.get('weights_dtype', 'float32')}), sha256 `{config.get('weights_sha256', '?')}`.",
        "",
        "## Data",
        "Kaggle *Brain Tumor MRI Dataset* (M. Nickparvar; figshare + SARTAJ + Br35H), 5,712 Training and 1,311 Testing "
        f"slices. Training split: {meta.get('train_images', '?')} images; validation split (model selection, "
        f"early stopping, calibration): {meta.get('val_images', '?')} images carved from Training, stratified, "
        "with near-duplicate groups kept on one side. Testing was used for nothing but the final evaluation.",
    ]
    if audit:
        s = audit["summary"]
        lines += ["", f"Duplicate audit: {s['testing_with_exact_dup_in_training']} Testing images have an exact and "
                      f"{s['testing_with_near_dup_in_training']} more a near duplicate in Training; the de-duplicated "
                      f"Testing subset keeps {s['dedup_testing_size']} of {s['testing_images']} images."]
    lines += ["", "## Training"]
    if args:
        keys = ["recipe", "arch", "image_size", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                "schedule", "label_smoothing", "augment", "ema_decay", "ls_init_value", "drop_rate", "seed"]
        lines.append("- Recipe: " + ", ".join(f"{k}={args.get(k)}" for k in keys if args.get(k) is not None) + ".")
    lines += [
        f"- Best epoch (lowest validation loss): {meta.get('epoch', '?')}; validation accuracy {meta.get('val_acc', float('nan')):.4f}.",
        f"- Seed: {meta.get('seed', '?')}. Hardware: {hardware or hardware_description()}. "
        f"Training wall-clock: {seconds / 60:.0f} min." if seconds else f"- Seed: {meta.get('seed', '?')}.",
    ]
    if command:
        lines += ["- Command:", "", "```", command, "```"]
    if metrics:
        lines += ["", "## Evaluation (Testing split)", "", headline_markdown(metrics), ""]
        lines += ["Per class (full Testing):", "", "| class | precision | recall | F1 | support | ROC-AUC |",
                  "|---|---|---|---|---|---|"]
        for label, c in metrics["full"]["per_class"].items():
            auc = metrics["full"]["roc_auc"].get(label)
            lines.append(f"| {label} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} | "
                         f"{'—' if auc is None else f'{auc:.4f}'} |")
    if robustness:
        from .robustness import robustness_markdown
        lines += ["", "## Robustness (Testing, full set)", "", robustness_markdown(robustness)]
    lines += [
        "", "## Intended use",
        "Teaching and research: showing how a CNN classifies 2-D brain MRI slices, how sure it is and where it looked.",
        "", "## Limitations",
        "- One public dataset of single 2-D slices, merged from three sources with many duplicates; no patient-level split "
        "is possible, so near-duplicate detection stands in for it. Results on other hospitals' scans will be lower.",
        "- Four classes only: any other finding (stroke, metastasis, artefact) is forced into one of them; the app's "
        "screening flags inputs unlike the training data but cannot catch everything.",
        "- Grad-CAM maps are coarse and show correlation, not cause.",
        "- Not a medical device; not validated clinically.",
    ]
    path = release / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
