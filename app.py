"""brainmri web app: classify a brain MRI slice, show where the model looked, show its record.

    python app.py [--model assets/model] [--backend auto|onnx|torch] [--host 127.0.0.1] [--port 7860] [--share]

Every option has an environment variable (BRAINMRI_MODEL, BRAINMRI_BACKEND,
BRAINMRI_HOST, BRAINMRI_PORT, BRAINMRI_SHARE, ...). The model is a local release folder or a
Hugging Face Hub id (``hf-hub:user/repo``). UI only: model code lives in brainmri.
"""
from __future__ import annotations

import argparse
import os
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr  # noqa: E402
from gradio.utils import NamedString, get_upload_folder  # noqa: E402
from gradio_client import utils as client_utils  # noqa: E402
from PIL import Image  # noqa: E402

from brainmri import ImageLoadError, Predictor, report  # noqa: E402
from brainmri.backends import BACKENDS  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = str(HERE / "assets" / "model")
METRICS_DIR = HERE / "assets" / "metrics"
EXAMPLES_DIR = HERE / "assets" / "examples"
MAX_FILE_SIZE = "25mb"
FILE_TYPES = [".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm"]
# every 5 min, delete uploads and outputs older than 10 min (BRAINMRI_CACHE_CLEANUP="every,age" in seconds)
CACHE_CLEANUP = tuple(int(x) for x in os.environ.get("BRAINMRI_CACHE_CLEANUP", "300,600").split(","))
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "eigencam": "EigenCAM",
                "hirescam": "HiResCAM", "layercam": "LayerCAM", "xgradcam": "XGrad-CAM"}
PREDICTED = "predicted"

i18n = gr.I18n(
    en={
        "title": "# Brain tumour MRI classifier",
        "notice": "**Research and teaching demo — not a medical device.** Do not use it to diagnose or treat anyone.",
        "tab_classify": "Classify", "tab_batch": "Batch", "tab_model": "Model", "tab_about": "About",
        "upload": "MRI slice (JPEG, PNG, BMP, TIFF, WebP or DICOM)",
        "classify": "Classify", "prediction": "Prediction", "heatmap": "Model input ↔ heatmap",
        "overlay": "Heatmap on the slice (its own resolution)",
        "all_classes": "All four classes side by side", "explain_class": "Class to explain", "method": "Heatmap method",
        "examples": "Examples (one per class, from the dataset's Testing split)",
        "batch_files": "Several slices", "batch_run": "Classify all", "batch_table": "Results",
        "batch_csv": "Download CSV", "headline": "### Headline metrics", "per_class": "Per class (full Testing set)",
        "per_class_dedup": "Per class (de-duplicated Testing subset)", "figures": "### Figures",
        "trust": "### How far to trust it: Testing beside collections the model never saw",
        "trust_note": "*Held-out* columns: a model of the same recipe trained **without** that collection, judged on "
                      "all of its images — the closest stand-in here for scans from another hospital. Expect the "
                      "page to be right about as often on your scans as in those columns, not as on Testing, "
                      "and less often on sequences it barely saw (T2, FLAIR). The 90 % confidence threshold "
                      "was chosen on the held-out SARTAJ run, so its \"answered ok\" row there is not a blind estimate.",
        "risk_coverage": "Accuracy when the page answers only its most confident share (held-out collection)",
    },
    fr={
        "title": "# Classification des tumeurs cérébrales en IRM",
        "notice": "**Démonstration de recherche et d'enseignement — pas un dispositif médical.** "
                  "Ne l'utilisez pour diagnostiquer ou traiter personne.",
        "tab_classify": "Classer", "tab_batch": "Lot", "tab_model": "Modèle", "tab_about": "À propos",
        "upload": "Coupe IRM (JPEG, PNG, BMP, TIFF, WebP ou DICOM)",
        "classify": "Classer", "prediction": "Prédiction", "heatmap": "Entrée du modèle ↔ carte de chaleur",
        "overlay": "Carte de chaleur sur la coupe (à sa propre résolution)",
        "all_classes": "Les quatre classes côte à côte", "explain_class": "Classe à expliquer", "method": "Méthode",
        "examples": "Exemples (un par classe, issus du jeu de test)",
        "batch_files": "Plusieurs coupes", "batch_run": "Tout classer", "batch_table": "Résultats",
        "batch_csv": "Télécharger le CSV", "headline": "### Indicateurs principaux", "per_class": "Par classe (test complet)",
        "per_class_dedup": "Par classe (sous-ensemble de test dédupliqué)", "figures": "### Figures",
        "trust": "### Quelle confiance lui accorder : le test à côté de collections jamais vues",
        "trust_note": "Colonnes *tenue à l'écart* : un modèle de la même recette entraîné **sans** cette collection, "
                      "jugé sur toutes ses images — ce qui s'approche le plus ici d'examens d'un autre hôpital. "
                      "Attendez-vous à ce que la page ait raison sur vos images à peu près aussi souvent que dans "
                      "ces colonnes, pas comme sur le test, et moins souvent sur des séquences qu'il a peu vues "
                      "(T2, FLAIR). Le seuil de confiance de 90 % a été choisi sur la collection SARTAJ tenue à "
                      "l'écart : sa ligne « répondu ok » n'y est donc pas une estimation à l'aveugle.",
        "risk_coverage": "Exactitude quand la page ne répond qu'à sa part la plus sûre (collection tenue à l'écart)",
    },
)

ABOUT = """
### The four classes
- **Glioma** — tumours of the brain's glial (supporting) cells, often inside the brain tissue, irregular borders.
- **Meningioma** — tumours of the meninges, the membranes around the brain; usually at the brain's surface.
- **Pituitary tumour** — growths of the pituitary gland, at the skull base behind the nose.
- **No tumour** — slices without a visible tumour.

### How it works
The slice is read (DICOM windows and rescaling applied), turned to one gray channel, padded to a square
on black and resized to the model's input: that removes the file's size, shape and colour mode, which in
this dataset differ between classes and would otherwise be a shortcut. A ConvNeXt network gives four
scores; a temperature fitted on held-out training images turns them into calibrated probabilities.
Before showing a tumour label, the app checks that the image looks like the slices the model learned from
(gray, not blank, features close to the training data) and that the model is confident enough.

### Reading a heatmap
Grad-CAM colours the regions whose features pushed the chosen class's score up (red: most). It is coarse
(the network's last feature map is 7×7 cells), shows *correlation, not cause*, and can look convincing
when the prediction is wrong. Measured against radiologists' tumour outlines, the bundled model's
Grad-CAM peak almost never falls on the tumour (Model tab): the model is right for other reasons than
where the tumour is. Compare classes ("All four classes side by side") and methods; never read it as a
tumour outline.

### Scans from elsewhere
A model of this recipe trained without one of the dataset's collections is right on about four in five
of that collection's slices (Testing: 98 in 100). The page therefore answers "uncertain" below 90 %
confidence, and for DICOM series whose header names T2, FLAIR or diffusion.

### Known issues of the dataset
The Kaggle "Brain Tumor MRI Dataset" (Msoud Nickparvar, 7,023 images, merged from figshare, SARTAJ and
Br35H) holds many exact and near duplicates, also between its Training and Testing folders: test scores
on the full Testing folder are optimistic. The Model tab shows both the full and the de-duplicated
results. Image sizes and colour modes also differ by class (see the audit figures in the README).

### Credits
Dataset: M. Nickparvar, *Brain Tumor MRI Dataset*, Kaggle (CC0); example slices are from its Testing split.
Method after the ConvNeXt + Grad-CAM study this project re-implements; software: PyTorch, timm,
pytorch-grad-cam, Gradio, scikit-learn.
"""


def _label_output(explanation):
    verdict = explanation.verdict
    if verdict is not None and verdict.status == "not_mri":
        return "Not a brain MRI slice"
    return explanation.probabilities


def _note(explanation) -> str:
    verdict = explanation.verdict
    top = explanation.label
    p = explanation.probabilities[top]
    heatmap = f"Heatmap: {METHOD_NAMES[explanation.method]} for *{explanation.target}*."
    if verdict is None or verdict.ok:
        return f"**{top}** — probability {p:.0%}. {heatmap}"
    if verdict.status == "uncertain":
        return f"⚠️ **Uncertain.** {verdict.reason} Most likely *{top}* ({p:.0%}); read it with care. {heatmap}"
    return f"⛔ **No tumour label shown.** {verdict.reason}"


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


def cached_output(folder: Path, suffix: str, write) -> str:
    """A file the page sends back (model input, heatmap, batch CSV), written by ``write(path)`` under a
    new name inside Gradio's cache folder, then renamed into place.

    Gradio's own numpy → file step names files by their content and rewrites an existing one in
    place, so two concurrent identical answers could serve a half-written file (the load test saw
    "Content-Length" errors). A unique name per answer never collides; being inside the cache, the
    file is served as is and deleted with the rest of the cache (``delete_cache``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"brainmri-{uuid.uuid4().hex}{suffix}"
    staging = folder / f".{path.name}.part"
    write(staging)
    os.replace(staging, path)
    return str(path)


def cached_image(array, folder: Path) -> str:
    return cached_output(folder, ".png", lambda path: Image.fromarray(array).save(path, format="PNG"))


class Handlers:
    """The page's callbacks: thin wrappers over one shared, read-only Predictor."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        # Gradio's cache as the page's components see it (they resolve GRADIO_TEMP_DIR when built, as here)
        self.output_dir = Path(get_upload_folder()) / "brainmri"

    def _explain(self, path, target=PREDICTED, method="gradcam"):
        if not path:
            raise gr.Error("Upload an image first.", print_exception=False)
        try:
            return self.predictor.explain(path, target=None if target in (None, PREDICTED) else target, method=method)
        except ImageLoadError as err:
            raise gr.Error(f"Cannot read this file: {err}", print_exception=False) from None

    def _images(self, e):
        """The heatmap on the slice at its own resolution, and the model's input beside its heatmap."""
        small = cached_image(e.overlay, self.output_dir)
        return cached_image(e.overlay_original, self.output_dir), (cached_image(e.image, self.output_dir), small)

    def classify(self, path):
        """One image file in; out: the prediction (gr.Label) and the heatmap overlay on the slice itself."""
        e = self._explain(path)
        overlay, pair = self._images(e)
        return _label_output(e), overlay, pair, _note(e), gr.update(value=PREDICTED), gr.update(value="gradcam")

    def reexplain(self, path, target, method):
        if not path:
            return gr.skip(), gr.skip(), gr.skip()
        e = self._explain(path, target, method)
        overlay, pair = self._images(e)
        return overlay, pair, _note(e)

    def all_classes(self, path, method="gradcam"):
        """Heatmaps of every class from one forward pass, each under its probability (on the slice itself)."""
        if not path:
            raise gr.Error("Upload an image first.", print_exception=False)
        try:
            every = self.predictor.explain_all(path, method=method)
        except ImageLoadError as err:
            raise gr.Error(f"Cannot read this file: {err}", print_exception=False) from None
        return [(cached_image(e.overlay_original, self.output_dir), f"{e.target}: {e.probabilities[e.target]:.0%}")
                for e in every]

    def classify_batch(self, paths):
        if not paths:
            raise gr.Error("Upload one or more images first.", print_exception=False)
        labels = self.predictor.labels
        rows = []
        for path, result in zip(paths, self.predictor.screen_batch(paths)):
            name = Path(path).name
            if isinstance(result, ImageLoadError):
                rows.append([name, "error", *[None] * len(labels), str(result)])
                continue
            probs, verdict = result
            label = max(probs, key=probs.get) if verdict.status != "not_mri" else "not a brain MRI slice"
            status = verdict.status if verdict.ok else f"{verdict.status}: {verdict.reason}"
            rows.append([name, label, *[round(probs[k], 4) for k in labels], status])
        headers = ["file", "class", *labels, "note"]
        table = report.batch_csv(rows, headers)
        csv_path = cached_output(self.output_dir, "-results.csv", lambda path: path.write_text(table))
        return gr.update(value=rows, headers=headers), gr.update(value=csv_path, visible=True)


def build_demo(predictor: Predictor, metrics_dir: Path = METRICS_DIR, examples_dir: Path = EXAMPLES_DIR) -> gr.Blocks:
    handlers = Handlers(predictor)
    class_choices = [PREDICTED, *predictor.labels]
    metrics = report.load_metrics(metrics_dir)
    with gr.Blocks(title="brainmri", delete_cache=CACHE_CLEANUP, analytics_enabled=False) as demo:
        gr.Markdown(i18n("title"))
        gr.Markdown(i18n("notice"))
        with gr.Tabs():
            with gr.Tab(i18n("tab_classify")):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = UploadFile(label=i18n("upload"), file_types=FILE_TYPES, type="filepath")
                        run = gr.Button(i18n("classify"), variant="primary")
                        target = gr.Dropdown(class_choices, value=PREDICTED, label=i18n("explain_class"))
                        method = gr.Radio([(METHOD_NAMES[m], m) for m in ("gradcam", "gradcam++", "eigencam")],
                                          value="gradcam", label=i18n("method"))
                        examples = sorted(examples_dir.glob("*")) if examples_dir.is_dir() else []
                        if examples:
                            gr.Examples([[str(p)] for p in examples], inputs=[upload], label=i18n("examples"))
                    with gr.Column(scale=2):
                        note = gr.Markdown()
                        label = gr.Label(num_top_classes=len(predictor.labels), label=i18n("prediction"))
                        overlay = gr.Image(label=i18n("overlay"), type="numpy")
                        slider = gr.ImageSlider(label=i18n("heatmap"), type="numpy")
                        show_all = gr.Button(i18n("all_classes"))
                        gallery = gr.Gallery(label=i18n("all_classes"), columns=4, height="auto")
                run.click(handlers.classify, [upload], [label, overlay, slider, note, target, method], api_name="predict")
                show_all.click(handlers.all_classes, [upload, method], [gallery], api_name="explain_all")
                for control in (target, method):
                    control.input(handlers.reexplain, [upload, target, method], [overlay, slider, note], api_name=False)
            with gr.Tab(i18n("tab_batch")):
                files = UploadFile(label=i18n("batch_files"), file_count="multiple", file_types=FILE_TYPES, type="filepath")
                run_batch = gr.Button(i18n("batch_run"), variant="primary")
                table = gr.Dataframe(label=i18n("batch_table"), interactive=False)
                download = gr.DownloadButton(i18n("batch_csv"), visible=False)
                run_batch.click(handlers.classify_batch, [files], [table, download], api_name="predict_batch")
            with gr.Tab(i18n("tab_model")):
                gr.Markdown(f"Network runtime in this app: **{predictor.backend.name}** "
                            "(`python app.py --backend torch` for the fp32 reference the metrics below were measured with)")
                if metrics is None:
                    gr.Markdown("No saved evaluation was found in assets/metrics.")
                else:
                    gr.Markdown(i18n("trust"))
                    gr.Markdown(report.trust_markdown(metrics, report.load_json(metrics_dir, "crossval.json"),
                                                      report.testing_verdict(metrics_dir)))
                    gr.Markdown(i18n("trust_note"))
                    gr.Markdown(report.localisation_summary(report.load_json(metrics_dir, "localisation.json")))
                    if report.figure(metrics_dir, "risk_coverage"):
                        gr.Image(report.figure(metrics_dir, "risk_coverage"), label=i18n("risk_coverage"),
                                 interactive=False)
                    gr.Markdown(report.model_card(predictor.config.get("folder", DEFAULT_MODEL)))
                    gr.Markdown(i18n("headline"))
                    gr.Markdown(report.headline_markdown(metrics))
                    gr.Dataframe(report.per_class_rows(metrics, "full"), headers=report.PER_CLASS_HEADERS,
                                 label=i18n("per_class"), interactive=False)
                    gr.Dataframe(report.per_class_rows(metrics, "dedup"), headers=report.PER_CLASS_HEADERS,
                                 label=i18n("per_class_dedup"), interactive=False)
                    gr.Markdown(i18n("figures"))
                    with gr.Row():
                        for key in ("confusion", "confusion_normalized", "confusion_dedup"):
                            gr.Image(report.figure(metrics_dir, key), label=key.replace("_", " "), interactive=False)
                    with gr.Row():
                        for key in ("roc", "reliability"):
                            gr.Image(report.figure(metrics_dir, key), label=key, interactive=False)
                    gr.Image(report.figure(metrics_dir, "curves"), label="training curves", interactive=False)
                    gr.Image(report.figure(metrics_dir, "gallery"), label="Grad-CAM gallery", interactive=False)
            with gr.Tab(i18n("tab_about")):
                gr.Markdown(ABOUT)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=env("BRAINMRI_MODEL", DEFAULT_MODEL), help="release folder or hf-hub:user/repo")
    parser.add_argument("--host", default=env("BRAINMRI_HOST", env("GRADIO_SERVER_NAME", "127.0.0.1")))
    parser.add_argument("--port", type=int, default=int(env("BRAINMRI_PORT", env("GRADIO_SERVER_PORT", "7860"))))
    parser.add_argument("--share", action="store_true", default=env("BRAINMRI_SHARE", "").lower() in ("1", "true", "yes"))
    parser.add_argument("--backend", choices=BACKENDS, default=env("BRAINMRI_BACKEND", "auto"),
                        help="network runtime: auto (ONNX Runtime when the release has a checked export, else torch), "
                             "onnx, or torch (the fp32 reference the saved metrics were measured with)")
    parser.add_argument("--concurrency", type=int, default=int(env("BRAINMRI_CONCURRENCY", "2")),
                        help="requests worked on at once (default 2, one per core)")
    parser.add_argument("--queue-size", type=int, default=int(env("BRAINMRI_QUEUE_SIZE", "64")),
                        help="requests waiting before new ones are refused")
    return parser.parse_args(argv)


def launch(demo: gr.Blocks, args: argparse.Namespace, **kwargs):
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    return demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_FILE_SIZE,
                       allowed_paths=[str(EXAMPLES_DIR)], run_history=False, i18n=i18n, show_error=False,
                       footer_links=["api", "gradio"], **kwargs)


def load(model: str | None = None, backend: str | None = None) -> gr.Blocks:
    """The page for ``model`` on ``backend``; by default the options' defaults (environment, else the bundled model)."""
    defaults = parse_args([])
    return build_demo(Predictor.from_pretrained(model or defaults.model, backend=backend or defaults.backend))


# Importable without launching (Hugging Face Spaces and tests look for `demo`); the model loads once.
demo = load()

if __name__ == "__main__":
    arguments, defaults = parse_args(), parse_args([])
    if (arguments.model, arguments.backend) != (defaults.model, defaults.backend):  # not what `demo` was built with
        demo = load(arguments.model, arguments.backend)
    launch(demo, arguments)
