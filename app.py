"""brainmri web app: classify a brain MRI slice, show where the model looked, show its record.

    python app.py [--model assets/model] [--backend auto|onnx|torch] [--host 127.0.0.1] [--port 7860] [--share]

Every option has an environment variable (BRAINMRI_MODEL, BRAINMRI_PORT, ...); the model is a release folder or a
Hub id (``hf-hub:user/repo``). The page itself is brainmri.ui.page: this file reads the options and serves it.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from brainmri import Predictor  # noqa: E402
from brainmri.inference.backends import BACKENDS  # noqa: E402
from brainmri.ui import page  # noqa: E402

OPTIONS = [  # flag, environment variable (else Gradio's own), default, type, help
    ("--model", "BRAINMRI_MODEL", None, page.DEFAULT_MODEL, str, "release folder or hf-hub:user/repo"),
    ("--host", "BRAINMRI_HOST", "GRADIO_SERVER_NAME", "127.0.0.1", str, "address to serve on"),
    ("--port", "BRAINMRI_PORT", "GRADIO_SERVER_PORT", "7860", int, "port to serve on"),
    ("--concurrency", "BRAINMRI_CONCURRENCY", None, "2", int, "requests worked on at once (one per core)"),
    ("--queue-size", "BRAINMRI_QUEUE_SIZE", None, "64", int, "requests waiting before new ones are refused"),
    ("--sessions", "BRAINMRI_SESSIONS", None, "64", int, "page views whose state is kept in memory"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, name, gradio_name, default, kind, help in OPTIONS:
        parser.add_argument(flag, type=kind, default=kind(env(name, env(gradio_name or "", default))), help=help)
    shared = env("BRAINMRI_SHARE", "").lower() in ("1", "true", "yes")
    parser.add_argument("--share", action="store_true", default=shared, help="a temporary public link (Gradio's)")
    parser.add_argument("--backend", choices=BACKENDS, default=env("BRAINMRI_BACKEND", "auto"),
                        help="network runtime: auto (ONNX Runtime when the release has a checked export, else torch), "
                        "onnx, or torch (the fp32 reference the saved metrics were measured with)")  # fmt: skip
    return parser.parse_args(argv)


def launch(demo, args: argparse.Namespace, **kwargs):
    options = (args.host, args.port, args.share, args.concurrency, args.queue_size, args.sessions)
    return page.launch(demo, *options, **kwargs)


def load(model: str | None = None, backend: str | None = None):
    """The page for ``model`` on ``backend`` (default: the options' defaults, else the bundled model)."""
    defaults = parse_args([])
    return page.build_demo(Predictor.from_pretrained(model or defaults.model, backend=backend or defaults.backend))


# importable without launching: Spaces and tests look for `demo`
demo = load()

if __name__ == "__main__":
    arguments, defaults = parse_args(), parse_args([])
    if (arguments.model, arguments.backend) != (defaults.model, defaults.backend):  # not what `demo` was built with
        demo = load(arguments.model, arguments.backend)
    launch(demo, arguments)
