"""A one-page PDF record of one explained slice, for a teaching slide or a tumour board.

Drawn with matplotlib's own PDF backend through its object API (no pyplot state, so concurrent
requests do not share a figure). The page holds the slice, the heatmap overlay, the four
probabilities, the verdict and its reason, the method, which model answered (name, version,
weights sha256, its held-out figures), the date and the not-a-medical-device notice. It holds no
file name and no patient field: the caller passes the explanation only, never the upload's path
or DICOM header.
"""

from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from brainmri import __version__, text
from brainmri.inference.explain import METHOD_NAMES

# Every report is drawn on this one thread. matplotlib's settings are one global state: two reports drawn at once
# (the page serves requests in threads) would swap each other's font type halfway through a save. And matplotlib
# keeps its fonts, open files included, per thread (font_manager._get_font): drawn on whichever of the server's
# worker threads took the request, an hour of reports held a growing number of them (the soak benchmark).
_DRAWER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="brainmri-report")

A4_INCHES = (8.27, 11.69)


@dataclass
class ModelFacts:
    """Which model answered and how far to trust it (from the release's config and saved evaluation)."""

    architecture: str
    weights_sha256: str
    input_size: int
    testing_accuracy: float | None = None
    heldout_accuracy: dict[str, float] = field(default_factory=dict)  # collection name → accuracy
    heldout_recipe: dict[str, str] = field(default_factory=dict)  # language → whose the held-out figures are
    # a TCGA-LGG institution its recipe never trained on: its sites, glioma recall in FLAIR and in T1 with contrast
    institution: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_release(
        cls, config: dict, metrics: dict | None, crossval: dict | None, heldout_institution: dict | None = None
    ) -> "ModelFacts":
        from brainmri.evaluation.report import COLLECTION_NAMES, heldout_recipe

        heldout = {
            COLLECTION_NAMES.get(name, name): block["metrics"]["accuracy"]
            for name, block in ((crossval or {}).get("heldout") or {}).items()
        }
        size = (config.get("pretrained_cfg") or {}).get("input_size", [3, 0, 0])[-1]
        return cls(
            config.get("architecture", "?"),
            config.get("weights_sha256", "?"),
            int(size),
            metrics["full"]["accuracy"] if metrics else None,
            heldout if metrics else {},
            {lang: heldout_recipe(crossval, lang) for lang in text.LANGUAGES},
            _institution(heldout_institution) if metrics else {},
        )

    @classmethod
    def from_metrics_dir(cls, config: dict, metrics_dir: str | Path) -> "ModelFacts":
        """The facts of the release ``config`` describes, from its saved evaluation in ``metrics_dir`` (none when
        that evaluation was measured on other weights): what the page and the README's report picture show."""
        from brainmri.evaluation import report

        metrics = report.evaluation_for(config, metrics_dir)
        if not metrics:
            return cls.from_release(config, None, None)
        crossval, institution = (
            report.load_json(metrics_dir, name) for name in ("crossval.json", "lgg-heldout-institution.json")
        )
        return cls.from_release(config, metrics, crossval, institution)


def _institution(record: dict | None) -> dict[str, Any]:
    """The figures of ``lgg-heldout-institution.json`` the report shows, or none when it lacks them."""
    from brainmri.evaluation.report import lgg_figures

    figures = lgg_figures(record)
    return {k: figures[k] for k in ("sites", "flair", "t1c")} if figures else {}


def _figures_line(facts: ModelFacts, t: dict, lang: str) -> str:
    if facts.testing_accuracy is None:
        return t["no_figures"]
    parts = [f"{t['testing']} {text.percent(facts.testing_accuracy, lang)}"]
    held = facts.heldout_accuracy.items()
    parts += [f"{t['heldout'].format(name=name)} {text.percent(accuracy, lang)}" for name, accuracy in held]
    if facts.institution:
        i = facts.institution
        flair, t1c = (text.percent(i[s], lang) for s in ("flair", "t1c"))
        parts.append(text.fill(t["institution"], lang, sites=i["sites"], flair=flair, t1c=t1c))
    line = text.fill(t["figures"], lang, figures="; ".join(parts))
    if not facts.heldout_accuracy:
        return line
    from brainmri.evaluation.report import heldout_recipe

    recipe = facts.heldout_recipe.get(lang) or heldout_recipe(None, lang)
    return f"{line} {text.fill(t['heldout_note'], lang, recipe=recipe)}"


def write_case_report(
    path: str | Path,
    explanation,
    facts: ModelFacts,
    lang: str = "en",
    opacity: float | None = None,
    now: datetime | None = None,
) -> Path:
    """One A4 page for ``explanation`` (from :meth:`Predictor.explain` on a file or an array: it needs the
    original slice), as PDF (or PNG when ``path`` ends in .png); ``opacity``: the heatmap's, as on the page."""
    if explanation.original is None:
        raise ValueError("a case report needs an explanation of a file or an array, not of a prepared image")
    return _DRAWER.submit(_draw, Path(path), explanation, facts, lang, opacity, now).result()


def _draw(path: Path, explanation, facts: ModelFacts, lang: str, opacity: float | None, now: datetime | None) -> Path:
    from matplotlib import rc_context  # imported on the first report: the page starts without matplotlib

    now = now or datetime.now(timezone.utc)  # one time: printed on the page and the PDF's creation date
    fig = case_page(explanation, facts, lang, opacity, now)
    if path.suffix.lower() == ".png":  # a picture of the page (the README shows one)
        fig.savefig(path, format="png", dpi=80)
        return path
    title = text.catalogue(lang)["casereport"]["title"]
    # Type 3 glyphs with a ToUnicode map: selectable, searchable text, drawn 3x faster than subsetting TrueType
    with rc_context({"pdf.fonttype": 3}):
        metadata = {"Title": title, "Creator": f"brainmri {__version__}", "CreationDate": now}
        fig.savefig(path, format="pdf", metadata=metadata)
    return path


def case_page(
    explanation, facts: ModelFacts, lang: str = "en", opacity: float | None = None, now: datetime | None = None
):
    """The report's A4 :class:`~matplotlib.figure.Figure` (not saved)."""
    from matplotlib.figure import Figure

    t = text.catalogue(lang)["casereport"]
    names = {label: text.class_name(label, lang) for label in explanation.probabilities}
    method = METHOD_NAMES.get(explanation.method, explanation.method)
    target = names[explanation.target]
    date = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M")

    fig = Figure(figsize=A4_INCHES)
    fig.text(0.06, 0.965, t["title"], fontsize=15, weight="bold", va="top")
    notice = " ".join(text.catalogue(lang)["notice"].values())
    fig.text(0.06, 0.938, "\n".join(textwrap.wrap(notice, 112)), fontsize=8.5, color="#a00000", va="top")
    verdict = explanation.verdict
    read = verdict is None or verdict.status != "not_mri"  # as on the page: no class, no heatmap otherwise
    drawn = (
        (explanation.draw(opacity) if opacity is not None else explanation.overlay_original)
        if read
        else explanation.original
    )
    for x, image, title, cmap in (
        (0.06, explanation.original, t["slice"], "gray"),
        (
            0.52,
            drawn,
            text.fill(t["overlay"], lang, method=method, target=target) if read else t["not_read"],
            None if read else "gray",
        ),
    ):
        # below the notice's two lines and the titles' two; any slice shape hangs from the box's top edge
        ax = fig.add_axes((x, 0.58, 0.42, 0.29), anchor="N")
        ax.imshow(image, cmap=cmap, vmin=0, vmax=255, interpolation="lanczos")
        ax.set_title("\n".join(textwrap.wrap(title, 48)), fontsize=9)
        ax.set_axis_off()

    if read:
        bars = fig.add_axes((0.30, 0.40, 0.60, 0.14))
        labels = list(explanation.probabilities)
        values = [explanation.probabilities[k] for k in labels]
        colours = ["#d9534f" if k == explanation.label else "#7a9cc6" for k in labels]
        bars.barh([names[k] for k in labels][::-1], values[::-1], color=colours[::-1])
        for y, value in enumerate(values[::-1]):
            bars.text(min(value, 1.0) + 0.01, y, text.percent(value, lang), va="center", fontsize=9)
        bars.set_xlim(0, 1.12)
        ticks = [0, 0.25, 0.5, 0.75, 1.0]
        bars.set_xticks(ticks, [text.percent(v, lang, digits=0) for v in ticks], fontsize=8)
        bars.tick_params(axis="y", labelsize=10)
        bars.set_title(t["probabilities"], fontsize=10, loc="left")
        for side in ("top", "right"):
            bars.spines[side].set_visible(False)

    if verdict is None or verdict.ok:
        shown = text.percent(explanation.probabilities[explanation.label], lang)  # as its bar: 99.8 %, not 100 %
        verdict_text = f"{names[explanation.label]} ({shown}); {t['ok']}"
    else:
        verdict_text = verdict.said_in(lang)
    y = 0.355
    blocks = [
        (text.fill(t["verdict"], lang, verdict=verdict_text), 10, "bold"),
        *(
            [
                (
                    text.fill(
                        t["method"],
                        lang,
                        size=facts.input_size,
                        architecture=facts.architecture,
                        method=method,
                        target=target,
                    ),
                    8.5,
                    "normal",
                )
            ]
            if read
            else []
        ),
        (
            text.fill(t["model"], lang, architecture=facts.architecture, version=__version__, sha=facts.weights_sha256),
            8.5,
            "normal",
        ),
        (_figures_line(facts, t, lang), 8.5, "normal"),
        (text.fill(t["date"], lang, date=date), 8.5, "normal"),
    ]
    for words, size, weight in blocks:
        lines = textwrap.wrap(words, 112 if size < 10 else 95)
        fig.text(0.06, y, "\n".join(lines), fontsize=size, weight=weight, va="top", linespacing=1.3)
        y -= 0.0165 * len(lines) * size / 8.5 + 0.014
    return fig
