"""brainmri: brain-tumour MRI slice classification with calibrated probabilities and Grad-CAM."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Predictor", "ImageLoadError", "__version__"]


def __getattr__(name: str):
    # Lazy: `import brainmri` stays cheap (no torch/timm import) for tools that need only the loader.
    if name == "Predictor":
        from brainmri.inference.predictor import Predictor

        return Predictor
    if name == "ImageLoadError":
        from brainmri.io.images import ImageLoadError

        return ImageLoadError
    raise AttributeError(name)
