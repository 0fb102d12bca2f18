"""brainmri.evaluation.tab_figures: the Model tab's risk figure, from saved records, in every language."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainmri import commands as cli
from brainmri.evaluation import report, tab_figures
from brainmri.evaluation.selective import risk_coverage

METRICS = Path(__file__).resolve().parents[1] / "assets" / "metrics"


def rows(n=40, seed=0):
    """Saved per-slice answers as `train.py lgg-eval` writes them: right on the confident half only."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        top = 0.95 if k < n // 2 else 0.5
        label, predicted = "glioma", "glioma" if k < n // 2 else "meningioma"
        rest = (1 - top) / 3
        p = {"p_glioma": top if predicted == "glioma" else rest, "p_meningioma": top if predicted != "glioma" else rest}
        out.append(
            {
                "path": f"s/{k}.jpg",
                "label": label,
                "predicted": predicted,
                **{c: str(v) for c, v in p.items()},
                "p_notumor": str(rest),
                "p_pituitary": str(rest * rng.uniform(0.5, 1)),
                "verdict": "ok" if k % 2 == 0 else "uncertain",
            }
        )
    return out


def test_a_panel_from_saved_answers_sorts_by_the_top_probability_and_marks_the_ok_answers():
    panel = tab_figures.answers_panel(rows())
    curve = panel["curves"]["max_probability"]
    assert panel["n"] == 40 and curve["n"] == 40
    assert curve["risk"][19] == 0 and curve["risk"][-1] == pytest.approx(0.5)  # the sure half is the right half
    assert curve["aurc"] == pytest.approx(np.mean([0] * 20 + [k / (20 + k) for k in range(1, 21)]))
    assert panel["ok"] == {"ok_share": 0.5, "ok_accuracy": 0.5}  # every other slice "ok", half of those right
    with pytest.raises(ValueError, match="no saved answers"):
        tab_figures.answers_panel([])


def test_curves_are_thinned_keeping_both_ends():
    curve = risk_coverage(np.linspace(1, 0, 1000), np.arange(1000) % 3 > 0)
    short = tab_figures.thinned(curve, points=101)
    assert len(short["risk"]) == len(short["coverage"]) == 101
    assert short["coverage"][0] == curve["coverage"][0] and short["coverage"][-1] == 1.0
    assert short["risk"][-1] == curve["risk"][-1] and short["aurc"] == curve["aurc"]  # the area of every point
    assert tab_figures.thinned(short, points=500)["risk"] == short["risk"]


def test_the_figure_is_redrawn_from_its_record_in_every_language(tmp_path, capsys):
    """Built from Testing's selective report and a new source's answers, kept as a record, redrawn from the record
    alone; English and French differ (words, decimal commas); the Model tab picks the page's language."""
    shutil.copytree(METRICS / "testing-selective", tmp_path / "testing-selective")
    answers = tmp_path / "lgg-slices.csv"
    with open(answers, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows()[0]))
        writer.writeheader()
        writer.writerows(rows())
    shutil.copyfile(METRICS / "metrics.json", tmp_path / "metrics.json")
    command = ["figures", "--metrics", str(tmp_path), "--new-source-answers", str(answers), "--source", "stand-in"]
    assert cli.main(command) == 0  # `train.py figures`: the Model tab's figures, every language
    written = [Path(line) for line in capsys.readouterr().out.split()]
    assert {p.name for p in written} >= {"risk_coverage.png", "risk_coverage.fr.png", "reliability_full.fr.png"}
    assert all(p.is_file() for p in written)
    written = [p for p in written if p.name.startswith("risk")]
    record = json.loads((tmp_path / tab_figures.RECORD).read_text())
    testing, new = record["panels"]
    assert (testing["title"], new["title"], new["source"]) == ("risk_testing", "risk_new_source", "stand-in")
    assert new["named"] == "stand-in"  # answers without a site column: the source alone
    selective = json.loads((tmp_path / "testing-selective" / "selective.json").read_text())
    sited = tab_figures.risk_record(selective, [dict(r, site="DU") for r in rows()], "TCGA-LGG")
    assert sited["panels"][1]["named"] == "TCGA-LGG (DU)"  # the title says which institutions the answers cover
    assert set(testing["curves"]) >= {"max_probability", "mahalanobis"}
    assert len(testing["curves"]["energy"]["risk"]) <= 301
    english, french = (np.asarray(Image.open(report.figure(tmp_path, "risk_coverage", lang))) for lang in ("en", "fr"))
    assert english.shape != french.shape or (english != french).any()
    for path in written:
        path.unlink()
    assert [p.name for p in tab_figures.redraw(tmp_path)] == ["risk_coverage.png", "risk_coverage.fr.png"]
    shutil.rmtree(tmp_path / "testing-selective")
    with pytest.raises(FileNotFoundError, match="train.py selective"):
        tab_figures.redraw(tmp_path, answers)
    (tmp_path / tab_figures.RECORD).unlink()
    with pytest.raises(FileNotFoundError, match="per-slice answers"):
        tab_figures.redraw(tmp_path)


def test_the_bundled_figure_is_its_record_drawn():
    """The bundled record has both panels: Testing with every signal, and the TCGA-LGG institution the bundled
    model's recipe held out, judged by a model of that recipe that never trained on it (its saved answers)."""
    record = json.loads((METRICS / tab_figures.RECORD).read_text())
    heldout = json.loads((METRICS / "lgg-heldout-institution.json").read_text())
    testing, new = record["panels"]
    assert testing["n"] == 1311 and new["n"] == heldout["n"] == heldout["all"]["n"]
    assert new["named"] == f"TCGA-LGG ({', '.join(heldout['sites'])})"
    assert new["ok"]["ok_accuracy"] == pytest.approx(heldout["all"]["ok_accuracy"])  # the same answers
    assert testing["ok"]["ok_accuracy"] > 0.95 and new["ok"]["ok_share"] < testing["ok"]["ok_share"]
    assert report.figure(METRICS, "risk_coverage", "fr").endswith("risk_coverage.fr.png")


def test_the_shared_axis_shows_every_panels_curve_whole():
    """Testing's errors stay under 3 %, the new source's reach 23 %: the one y-axis must reach the highest of them
    (it stopped at Testing's top, cutting the new source's line off)."""
    import matplotlib.pyplot as plt

    from brainmri.evaluation.plots import risk_coverage_panels_figure

    record = json.loads((METRICS / tab_figures.RECORD).read_text())
    highest = max(max(b["risk"]) for panel in record["panels"] for b in panel["curves"].values())
    fig = risk_coverage_panels_figure(record["panels"])
    try:
        for ax in fig.axes[: len(record["panels"])]:
            assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= highest
    finally:
        plt.close(fig)
    testing = max(max(b["risk"]) for b in record["panels"][0]["curves"].values())
    assert highest > 3 * testing  # the bundled record is such a case
