"""What people read, in English and French: class names in words and the verdicts' reasons.

The API and every saved file keep the stable English keys (``glioma``, ``meningioma``,
``notumor``, ``pituitary``; verdict codes); only what is shown to a person goes through here.
"""
from __future__ import annotations

LANGUAGES = ("en", "fr")

CLASS_NAMES = {
    "en": {"glioma": "Glioma", "meningioma": "Meningioma", "notumor": "No tumour", "pituitary": "Pituitary tumour"},
    "fr": {"glioma": "Gliome", "meningioma": "Méningiome", "notumor": "Pas de tumeur", "pituitary": "Tumeur hypophysaire"},
}

STATUS_NAMES = {
    "en": {"ok": "ok", "uncertain": "uncertain", "not_mri": "outside what this model knows"},
    "fr": {"ok": "ok", "uncertain": "incertain", "not_mri": "hors de ce que ce modèle connaît"},
}

# screening.judge's reasons by code; fields in braces come from Verdict.params
REASONS = {
    "en": {
        "colour": "This looks like a colour photograph or drawing, not an MRI slice.",
        "blank": "The image is (nearly) blank: there is no slice to read.",
        "no_background": "This does not look like an MRI slice: there is no dark background around a head.",
        "noise": "This looks like noise or a synthetic pattern, not an MRI slice: neighbouring pixels jump between "
                 "dark and bright all over it.",
        "no_head": "This does not look like an MRI slice: there is no single head in it, only separate bright patches.",
        "unfamiliar": "This does not look like the brain MRI slices the model was trained on (feature distance "
                      "{distance:.1f} > {threshold:.1f}).",
        "sequence": "The DICOM header says this is a {sequence} series; the model learned tumours almost only from "
                    "contrast-enhanced T1 slices and calls many tumours in other sequences \"no tumour\", so its "
                    "answer here is not reliable.",
        "looks_t2_notumor": "This slice looks T2-weighted (bright fluid; appearance check {score:.0%}). In the "
                            "model's training data nearly every T2-weighted slice was \"no tumour\" and the tumours "
                            "were almost all contrast-enhanced T1: a \"no tumour\" answer on such a slice is what "
                            "that bias gives, tumour or not, so it does not rule a tumour out.",
        "looks_t2_flip": "This slice looks T2-weighted (bright fluid; appearance check {score:.0%}), and the model's "
                         "answer changes to \"{inverted_class}\" when its contrast is turned over to look like T1: "
                         "it learned tumours almost only from contrast-enhanced T1 slices, so its answer here is not "
                         "reliable.",
        "looks_flair": "This slice looks like FLAIR (appearance check {score:.0%}). The model has seen FLAIR slices "
                       "only of gliomas and of brains without a tumour, never of a meningioma or a pituitary "
                       "tumour, so its answer \"{answer_class}\" here is not reliable.",
        "unsure": "The model is unsure (top probability {top:.0%} < {threshold:.0%}): on scans from other "
                  "collections, answers this unsure are wrong too often to show as a result.",
        "unstable": "Small changes to the image (mirroring it, brightening or darkening it, blurring it) move the "
                    "model's answer (agreement {agreement:.0%} < {threshold:.0%}): it has not learned to read slices "
                    "like this one reliably.",
    },
    "fr": {
        "colour": "Cela ressemble à une photographie ou à un dessin en couleur, pas à une coupe IRM.",
        "blank": "L'image est (presque) vide : il n'y a pas de coupe à lire.",
        "no_background": "Cela ne ressemble pas à une coupe IRM : il n'y a pas de fond sombre autour d'une tête.",
        "noise": "Cela ressemble à du bruit ou à un motif synthétique, pas à une coupe IRM : les pixels voisins "
                 "passent du sombre au clair partout.",
        "no_head": "Cela ne ressemble pas à une coupe IRM : il n'y a pas une tête, seulement des taches claires séparées.",
        "unfamiliar": "Cela ne ressemble pas aux coupes IRM cérébrales sur lesquelles le modèle a appris (distance "
                      "des caractéristiques {distance:.1f} > {threshold:.1f}).",
        "sequence": "L'en-tête DICOM indique une série {sequence} ; le modèle a appris les tumeurs presque uniquement "
                    "sur des coupes T1 avec injection de contraste et classe beaucoup de tumeurs d'autres séquences "
                    "« pas de tumeur » : sa réponse n'est pas fiable ici.",
        "looks_t2_notumor": "Cette coupe ressemble à une coupe pondérée T2 (liquide clair ; contrôle d'aspect "
                            "{score:.0%}). Dans les données d'entraînement du modèle, presque toutes les coupes T2 "
                            "étaient « pas de tumeur » et les tumeurs presque toutes en T1 avec injection : une "
                            "réponse « pas de tumeur » sur une telle coupe est ce que donne ce biais, tumeur ou non, "
                            "elle n'écarte donc pas une tumeur.",
        "looks_t2_flip": "Cette coupe ressemble à une coupe pondérée T2 (liquide clair ; contrôle d'aspect {score:.0%}), "
                         "et la réponse du modèle devient « {inverted_class} » quand on inverse son contraste pour "
                         "qu'elle ressemble à une coupe T1 : il a appris les tumeurs presque uniquement sur des coupes "
                         "T1 avec injection, sa réponse n'est pas fiable ici.",
        "looks_flair": "Cette coupe ressemble à une coupe FLAIR (contrôle d'aspect {score:.0%}). Le modèle n'a vu "
                       "des coupes FLAIR que de gliomes et de cerveaux sans tumeur, jamais de méningiome ni de "
                       "tumeur hypophysaire : sa réponse « {answer_class} » n'est pas fiable ici.",
        "unsure": "Le modèle n'est pas sûr (probabilité maximale {top:.0%} < {threshold:.0%}) : sur des examens "
                  "d'autres collections, des réponses aussi peu sûres sont trop souvent fausses pour être montrées "
                  "comme un résultat.",
        "unstable": "De petites modifications de l'image (miroir, éclaircir ou assombrir, flouter) changent la réponse "
                    "du modèle (accord {agreement:.0%} < {threshold:.0%}) : il n'a pas appris à lire de façon fiable "
                    "des coupes comme celle-ci.",
    },
}


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
    return CLASS_NAMES.get(lang, CLASS_NAMES["en"]).get(label, label)


def status_name(status: str, lang: str = "en") -> str:
    return STATUS_NAMES.get(lang, STATUS_NAMES["en"]).get(status, status)


def reason(code: str, params: dict | None = None, lang: str = "en") -> str:
    """A verdict's reason in ``lang`` ("" for a verdict without one)."""
    if not code:
        return ""
    values = {key: class_name(value, lang) if key.endswith("_class") else value for key, value in (params or {}).items()}
    template = REASONS.get(lang, REASONS["en"]).get(code) or REASONS["en"][code]
    return template.format(**values)
