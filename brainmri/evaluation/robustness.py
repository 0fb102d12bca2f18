"""Accuracy under acquisition shifts: what scans from another scanner or site may look like.

Each shift is applied to the decoded grayscale slice at its original resolution,
before the one preprocessing path, so the model sees what it would see if the
file itself had looked like that.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from brainmri import text
from brainmri.data.folders import list_classes, list_files, read_split, split_roots
from brainmri.inference.predictor import Predictor
from brainmri.inference.preprocess import gamma_shift
from brainmri.inference.sequence_check import INVERSION, invert_inside_head
from brainmri.io.images import load_grayscale


def _gamma(value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda g: gamma_shift(g, value)


def _blur(g: np.ndarray) -> np.ndarray:
    radius = max(1.0, g.shape[0] / 256)  # about 1 px at the model's 224 px scale for a 256-px slice
    return np.asarray(Image.fromarray(g).filter(ImageFilter.GaussianBlur(radius * 1.5)))


def _downscale(g: np.ndarray, side: int = 96) -> np.ndarray:
    image = Image.fromarray(g)
    scale = side / max(image.size)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    return np.asarray(small.resize(image.size, Image.BILINEAR))


def _jpeg(g: np.ndarray, quality: int = 20) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(g).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda g: g,
    "gamma 0.6": _gamma(0.6),
    "gamma 1.6": _gamma(1.6),
    "gaussian blur": _blur,
    "downscale to 96 px and back": _downscale,
    "JPEG quality 20": _jpeg,
    INVERSION: invert_inside_head,
}


def robustness_files(
    data: str | os.PathLike,
    *,
    validation_of: str | os.PathLike | None = None,
    origins: str | os.PathLike | None = None,
    collection: str | None = None,
) -> tuple[str, list[tuple[Path, str]]]:
    """Which images to shift: ``(name, [(file, class name), ...])``.

    Testing by default; ``validation_of=RUN``: that run's validation split (Training images it never trained
    on, from ``RUN/split.csv``); ``collection`` (with ``origins``): every image of one collection, Training and
    Testing folders (a leave-one-collection-out run's held-out set). Model work is judged on the last two,
    never on Testing.
    """
    train_root, test_root = split_roots(data)
    if validation_of is not None and collection is not None:
        raise ValueError("choose --validation-of or --collection, not both")
    if validation_of is not None:
        if train_root is None:
            raise ValueError(f"{data} has no Training folder to take a validation split from")
        chosen = [
            (train_root / path, label) for path, (label, split) in read_split(validation_of).items() if split == "val"
        ]
        return f"validation of {Path(validation_of).name}", chosen
    if collection is not None:
        from brainmri.data.collections import read_origins

        if origins is None:
            raise ValueError("--collection needs --origins CSV")
        table = read_origins(origins)
        roots = [r for r in (train_root, test_root) if r is not None]
        chosen = [
            (root / rel, classes[label])
            for root in roots
            for classes in [list_classes(root)]
            for rel, label in list_files(root, classes)
            if table.get(f"{root.name}/{rel}") == collection
        ]
        if not chosen:
            raise ValueError(f"no image of {data} comes from {collection!r} according to {origins}")
        return f"all {collection} images", chosen
    classes = list_classes(test_root)
    return "Testing", [(test_root / rel, classes[label]) for rel, label in list_files(test_root, classes)]


def robustness(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    shifts: dict[str, Callable] | None = None,
    limit: int | None = None,
    *,
    validation_of: str | os.PathLike | None = None,
    origins: str | os.PathLike | None = None,
    collection: str | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracy of a release under each shift on Testing (or the images :func:`robustness_files` picks)."""
    predictor = Predictor.from_pretrained(checkpoint, backend="torch")
    name, files = robustness_files(data, validation_of=validation_of, origins=origins, collection=collection)
    grays, labels = [], []
    for path, label in files[:limit]:
        try:
            grays.append(load_grayscale(path))
            labels.append(predictor.labels.index(label))
        except (ValueError, OSError):
            continue
    labels = np.array(labels)
    results: dict[str, dict[str, float]] = {}
    for shift_name, shift in (shifts or SHIFTS).items():
        fitted = [predictor.preprocess.fit(shift(g)) for g in grays]
        probs = predictor.probabilities(predictor.logits(fitted))
        accuracy = float((probs.argmax(1) == labels).mean())
        results[shift_name] = {"accuracy": accuracy, "n": int(len(labels)), "set": name}
    base = results.get("none", {}).get("accuracy")
    if base is not None:
        for row in results.values():
            row["change"] = row["accuracy"] - base
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "robustness.json").write_text(json.dumps(results, indent=2))
        (out / "robustness.md").write_text(robustness_markdown(results))
    return results


def shift_name(name: str, lang: str = "en") -> str:
    """A recorded shift's name (``gamma 0.6``) in ``lang`` (catalogue ``[shifts]``: ``gamma_0_6``); unknown ones as
    recorded."""
    return text.t("shifts", lang).get(re.sub(r"\W+", "_", name).strip("_").lower(), name)


def robustness_markdown(results: dict[str, dict[str, float]], lang: str = "en") -> str:
    name = next(iter(results.values()), {}).get("set", "Testing")
    head = list(text.t("card.robustness_head", lang))
    if name != "Testing":
        head[0] = head[0].split("(")[0] + f"({name})"
    rows = ["| " + " | ".join(head) + " |", "|---|---|---|"]
    for name, row in results.items():
        accuracy = text.table_percent(row["accuracy"], lang)
        change = text.number(100 * row.get("change", 0), lang, "+.2f")
        rows.append(f"| {shift_name(name, lang)} | {accuracy} | {change} |")
    return "\n".join(rows) + "\n"
