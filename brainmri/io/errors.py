"""The one error every reader raises for an input it cannot read; its message says why, in words for people.

A reader raises it with a reason, a key of the catalogue's ``[unreadable]`` table (``brainmri/locales``), and the
figures that reason names; ``str(err)`` is the English sentence (logs, the API, the command line) and
:meth:`ImageLoadError.said_in` the sentence in the page's language.
"""

from __future__ import annotations

from brainmri import text


class ImageLoadError(ValueError):
    """The input is not an image this project can read; the message says why."""

    def __init__(self, reason: str, **figures):
        self.reason, self.figures = reason, figures
        super().__init__(self.said_in("en"))

    def said_in(self, lang: str = "en") -> str:
        """Why, in ``lang``; a reason that is not a catalogue key is a sentence of its own, the same in every
        language (an error raised again from its English message, as pickling does)."""
        entry = text.catalogue(lang)["unreadable"].get(self.reason)
        return self.reason if entry is None else text.fill(entry, lang, **self.figures)

    def __reduce__(self):  # through processes: the reason and its figures, so the other side can translate it
        return _rebuild, (self.reason, self.figures)


def _rebuild(reason: str, figures: dict) -> ImageLoadError:
    return ImageLoadError(reason, **figures)
