"""The model card (README.md in the Hub's format) of a release folder, from its saved record."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

from brainmri import text
from brainmri.data.lgg import LICENCE
from brainmri.evaluation.report import (
    COLLECTION_NAMES,
    headline_markdown,
    heldout_recipe,
    load_metrics,
    localisation_summary,
    newsource_markdown,
    testing_verdict,
    trust_markdown,
)
from brainmri.inference.release import read_config


def _dropped_text(entry: dict, lang: str = "en") -> str:
    """``, 12 near duplicates left out of training`` for a held-out entry that left some out, else ""."""
    if not entry.get("holdout"):
        return ""
    return text.t("card.dropped", lang, n=entry["holdout"]["dropped_duplicates"])


def _stages_text(entry: dict, lang: str = "en") -> str:
    """```A`, 100 epochs, then `B`, 30 epochs (fine-tune)`` from a held-out entry of crossval.json."""
    w = text.t("card", lang)
    stages = entry.get("stages") or [{"run": entry["run"], "epochs": entry["recipe"].get("epochs")}]
    parts = [
        text.fill(w["run_stage"], lang, run=stage["run"], epochs=stage["epochs"]) + (w["fine_tune"] if i else "")
        for i, stage in enumerate(stages)
    ]
    return w["then"].join(parts)


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


def hardware_description(lang: str = "en") -> str:
    return text.t("card.hardware", lang, cores=os.cpu_count(), cpu=cpu_name())


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
    "paste_into",
    "invert_prob",
    "curve_prob",
    "marker_prob",
    "gamma",
    "framing_prob",
    "balance",
    "group_robust",
    "mixstyle",
    "clean_floor",
    "holdout",
    "seed",
    "split_seed",
]


def _selection_text(args: dict, lang: str = "en") -> str:
    """How the run chose its saved epoch (brainmri.training.trainer.Trainer.validate and _improves)."""
    w = text.t("card", lang)
    said = w["loss_inverted"] if args.get("invert_prob") else w["loss"]
    floor = args.get("clean_floor")
    if floor is not None:
        said += w["floor"] + (text.fill(w["floor_less"], lang, points=100 * floor) if floor else "")
    return said


LGG_LICENCE = LICENCE  # weights trained on TCGA-LGG inherit its non-commercial terms (brainmri.data.lgg)


CARDS = {lang: "README.md" if lang == "en" else f"README.{lang}.md" for lang in text.LANGUAGES}


def kept_training_section(release: Path, lang: str = "en") -> list[str]:
    """The Training section's lines of the release's card in ``lang`` (options and commands of runs that may no
    longer be at hand), without its heading; [] when there is none, or when that card only carried the English
    card's lines."""
    path = release / CARDS[lang]
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    heading = text.t("card.training", lang)
    if heading not in lines:
        return []
    start = lines.index(heading) + 1
    end = next((k for k in range(start, len(lines)) if lines[k].startswith("## ")), len(lines))
    section = lines[start:end]
    if section and section[0] == text.t("card.training_kept_english", lang) and lang != "en":
        return []
    if section and section[0] == text.t("card.training_kept", lang):  # a card itself rewritten: its own lines only
        section = section[1:]
    while section and not section[0].strip():
        section.pop(0)
    while section and not section[-1].strip():
        section.pop()
    return section


def write_model_card(
    release: str | os.PathLike,
    metrics_dir: str | os.PathLike,
    run: str | os.PathLike | list | None = None,
    command: str | list[str] = "",
    hardware: str | None = None,
) -> Path:
    """The card in every language (``README.md``, ``README.fr.md``: :data:`CARDS`); returns the English one's path.
    ``run``/``command``: one training run, or the list of stages in order (each continuing from the previous one's
    release with ``--init``); the card records each stage and their total time. Without ``run``, the Training
    section of each card is kept as it was (the runs' folders may be gone); a language whose card has none of its
    own keeps the English card's lines, saying so."""
    release = Path(release)
    english = [] if run else kept_training_section(release)
    for lang, name in CARDS.items():
        own = [] if run else kept_training_section(release, lang)
        kept = (own, lang) if own else (english, "en")
        lines = card_lines(release, Path(metrics_dir), run, command, hardware, lang, kept)
        (release / name).write_text("\n".join(lines) + "\n")
    return release / CARDS["en"]


def _runs(run) -> list[Path]:
    return [Path(r) for r in (run if isinstance(run, (list, tuple)) else [run] if run else [])]


def training_licence(release: Path, run=None) -> str:
    """The weights' licence: TCGA-LGG's non-commercial terms when a stage trained on it (the licence training saved
    in ``pretrained_cfg``, its runs' args, or the TCGA-LGG validation accuracy the release recorded), else
    apache-2.0 like the code."""
    config = read_config(release)
    stages = [_read_json(r / "args.json") or {} for r in _runs(run)]
    with_lgg = (
        config["pretrained_cfg"].get("license") == LGG_LICENCE
        or any(args.get("lgg") for args in stages)
        or config.get("brainmri", {}).get("val_acc_lgg") is not None
    )
    return LGG_LICENCE if with_lgg else "apache-2.0"


def card_lines(
    release: Path, metrics_dir: Path, run, command, hardware, lang: str, kept: tuple[list[str], str] = ([], "en")
) -> list[str]:
    """The card's lines in ``lang``; ``kept``: a Training section's lines to keep (without runs), and their language."""
    w = text.t("card", lang)
    config = read_config(release)
    meta = config.get("brainmri", {})
    metrics = load_metrics(metrics_dir)
    robustness = _read_json(metrics_dir / "robustness.json")
    runs = _runs(run)
    commands = [c for c in (command if isinstance(command, (list, tuple)) else [command]) if c]
    stages = [(_read_json(r / "args.json") or {}, _read_json(r / "summary.json") or {}) for r in runs]
    audit = _read_json(metrics_dir / "audit.json")
    pcfg = config["pretrained_cfg"]
    crop = config.get("preprocessing", {}).get("content_crop")
    onnx = config.get("onnx")

    licence = training_licence(release, run)
    lines = [
        "---",
        f"license: {licence}",
        "library_name: timm",
        "pipeline_tag: image-classification",
        "tags: [medical-imaging, mri, brain-tumor, convnext, grad-cam, brainmri]",
        "metrics: [accuracy, f1, roc_auc]",
        "---",
        "",
        text.fill(w["title"], lang, architecture=config["architecture"]),
        "",
        f"**{text.t('notice.head', lang)}** {text.t('notice.rest', lang)}",
        "",
        w["model"],
        text.fill(
            w["architecture"],
            lang,
            architecture=config["architecture"],
            init=w["imagenet"] if meta.get("pretrained") else w["scratch"],
            features=config.get("num_features", "?"),
            classes=config["num_classes"],
        ),
        text.fill(w["classes"], lang, classes=", ".join(config["label_names"])),
        text.fill(
            w["input"],
            lang,
            size=pcfg["input_size"][1],
            crop=w["crop"] if crop else "",
            interpolation=pcfg["interpolation"],
            mean=pcfg["mean"],
            std=pcfg["std"],
        ),
        text.fill(w["calibration"], lang, temperature=float(config.get("temperature", 1.0))),
        text.fill(
            w["weights"], lang, dtype=config.get("weights_dtype", "float32"), sha=config.get("weights_sha256", "?")
        ),
        *(
            [
                text.fill(
                    w["onnx"],
                    lang,
                    opset=onnx["opset"],
                    images=onnx["check"]["images"],
                    diff=f"{onnx['check']['max_abs_logit_diff']:.1e}",
                )
            ]
            if onnx
            else []
        ),
        "",
        w["data"],
        text.fill(w["kaggle"], lang, train=meta.get("train_images", "?"), val=meta.get("val_images", "?")),
    ]
    if licence == LGG_LICENCE:  # trained on TCGA-LGG
        lines += ["", w["lgg"]]
    newsource = newsource_markdown(
        _read_json(metrics_dir / "lgg-heldout-institution.json"),
        _read_json(metrics_dir / "lgg-leave-out.json"),
        lang,
        config.get("weights_sha256"),
    )
    if newsource:
        lines += ["", w["newsource"], "", newsource]
    if audit:
        s = audit["summary"]
        lines += [
            "",
            text.fill(
                w["audit"],
                lang,
                exact=s["testing_with_exact_dup_in_training"],
                near=s["testing_with_near_dup_in_training"],
                kept=s["dedup_testing_size"],
                total=s["testing_images"],
            ),
        ]
    lines += ["", w["training"], *_training_lines(stages, commands, meta, hardware, kept, w, lang)]
    if metrics:
        lines += ["", w["evaluation"], "", headline_markdown(metrics, lang), "", w["per_class"], ""]
        lines += ["| " + " | ".join(text.t("report.per_class", lang)) + " |", "|---|---|---|---|---|---|"]
        for label, c in metrics["full"]["per_class"].items():
            auc = metrics["full"]["roc_auc"].get(label)
            figures = [text.number(c[k], lang, ".4f") for k in ("precision", "recall", "f1")] + [str(c["support"])]
            figures.append("—" if auc is None else text.number(auc, lang, ".4f"))
            lines.append(f"| {text.class_name(label, lang)} | " + " | ".join(figures) + " |")
    crossval = _read_json(metrics_dir / "crossval.json")
    if metrics and crossval:
        lines += [
            "",
            w["heldout"],
            "",
            text.fill(w["heldout_note"], lang, recipe=heldout_recipe(crossval, lang)),
            "",
            *[
                text.fill(
                    w["heldout_run"],
                    lang,
                    name=COLLECTION_NAMES.get(name, name),
                    stages=_stages_text(entry, lang),
                    dropped=_dropped_text(entry, lang),
                )
                for name, entry in crossval.get("heldout", {}).items()
            ],
            "",
            trust_markdown(metrics, crossval, testing_verdict(metrics_dir), lang, testing_robustness=robustness),
        ]
    localisation = _read_json(metrics_dir / "localisation.json")
    if localisation:
        lines += ["", w["localisation"], "", localisation_summary(localisation, lang=lang)]
    if robustness:
        from brainmri.evaluation.robustness import robustness_markdown

        lines += ["", w["robustness"], "", robustness_markdown(robustness, lang)]
    check = config.get("sequence_check")
    if check:
        lines += ["", w["t2"], "", _t2_text(check, w, lang)]
    lines += ["", w["use"], w["use_text"], "", w["limits"], *w["limits_list"]]
    return lines


def _training_lines(stages, commands, meta, hardware, kept, w, lang: str) -> list[str]:
    """Each stage's options and time, the saved epoch, seed, hardware, the commands; without runs, the lines kept
    from a card (``kept``: the lines and their language)."""
    kept_lines, kept_lang = kept
    if not stages and kept_lines:
        return [w["training_kept" if kept_lang == lang else "training_kept_english"], "", *kept_lines]
    several = len(stages) > 1
    if stages:
        seconds = sum(summary.get("train_seconds", 0) for _, summary in stages)
        walls = [summary.get("wall_seconds") for _, summary in stages]
        wall = sum(walls) if all(walls) else None
    else:
        seconds, wall = meta.get("train_seconds"), None
    lines = []
    for number, (args, summary) in enumerate(stages, 1):
        name = text.fill(w["stage"], lang, n=number) if several else w["recipe"]
        recipe = ", ".join(f"{k}={args.get(k)}" for k in RECIPE_KEYS if args.get(k) is not None)
        took = text.fill(w["took"], lang, minutes=summary["train_seconds"] / 60) if summary.get("train_seconds") else ""
        if several and summary.get("wall_seconds"):
            took += text.fill(w["took_wall"], lang, minutes=summary["wall_seconds"] / 60)
        lines.append(text.fill(w["stage_line"], lang, name=name, recipe=recipe, took=took))
    lines.append(
        text.fill(
            w["best"],
            lang,
            selection=_selection_text(stages[-1][0] if stages else {}, lang),
            last=w["of_last"] if several else "",
            epoch=meta.get("epoch", "?"),
            accuracy=float(meta.get("val_acc", float("nan"))),
        )
    )
    if seconds:
        lines.append(
            text.fill(
                w["seed_time"],
                lang,
                seed=meta.get("seed", "?"),
                hardware=hardware or hardware_description(lang),
                all=w["all_stages"] if several else "",
                wall=text.fill(w["wall"], lang, minutes=wall / 60) if wall else "",
                minutes=seconds / 60,
            )
        )
    else:
        lines.append(text.fill(w["seed"], lang, seed=meta.get("seed", "?")))
    if commands:
        lines += [w["commands"] if len(commands) > 1 else w["command"], "", "```", *commands, "```"]
    return lines


def fitted_on_text(images: int, t2: int, labels: str, excluded: str | None = None, lang: str = "en") -> str:
    """What the T2-look check was fitted on, as its record (``config.json``, in English) and the card say it."""
    none = text.t("card.t2_none", lang, collection=excluded) if excluded else ""
    return text.t("card.t2_fitted", lang, n=images, t2=t2, file=labels, none=none)


FITTED_ON = re.compile(r"^(\d+) hand-labelled Training slices \((\d+) T2\), ([^,]+)(?:, none from (.+))?$")


def _fitted_on(recorded: str, lang: str) -> str:
    """A record's :func:`fitted_on_text` said again in ``lang`` (as recorded when it is in another form)."""
    found = FITTED_ON.match(recorded)
    if not found:
        return recorded
    images, t2, labels, excluded = found.groups()
    return fitted_on_text(int(images), int(t2), labels, excluded, lang)


def _t2_text(check: dict, w: dict, lang: str) -> str:
    """What the T2-look check does and how well it did in cross-validation."""
    cv = check.get("cross_validation") or {}
    said = text.fill(
        w["t2_text"],
        lang,
        fitted=_fitted_on(check.get("fitted_on", ""), lang),
        off="" if check.get("notumor_uncertain", True) else w["t2_off"],
    )
    if cv.get("auc") is not None:
        said += text.fill(
            w["t2_cv"], lang, auc=float(cv["auc"]), caught=float(cv["t2_caught"]), flagged=float(cv["others_flagged"])
        )
    if cv.get("random_sample"):
        r = cv["random_sample"]
        said += text.fill(
            w["t2_random"],
            lang,
            n=r["n"],
            auc=float(r["auc"]),
            caught=float(r["t2_caught"]),
            flagged=float(r["others_flagged"]),
        )
    if cv.get("training_flagged_by_class"):
        flags = ", ".join(
            f"{text.class_name(k, lang)} {text.percent(v, lang, 1)}" for k, v in cv["training_flagged_by_class"].items()
        )
        said += text.fill(w["t2_training"], lang, flags=flags)
    return said
