"""What people read, in English and French, from one catalogue per language (``brainmri/locales/<lang>.toml``).

The API and every saved file keep stable English keys (class labels ``glioma``, ``meningioma``, ``notumor``,
``pituitary``; verdict codes); results carry those keys and their figures, and only what is shown to a person is
turned into words here. Adding a language is adding one TOML file with the same keys and placeholders (a test
checks it) and its code to :data:`LANGUAGES`. A leaf module: it imports nothing else of brainmri.
"""

from __future__ import annotations

import string
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "fr")
LOCALES = Path(__file__).resolve().parent / "locales"


@cache
def catalogue(lang: str = "en") -> dict[str, Any]:
    """The whole catalogue of ``lang`` (English for a language without one), as nested tables."""
    return tomllib.loads((LOCALES / f"{lang if lang in LANGUAGES else 'en'}.toml").read_text(encoding="utf-8"))


def t(key: str, lang: str = "en", **figures) -> Any:
    """The entry ``key`` ("table.name", e.g. ``"say.upload_first"``) in ``lang``, its ``{placeholders}`` filled
    from ``figures`` when any are given (:func:`fill`); a table or list is returned as it is."""
    entry: Any = catalogue(lang)
    for part in key.split("."):
        entry = entry[part]
    return fill(entry, lang, **figures) if figures and isinstance(entry, str) else entry


class _Number(float):
    """A figure that writes itself as ``lang`` does: ``{p:.0%}`` gives 97% in English and 97 % in French,
    ``{x:.1f}`` 2.5 and 2,5."""

    def __new__(cls, value: float, lang: str):
        number = super().__new__(cls, value)
        number.lang = lang
        return number

    def __format__(self, spec: str) -> str:
        if spec.endswith("%"):
            return percent(float(self), self.lang, int(spec[1:-1]) if spec.startswith(".") else 6)
        return number(float(self), self.lang, spec) if spec.endswith(("f", "g")) else format(float(self), spec)


def number(value: float, lang: str = "en", spec: str = "") -> str:
    """``value`` formatted with ``spec`` as ``lang`` writes it: in French a decimal comma and a narrow no-break space
    between thousands (``number(1311, "fr", ",")`` → 1 311, ``number(0.9984, "fr", ".4f")`` → 0,9984)."""
    written = format(value, spec)
    return written.replace(",", "\u202f").replace(".", ",") if lang == "fr" else written


def fill(entry: str, lang: str = "en", **figures) -> str:
    """``entry``'s ``{placeholders}`` from ``figures``, the numbers written as ``lang`` writes them."""
    return entry.format(**{k: _Number(v, lang) if isinstance(v, float) else v for k, v in figures.items()})


def language(accept_language: str | None) -> str:
    """The first of :data:`LANGUAGES` an ``Accept-Language`` header asks for (by weight), else English."""
    choices = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        choices.append((-weight, position, tag.strip().lower().split("-")[0]))
    for _, _, tag in sorted(choices):
        if tag in LANGUAGES:
            return tag
    return "en"


def class_name(label: str, lang: str = "en") -> str:
    """A class in words (``notumor`` → "No tumour" / "Pas de tumeur"); unknown labels as they are."""
    return catalogue(lang)["classes"].get(label, label)


def status_name(status: str, lang: str = "en") -> str:
    return catalogue(lang)["status"].get(status, status)


def reason(code: str, params: dict | None = None, lang: str = "en") -> str:
    """A verdict's reason in ``lang`` ("" for a verdict without one); ``*_class`` figures are class labels."""
    if not code:
        return ""
    values = {
        key: class_name(value, lang) if key.endswith("_class") else value for key, value in (params or {}).items()
    }
    return fill(catalogue(lang)["reasons"][code], lang, **values)


def percent(value: float | None, lang: str = "en", digits: int = 1) -> str:
    """A probability as people read it in ``lang``: ``97.3%`` in English, ``97,3 %`` in French ("" for none)."""
    if value is None:
        return ""
    number = f"{100 * value:.{digits}f}"
    return f"{number.replace('.', ',')}\u202f%" if lang == "fr" else f"{number}%"


def table_percent(value: float, lang: str = "en", digits: int = 2) -> str:
    """A percentage in a table or record: ``97.64 %`` in English, ``97,64 %`` in French (a narrow no-break space
    before the sign)."""
    return f"{100 * value:.{digits}f} %" if lang == "en" else percent(value, lang, digits)


def placeholders(lang: str) -> dict[str, set[str]]:
    """Every entry of ``lang``'s catalogue by dotted key, with the names of its ``{placeholders}``."""
    found: dict[str, set[str]] = {}

    def walk(prefix: str, entry: Any) -> None:
        if isinstance(entry, dict):
            for name, value in entry.items():
                walk(f"{prefix}.{name}" if prefix else name, value)
        elif isinstance(entry, list):
            for index, value in enumerate(entry):
                walk(f"{prefix}[{index}]", value)
        else:
            found[prefix] = {field for _, field, _, _ in string.Formatter().parse(entry) if field}

    walk("", catalogue(lang))
    return found
