"""The Teach tab: a fixed sequence of cases shown one at a time, for a lecture or a student alone.

The learner picks a class, then the page reveals the truth, the model's answer and its verdict, where the model looked
(Grad-CAM of its answer) beside the reader's outline of the tumour, and a one-line teaching point; a score follows the
revealed cases. The cases (``assets/teach/cases.json``: image, reader's mask, true class, sequence, plane, source) are
slices of the Kaggle Testing split and of one TCGA-LGG patient; their words live in the locales (``[teach]``). What a
page view has answered lives in its own state (:class:`Progress`), never on the server.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from brainmri import Predictor, text
from brainmri.evaluation.metrics import outline
from brainmri.io.images import load_grayscale
from brainmri.ui.handlers import cached_image, page_language, refusal

TEACH_DIR = Path(__file__).resolve().parents[2] / "assets" / "teach"
SHOWN_SIDE = 720  # px: every picture of a case drawn this large (a 256-px slice fills a projector's half, not a corner)

# ← and → move between cases while the Teach tab is shown, except in a text box (where they move the cursor)
KEYS_JS = """
() => {
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (field && (field.tagName === "TEXTAREA" || field.isContentEditable ||
        (field.tagName === "INPUT" && !["radio", "checkbox", "button"].includes(field.type)))) return;
    const id = {ArrowRight: "teach-next", ArrowLeft: "teach-prev"}[event.key];
    const button = id && document.getElementById(id);
    if (button && button.offsetParent !== null) { event.preventDefault(); button.click(); }
  });
}
"""


@dataclass(frozen=True)
class Case:
    id: str
    image: Path
    truth: str  # a class label
    sequence: str  # t1, t1c, t2, flair
    plane: str
    source: str  # kaggle, tcga-lgg
    mask: Path | None = None  # the reader's outline, where the slice shows a tumour


def large(image: np.ndarray | Image.Image, side: int = SHOWN_SIDE) -> np.ndarray:
    """``image`` resized (Lanczos) so that its long side is ``side`` pixels."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    scale = side / max(image.size)
    return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS))


def load_cases(folder: str | Path = TEACH_DIR) -> list[Case]:
    """The cases of ``folder``'s cases.json, in their order."""
    folder = Path(folder)
    cases = json.loads((folder / "cases.json").read_text(encoding="utf-8"))["cases"]
    return [
        Case(**{**c, "image": folder / c["image"], "mask": folder / c["mask"] if c.get("mask") else None})
        for c in cases
    ]


@dataclass
class Progress:
    """One page view's walk through the cases: where it is and what it answered (a case id → the class picked)."""

    index: int = 0
    picks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Answer:
    label: str
    probability: float
    verdict: object
    heatmap: np.ndarray  # RGB, as shown: Grad-CAM of the model's answer on the slice
    outline: np.ndarray  # RGB, as shown: the reader's outline on the slice (the slice alone without one)


class Teacher:
    """The Teach tab's callbacks over one shared, read-only Predictor; each case's answer is worked out once."""

    def __init__(self, predictor: Predictor, cases: list[Case], output_dir: Path):
        unknown = {c.truth for c in cases} - set(predictor.labels)
        if unknown:
            raise ValueError(f"teaching cases with classes the model does not know: {sorted(unknown)}")
        self.predictor, self.cases, self.output_dir = predictor, cases, output_dir
        from brainmri.data.lgg import COLLECTION, LICENCE
        from brainmri.evaluation.modelcard import training_licence

        # sources whose scans the served model trained on: its answer on their cases is no test of a new scan
        self.trained_on = {COLLECTION} if training_licence(predictor.release.folder) == LICENCE else set()
        self._answers: dict[str, _Answer] = {}
        self._slices: dict[str, np.ndarray] = {}  # each case's slice as shown
        self._lock = threading.Lock()

    def answer(self, case: Case) -> _Answer:
        with self._lock:
            if case.id not in self._answers:
                e = self.predictor.explain(case.image)
                traced = np.zeros(e.original.shape, np.uint8)
                if case.mask is not None:
                    mask = Image.open(case.mask).convert("L").resize(e.original.shape[::-1], Image.NEAREST)
                    traced = np.asarray(mask)
                self._answers[case.id] = _Answer(
                    e.label,
                    e.probabilities[e.label],
                    e.verdict,
                    large(e.overlay_original),
                    large(outline(e.original, traced, width=2)),
                )
            return self._answers[case.id]

    def _slice(self, case: Case) -> np.ndarray:
        with self._lock:
            if case.id not in self._slices:
                self._slices[case.id] = large(load_grayscale(case.image))  # the project's one reader
            return self._slices[case.id]

    def model_right(self, case: Case) -> bool:
        answer = self.answer(case)
        read = answer.verdict is None or answer.verdict.status != "not_mri"
        return read and answer.label == case.truth

    def move(self, progress: Progress | None, step: int, request: gr.Request = None):
        """Go ``step`` cases on (-1, 0 to show the current one, +1), staying within the sequence."""
        progress = progress or Progress()
        progress.index = min(max(progress.index + step, 0), len(self.cases) - 1)
        return self._view(progress, page_language(request))

    def previous(self, progress: Progress | None, request: gr.Request = None):
        return self.move(progress, -1, request)

    def next(self, progress: Progress | None, request: gr.Request = None):
        return self.move(progress, +1, request)

    def current(self, progress: Progress | None, request: gr.Request = None):
        return self.move(progress, 0, request)

    def reveal(self, progress: Progress | None, pick: str | None, request: gr.Request = None):
        """The learner's ``pick`` for the current case in; the truth, the model's answer, the pictures and the teaching
        point out. A case already revealed keeps its first answer."""
        lang = page_language(request)
        progress = progress or Progress()
        if not pick:
            raise refusal(text.t("teach.pick_first", lang), lang)
        progress.picks.setdefault(self.cases[progress.index].id, pick)
        return self._view(progress, lang)

    def _view(self, progress: Progress, lang: str):
        """[state, header, slice, pick, result, heatmap, outline, teaching point, score] for the current case."""
        case = self.cases[progress.index]
        header = text.t(
            "teach.header",
            lang,
            n=progress.index + 1,
            total=len(self.cases),
            sequence=text.t(f"teach.sequences.{case.sequence}", lang),
            plane=text.t(f"teach.planes.{case.plane}", lang),
            source=text.t(f"teach.sources.{case.source}", lang),
        )
        pick = progress.picks.get(case.id)
        if pick is None:  # not answered yet: the slice alone, nothing given away
            hidden = gr.update(value=None, visible=False)
            return (
                progress,
                header,
                cached_image(self._slice(case), self.output_dir),
                gr.update(value=None, interactive=True),
                "",
                hidden,
                hidden,
                "",
                "",
            )
        answer = self.answer(case)
        if answer.verdict is None or answer.verdict.ok:
            verdict = text.t("teach.model_ok", lang)
        else:
            verdict = answer.verdict.said_in(lang)
        mark = text.t("teach.right" if pick == case.truth else "teach.wrong", lang)
        truth, said = text.class_name(case.truth, lang), text.class_name(pick, lang)
        result = "\n\n".join(
            [
                text.t("teach.truth", lang, truth=truth, pick=said, mark=mark),
                text.t(
                    "teach.model",
                    lang,
                    label=text.class_name(answer.label, lang),
                    p=answer.probability,
                    verdict=verdict,
                ),
                *([] if case.mask is not None else [text.t("teach.no_outline", lang)]),
                *([text.t("teach.seen_source", lang)] if case.source in self.trained_on else []),
            ]
        )
        return (
            progress,
            header,
            cached_image(self._slice(case), self.output_dir),
            gr.update(value=pick, interactive=False),
            result,
            gr.update(value=cached_image(answer.heatmap, self.output_dir), visible=True),
            gr.update(value=cached_image(answer.outline, self.output_dir), visible=True),
            text.t("teach.point", lang, point=text.t(f"teach.points.{case.id}", lang)),
            self.score(progress, lang),
        )

    def score(self, progress: Progress, lang: str = "en") -> str:
        revealed = [c for c in self.cases if c.id in progress.picks]
        you = sum(progress.picks[c.id] == c.truth for c in revealed)
        model = sum(self.model_right(c) for c in revealed)
        if len(revealed) == len(self.cases):
            return text.t("teach.done", lang, you=you, model=model, total=len(self.cases))
        return text.t("teach.score", lang, you=you, model=model, revealed=len(revealed))
