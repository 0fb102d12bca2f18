"""The Gradio page: Classify, Scan, Batch, Model and About tabs over one Predictor, built by :func:`build_demo`.

Building it launches nothing (tests and Hugging Face Spaces import the page); :func:`launch` serves it.
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from brainmri import Predictor, text
from brainmri.evaluation import report
from brainmri.inference.explain import CLASSLESS, HEATMAP_OPACITY, METHOD_NAMES, SHOWN_METHODS
from brainmri.ui.casereport import ModelFacts
from brainmri.ui.handlers import PREDICTED, Handlers, UploadFile, page_language, say
from brainmri.ui.teach import KEYS_JS, TEACH_DIR, Progress, Teacher, load_cases

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = str(ROOT / "assets" / "model")
METRICS_DIR = ROOT / "assets" / "metrics"
EXAMPLES_DIR = ROOT / "assets" / "examples"
# the Teach tab's arrow keys, and its words legible from the back of a lecture room
TEACH_PAGE = {"js": KEYS_JS, "css": ".teach .prose { font-size: 1.2rem; }"}
MAX_FILE_SIZE = "500mb"  # a whole scan (brainmri.io.volumes.MAX_VOLUME_BYTES); one slice is refused over 25 MB
FILE_TYPES = [".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm"]
SCAN_TYPES = [".zip", ".dcm", ".nii", ".gz"]  # a DICOM series (files or a zip), a multi-frame DICOM, a NIfTI volume


def cache_cleanup() -> tuple[int, int]:
    """How often Gradio's cache is swept and how old a file must be to go, in seconds: every 5 min, files older than
    10 min, unless BRAINMRI_CACHE_CLEANUP="every,age" says otherwise (read when a page is built)."""
    every, age = (int(x) for x in os.environ.get("BRAINMRI_CACHE_CLEANUP", "300,600").split(","))
    return every, age


def _static_labels(lang: str) -> dict[str, str]:
    """The page's static labels in ``lang`` (the front end translates them through ``gr.I18n``)."""
    notice = text.catalogue(lang)["notice"]
    return {**text.catalogue(lang)["page"], "notice": f"**{notice['head']}** {notice['rest']}"}


I18N = gr.I18n(**{lang: _static_labels(lang) for lang in text.LANGUAGES})


def release_metrics_dir(predictor: Predictor) -> Path:
    """Where the served release's saved evaluation lives: its own ``metrics/`` folder, else assets/metrics
    (whose metrics.json names the weights it was measured on; :func:`brainmri.evaluation.report.evaluation_for`)."""
    own = predictor.release.path("metrics")
    return own if (own / "metrics.json").is_file() else METRICS_DIR


def build_demo(predictor: Predictor, metrics_dir: Path | None = None, examples_dir: Path = EXAMPLES_DIR) -> gr.Blocks:
    metrics_dir = Path(metrics_dir) if metrics_dir is not None else release_metrics_dir(predictor)
    metrics = report.evaluation_for(predictor.config, metrics_dir)  # None unless measured on these weights
    crossval = report.load_json(metrics_dir, "crossval.json") if metrics else None
    verdict = report.testing_verdict(metrics_dir) if metrics else None
    robustness = report.load_json(metrics_dir, "robustness.json") if metrics else None
    handlers = Handlers(predictor, ModelFacts.from_metrics_dir(predictor.config, metrics_dir))
    localised = []  # (component, function of the language giving its value): filled in on each page load

    def choices(lang):
        return [(say(lang)["predicted"], PREDICTED), *[(text.class_name(k, lang), k) for k in predictor.labels]]

    cleanup = cache_cleanup()
    with gr.Blocks(title="brainmri", delete_cache=cleanup, analytics_enabled=False) as demo:
        gr.Markdown(I18N("title"))
        gr.Markdown(I18N("notice"))
        with gr.Tabs():
            with gr.Tab(I18N("tab_classify")):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = UploadFile(label=I18N("upload"), file_types=FILE_TYPES, type="filepath")
                        run = gr.Button(I18N("classify"), variant="primary")
                        target = gr.Dropdown(choices("en"), value=PREDICTED, label=I18N("explain_class"))
                        localised.append((target, lambda lang: gr.update(choices=choices(lang))))
                        method = gr.Radio(
                            [(METHOD_NAMES[m], m) for m in SHOWN_METHODS],
                            value="gradcam",
                            label=I18N("method"),
                        )
                        opacity = gr.Slider(0.0, 1.0, value=HEATMAP_OPACITY, step=0.05, label=I18N("opacity"))
                        outline = gr.Checkbox(value=True, label=I18N("outline"))
                        examples = sorted(examples_dir.glob("*")) if examples_dir.is_dir() else []
                        if examples:
                            gr.Examples([[str(p)] for p in examples], inputs=[upload], label=I18N("examples"))
                    with gr.Column(scale=2):
                        note = gr.Markdown()
                        shown = gr.Label(num_top_classes=len(predictor.labels), label=I18N("prediction"))
                        label = gr.Label(num_top_classes=len(predictor.labels), visible=False)  # the API's keys
                        overlay = gr.Image(label=I18N("overlay"), type="numpy")
                        with gr.Row():
                            show_all = gr.Button(I18N("all_classes"))
                            make_report = gr.Button(I18N("report"))
                        report_file = gr.File(label=I18N("report_file"), visible=False)
                        gallery = gr.Gallery(label=I18N("all_classes"), columns=4, height="auto", visible=False)
                        with gr.Accordion(I18N("model_input"), open=False):
                            slider = gr.ImageSlider(label=I18N("heatmap"), type="numpy")
                run.click(
                    handlers.classify,
                    [upload, opacity, outline],
                    [label, overlay, note, target, method, shown],
                    api_name="predict",
                ).success(handlers.model_input, [upload, target, method], [slider], api_visibility="private")
                # the API answers plain values; the page then shows the component that was hidden until used
                show_all.click(handlers.all_classes, [upload, method], [gallery], api_name="explain_all").success(
                    lambda: gr.update(visible=True), None, [gallery], api_visibility="private", queue=False
                )
                as_shown = [upload, target, method, opacity]  # the report's heatmap is the page's
                make_report.click(handlers.report, as_shown, [report_file], api_name="report").success(
                    lambda: gr.update(visible=True), None, [report_file], api_visibility="private", queue=False
                )
                # one case at a time: a new image (upload, example, Clear) empties every output of the previous one
                upload.change(
                    lambda: (
                        None,
                        None,
                        "",
                        None,
                        gr.update(value=None, visible=False),
                        gr.update(value=None, visible=False),
                        None,
                    ),
                    None,
                    [label, overlay, note, shown, gallery, report_file, slider],
                    queue=False,
                    api_visibility="private",
                ).then(  # ... then answers it: an upload or an example is classified without a click
                    handlers.classify_new,
                    [upload, opacity, outline],
                    [label, overlay, note, target, method, shown],
                    api_visibility="private",
                ).success(handlers.model_input, [upload, target, method], [slider], api_visibility="private")
                redraw = dict(
                    fn=handlers.reexplain,
                    inputs=[upload, target, method, opacity, outline],
                    outputs=[overlay, slider, note],
                    api_visibility="private",
                )
                quietly = dict(queue=False, api_visibility="private")
                for control in (target, method, outline):
                    control.input(**redraw)
                method.input(  # EigenCAM's map is the same for every class: no class to choose
                    lambda m: gr.update(interactive=m not in CLASSLESS), [method], [target], **quietly
                )
                opacity.release(**redraw)
            with gr.Tab(I18N("tab_scan")):
                with gr.Row():
                    with gr.Column(scale=1):
                        scan_files = UploadFile(
                            label=I18N("scan_upload"), file_count="multiple", file_types=SCAN_TYPES, type="filepath"
                        )
                        plane = gr.Radio(["axial", "coronal", "sagittal"], value="axial", label=I18N("plane"))
                        analyse = gr.Button(I18N("analyse"), variant="primary")
                        scan_text = gr.Markdown()
                        suspicious = gr.Dataframe(
                            label=I18N("suspicious"),
                            interactive=False,
                            wrap=True,
                            column_widths=["16%", "34%", "22%", "28%"],
                        )
                    with gr.Column(scale=2):
                        position = gr.Slider(0, 1, value=0, step=1, label=I18N("slice"), visible=False)
                        slice_note = gr.Markdown()
                        slice_view = gr.Image(label=I18N("slice_view"), type="filepath", interactive=False)
                        strip = gr.LinePlot(
                            x="slice",
                            y="probability",
                            color="class",
                            y_lim=[0, 1],
                            x_axis_format="d",  # whole slices only
                            label=I18N("strip"),
                            height=320,
                        )
                        strip_key = gr.HTML()
                with gr.Accordion(I18N("all_slices"), open=False):
                    per_slice = gr.Dataframe(interactive=False)
                    scan_json = gr.JSON(label=I18N("scan_summary"))
                scan_state = gr.State(time_to_live=cleanup[1])  # the loaded scan, in memory, for this page only
                analyse.click(
                    handlers.analyse_scan,
                    [scan_files, plane],
                    [per_slice, scan_json, scan_state],
                    api_name="predict_volume",
                ).success(
                    handlers.scan_page,
                    [scan_state, opacity, outline],
                    [scan_text, position, strip, suspicious, slice_view, slice_note, strip_key],
                    api_visibility="private",
                )
                position.input(  # dragged or typed: the newest slice asked for is the one drawn
                    handlers.scan_slice,
                    [scan_state, position, opacity, outline],
                    [slice_view, slice_note],
                    trigger_mode="always_last",
                    api_visibility="private",
                )
                strip.select(
                    handlers.jump_from_plot,
                    [scan_state, opacity, outline],
                    [position, slice_view, slice_note],
                    api_visibility="private",
                )
                suspicious.select(
                    handlers.jump_from_table,
                    [scan_state, opacity, outline],
                    [position, slice_view, slice_note],
                    api_visibility="private",
                )
                scan_files.change(
                    lambda: (None, None, None, "", gr.update(value=0, visible=False), None, None, None, "", ""),
                    None,
                    [
                        per_slice,
                        scan_json,
                        scan_state,
                        scan_text,
                        position,
                        strip,
                        suspicious,
                        slice_view,
                        slice_note,
                        strip_key,
                    ],
                    queue=False,
                    api_visibility="private",
                )
            with gr.Tab(I18N("tab_batch")):
                files = UploadFile(
                    label=I18N("batch_files"), file_count="multiple", file_types=FILE_TYPES, type="filepath"
                )
                run_batch = gr.Button(I18N("batch_run"), variant="primary")
                table = gr.Dataframe(label=I18N("batch_table"), interactive=False)
                download = gr.DownloadButton(I18N("batch_csv"), visible=False)
                run_batch.click(handlers.classify_batch, [files], [table, download], api_name="predict_batch")
                files.change(
                    lambda: (None, gr.update(value=None, visible=False)),
                    None,
                    [table, download],
                    queue=False,
                    api_visibility="private",
                )
            with gr.Tab(I18N("tab_teach")) as teach:
                _teach_tab(teach, predictor, handlers.output_dir, localised)
            with gr.Tab(I18N("tab_model")):
                if metrics is None:
                    gr.Markdown(I18N("no_evaluation"))
                else:
                    _model_tab(predictor, metrics_dir, metrics, crossval, verdict, robustness, localised)
                with gr.Accordion(I18N("runtime_title"), open=False):  # a technical line, after the figures
                    runtime = gr.Markdown(say("en")["runtime"].format(backend=predictor.backend.name))
                    localised.append(
                        (runtime, lambda lang: say(lang)["runtime"].format(backend=predictor.backend.name))
                    )
            with gr.Tab(I18N("tab_about")):
                settings = {
                    "min_confidence": predictor.min_confidence,
                    "grid": "×".join(map(str, predictor.heatmap_grid)),
                    "heldout_institution": report.load_json(metrics_dir, "lgg-heldout-institution.json"),
                }
                about = gr.Markdown(report.about_markdown(metrics, crossval, robustness, "en", **settings))
                localised.append(
                    (about, lambda lang: report.about_markdown(metrics, crossval, robustness, lang, **settings))
                )

        def localise(request: gr.Request):
            lang = page_language(request)
            return [value(lang) for _, value in localised]

        demo.load(localise, None, [component for component, _ in localised], api_visibility="private", queue=False)
    return demo


def _teach_tab(tab: gr.Tab, predictor: Predictor, output_dir: Path, localised: list) -> None:
    """One case at a time, large: pick a class, reveal, move on with the buttons or the arrow keys (ui.teach)."""
    teacher = Teacher(predictor, load_cases(), output_dir)

    def classes(lang):
        return [(text.class_name(k, lang), k) for k in predictor.labels]

    progress = gr.State(Progress())
    header = gr.Markdown()
    with gr.Row(elem_classes="teach"):
        with gr.Column(scale=3):
            case = gr.Image(label=I18N("teach_slice"), type="filepath", interactive=False, height=560)
        with gr.Column(scale=2):
            pick = gr.Radio(classes("en"), label=I18N("teach_pick"))
            localised.append((pick, lambda lang: gr.update(choices=classes(lang))))
            reveal = gr.Button(I18N("teach_reveal"), variant="primary")
            result, point = gr.Markdown(), gr.Markdown()
            with gr.Row():
                back = gr.Button(I18N("teach_prev"), elem_id="teach-prev")
                on = gr.Button(I18N("teach_next"), elem_id="teach-next")
            score = gr.Markdown()
            keys = gr.Markdown(text.t("teach.keys"))
            localised.append((keys, lambda lang: text.t("teach.keys", lang)))
    with gr.Row(elem_classes="teach"):
        heatmap = gr.Image(label=I18N("teach_heatmap"), interactive=False, visible=False, height=420)
        traced = gr.Image(label=I18N("teach_outline"), interactive=False, visible=False, height=420)
    shown = [progress, header, case, pick, result, heatmap, traced, point, score]
    quietly = dict(api_visibility="private")
    reveal.click(teacher.reveal, [progress, pick], shown, **quietly)
    back.click(teacher.previous, [progress], shown, **quietly)
    on.click(teacher.next, [progress], shown, **quietly)
    tab.select(teacher.current, [progress], shown, **quietly)  # drawn when the tab is opened, not on every page load


def _model_tab(predictor, metrics_dir, metrics, crossval, verdict, robustness, localised) -> None:
    """Picture first: one summary line, the confusion matrix and the reliability diagram, the one table of
    Testing beside the held-out collections, where the heatmaps land; the rest and the model card folded."""

    def text(function):  # a Markdown whose text follows the page's language
        component = gr.Markdown(function("en"))
        localised.append((component, function))

    def table(rows, label):
        component = gr.Dataframe(rows("en"), headers=report.words("en")["per_class"], label=label, interactive=False)
        localised.append((component, lambda lang: gr.update(value=rows(lang), headers=report.words(lang)["per_class"])))

    def image(key, label):
        if report.figure(metrics_dir, key):
            # the figure carries its own title: Gradio's label badge would cover it
            shown = gr.Image(report.figure(metrics_dir, key), label=label, show_label=False, interactive=False)
            localised.append((shown, lambda lang: report.figure(metrics_dir, key, lang)))  # drawn in each language

    heldout, leave_out = (
        report.load_json(metrics_dir, name) for name in ("lgg-heldout-institution.json", "lgg-leave-out.json")
    )
    own = leave_out if leave_out and leave_out.get("weights_sha256") == predictor.config.get("weights_sha256") else None
    text(lambda lang: report.plain_summary(metrics, crossval, own, lang, heldout))  # plain words first
    text(lambda lang: report.summary_line(predictor.config, metrics, crossval, verdict, lang))
    with gr.Row():
        image("confusion_normalized", I18N("confusion"))
        image("reliability", I18N("reliability"))
    gr.Markdown(I18N("trust"))
    text(lambda lang: report.trust_markdown(metrics, crossval, verdict, lang, testing_robustness=robustness))
    text(lambda lang: report.trust_note(crossval, predictor.min_confidence, lang))
    if heldout or leave_out:
        text(lambda lang: report.newsource_markdown(heldout, leave_out, lang, predictor.config.get("weights_sha256")))
    localisation = report.load_json(metrics_dir, "localisation.json")
    text(lambda lang: report.localisation_summary(localisation, lang=lang))
    image("risk_coverage", I18N("risk_coverage"))
    with gr.Accordion(I18N("more"), open=False):
        text(lambda lang: report.headline_markdown(metrics, lang))
        table(lambda lang: report.per_class_rows(metrics, "full", lang), I18N("per_class"))
        if metrics.get("dedup"):
            table(lambda lang: report.per_class_rows(metrics, "dedup", lang), I18N("per_class_dedup"))
        with gr.Row():
            image("confusion", I18N("confusion_counts"))
            image("confusion_dedup", I18N("confusion_dedup"))
            image("roc", I18N("roc"))
        image("curves", I18N("curves"))
        image("gallery", I18N("gallery"))
    with gr.Accordion(I18N("model_card"), open=False):
        text(lambda lang: report.model_card(predictor.release.folder, lang))


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    concurrency: int = 2,
    queue_size: int = 64,
    sessions: int = 64,
    **kwargs,
):
    """Serve ``demo``: ``concurrency`` requests worked on at once, ``queue_size`` waiting before new ones are refused,
    the state of the ``sessions`` page views used last kept in memory (the least recently used dropped first: its
    loaded scan must be loaded again). Gradio keeps 10,000 by default, each with its own copy of the page's
    configuration and its loaded scan: memory grows with every page view until then (docs/record/benchmarks.md)."""
    from gradio.utils import get_upload_folder

    from brainmri.ui import heap
    from brainmri.ui.cache import Sweeper

    heap.limit_arenas()  # before the server starts its threads: they share two arenas (ui.heap)
    every, age = demo.delete_cache or cache_cleanup()  # the page's own schedule, sure to keep running (ui.cache)
    Sweeper(demo, every, age, (Path(get_upload_folder()) / "brainmri",)).start()
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(EXAMPLES_DIR), str(TEACH_DIR)],
        state_session_capacity=sessions,
        run_history=False,
        i18n=I18N,
        show_error=False,
        footer_links=["api", "gradio"],
        **TEACH_PAGE,
        **kwargs,
    )
