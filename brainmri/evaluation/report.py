"""Read a saved evaluation (metrics.json, figures, model card) and format it for people.

Nothing here computes a metric: the app's Model tab shows exactly what
``train.py evaluate`` wrote.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from brainmri import text
from brainmri.inference.sequence_check import INVERSION


def words(lang: str = "en") -> dict[str, Any]:
    return text.catalogue(lang)["report"]


FIGURES = {
    "confusion": "confusion_full.png",
    "confusion_normalized": "confusion_full_normalized.png",
    "confusion_dedup": "confusion_dedup_normalized.png",
    "roc": "roc_full.png",
    "reliability": "reliability_full.png",
    "curves": "curves.png",
    "gallery": "gradcam_gallery.png",
    "risk_coverage": "risk_coverage.png",
}


def load_metrics(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_json(folder: str | Path, name: str) -> dict[str, Any] | None:
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else None


TESTING_SELECTIVE = "testing-selective"  # `train.py selective --out METRICS/testing-selective` on Testing


def testing_verdict(folder: str | Path) -> dict[str, Any] | None:
    """The release's verdict figures on Testing, as ``train.py selective`` measured them."""
    saved = load_json(Path(folder) / TESTING_SELECTIVE, "selective.json")
    return saved.get("verdict") if saved else None


def figure(folder: str | Path, key: str, lang: str = "en") -> str | None:
    """A saved figure of ``folder``: its ``lang`` version where one was drawn (``name.fr.png``), else English's."""
    path = Path(folder) / FIGURES[key]
    own = path.with_suffix(f".{lang}{path.suffix}")
    if lang != "en" and own.is_file():
        return str(own)
    return str(path) if path.is_file() else None


_pct = text.table_percent


def _ci(values: list[float], lang: str = "en") -> str:
    """[96.80, 98.40] in English; [96,80 ; 98,40] in French, where the comma is the decimal mark."""
    low, high = (text.number(100 * v, lang, ".2f") for v in values)
    return f"[{low} ; {high}]" if lang == "fr" else f"[{low}, {high}]"


def headline_markdown(metrics: dict[str, Any], lang: str = "en") -> str:
    w = words(lang)
    rows = [f"| | {w['testing_full']} | {w['testing_dedup']} |", "|---|---|---|"]
    full, dedup = metrics["full"], metrics.get("dedup", {})

    def both(fn):
        return f"| {fn(full)} | {fn(dedup) if dedup else '—'} |"

    rows.append(f"| {w['images']}" + both(lambda m: str(m["n"])))
    rows.append(
        f"| {w['accuracy_ci']}" + both(lambda m: f"{_pct(m['accuracy'], lang)} {_ci(m['accuracy_ci95'], lang)}")
    )
    rows.append(f"| {w['macro_f1']}" + both(lambda m: f"{_pct(m['macro_f1'], lang)} {_ci(m['macro_f1_ci95'], lang)}"))
    rows.append(f"| {w['weighted_f1']}" + both(lambda m: _pct(m["weighted_f1"], lang)))
    rows.append(f"| {w['auc']}" + both(lambda m: text.number(m["roc_auc"]["macro"], lang, ".4f")))
    rows.append(f"| {w['ece']}" + both(lambda m: text.number(m["ece"], lang, ".4f")))
    return "\n".join(rows)


def per_class_rows(metrics: dict[str, Any], which: str = "full", lang: str = "en") -> list[list[Any]]:
    m = metrics[which]
    out = []
    for label in m["labels"]:
        c = m["per_class"][label]
        auc = m["roc_auc"].get(label)
        out.append(
            [
                text.class_name(label, lang),
                round(c["precision"], 4),
                round(c["recall"], 4),
                round(c["f1"], 4),
                c["support"],
                None if auc is None else round(auc, 4),
            ]
        )
    return out


PER_CLASS_HEADERS = words("en")["per_class"]


def model_card(folder: str | Path, lang: str = "en") -> str:
    """The model card's body in ``lang`` (README.md, or README.<lang>.md where written; without its front matter)."""
    path = Path(folder) / "README.md"
    own = path.with_name(f"README.{lang}.md")
    if lang != "en" and own.is_file():
        path = own
    if not path.is_file():
        return "_This model folder has no model card._"
    body = path.read_text()
    if body.startswith("---"):
        end = body.find("\n---", 3)
        if end != -1:
            body = body[end + 4 :]
    return body.strip()


def batch_csv(rows: list[list[Any]], headers: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


COLLECTION_NAMES = {"sartaj": "SARTAJ", "figshare": "figshare", "br35h": "Br35H"}


def heldout_recipe(crossval: dict[str, Any] | None, lang: str = "en") -> str:
    """Which recipe the held-out-collection columns measured, in words ("recipe r21"), named by the folds' runs
    (``r21-sartaj-ft`` with SARTAJ held out: ``r21``). A release may ship a later recipe than the one its saved folds
    ran, so the columns say whose they are; "the same recipe" when the runs are not named."""
    names = []
    for name, block in ((crossval or {}).get("heldout") or {}).items():
        run = block.get("run") or ""
        recipe = run.split(f"-{name}")[0] if f"-{name}" in run else ""
        if recipe and recipe not in names:
            names.append(recipe)
    w = words(lang)
    return text.fill(w["heldout_recipe"], lang, name="/".join(names)) if names else w["heldout_recipe_unnamed"]


def _threshold(value: float, lang: str) -> str:
    """A confidence threshold as people read it: "90%", "98.5%" (French "98,5 %")."""
    return text.percent(value, lang, 0 if abs(100 * value - round(100 * value)) < 0.05 else 1)


def trust_note(crossval: dict[str, Any] | None, min_confidence: float, lang: str = "en") -> str:
    """The note under the trust table: whose the held-out columns are, what they overstate, when the page answers."""
    recipe, threshold = heldout_recipe(crossval, lang), _threshold(min_confidence, lang)
    return text.fill(words(lang)["trust_note"], lang, recipe=recipe, threshold=threshold)


def trust_markdown(
    metrics: dict[str, Any],
    crossval: dict[str, Any] | None,
    testing_verdict: dict[str, float] | None = None,
    lang: str = "en",
    testing_robustness: dict[str, Any] | None = None,
) -> str:
    """One table: Testing (full, de-duplicated) beside the held-out collections (a model of the same recipe
    trained without that collection, judged on all its images); with the verdicts' figures where saved
    (``{"ok_share": ..., "ok_accuracy": ...}``) and the accuracy under contrast inversion where a robustness
    table was saved (Testing's ``robustness.json``; a held-out entry's ``robustness``)."""
    w = words(lang)
    columns = [
        (w["testing_full"], metrics["full"], testing_verdict, testing_robustness),
        (w["testing_dedup"], metrics.get("dedup"), None, None),
    ]
    for name, block in ((crossval or {}).get("heldout") or {}).items():
        columns.append(
            (
                text.fill(w["heldout"], lang, name=COLLECTION_NAMES.get(name, name)),
                block["metrics"],
                block.get("verdict"),
                block.get("robustness"),
            )
        )
    columns = [c[:3] + ((c[3] or {}).get(INVERSION),) for c in columns if c[1]]
    rows = ["| | " + " | ".join(title for title, *_ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    rows.append(f"| {w['images']} | " + " | ".join(text.number(m["n"], lang, ",") for _, m, *_ in columns) + " |")
    rows.append(
        f"| {w['accuracy']} | "
        + " | ".join(f"{_pct(m['accuracy'], lang)} {_ci(m['accuracy_ci95'], lang)}" for _, m, *_ in columns)
        + " |"
    )
    for label in columns[0][1]["labels"]:
        cells = [
            _pct(m["per_class"][label]["recall"], lang) if m["per_class"].get(label, {}).get("support") else "—"
            for _, m, *_ in columns
        ]
        name = text.class_name(label, lang) if lang != "en" else label
        rows.append(f"| {w['recall'].format(label=name)} | " + " | ".join(cells) + " |")
    if any(inverted for *_, inverted in columns):
        rows.append(
            f"| {w['inverted']} | "
            + " | ".join(_pct(inverted["accuracy"], lang) if inverted else "—" for *_, inverted in columns)
            + " |"
        )
    if any(v for _, _, v, _ in columns):
        rows.append(
            f"| {w['answered_ok']} | "
            + " | ".join(
                f"{_pct(v['ok_share'], lang)} ({_pct(v['ok_accuracy'], lang)})" if v else "—" for _, _, v, _ in columns
            )
            + " |"
        )
    return "\n".join(rows)


def _model_name(record: dict[str, Any], weights_sha256: str | None, w: dict, lang: str = "en") -> str:
    """How a record names the model it judged: "the bundled model" when its weights are the release's own, any
    other by the name the evaluation gave it (``train.py lgg-eval --name``), or by its name in ``lang`` when the
    record gives one per language (``{"en": ..., "fr": ...}``)."""
    sha = record.get("weights_sha256") or ""
    if sha and sha == weights_sha256:
        return w["newsource_bundled"]
    name = record.get("model")
    if isinstance(name, dict):
        name = name.get(lang) or name.get("en")
    return name or f"sha256 `{sha[:12]}`"


def newsource_markdown(
    heldout: dict[str, Any] | None,
    leave_out: dict[str, Any] | None,
    lang: str = "en",
    weights_sha256: str | None = None,
) -> str:
    """The trust table's new-source rows (README, Model tab, model card): per sequence, on TCGA-LGG patients of an
    institution the recipe never trained on (:mod:`brainmri.evaluation.lgg`'s figures), and on all of TCGA-LGG for a
    model that never saw it (named "the bundled model" when its weights are ``weights_sha256``). Empty without
    either."""
    w = words(lang)

    def pct(x):
        return "—" if x is None else _pct(x, lang)

    rows = []
    if heldout:
        rows.append(
            (
                text.fill(
                    w["newsource_heldout"],
                    lang,
                    sites=", ".join(heldout["sites"]),
                    patients=heldout["patients"],
                    n=text.number(heldout["n"], lang, ","),
                ),
                heldout,
            )
        )
    if leave_out:
        rows.append(
            (
                text.fill(
                    w["newsource_never"],
                    lang,
                    patients=leave_out["patients"],
                    n=text.number(leave_out["n"], lang, ","),
                    model=_model_name(leave_out, weights_sha256, w, lang),
                ),
                leave_out,
            )
        )
    if not rows:
        return ""
    lines = ["| " + " | ".join(w["newsource_head"]) + " |", "|---" * len(w["newsource_head"]) + "|"]
    for name, r in rows:
        cells = [pct(r["by_sequence"].get(s, {}).get("glioma", {}).get("accuracy")) for s in ("flair", "t1", "t1c")]
        cells += [pct(r["notumor"]["accuracy"]), pct(r["all"]["ok_share"]), pct(r["all"]["ok_accuracy"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    # a bundled model trained on TCGA-LGG: the leave-out row is another model's, the held-out row is its recipe's
    trained = heldout is not None and (leave_out is None or leave_out.get("weights_sha256") != weights_sha256)
    return "\n".join(lines) + "\n\n" + w["newsource_note_trained" if trained else "newsource_note"]


def localisation_summary(result: dict[str, Any] | None, method: str = "gradcam", lang: str = "en") -> str:
    """One sentence on whether the heatmaps land on the tumour (the localisation yardstick on Testing)."""
    w = words(lang)
    if not result or method not in result.get("methods", {}):
        return w["no_localisation"]
    a = result["methods"][method]["all"]
    return text.fill(
        w["localisation"],
        lang,
        images=result["images"],
        grid="×".join(str(v) for v in result.get("cam_grid") or []),
        widen=result["widen_px"],
        pointing=_pct(a["pointing_game"], lang),
        energy=_pct(a["energy_inside"], lang),
        share=_pct(a["mask_share"], lang),
        ratio=a["energy_ratio"],
    )


def plain_summary(
    metrics: dict[str, Any],
    crossval: dict[str, Any] | None,
    lgg: dict[str, Any] | None = None,
    lang: str = "en",
    heldout_institution: dict[str, Any] | None = None,
) -> str:
    """The Model tab's opening, in plain words: what the model does, how often it is right, where it fails (the
    TCGA-LGG yardstick ``lgg``, when it was measured on these weights; else ``heldout_institution``, a model of its
    recipe judged on a TCGA-LGG institution it never trained on)."""
    w = words(lang)
    line = text.fill(w["plain"], lang, testing=100 * metrics["full"]["accuracy"])
    heldout = [block["metrics"]["accuracy"] for block in ((crossval or {}).get("heldout") or {}).values()]
    if heldout:
        line += text.fill(
            w["plain_heldout"],
            lang,
            recipe=heldout_recipe(crossval, lang),
            low=100 * min(heldout),
            high=100 * max(heldout),
        )
    line += "."
    own, held = lgg_figures(lgg), lgg_figures(heldout_institution)
    if own and own["free"] is not None:
        return line + text.fill(w["plain_fails"], lang, **{k: 100 * own[k] for k in ("flair", "t1c", "free")})
    if held and held["free"] is not None and held["ok"] is not None:
        shares = {k: 100 * held[k] for k in ("flair", "t1c", "free", "ok")}
        return line + text.fill(w["plain_elsewhere"], lang, sites=held["sites"], **shares)
    return line + w["plain_nowhere"]


def lgg_figures(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the pages say of a TCGA-LGG record (``train.py lgg-eval``'s): its institutions (``sites``), glioma
    recall in FLAIR and in T1 with contrast, the tumour-free slices called "no tumour" (``free``) and the share
    answered "ok", as fractions (``free`` and ``ok`` None where the record lacks them); None without the two
    recalls."""
    sequences = (record or {}).get("by_sequence") or {}
    if not {"flair", "t1c"} <= set(sequences):
        return None
    return {
        "sites": ", ".join(record.get("sites") or []),
        **{s: sequences[s]["glioma"]["accuracy"] for s in ("flair", "t1c")},
        "free": (record.get("notumor") or {}).get("accuracy"),
        "ok": (record.get("all") or {}).get("ok_share"),
    }


def summary_line(
    config: dict[str, Any],
    metrics: dict[str, Any],
    crossval: dict[str, Any] | None,
    testing_verdict: dict[str, float] | None = None,
    lang: str = "en",
) -> str:
    """The Model tab's first line: which model, how often right on Testing and on the held-out collections,
    how much of Testing the page answers "ok"."""
    w = words(lang)
    dedup = metrics.get("dedup")
    line = text.fill(
        w["summary"],
        lang,
        architecture=config.get("architecture", "?"),
        sha=config.get("weights_sha256", "?")[:12],
        testing=_pct(metrics["full"]["accuracy"], lang),
        dedup=_pct(dedup["accuracy"], lang) if dedup else "—",
    )
    for name, block in ((crossval or {}).get("heldout") or {}).items():
        line += text.fill(
            w["summary_heldout"],
            lang,
            recipe=heldout_recipe(crossval, lang),
            name=COLLECTION_NAMES.get(name, name),
            accuracy=_pct(block["metrics"]["accuracy"], lang),
        )
    if testing_verdict:
        return line + text.fill(
            w["summary_ok"],
            lang,
            share=_pct(testing_verdict["ok_share"], lang),
            accuracy=_pct(testing_verdict["ok_accuracy"], lang),
        )
    return line + "."


def evaluation_for(config: dict[str, Any], folder: str | Path) -> dict[str, Any] | None:
    """``folder``'s metrics.json when it was measured on the weights ``config`` names (its sha256), else None:
    a page must never show another model's evaluation."""
    metrics = load_metrics(folder)
    if metrics is None:
        return None
    measured = (metrics.get("meta") or {}).get("weights_sha256")
    return metrics if measured and measured == config.get("weights_sha256") else None


def about_markdown(
    metrics,
    crossval,
    robustness,
    lang: str = "en",
    min_confidence: float = 0.9,
    grid: str = "7×7",
    heldout_institution: dict[str, Any] | None = None,
) -> str:
    """The About tab in ``lang``, its figures (Testing, held-out collections, a held-out TCGA-LGG institution,
    inverted contrast) read from the served release's saved evaluation; without one, a sentence that says so
    instead of another model's figures. ``min_confidence``: the served release's "ok" threshold; ``grid``: its
    heatmap's cells ("10×10"); ``heldout_institution``: ``lgg-heldout-institution.json`` of its recipe."""
    words = text.catalogue(lang)["about"]
    if not metrics:
        figures = [words["unknown"]]
    else:
        figures = [text.fill(words["testing"], lang, accuracy=100 * metrics["full"]["accuracy"])]
        for name, block in ((crossval or {}).get("heldout") or {}).items():
            held = block["metrics"]
            glioma = held["per_class"]["glioma"]["recall"]
            figures.append(
                text.fill(
                    words["heldout"],
                    lang,
                    recipe=heldout_recipe(crossval, lang),
                    name=COLLECTION_NAMES.get(name, name),
                    accuracy=100 * held["accuracy"],
                    glioma=100 * glioma,
                )
            )
        held = lgg_figures(heldout_institution)
        if held and held["free"] is not None:
            shares = {k: 100 * held[k] for k in ("flair", "t1c", "free")}
            figures.append(text.fill(words["institution"], lang, sites=held["sites"], **shares))
        inverted = (robustness or {}).get(INVERSION)
        if inverted:
            figures.append(text.fill(words["inverted"], lang, accuracy=100 * inverted["accuracy"]))
    return text.fill(
        words["text"], lang, figures=" ".join(figures), threshold=_threshold(min_confidence, lang), grid=grid
    )
