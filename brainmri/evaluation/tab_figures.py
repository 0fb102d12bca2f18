"""The Model tab's risk figure, from saved records only, drawn in every language.

Two panels on one error axis: Testing, with every abstention signal ``train.py selective`` measured
(``METRICS/testing-selective/selective.json``), and a source the model never saw (TCGA-LGG judged slice by slice,
``train.py lgg-eval``'s ``lgg-slices.csv``), with the top probability, the one signal a slice's saved answer
carries. Each panel marks the page's own "ok" answers. The curves are kept in ``risk_coverage.json`` beside the
figures (thinned to a few hundred points), so the figures can be redrawn without the per-slice file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from brainmri import text
from brainmri.evaluation import plots
from brainmri.evaluation.lgg import read_rows
from brainmri.evaluation.selective import risk_coverage

RECORD = "risk_coverage.json"
POINTS = 301  # points kept of each curve: the figure's width in pixels is about twice that


def thinned(curve: dict[str, Any], points: int = POINTS) -> dict[str, Any]:
    """``curve`` with its coverage and risk at ``points`` evenly spread ranks (first and last kept)."""
    n = len(curve["coverage"])
    keep = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
    return {**curve, "coverage": [curve["coverage"][k] for k in keep], "risk": [curve["risk"][k] for k in keep]}


def answers_panel(rows: list[dict[str, str]]) -> dict[str, Any]:
    """A panel from saved per-slice answers (``label``, ``predicted``, ``p_<class>`` and ``verdict`` columns): the
    top probability's curve and the verdict's "ok" point."""
    if not rows:
        raise ValueError("no saved answers to draw")
    columns = [c for c in rows[0] if c.startswith("p_")]
    top = np.array([max(float(r[c]) for c in columns) for r in rows])
    correct = np.array([r["predicted"] == r["label"] for r in rows])
    ok = np.array([r["verdict"] == "ok" for r in rows])
    return {
        "n": len(rows),
        "curves": {"max_probability": thinned(risk_coverage(top, correct))},
        "ok": {"ok_share": float(ok.mean()), "ok_accuracy": float(correct[ok].mean()) if ok.any() else 0.0},
    }


def selective_panel(selective: dict[str, Any]) -> dict[str, Any]:
    """A panel from ``train.py selective``'s report: every signal's curve and the verdict's "ok" point."""
    verdict = selective.get("verdict")
    return {
        "n": selective["n"],
        "curves": {name: thinned(curve) for name, curve in selective["signals"].items()},
        "ok": {k: verdict[k] for k in ("ok_share", "ok_accuracy")} if verdict else None,
    }


def risk_record(testing_selective: dict[str, Any], new_source_rows: list[dict[str, str]], source: str) -> dict:
    """The record the figure is drawn from: Testing's panel, then the new source's (``source`` says which; its title
    names the institutions the saved answers cover, judged by a model that never trained on them)."""
    testing = {"title": "risk_testing", **selective_panel(testing_selective)}
    sites = sorted({r["site"] for r in new_source_rows if r.get("site")})
    named = f"{source} ({', '.join(sites)})" if sites else source
    new = {"title": "risk_new_source", "source": source, "named": named, **answers_panel(new_source_rows)}
    return {"panels": [testing, new]}


def draw(record: dict[str, Any], out: str | Path) -> list[Path]:
    """``risk_coverage.png`` (English) and ``risk_coverage.<lang>.png`` for every other language."""
    names = {lang: "risk_coverage.png" if lang == "en" else f"risk_coverage.{lang}.png" for lang in text.LANGUAGES}
    return [plots.risk_coverage_panels(record["panels"], Path(out) / name, lang) for lang, name in names.items()]


def redraw(metrics_dir: str | Path, new_source_rows: str | Path | None = None, source: str = "") -> list[Path]:
    """Build ``METRICS/risk_coverage.json`` from Testing's selective report and ``new_source_rows`` (a
    ``lgg-slices.csv``) when given, else read the saved one; then draw it in every language."""
    metrics_dir = Path(metrics_dir)
    if new_source_rows is not None:
        selective = metrics_dir / "testing-selective" / "selective.json"
        if not selective.is_file():
            raise FileNotFoundError(f"{selective} is missing: run `train.py selective` on Testing first")
        record = risk_record(json.loads(selective.read_text()), read_rows(new_source_rows), source)
        (metrics_dir / RECORD).write_text(json.dumps(record, indent=1))
    elif (metrics_dir / RECORD).is_file():
        record = json.loads((metrics_dir / RECORD).read_text())
    else:
        raise FileNotFoundError(f"{metrics_dir / RECORD} is missing: give the new source's per-slice answers")
    return draw(record, metrics_dir)
