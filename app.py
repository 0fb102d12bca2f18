"""brainmri web app: classify a brain MRI slice, show where the model looked, show its record.

    python app.py [--model assets/model] [--backend auto|onnx|torch] [--host 127.0.0.1] [--port 7860] [--share]

Every option has an environment variable (BRAINMRI_MODEL, BRAINMRI_BACKEND,
BRAINMRI_HOST, BRAINMRI_PORT, BRAINMRI_SHARE, ...). The model is a local release folder or a
Hugging Face Hub id (``hf-hub:user/repo``). UI only: model code lives in brainmri.
"""
from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402  (Gradio's own dependency: tables and plots take data frames)
from gradio.utils import NamedString, get_upload_folder  # noqa: E402
from gradio_client import utils as client_utils  # noqa: E402
from PIL import Image  # noqa: E402

from brainmri import ImageLoadError, Predictor, report, wording  # noqa: E402
from brainmri.backends import BACKENDS  # noqa: E402
from brainmri.casereport import ModelFacts, write_case_report  # noqa: E402
from brainmri.explain import HEATMAP_OPACITY, METHOD_NAMES  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = str(HERE / "assets" / "model")
METRICS_DIR = HERE / "assets" / "metrics"
EXAMPLES_DIR = HERE / "assets" / "examples"
MAX_FILE_SIZE = "500mb"  # a whole scan (brainmri.volumes.MAX_VOLUME_BYTES); one slice is refused over 25 MB (imageio.MAX_BYTES)
FILE_TYPES = [".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm"]
SCAN_TYPES = [".zip", ".dcm", ".nii", ".gz"]  # a DICOM series (files or a zip), a multi-frame DICOM, a NIfTI volume
SUSPICIOUS_ROWS = 10
# every 5 min, delete uploads and outputs older than 10 min (BRAINMRI_CACHE_CLEANUP="every,age" in seconds)
CACHE_CLEANUP = tuple(int(x) for x in os.environ.get("BRAINMRI_CACHE_CLEANUP", "300,600").split(","))
PREDICTED = "predicted"

ABOUT_EN = """
### The four classes
- **Glioma**: tumours of the brain's glial (supporting) cells, often inside the brain tissue, irregular borders.
- **Meningioma**: tumours of the meninges, the membranes around the brain; usually at the brain's surface.
- **Pituitary tumour**: growths of the pituitary gland, at the skull base behind the nose.
- **No tumour**: slices without a visible tumour.

### How it works
The slice is read (DICOM windows and rescaling applied), turned to one gray channel, cropped to the head,
padded to a square on black and resized to the model's input: that removes the file's size, shape and colour
mode, which in this dataset differ between classes and would otherwise be a shortcut. A ConvNeXt network gives
four scores; a temperature fitted on held-out training images turns them into calibrated probabilities.
Before showing a tumour label, the app checks that the image looks like the slices the model learned from
(gray, not blank, one head on a dark background, features close to the training data) and that the model is
confident enough.

### Reading a heatmap
Grad-CAM colours the regions whose features pushed the chosen class's score up (red: most), drawn on your
slice at its own resolution; the thin box is the part of the slice the model saw. It is coarse (the network's
last feature map is 7×7 cells), shows *correlation, not cause*, and can look convincing when the prediction is
wrong. The Model tab says how often its peak falls on the radiologists' tumour outlines. Compare classes ("All
four classes side by side") and methods; never read it as a tumour outline.

### Scans from elsewhere
A model of this recipe trained without SARTAJ is right on 87 in 100 SARTAJ slices; trained without
figshare, on 84 in 100 figshare slices (but on fewer than three gliomas in four: it had seen few); on Testing,
about 98 in 100. The model was trained with the tissue contrast of half its slices inverted, a stand-in for T2:
on Testing slices inverted that way it is right on 89 in 100. The dataset holds no real T2 tumour slice to test
that on: in a hand-labelled sample every T2-weighted slice was "no tumour". The page therefore answers
"uncertain" below 90 % confidence and for DICOM series whose header names T2, FLAIR or diffusion, and on a slice
that looks T2-weighted it does not answer "no tumour", nor any answer that changes when the contrast is inverted.

### Known issues of the dataset
The Kaggle "Brain Tumor MRI Dataset" (Msoud Nickparvar, 7,023 images, merged from figshare, SARTAJ and Br35H)
holds many exact and near duplicates, also between its Training and Testing folders: test scores on the full
Testing folder are optimistic. The Model tab shows both the full and the de-duplicated results. Outside SARTAJ,
every "no tumour" slice comes from Br35H and every tumour slice from figshare, so a model can score well by
recognising the collection; the held-out columns of the Model tab measure what is left without that shortcut.

### Credits
Dataset: M. Nickparvar, *Brain Tumor MRI Dataset*, Kaggle (CC0); example slices are from its Testing split.
Method after the ConvNeXt + Grad-CAM study this project re-implements; software: PyTorch, timm,
pytorch-grad-cam, Gradio, scikit-learn, matplotlib.
"""

ABOUT_FR = """
### Les quatre classes
- **Gliome** : tumeurs des cellules gliales (de soutien) du cerveau, souvent dans le tissu cérébral, aux bords irréguliers.
- **Méningiome** : tumeurs des méninges, les membranes qui entourent le cerveau ; le plus souvent à sa surface.
- **Tumeur hypophysaire** : masses de l'hypophyse, à la base du crâne derrière le nez.
- **Pas de tumeur** : coupes sans tumeur visible.

### Comment cela fonctionne
La coupe est lue (fenêtres et mise à l'échelle DICOM appliquées), ramenée à un canal gris, recadrée sur la tête,
complétée en carré sur fond noir et redimensionnée à l'entrée du modèle : cela efface la taille, la forme et le
mode de couleur du fichier, qui diffèrent selon la classe dans ce jeu de données et serviraient sinon de
raccourci. Un réseau ConvNeXt donne quatre scores ; une température ajustée sur des images d'entraînement mises
de côté les transforme en probabilités calibrées. Avant d'afficher une classe de tumeur, l'application vérifie
que l'image ressemble aux coupes apprises (grise, non vide, une tête sur fond sombre, caractéristiques proches
des données d'entraînement) et que le modèle est assez sûr.

### Lire une carte de chaleur
Grad-CAM colore les régions dont les caractéristiques ont fait monter le score de la classe choisie (rouge : le
plus), dessinées sur votre coupe à sa propre résolution ; le cadre fin est la partie de la coupe que le modèle a
vue. Elle est grossière (la dernière carte de caractéristiques du réseau fait 7×7 cellules), montre une
*corrélation, pas une cause*, et peut sembler convaincante quand la prédiction est fausse. L'onglet Modèle dit
combien de fois son maximum tombe dans les contours de tumeur tracés par des radiologues. Comparez les classes
(« Les quatre classes côte à côte ») et les méthodes ; ne la lisez jamais comme un contour de tumeur.

### Examens d'ailleurs
Un modèle de cette recette entraîné sans SARTAJ a raison sur 87 coupes SARTAJ sur 100 ; entraîné sans
figshare, sur 84 coupes figshare sur 100 (mais sur moins de trois gliomes sur quatre : il en avait vu peu) ; sur
le test, environ 98 sur 100. Le modèle a été entraîné avec le contraste des tissus inversé sur la moitié de ses
coupes, pour imiter le T2 : sur les coupes de test inversées ainsi, il a raison sur 89 sur 100. Le jeu de données
ne contient aucune vraie coupe T2 avec tumeur pour le vérifier : dans un échantillon étiqueté à la main, toutes
les coupes pondérées T2 étaient « pas de tumeur ». La page répond donc « incertain » sous 90 % de confiance et
pour les séries DICOM dont l'en-tête indique T2, FLAIR ou diffusion, et sur une coupe d'aspect T2 elle ne répond
ni « pas de tumeur », ni une réponse qui change quand on inverse le contraste.

### Défauts connus du jeu de données
Le « Brain Tumor MRI Dataset » de Kaggle (Msoud Nickparvar, 7 023 images, fusion de figshare, SARTAJ et Br35H)
contient beaucoup de doublons exacts et quasi exacts, y compris entre ses dossiers Training et Testing : les
scores sur le dossier Testing complet sont optimistes. L'onglet Modèle montre les résultats complets et
dédupliqués. Hors SARTAJ, toutes les coupes « pas de tumeur » viennent de Br35H et toutes les coupes avec
tumeur de figshare : un modèle peut bien noter en reconnaissant la collection ; les colonnes « tenue à l'écart »
de l'onglet Modèle mesurent ce qui reste sans ce raccourci.

### Crédits
Données : M. Nickparvar, *Brain Tumor MRI Dataset*, Kaggle (CC0) ; les coupes d'exemple viennent de son jeu de
test. Méthode d'après l'étude ConvNeXt + Grad-CAM que ce projet ré-implémente ; logiciels : PyTorch, timm,
pytorch-grad-cam, Gradio, scikit-learn, matplotlib.
"""

i18n = gr.I18n(
    en={
        "title": "# Brain tumour MRI classifier",
        "notice": "**Research and teaching demo — not a medical device.** Do not use it to diagnose or treat anyone.",
        "tab_classify": "Classify", "tab_batch": "Batch", "tab_model": "Model", "tab_about": "About",
        "upload": "MRI slice (JPEG, PNG, BMP, TIFF, WebP or DICOM)",
        "classify": "Classify", "prediction": "Prediction", "heatmap": "Model input ↔ heatmap",
        "model_input": "What the model saw (its 112-pixel input)",
        "overlay": "Heatmap on the slice (its own resolution)", "opacity": "Heatmap opacity",
        "outline": "Outline the part of the slice the model saw",
        "all_classes": "All four classes side by side", "explain_class": "Class to explain", "method": "Heatmap method",
        "report": "Report (PDF)", "report_file": "Case report",
        "examples": "Examples (one per class, from the dataset's Testing split)",
        "batch_files": "Several slices", "batch_run": "Classify all", "batch_table": "Results",
        "batch_csv": "Download CSV (English column names)",
        "no_evaluation": "**No saved evaluation for this model.** The figures of the bundled model are not shown: "
                         "they were measured on other weights.",
        "confusion": "Confusion matrix (Testing, share of each true class)",
        "reliability": "Reliability diagram (Testing): confidence against accuracy",
        "trust": "### How far to trust it: Testing beside collections the model never saw",
        "trust_note": "*Held-out* columns: a model of the same recipe trained **without** that collection, judged on "
                      "all of its images — the closest stand-in here for scans from another hospital. Expect the "
                      "page to be right about as often on your scans as in those columns, not as on Testing, "
                      "and less often on sequences it barely saw (T2, FLAIR). Neither column is a blind estimate: the "
                      "recipe was chosen on these held-out runs, and the 90 % confidence threshold on the SARTAJ one. "
                      "The page does not answer \"no tumour\" on slices that look T2-weighted (in this data every "
                      "T2 slice was \"no tumour\"): that holds back about a third of Testing's \"no tumour\" slices.",
        "risk_coverage": "Accuracy when the page answers only its most confident share (held-out collection)",
        "more": "More figures and tables", "model_card": "Model card",
        "per_class": "Per class (full Testing set)", "per_class_dedup": "Per class (de-duplicated Testing subset)",
        "confusion_counts": "Confusion matrix (Testing, counts)",
        "confusion_dedup": "Confusion matrix (de-duplicated Testing)", "roc": "ROC curves (Testing)",
        "curves": "Training curves", "gallery": "Grad-CAM gallery (radiologists' tumour outlines in green)",
        "tab_scan": "Scan", "scan_upload": "A whole scan: DICOM files or a zip of one series, a multi-frame DICOM, "
                                             "or a NIfTI volume (.nii, .nii.gz)",
        "plane": "Plane (NIfTI; a DICOM series keeps the plane it was acquired in)", "analyse": "Analyse the scan",
        "slice": "Slice", "slice_view": "The slice and its heatmap", "strip": "Probabilities along the scan "
        "(drag across the plot to jump to a slice)", "suspicious": "Most suspicious slices first (click a row)",
        "all_slices": "Every slice (the API's table)", "scan_summary": "Summary",
        "about": ABOUT_EN,
    },
    fr={
        "title": "# Classification des tumeurs cérébrales en IRM",
        "notice": "**Démonstration de recherche et d'enseignement — pas un dispositif médical.** "
                  "Ne l'utilisez pour diagnostiquer ou traiter personne.",
        "tab_classify": "Classer", "tab_batch": "Lot", "tab_model": "Modèle", "tab_about": "À propos",
        "upload": "Coupe IRM (JPEG, PNG, BMP, TIFF, WebP ou DICOM)",
        "classify": "Classer", "prediction": "Prédiction", "heatmap": "Entrée du modèle ↔ carte de chaleur",
        "model_input": "Ce que le modèle a vu (son entrée de 112 pixels)",
        "overlay": "Carte de chaleur sur la coupe (à sa propre résolution)", "opacity": "Opacité de la carte",
        "outline": "Encadrer la partie de la coupe que le modèle a vue",
        "all_classes": "Les quatre classes côte à côte", "explain_class": "Classe à expliquer", "method": "Méthode",
        "report": "Rapport (PDF)", "report_file": "Fiche de cas",
        "examples": "Exemples (un par classe, issus du jeu de test)",
        "batch_files": "Plusieurs coupes", "batch_run": "Tout classer", "batch_table": "Résultats",
        "batch_csv": "Télécharger le CSV (noms de colonnes en anglais)",
        "no_evaluation": "**Pas d'évaluation enregistrée pour ce modèle.** Les chiffres du modèle fourni ne sont pas "
                         "montrés : ils ont été mesurés sur d'autres poids.",
        "confusion": "Matrice de confusion (test, part de chaque vraie classe)",
        "reliability": "Diagramme de fiabilité (test) : confiance contre exactitude",
        "trust": "### Quelle confiance lui accorder : le test à côté de collections jamais vues",
        "trust_note": "Colonnes *tenue à l'écart* : un modèle de la même recette entraîné **sans** cette collection, "
                      "jugé sur toutes ses images — ce qui s'approche le plus ici d'examens d'un autre hôpital. "
                      "Attendez-vous à ce que la page ait raison sur vos images à peu près aussi souvent que dans "
                      "ces colonnes, pas comme sur le test, et moins souvent sur des séquences qu'il a peu vues "
                      "(T2, FLAIR). Aucune colonne n'est une estimation à l'aveugle : la recette a été choisie sur ces "
                      "essais tenus à l'écart, et le seuil de confiance de 90 % sur celui de SARTAJ. La page ne "
                      "répond pas « pas de tumeur » sur les coupes d'aspect T2 (dans ces données, toutes les coupes "
                      "T2 étaient « pas de tumeur ») : cela retient environ un tiers des coupes « pas de tumeur » du test.",
        "risk_coverage": "Exactitude quand la page ne répond qu'à sa part la plus sûre (collection tenue à l'écart)",
        "more": "Autres figures et tableaux", "model_card": "Fiche du modèle",
        "per_class": "Par classe (test complet)", "per_class_dedup": "Par classe (sous-ensemble de test dédupliqué)",
        "confusion_counts": "Matrice de confusion (test, effectifs)",
        "confusion_dedup": "Matrice de confusion (test dédupliqué)", "roc": "Courbes ROC (test)",
        "curves": "Courbes d'entraînement",
        "gallery": "Galerie Grad-CAM (contours des tumeurs par les radiologues en vert)",
        "tab_scan": "Examen", "scan_upload": "Un examen entier : fichiers DICOM ou zip d'une série, DICOM multi-images, "
                                              "ou volume NIfTI (.nii, .nii.gz)",
        "plane": "Plan (NIfTI ; une série DICOM garde le plan de son acquisition)", "analyse": "Analyser l'examen",
        "slice": "Coupe", "slice_view": "La coupe et sa carte de chaleur", "strip": "Probabilités le long de l'examen "
        "(glissez sur le graphique pour aller à une coupe)", "suspicious": "Coupes les plus suspectes d'abord "
        "(cliquez une ligne)", "all_slices": "Toutes les coupes (le tableau de l'API)", "scan_summary": "Résumé",
        "about": ABOUT_FR,
    },
)

# what the callbacks write, by language (the front end translates the rest through `i18n`)
SAY = {
    "en": {"predicted": "predicted class", "heatmap": "Heatmap: {method} for *{target}*.",
           "ok": "**{top}**: probability {p:.0%}. {heatmap}",
           "uncertain": "⚠️ **Uncertain.** {reason} Most likely *{top}* ({p:.0%}); read it with care. {heatmap}",
           "not_mri": "⛔ **No tumour label shown.** {reason}", "not_mri_label": "Not a brain MRI slice",
           "upload_first": "Upload an image first.", "upload_many": "Upload one or more images first.",
           "cannot_read": "Cannot read this file: {error}", "error": "error",
           "runtime": "Network runtime in this app: **{backend}** (`python app.py --backend torch` for the fp32 "
                      "reference the figures below were measured with)",
           "batch_headers": ["file", "class", "glioma", "meningioma", "notumor", "pituitary", "note"],
           "upload_scan": "Upload a scan first: DICOM files, a zip of one series, or a NIfTI volume.",
           "planes": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal", "acquired": "as acquired"},
           "skipped": {"blank": "blank", "too little of the head": "too little of the head"},
           "scan": "**{kind}**, {slices} slices ({plane}): {read} read, {skipped} skipped (blank, or too little of the "
                   "head: the top and bottom of the scan), {ok} answered \"ok\".",
           "scan_top": " Highest tumour probability: {top}.", "scan_top_item": "slice {slice} ({label}, {p:.0%})",
           "slice_note": "Slice {index} of {last}: **{label}** ({p:.0%}). {verdict}",
           "slice_skipped": "Slice {index} of {last}: not read ({why}).",
           "suspicious_headers": ["slice", "most likely", "tumour probability", "verdict"],
           "strip_tumour": "tumour (any)"},
    "fr": {"predicted": "classe prédite", "heatmap": "Carte : {method} pour *{target}*.",
           "ok": "**{top}** : probabilité {p:.0%}. {heatmap}",
           "uncertain": "⚠️ **Incertain.** {reason} Le plus probable : *{top}* ({p:.0%}) ; à lire avec prudence. "
                        "{heatmap}",
           "not_mri": "⛔ **Aucune classe de tumeur affichée.** {reason}", "not_mri_label": "Pas une coupe IRM cérébrale",
           "upload_first": "Déposez d'abord une image.", "upload_many": "Déposez d'abord une ou plusieurs images.",
           "cannot_read": "Impossible de lire ce fichier : {error}", "error": "erreur",
           "runtime": "Moteur du réseau dans cette application : **{backend}** (`python app.py --backend torch` pour "
                      "la référence fp32 avec laquelle les chiffres ci-dessous ont été mesurés)",
           "batch_headers": ["fichier", "classe", "Gliome", "Méningiome", "Pas de tumeur", "Tumeur hypophysaire", "note"],
           "upload_scan": "Déposez d'abord un examen : fichiers DICOM, zip d'une série ou volume NIfTI.",
           "planes": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal", "acquired": "plan d'acquisition"},
           "skipped": {"blank": "vide", "too little of the head": "trop peu de tête"},
           "scan": "**{kind}**, {slices} coupes ({plane}) : {read} lues, {skipped} ignorées (vides, ou trop peu de "
                   "tête : le haut et le bas de l'examen), {ok} avec une réponse « ok ».",
           "scan_top": " Plus forte probabilité de tumeur : {top}.", "scan_top_item": "coupe {slice} ({label}, {p:.0%})",
           "slice_note": "Coupe {index} sur {last} : **{label}** ({p:.0%}). {verdict}",
           "slice_skipped": "Coupe {index} sur {last} : non lue ({why}).",
           "suspicious_headers": ["coupe", "le plus probable", "probabilité de tumeur", "verdict"],
           "strip_tumour": "tumeur (toutes)"},
}


def page_language(request: gr.Request | None) -> str:
    """The page's language, as the browser asks for it (its Accept-Language header); English without a request."""
    headers = getattr(request, "headers", None) or {}
    return wording.language(headers.get("accept-language"))


def _label_output(explanation, lang: str | None = None):
    """The prediction for gr.Label: stable English keys (the API's) when ``lang`` is None, else class names in words."""
    verdict = explanation.verdict
    if verdict is not None and verdict.status == "not_mri":
        return SAY[lang or "en"]["not_mri_label"]
    if lang is None:
        return explanation.probabilities
    return {wording.class_name(k, lang): v for k, v in explanation.probabilities.items()}


def _note(explanation, lang: str = "en") -> str:
    say, verdict = SAY[lang], explanation.verdict
    top = wording.class_name(explanation.label, lang)
    p = explanation.probabilities[explanation.label]
    heatmap = say["heatmap"].format(method=METHOD_NAMES[explanation.method],
                                    target=wording.class_name(explanation.target, lang))
    if verdict is None or verdict.ok:
        return say["ok"].format(top=top, p=p, heatmap=heatmap)
    return say[verdict.status].format(reason=verdict.reason_in(lang), top=top, p=p, heatmap=heatmap)


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


def cached_output(folder: Path, suffix: str, write, name: str | None = None) -> str:
    """A file the page sends back (model input, heatmap, batch CSV, report), written by ``write(path)`` under a
    new name inside Gradio's cache folder, then renamed into place.

    Gradio's own numpy → file step names files by their content and rewrites an existing one in
    place, so two concurrent identical answers could serve a half-written file (the load test saw
    "Content-Length" errors). A unique name per answer never collides; being inside the cache, the
    file is served as is and deleted with the rest of the cache (``delete_cache``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if name:  # a name for people (the download's), in a folder of its own so that it never collides
        now = time.time()
        for old in folder.iterdir():  # Gradio's cache schedule deletes files, not their folders: drop empty ones
            try:  # old enough that no answer is still being written into it
                if old.is_dir() and now - old.stat().st_mtime > 60 and not any(old.iterdir()):
                    old.rmdir()
            except OSError:  # another request got there first
                continue
        folder = folder / uuid.uuid4().hex
        folder.mkdir()
        path = folder / name
    else:
        path = folder / f"brainmri-{uuid.uuid4().hex}{suffix}"
    staging = folder / f".{path.name}.part"
    write(staging)
    os.replace(staging, path)
    return str(path)


def cached_image(array, folder: Path) -> str:
    # compress level 1: a third of the default's encoding time (7 vs 21 ms for a 512-px overlay) for a 25 % larger file
    return cached_output(folder, ".png", lambda path: Image.fromarray(array).save(path, format="PNG", compress_level=1))


class Handlers:
    """The page's callbacks: thin wrappers over one shared, read-only Predictor."""

    def __init__(self, predictor: Predictor, facts: ModelFacts | None = None):
        self.predictor = predictor
        self.facts = facts or ModelFacts.from_release(predictor.config, None, None)
        # Gradio's cache as the page's components see it (they resolve GRADIO_TEMP_DIR when built, as here)
        self.output_dir = Path(get_upload_folder()) / "brainmri"

    def _explain(self, path, target=PREDICTED, method="gradcam", lang="en"):
        if not path:
            raise gr.Error(SAY[lang]["upload_first"], print_exception=False)
        try:
            return self.predictor.explain(path, target=None if target in (None, PREDICTED) else target, method=method)
        except ImageLoadError as err:
            raise gr.Error(SAY[lang]["cannot_read"].format(error=err), print_exception=False) from None

    def _overlay(self, e, opacity, outline) -> str:
        """The heatmap on the slice at its own resolution, as the page shows it."""
        return cached_image(e.draw(float(opacity), bool(outline)), self.output_dir)

    def _pair(self, e) -> tuple[str, str]:
        """The model's input beside its heatmap (the secondary view)."""
        return cached_image(e.image, self.output_dir), cached_image(e.overlay, self.output_dir)

    def classify(self, path, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """One image file in; out: the prediction (gr.Label, the API's English keys), the heatmap overlay on the
        slice itself, the note, the reset controls, the prediction in words. The model input ↔ heatmap pair, a
        secondary view, follows in a second step (:meth:`model_input`), so the answer does not wait for it."""
        lang = page_language(request)
        e = self._explain(path, lang=lang)
        return (_label_output(e), self._overlay(e, opacity, outline), _note(e, lang), gr.update(value=PREDICTED), gr.update(value="gradcam"),
                _label_output(e, lang))

    def model_input(self, path, target=PREDICTED, method="gradcam", request: gr.Request = None):
        """What the model saw (its input) beside its heatmap, for the folded secondary view."""
        if not path:
            return gr.skip()
        return self._pair(self._explain(path, target, method, page_language(request)))

    def reexplain(self, path, target, method, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        if not path:
            return gr.skip(), gr.skip(), gr.skip()
        lang = page_language(request)
        e = self._explain(path, target, method, lang)
        return self._overlay(e, opacity, outline), self._pair(e), _note(e, lang)

    def all_classes(self, path, method="gradcam", request: gr.Request = None):
        """Heatmaps of every class from one forward pass, each under its probability (on the slice itself)."""
        lang = page_language(request)
        if not path:
            raise gr.Error(SAY[lang]["upload_first"], print_exception=False)
        try:
            every = self.predictor.explain_all(path, method=method)
        except ImageLoadError as err:
            raise gr.Error(SAY[lang]["cannot_read"].format(error=err), print_exception=False) from None
        return [(cached_image(e.overlay_original, self.output_dir),
                 f"{wording.class_name(e.target, lang)}: {e.probabilities[e.target]:.0%}") for e in every]

    def report(self, path, request: gr.Request = None):
        """One image file in; out: a one-page PDF case report (predicted class, Grad-CAM) in the page's language."""
        lang = page_language(request)
        e = self._explain(path, lang=lang)
        name = f"brainmri-report-{datetime.now():%Y%m%d-%H%M%S}.pdf"
        return cached_output(self.output_dir, ".pdf", lambda out: write_case_report(out, e, self.facts, lang), name=name)

    def classify_batch(self, paths, request: gr.Request = None):
        """Several files in; out: a table in the page's language and a CSV with the stable English keys."""
        lang = page_language(request)
        if not paths:
            raise gr.Error(SAY[lang]["upload_many"], print_exception=False)
        labels = self.predictor.labels
        rows, shown = [], []
        for path, result in zip(paths, self.predictor.screen_batch(paths)):
            name = Path(path).name
            if isinstance(result, ImageLoadError):
                rows.append([name, "error", *[None] * len(labels), str(result)])
                shown.append([name, SAY[lang]["error"], *[None] * len(labels), str(result)])
                continue
            probs, verdict = result
            label = max(probs, key=probs.get)
            cells = [round(probs[k], 4) for k in labels]
            if verdict.status == "not_mri":
                rows.append([name, "not a brain MRI slice", *cells, f"{verdict.status}: {verdict.reason}"])
                shown.append([name, SAY[lang]["not_mri_label"], *cells,
                              f"{wording.status_name(verdict.status, lang)}: {verdict.reason_in(lang)}"])
                continue
            rows.append([name, label, *cells, verdict.status if verdict.ok else f"{verdict.status}: {verdict.reason}"])
            shown.append([name, wording.class_name(label, lang), *cells, wording.status_name(verdict.status, lang)
                          if verdict.ok else f"{wording.status_name(verdict.status, lang)}: {verdict.reason_in(lang)}"])
        table = report.batch_csv(rows, ["file", "class", *labels, "note"])
        csv_path = cached_output(self.output_dir, "-results.csv", lambda path: path.write_text(table))
        headers = ["file", "class", *labels, "note"] if lang == "en" else \
            [SAY[lang]["batch_headers"][0], SAY[lang]["batch_headers"][1],
             *[wording.class_name(k, lang) for k in labels], SAY[lang]["batch_headers"][-1]]
        return pd.DataFrame(shown, columns=headers), gr.update(value=csv_path, visible=True)

    # -- whole scans
    def analyse_scan(self, paths, plane="axial", request: gr.Request = None):
        """A scan in (DICOM files, a zip of a series, a multi-frame DICOM or a NIfTI volume); out: the table of
        per-slice verdicts and probabilities (stable English keys), the summary, and the result for the page."""
        lang = page_language(request)
        if not paths:
            raise gr.Error(SAY[lang]["upload_scan"], print_exception=False)
        try:
            result = self.predictor.predict_volume(list(paths) if isinstance(paths, (list, tuple)) else paths,
                                                   plane or "axial")
        except ImageLoadError as err:
            raise gr.Error(SAY[lang]["cannot_read"].format(error=err), print_exception=False) from None
        labels = self.predictor.labels
        rows = [[s.index, s.verdict.status if s.verdict else f"skipped: {s.skipped}",
                 *[None if s.probabilities is None else round(s.probabilities[k], 4) for k in labels]]
                for s in result.slices]
        return pd.DataFrame(rows, columns=["slice", "status", *labels]), result.summary(), result

    def scan_page(self, result, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """The page after an analysis: the summary in words, the slider on the most suspicious slice, the
        probability strip, the most suspicious slices, and that slice with its heatmap."""
        if result is None:
            return (gr.skip(),) * 6
        lang = page_language(request)
        say, summary = SAY[lang], result.summary()
        text = say["scan"].format(kind=summary["kind"], slices=summary["slices"], read=summary["read"],
                                  skipped=summary["skipped"], ok=summary["ok"],
                                  plane=say["planes"].get(summary["plane"], summary["plane"]))
        top = summary["most_suspicious"]
        if top:
            text += say["scan_top"].format(top="; ".join(say["scan_top_item"].format(
                slice=t["slice"], label=wording.class_name(t["label"], lang), p=t["tumour_probability"]) for t in top[:3]))
        first = top[0]["slice"] if top else 0
        strip = [{"slice": s.index, "class": wording.class_name(k, lang), "probability": s.probabilities[k]}
                 for s in result.read() for k in self.predictor.labels]
        suspicious = [[s.index, wording.class_name(max(s.probabilities, key=s.probabilities.get), lang),
                       round(s.tumour_probability(), 4), wording.status_name(s.verdict.status, lang)]
                      for s in result.most_suspicious(SUSPICIOUS_ROWS)]
        image, note = self.scan_slice(result, first, opacity, outline, request)
        return (text, gr.update(minimum=0, maximum=max(len(result.volume) - 1, 1), value=first, visible=True),
                pd.DataFrame(strip, columns=["slice", "class", "probability"]),
                pd.DataFrame(suspicious, columns=say["suspicious_headers"]), image, note)

    def scan_slice(self, result, index, opacity=HEATMAP_OPACITY, outline=True, request: gr.Request = None):
        """One slice of the analysed scan at its own resolution, with the heatmap of its most likely class."""
        if result is None:
            return gr.skip(), gr.skip()
        lang = page_language(request)
        index = int(min(max(int(index or 0), 0), len(result.volume) - 1))
        found = next((s for s in result.slices if s.index == index), None)
        last = len(result.volume) - 1
        gray = result.volume.slices[index]
        if found is None or found.skipped:
            why = SAY[lang]["skipped"].get(found.skipped, found.skipped) if found else "—"
            return cached_image(gray, self.output_dir), SAY[lang]["slice_skipped"].format(index=index, last=last, why=why)
        e = self.predictor.explain(gray)
        label = max(found.probabilities, key=found.probabilities.get)
        verdict = found.verdict.reason_in(lang) if not found.verdict.ok else ""
        note = SAY[lang]["slice_note"].format(index=index, last=last, label=wording.class_name(label, lang),
                                              p=found.probabilities[label], verdict=verdict)
        return self._overlay(e, opacity, outline), note.strip()

    def jump_from_plot(self, result, opacity, outline, evt: gr.SelectData, request: gr.Request = None):
        """A range dragged across the probability strip: go to its middle slice."""
        low, high = (evt.index if isinstance(evt.index, (list, tuple)) else (evt.index, evt.index))
        index = int(round((float(low) + float(high)) / 2))
        return (gr.update(value=index), *self.scan_slice(result, index, opacity, outline, request))

    def jump_from_table(self, result, opacity, outline, evt: gr.SelectData, request: gr.Request = None):
        """A row of the most suspicious slices: go to that slice."""
        index = int((evt.row_value or [0])[0])
        return (gr.update(value=index), *self.scan_slice(result, index, opacity, outline, request))


def release_metrics_dir(predictor: Predictor) -> Path:
    """Where the served release's saved evaluation lives: its own ``metrics/`` folder, else assets/metrics
    (whose metrics.json names the weights it was measured on; :func:`brainmri.report.evaluation_for`)."""
    own = predictor.release.path("metrics")
    return own if (own / "metrics.json").is_file() else METRICS_DIR


def build_demo(predictor: Predictor, metrics_dir: Path | None = None, examples_dir: Path = EXAMPLES_DIR) -> gr.Blocks:
    metrics_dir = Path(metrics_dir) if metrics_dir is not None else release_metrics_dir(predictor)
    metrics = report.evaluation_for(predictor.config, metrics_dir)  # None unless measured on these weights
    crossval = report.load_json(metrics_dir, "crossval.json") if metrics else None
    verdict = report.testing_verdict(metrics_dir) if metrics else None
    handlers = Handlers(predictor, ModelFacts.from_release(predictor.config, metrics, crossval))
    localised = []  # (component, function of the language giving its value): filled in on each page load

    def choices(lang):
        return [(SAY[lang]["predicted"], PREDICTED), *[(wording.class_name(k, lang), k) for k in predictor.labels]]

    with gr.Blocks(title="brainmri", delete_cache=CACHE_CLEANUP, analytics_enabled=False) as demo:
        gr.Markdown(i18n("title"))
        gr.Markdown(i18n("notice"))
        with gr.Tabs():
            with gr.Tab(i18n("tab_classify")):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = UploadFile(label=i18n("upload"), file_types=FILE_TYPES, type="filepath")
                        run = gr.Button(i18n("classify"), variant="primary")
                        target = gr.Dropdown(choices("en"), value=PREDICTED, label=i18n("explain_class"))
                        localised.append((target, lambda lang: gr.update(choices=choices(lang))))
                        method = gr.Radio([(METHOD_NAMES[m], m) for m in ("gradcam", "gradcam++", "eigencam")],
                                          value="gradcam", label=i18n("method"))
                        opacity = gr.Slider(0.0, 1.0, value=HEATMAP_OPACITY, step=0.05, label=i18n("opacity"))
                        outline = gr.Checkbox(value=True, label=i18n("outline"))
                        examples = sorted(examples_dir.glob("*")) if examples_dir.is_dir() else []
                        if examples:
                            gr.Examples([[str(p)] for p in examples], inputs=[upload], label=i18n("examples"))
                    with gr.Column(scale=2):
                        note = gr.Markdown()
                        shown = gr.Label(num_top_classes=len(predictor.labels), label=i18n("prediction"))
                        label = gr.Label(num_top_classes=len(predictor.labels), visible=False)  # the API's keys
                        overlay = gr.Image(label=i18n("overlay"), type="numpy")
                        with gr.Row():
                            show_all = gr.Button(i18n("all_classes"))
                            make_report = gr.Button(i18n("report"))
                        report_file = gr.File(label=i18n("report_file"), visible=False)
                        gallery = gr.Gallery(label=i18n("all_classes"), columns=4, height="auto", visible=False)
                        with gr.Accordion(i18n("model_input"), open=False):
                            slider = gr.ImageSlider(label=i18n("heatmap"), type="numpy")
                run.click(handlers.classify, [upload, opacity, outline],
                          [label, overlay, note, target, method, shown], api_name="predict").success(
                    handlers.model_input, [upload, target, method], [slider], api_visibility="private")
                # the API answers plain values; the page then shows the component that was hidden until used
                show_all.click(handlers.all_classes, [upload, method], [gallery], api_name="explain_all").success(
                    lambda: gr.update(visible=True), None, [gallery], api_visibility="private", queue=False)
                make_report.click(handlers.report, [upload], [report_file], api_name="report").success(
                    lambda: gr.update(visible=True), None, [report_file], api_visibility="private", queue=False)
                # one case at a time: a new image (upload, example, Clear) empties every output of the previous one
                upload.change(lambda: (None, None, "", None, gr.update(value=None, visible=False),
                                       gr.update(value=None, visible=False), None),
                              None, [label, overlay, note, shown, gallery, report_file, slider], queue=False,
                              api_visibility="private")
                redraw = dict(fn=handlers.reexplain, inputs=[upload, target, method, opacity, outline],
                              outputs=[overlay, slider, note], api_visibility="private")
                for control in (target, method, outline):
                    control.input(**redraw)
                opacity.release(**redraw)
            with gr.Tab(i18n("tab_scan")):
                with gr.Row():
                    with gr.Column(scale=1):
                        scan_files = UploadFile(label=i18n("scan_upload"), file_count="multiple", file_types=SCAN_TYPES,
                                                type="filepath")
                        plane = gr.Radio(["axial", "coronal", "sagittal"], value="axial", label=i18n("plane"))
                        analyse = gr.Button(i18n("analyse"), variant="primary")
                        scan_text = gr.Markdown()
                        suspicious = gr.Dataframe(label=i18n("suspicious"), interactive=False)
                    with gr.Column(scale=2):
                        position = gr.Slider(0, 1, value=0, step=1, label=i18n("slice"), visible=False)
                        slice_note = gr.Markdown()
                        slice_view = gr.Image(label=i18n("slice_view"), type="filepath", interactive=False)
                        strip = gr.LinePlot(x="slice", y="probability", color="class", y_lim=[0, 1],
                                            label=i18n("strip"), height=320)
                with gr.Accordion(i18n("all_slices"), open=False):
                    per_slice = gr.Dataframe(interactive=False)
                    scan_json = gr.JSON(label=i18n("scan_summary"))
                scan_state = gr.State(time_to_live=CACHE_CLEANUP[1])  # the loaded scan, in memory, for this page only
                analyse.click(handlers.analyse_scan, [scan_files, plane], [per_slice, scan_json, scan_state],
                              api_name="predict_volume").success(
                    handlers.scan_page, [scan_state, opacity, outline],
                    [scan_text, position, strip, suspicious, slice_view, slice_note], api_visibility="private")
                position.release(handlers.scan_slice, [scan_state, position, opacity, outline], [slice_view, slice_note],
                                 api_visibility="private")
                strip.select(handlers.jump_from_plot, [scan_state, opacity, outline], [position, slice_view, slice_note],
                             api_visibility="private")
                suspicious.select(handlers.jump_from_table, [scan_state, opacity, outline],
                                  [position, slice_view, slice_note], api_visibility="private")
                scan_files.change(lambda: (None, None, None, "", gr.update(value=0, visible=False), None, None, None, ""),
                                  None, [per_slice, scan_json, scan_state, scan_text, position, strip, suspicious,
                                         slice_view, slice_note], queue=False, api_visibility="private")
            with gr.Tab(i18n("tab_batch")):
                files = UploadFile(label=i18n("batch_files"), file_count="multiple", file_types=FILE_TYPES, type="filepath")
                run_batch = gr.Button(i18n("batch_run"), variant="primary")
                table = gr.Dataframe(label=i18n("batch_table"), interactive=False)
                download = gr.DownloadButton(i18n("batch_csv"), visible=False)
                run_batch.click(handlers.classify_batch, [files], [table, download], api_name="predict_batch")
                files.change(lambda: (None, gr.update(value=None, visible=False)), None, [table, download], queue=False,
                             api_visibility="private")
            with gr.Tab(i18n("tab_model")):
                runtime = gr.Markdown(SAY["en"]["runtime"].format(backend=predictor.backend.name))
                localised.append((runtime, lambda lang: SAY[lang]["runtime"].format(backend=predictor.backend.name)))
                if metrics is None:
                    gr.Markdown(i18n("no_evaluation"))
                else:
                    _model_tab(predictor, metrics_dir, metrics, crossval, verdict, localised)
            with gr.Tab(i18n("tab_about")):
                gr.Markdown(i18n("about"))

        def localise(request: gr.Request):
            lang = page_language(request)
            return [value(lang) for _, value in localised]

        demo.load(localise, None, [component for component, _ in localised], api_visibility="private", queue=False)
    return demo


def _model_tab(predictor, metrics_dir, metrics, crossval, verdict, localised) -> None:
    """Picture first: one summary line, the confusion matrix and the reliability diagram, the one table of
    Testing beside the held-out collections, where the heatmaps land; the rest and the model card folded."""
    robustness = report.load_json(metrics_dir, "robustness.json") if metrics else None
    def text(function):  # a Markdown whose text follows the page's language
        component = gr.Markdown(function("en"))
        localised.append((component, function))

    def table(rows, label):
        component = gr.Dataframe(rows("en"), headers=report.words("en")["per_class"], label=label, interactive=False)
        localised.append((component, lambda lang: gr.update(value=rows(lang), headers=report.words(lang)["per_class"])))

    def image(key, label):
        if report.figure(metrics_dir, key):
            gr.Image(report.figure(metrics_dir, key), label=label, interactive=False)

    text(lambda lang: report.summary_line(predictor.config, metrics, crossval, verdict, lang))
    with gr.Row():
        image("confusion_normalized", i18n("confusion"))
        image("reliability", i18n("reliability"))
    gr.Markdown(i18n("trust"))
    text(lambda lang: report.trust_markdown(metrics, crossval, verdict, lang, testing_robustness=robustness))
    gr.Markdown(i18n("trust_note"))
    heldout, leave_out = (report.load_json(metrics_dir, name) for name in ("lgg-heldout-institution.json", "lgg-leave-out.json"))
    if heldout or leave_out:
        text(lambda lang: report.newsource_markdown(heldout, leave_out, lang))
    localisation = report.load_json(metrics_dir, "localisation.json")
    text(lambda lang: report.localisation_summary(localisation, lang=lang))
    image("risk_coverage", i18n("risk_coverage"))
    with gr.Accordion(i18n("more"), open=False):
        text(lambda lang: report.headline_markdown(metrics, lang))
        table(lambda lang: report.per_class_rows(metrics, "full", lang), i18n("per_class"))
        if metrics.get("dedup"):
            table(lambda lang: report.per_class_rows(metrics, "dedup", lang), i18n("per_class_dedup"))
        with gr.Row():
            image("confusion", i18n("confusion_counts"))
            image("confusion_dedup", i18n("confusion_dedup"))
            image("roc", i18n("roc"))
        image("curves", i18n("curves"))
        image("gallery", i18n("gallery"))
    with gr.Accordion(i18n("model_card"), open=False):
        gr.Markdown(report.model_card(predictor.release.folder))


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
