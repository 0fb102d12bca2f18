"""brainmri.text: one catalogue per language, the same keys and placeholders in each, every entry fillable."""

import re

import pytest

from brainmri import text


def test_every_language_has_the_keys_and_placeholders_of_english():
    english = text.placeholders("en")
    for lang in text.LANGUAGES:
        other = text.placeholders(lang)
        assert set(other) == set(english), (lang, set(other) ^ set(english))
        for key, names in english.items():
            assert other[key] == names, (lang, key, other[key], names)


class Figures(dict):
    """Any figure a template asks for: a number that formats as a float, an int or a percentage."""

    def __missing__(self, key):
        return 0.5


@pytest.mark.parametrize("lang", text.LANGUAGES)
def test_every_entry_fills(lang):
    for key, names in text.placeholders(lang).items():
        entry = text.catalogue(lang)
        for part in re.split(r"\.|\[(\d+)\]", key):
            if part:
                entry = entry[int(part)] if part.isdigit() else entry[part]
        entry.format_map(Figures())  # no stray brace, no format a number cannot take


def test_words_for_people_and_stable_keys():
    assert text.class_name("notumor", "fr") == "Pas de tumeur" and text.class_name("unknown", "fr") == "unknown"
    assert text.language("de-DE,fr;q=0.8,en;q=0.5") == "fr" and text.language(None) == "en"
    assert text.t("say.upload_first", "fr") == "Déposez d'abord une image."
    assert "0.97" in text.reason("unsure", {"top": 0.5, "threshold": 0.97}, "en") or "97%" in text.reason(
        "unsure", {"top": 0.5, "threshold": 0.97}, "en"
    )
    assert text.catalogue("xx") == text.catalogue("en")  # a language without a catalogue reads English


def test_percentages_in_each_language():
    assert text.percent(0.9734, "en") == "97.3%" and text.percent(0.9734, "fr") == "97,3\u202f%"
    assert text.percent(None) == "" and text.percent(1.0, "en", digits=0) == "100%"


def test_numbers_in_each_language():
    assert text.number(1311, "en", ",") == "1,311" and text.number(1311, "fr", ",") == "1\u202f311"
    assert text.number(0.99842, "en", ".4f") == "0.9984" and text.number(0.99842, "fr", ".4f") == "0,9984"
    assert text.number(-1.45, "fr", "+.2f") == "-1,45" and text.fill("{x:.1f}", "fr", x=2.5) == "2,5"
