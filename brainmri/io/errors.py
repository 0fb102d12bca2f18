"""The one error every reader raises for an input it cannot read; its message says why, in words for people."""


class ImageLoadError(ValueError):
    """The input is not an image this project can read; the message says why."""
