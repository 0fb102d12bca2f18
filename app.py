"""brainmri web app: classify a brain MRI slice, show where the model looked, show its record.

    python app.py [--model assets/model] [--backend auto|onnx|torch] [--host 127.0.0.1] [--port 7860] [--share]

Every option has an environment variable (BRAINMRI_MODEL, BRAINMRI_BACKEND, BRAINMRI_HOST, BRAINMRI_PORT,
BRAINMRI_SHARE, ...). The model is a local release folder or a Hugging Face Hub id (``hf-hub:user/repo``).
The page itself is brainmri.ui.page; this file only reads the options and serves it.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from brainmri import Predictor  # noqa: E402
from brainmri.inference.backends import BACKENDS  # noqa: E402
from brainmri.ui import page  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=env("BRAINMRI_MODEL", page.DEFAULT_MODEL), help="release folder or hf-hub:user/repo"
    )
    parser.add_argument("--host", default=env("BRAINMRI_HOST", env("GRADIO_SERVER_NAME", "127.0.0.1")))
    parser.add_argument("--port", type=int, default=int(env("BRAINMRI_PORT", env("GRADIO_SERVER_PORT", "7860"))))
    parser.add_argument(
        "--share", action="store_true", default=env("BRAINMRI_SHARE", "").lower() in ("1", "true", "yes")
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=env("BRAINMRI_BACKEND", "auto"),
        help="network runtime: auto (ONNX Runtime when the release has a checked export, else torch), "
        "onnx, or torch (the fp32 reference the saved metrics were measured with)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(env("BRAINMRI_CONCURRENCY", "2")),
        help="requests worked on at once (default 2, one per core)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=int(env("BRAINMRI_QUEUE_SIZE", "64")),
        help="requests waiting before new ones are refused",
    )
    return parser.parse_args(argv)


def launch(demo, args: argparse.Namespace, **kwargs):
    return page.launch(demo, args.host, args.port, args.share, args.concurrency, args.queue_size, **kwargs)


def load(model: str | None = None, backend: str | None = None):
    """The page for ``model`` on ``backend``; by default the options' defaults (environment, else the bundled model)."""
    defaults = parse_args([])
    return page.build_demo(Predictor.from_pretrained(model or defaults.model, backend=backend or defaults.backend))


# Importable without launching (Hugging Face Spaces and tests look for `demo`); the model loads once.
demo = load()

if __name__ == "__main__":
    arguments, defaults = parse_args(), parse_args([])
    if (arguments.model, arguments.backend) != (defaults.model, defaults.backend):  # not what `demo` was built with
        demo = load(arguments.model, arguments.backend)
    launch(demo, arguments)
