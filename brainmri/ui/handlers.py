"""The page's callbacks: small functions over one shared, read-only Predictor, answering in the page's language.

Each returns what its Gradio components take; the API's outputs keep the stable English keys (class labels,
verdict statuses), the page's words come from :mod:`brainmri.text`.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime
from pathlib import Path

import gradio as gr
import pandas as pd  # Gradio's own dependency: tables and plots take data frames
from gradio.utils import NamedString, get_upload_folder
from gradio_client import utils as client_utils
from PIL import Image

from brainmri import ImageLoadError, Predictor, text
from brainmri.evaluation import report
from brainmri.inference.explain import CLASSLESS, HEATMAP_OPACITY, METHOD_NAMES
from brainmri.ui.casereport import ModelFacts, write_case_report

PREDICTED = "predicted"  # the class-to-explain choice that follows the prediction
# the scan strip's lines, one colour per class (Okabe and Ito's palette: told apart with any colour vision)
CLASS_COLOURS = {"glioma": "#0072B2", "meningioma": "#E69F00", "notumor": "#009E73", "pituitary": "#CC79A7"}
SUSPICIOUS_ROWS = 10


def say(lang: str) -> dict:
    """What the callbacks write in ``lang`` (the front end translates the static labels itself)."""
    return text.catalogue(lang)["say"]


def refusal(message: str, lang: str = "en") -> gr.Error:
    """The toast for a request the page cannot answer: its title and message in the page's language, no traceback."""
    return gr.Error(message, title=say(lang)["error_title"], print_exception=False)


def page_language(request: gr.Request | None) -> str:
    """The page's language, as the browser asks for it (its Accept-Language header); English without a request."""
    headers = getattr(request, "headers", None) or {}
    return text.language(headers.get("accept-language"))


def _label_output(explanation, lang: str | None = None):
    """The prediction for gr.Label: stable English keys (the API's) when ``lang`` is None, else class names in words."""
    verdict = explanation.verdict
    if verdict is not None and verdict.status == "not_mri":
        return say(lang or "en")["not_mri_label"]
    if lang is None:
        return explanation.probabilities
    return {text.class_name(k, lang): v for k, v in explanation.probabilities.items()}


def _note(explanation, lang: str = "en") -> str:
    words, verdict = say(lang), explanation.verdict
    top = text.class_name(explanation.label, lang)
    p = explanation.probabilities[explanation.label]
    method, target = METHOD_NAMES[explanation.method], text.class_name(explanation.target, lang)
    classless = explanation.method in CLASSLESS  # its map is the same for every class: it names none
    entry = words["heatmap_classless" if classless else "heatmap"]
    heatmap = text.fill(entry, lang, method=method, target=target)
    if verdict is None or verdict.ok:
        return text.fill(words["ok"], lang, top=top, p=p, heatmap=heatmap)
    return text.fill(words[verdict.status], lang, reason=verdict.reason_in(lang), top=top, p=p, heatmap=heatmap)


class UploadFile(gr.File):
    """``gr.File`` (same front end, same API) whose filepath preprocessing leaves nothing behind.

    Gradio 6.31's ``File._process_single_file`` opens a ``NamedTemporaryFile(delete=False)`` in its
    cache for every uploaded file, renames the Python object and never deletes the file: one empty
    file per request that ``delete_cache`` does not know about. This returns the uploaded path itself.
    """

    is_template = True  # rendered by the front end as the File component it extends

    def _process_single_file(self, f):
        if self.type != "filepath":
            return super()._process_single_file(f)
        if self.file_types and not client_utils.is_valid_file(f.path, self.file_types):
            raise gr.Error(f"Invalid file type. Please upload a file that is one of these formats: {self.file_types}")
        return NamedString(f.path)


def cached_output(folder: Path, suffix: str, write, name: str | None = None) -> str:
    """A file the page sends back (model input, heatmap, batch CSV, report), written by ``write(path)`` under a
    new name inside Gradio's cache folder, then renamed into place.

    Gradio's own numpy → file step names files by their content and rewrites an existing one in
    place, so two concurrent identical answers could serve a half-written file (the load test saw
    "Content-Length" errors). A unique name per answer never collides; being inside the cache, the
    file is served as is and deleted with the rest of the cache (``delete_cache``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if name:  # a name for people (the download's), in a folder of its own so that it never collides
        now = time.time()
        for old in folder.iterdir():  # Gradio's cache schedule deletes files, not their folders: drop empty ones
            try:  # old enough that no answer is still being written into it
                if old.is_dir() and now - old.stat().st_mtime > 60 and not any(old.iterdir()):
                    old.rmdir()
            except OSError:  # another request got there first
                continue
        folder = folder / uuid.uuid4().hex
        folder.mkdir()
        path = folder / name
    else:
        path = folder / f"brainmri-{uuid.uuid4().hex}{suffix}"
    staging = folder / f".{path.name}.part"
    write(staging)
    os.replace(staging, path)
    return str(path)


def cached_image(array, folder: Path) -> str:
    # compress level 1: a third of the default's encoding time (7 vs 21 ms for a 512-px overlay) for a 25 % larger file
    return cached_output(folder, ".png", lambda path: Image.fromarray(array).save(path, format="PNG", compress_level=1))


class Handlers:
    """The page's callbacks: thin wrappers over one shared, read-only Predictor."""

    def __init__(self, predictor: Predictor, facts: ModelFacts | None = None):
        self.predictor = predictor
        self.facts = facts or ModelFacts.from_release(predictor.config, None, None)
        # Gradio's cache as the page's components see it (they resolve GRADIO_TEMP_DIR when built, as here)
        self.output_dir = Path(get_upload_folder()) / "brainmri"

    def _explain(self, path, target=PREDICTED, method="gradcam", lang="en"):
        if not path:
            raise refusal(say(lang)["upload_first"], lang)
        try:
            return self.predictor.explain(path, target=None if target in (None, PREDICTED) else target, method=method)
        except ImageLoadError as err:
            raise refusal(text.fill(say(lang)["cannot_read"], lang, error=err.said_in(lang)), lang) from None

    def _overlay(self, e, opacity, outline) -> str:
        """The heatmap on the slice at its own resolution, as the page shows it."""
        return cached_image(e.draw(float(opacity), bool(outline)), self.output_dir)

    def _pair(self, e) -> tuple[str, str]:
        """The model's input beside its heatmap (the secondary view)."""
        return cached_image(e.image, self.output_dir), cached_image(e.overlay, self.output_dir)

    def classify(self, path, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """One image file in; out: the prediction (gr.Label, the API's English keys), the heatmap overlay on the
        slice itself, the note, the reset controls, the prediction in words. The model input ↔ heatmap pair, a
        secondary view, follows in a second step (:meth:`model_input`), so the answer does not wait for it."""
        lang = page_language(request)
        e = self._explain(path, lang=lang)
        return (
            _label_output(e),
            self._overlay(e, opacity, outline),
            _note(e, lang),
            gr.update(value=PREDICTED),
            gr.update(value="gradcam"),
            _label_output(e, lang),
        )

    def classify_new(self, path, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """:meth:`classify` for a new image in the upload box (an upload or an example); nothing for an emptied box."""
        if not path:
            return (gr.skip(),) * 6
        return self.classify(path, opacity, outline, request)

    def model_input(self, path, target=PREDICTED, method="gradcam", request: gr.Request = None):
        """What the model saw (its input) beside its heatmap, for the folded secondary view."""
        if not path:
            return gr.skip()
        return self._pair(self._explain(path, target, method, page_language(request)))

    def reexplain(self, path, target, method, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        if not path:
            return gr.skip(), gr.skip(), gr.skip()
        lang = page_language(request)
        e = self._explain(path, target, method, lang)
        return self._overlay(e, opacity, outline), self._pair(e), _note(e, lang)

    def all_classes(self, path, method="gradcam", request: gr.Request = None):
        """Heatmaps of every class from one forward pass, each under its probability (on the slice itself)."""
        lang = page_language(request)
        if not path:
            raise refusal(say(lang)["upload_first"], lang)
        try:
            every = self.predictor.explain_all(path, method=method)
        except ImageLoadError as err:
            raise refusal(text.fill(say(lang)["cannot_read"], lang, error=err.said_in(lang)), lang) from None
        if method in CLASSLESS:  # one map for every class: shown once, named for no class
            return [(cached_image(every[0].overlay_original, self.output_dir), METHOD_NAMES[method])]
        return [
            (
                cached_image(e.overlay_original, self.output_dir),
                f"{text.class_name(e.target, lang)}: {text.percent(e.probabilities[e.target], lang, digits=0)}",
            )
            for e in every
        ]

    def report(self, path, target=PREDICTED, method="gradcam", opacity=HEATMAP_OPACITY, request: gr.Request = None):
        """One image file in; out: a one-page PDF case report in the page's language, its heatmap the one on the page
        (the class, method and opacity chosen there)."""
        lang = page_language(request)
        e = self._explain(path, target, method, lang)
        name = f"brainmri-report-{datetime.now():%Y%m%d-%H%M%S}.pdf"
        return cached_output(
            self.output_dir, ".pdf", lambda out: write_case_report(out, e, self.facts, lang, opacity), name=name
        )

    def classify_batch(self, paths, request: gr.Request = None):
        """Several files in; out: a table in the page's language (percentages, as Classify shows them) and a CSV
        with the stable English keys and probabilities."""
        lang = page_language(request)
        if not paths:
            raise refusal(say(lang)["upload_many"], lang)
        labels = self.predictor.labels
        rows, shown = [], []
        for path, result in zip(paths, self.predictor.screen_batch(paths)):
            name = Path(path).name
            if isinstance(result, ImageLoadError):
                rows.append([name, "error", *[None] * len(labels), str(result)])
                shown.append([name, say(lang)["error"], *[None] * len(labels), result.said_in(lang)])
                continue
            probs, verdict = result
            label = max(probs, key=probs.get)
            cells = [round(probs[k], 4) for k in labels]
            shown_cells = [text.percent(probs[k], lang) for k in labels]  # as Classify shows them
            if verdict.status == "not_mri":
                rows.append([name, "not a brain MRI slice", *cells, f"{verdict.status}: {verdict.reason}"])
                shown.append(
                    [
                        name,
                        say(lang)["not_mri_label"],
                        *shown_cells,
                        verdict.said_in(lang),
                    ]
                )
                continue
            rows.append([name, label, *cells, verdict.status if verdict.ok else f"{verdict.status}: {verdict.reason}"])
            shown.append(
                [
                    name,
                    text.class_name(label, lang),
                    *shown_cells,
                    text.status_name(verdict.status, lang) if verdict.ok else verdict.said_in(lang),
                ]
            )
        table = report.batch_csv(rows, ["file", "class", *labels, "note"])
        csv_path = cached_output(self.output_dir, "-results.csv", lambda path: path.write_text(table))
        headers = (
            ["file", "class", *labels, "note"]
            if lang == "en"
            else [
                say(lang)["batch_headers"][0],
                say(lang)["batch_headers"][1],
                *[text.class_name(k, lang) for k in labels],
                say(lang)["batch_headers"][-1],
            ]
        )
        return pd.DataFrame(shown, columns=headers), gr.update(value=csv_path, visible=True)

    # -- whole scans
    def analyse_scan(self, paths, plane="axial", request: gr.Request = None):
        """A scan in (DICOM files, a zip of a series, a multi-frame DICOM or a NIfTI volume); out: the table of
        per-slice verdicts and probabilities (stable English keys), the summary, and the result for the page."""
        lang = page_language(request)
        if not paths:
            raise refusal(say(lang)["upload_scan"], lang)
        try:
            result = self.predictor.predict_volume(
                list(paths) if isinstance(paths, (list, tuple)) else paths, plane or "axial"
            )
        except ImageLoadError as err:
            raise refusal(text.fill(say(lang)["cannot_read"], lang, error=err.said_in(lang)), lang) from None
        labels = self.predictor.labels
        rows = [
            [
                s.index,
                s.verdict.status if s.verdict else f"skipped: {s.skipped}",
                *[None if s.probabilities is None else round(s.probabilities[k], 4) for k in labels],
            ]
            for s in result.slices
        ]
        return pd.DataFrame(rows, columns=["slice", "status", *labels]), result.summary(), result

    def scan_page(self, result, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """The page after an analysis: the summary in words, the slider on the most suspicious slice, the
        probability strip, the most suspicious slices, and that slice with its heatmap."""
        if result is None:
            return (gr.skip(),) * 7
        lang = page_language(request)
        words, summary = say(lang), result.summary()
        line = text.fill(
            words["scan"],
            lang,
            kind=summary["kind"],
            slices=summary["slices"],
            read=summary["read"],
            skipped=summary["skipped"],
            ok=summary["ok"],
            plane=words["planes"].get(summary["plane"], summary["plane"]),
            last=len(result.volume) - 1,
        )
        top = summary["most_suspicious"]
        if top:
            line += text.fill(
                words["scan_top"],
                lang,
                top="; ".join(
                    text.fill(
                        words["scan_top_item"],
                        lang,
                        slice=t["slice"],
                        label=text.class_name(t["label"], lang),
                        p=t["tumour_probability"],
                    )
                    for t in top[:3]
                ),
            )
        first = top[0]["slice"] if top else 0
        strip = [
            {"slice": s.index, "class": text.class_name(k, lang), "probability": s.probabilities[k]}
            for s in result.read()
            for k in self.predictor.labels
        ]
        suspicious = [
            [
                s.index,
                text.class_name(max(s.probabilities, key=s.probabilities.get), lang),
                text.percent(s.tumour_probability(), lang),
                text.status_name(s.verdict.status, lang),
            ]
            for s in result.most_suspicious(SUSPICIOUS_ROWS)
        ]
        image, note = self.scan_slice(result, first, opacity, outline, request)
        colours = {text.class_name(k, lang): CLASS_COLOURS.get(k, "#555555") for k in self.predictor.labels}
        key = " ".join(  # the strip's legend: Gradio 6.31's own shows the title alone
            f'<span style="color:{colour}">&#9473;&#9473;</span>&nbsp;{name}' for name, colour in colours.items()
        )
        return (
            line,
            gr.update(minimum=0, maximum=max(len(result.volume) - 1, 1), value=first, visible=True),
            gr.update(value=pd.DataFrame(strip, columns=["slice", "class", "probability"]), color_map=colours),
            pd.DataFrame(suspicious, columns=words["suspicious_headers"]),
            image,
            note,
            f"{words['strip_key']} {key}",
        )

    def scan_slice(self, result, index, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """One slice of the analysed scan at its own resolution, with the heatmap of its most likely class."""
        if result is None:
            return gr.skip(), gr.skip()
        lang = page_language(request)
        index = int(min(max(int(index or 0), 0), len(result.volume) - 1))
        found = next((s for s in result.slices if s.index == index), None)
        last = len(result.volume) - 1
        gray = result.volume.slices[index]
        if found is None or found.skipped:
            why = say(lang)["skipped"].get(found.skipped, found.skipped) if found else "—"
            return cached_image(gray, self.output_dir), text.fill(
                say(lang)["slice_skipped"], lang, index=index, last=last, why=why
            )
        e = self.predictor.explain(gray)
        label = max(found.probabilities, key=found.probabilities.get)
        verdict = found.verdict.reason_in(lang) if not found.verdict.ok else ""
        note = text.fill(
            say(lang)["slice_note"],
            lang,
            index=index,
            last=last,
            label=text.class_name(label, lang),
            p=found.probabilities[label],
            verdict=verdict,
        )
        return self._overlay(e, opacity, outline), note.strip()

    def jump_from_plot(self, result, opacity, outline, evt: gr.SelectData, request: gr.Request = None):
        """A range dragged across the probability strip: go to its middle slice."""
        low, high = evt.index if isinstance(evt.index, (list, tuple)) else (evt.index, evt.index)
        index = int(round((float(low) + float(high)) / 2))
        return (gr.update(value=index), *self.scan_slice(result, index, opacity, outline, request))

    def jump_from_table(self, result, opacity, outline, evt: gr.SelectData, request: gr.Request = None):
        """A row of the most suspicious slices: go to that slice."""
        index = int((evt.row_value or [0])[0])
        return (gr.update(value=index), *self.scan_slice(result, index, opacity, outline, request))
