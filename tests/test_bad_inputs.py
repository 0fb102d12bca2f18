"""Every awkward input gets a sane result or one clear message, through the core and the server."""

import pytest
from bad_inputs import NORMAL, corpus

from brainmri import ImageLoadError, Predictor
from helpers import start_app

pytestmark = pytest.mark.slow  # trains, serves the app or opens a browser

CASES = corpus()


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_pretrained(trained_run / "release")


@pytest.mark.parametrize("name", list(CASES))
def test_core_predictor(predictor, name, tmp_path):
    filename, data = CASES[name]
    path = tmp_path / filename.replace("/", "_")
    path.write_bytes(data)
    try:
        explanation = predictor.explain(path)
    except ImageLoadError as err:
        assert str(err) and "\n" not in str(err) and "Traceback" not in str(err)
        return
    assert abs(sum(explanation.probabilities.values()) - 1) < 1e-5
    verdict = explanation.verdict
    assert verdict.status in ("ok", "uncertain", "not_mri") and (verdict.ok or verdict.reason)


def test_clear_outcomes_for_the_named_problems(predictor, tmp_path):
    expected = {
        "empty file": "empty",
        "30000x30000 PNG (decompression bomb)": "too large",
        "animated GIF": "animated",
        "DICOM without pixel data": "no pixel data",
        "file over the upload limit": "limit",
        "PDF renamed .png": "not a recognised image",
        "1x1 image": "too small",
    }
    for name, words in expected.items():
        path = tmp_path / CASES[name][0]
        path.write_bytes(CASES[name][1])
        with pytest.raises(ImageLoadError, match=words):
            predictor.predict(path)
    for name in ("all-black slice", "all-white slice", "colour photograph"):
        path = tmp_path / CASES[name][0]
        path.write_bytes(CASES[name][1])
        assert predictor.screen(path)[1].status == "not_mri", name
    for name in (
        "16-bit TIFF",
        "CMYK JPEG",
        "palette PNG",
        "RGBA PNG",
        "DICOM with compressed pixel data",
        "multi-frame DICOM",
        "filename with separators and non-ASCII",
    ):
        path = tmp_path / CASES[name][0]
        path.write_bytes(CASES[name][1])
        assert len(predictor.predict(path)) == 4, name


def test_running_server_survives_the_whole_corpus(trained_run, tmp_path, monkeypatch, capfd):
    from gradio_client import Client, handle_file

    app, url = start_app(monkeypatch, trained_run / "release")
    normal = tmp_path / NORMAL[0]
    normal.write_bytes(NORMAL[1])
    outcomes = {}
    try:
        client = Client(url, verbose=False)
        reference = client.predict(handle_file(str(normal)), api_name="/predict")[0]
        for name, (filename, data) in CASES.items():
            folder = tmp_path / f"case{len(outcomes)}"
            folder.mkdir()
            path = folder / filename.replace("/", "_")
            path.write_bytes(data)
            try:
                result = client.predict(handle_file(str(path)), api_name="/predict")
                outcomes[name] = "answered"
                assert result[0]
            except Exception as err:  # gradio_client raises AppError with the page's message
                message = str(err)
                assert "Traceback" not in message and message.strip(), name
                outcomes[name] = "refused: " + message.splitlines()[0][:80]
            assert client.predict(handle_file(str(normal)), api_name="/predict")[0] == reference, name
    finally:
        app.demo.close()
    logs = capfd.readouterr()
    for secret in ("Secret^Patient", "SECRET-ID-42", "Doe_Jane"):  # DICOM patient fields never reach the server's log
        assert secret not in logs.out + logs.err, secret
    answered = sum(v == "answered" for v in outcomes.values())
    print(f"\n{len(outcomes)} bad inputs: {answered} answered, {len(outcomes) - answered} refused with a message")
    for name, outcome in outcomes.items():
        print(f"  {name}: {outcome}")
    assert len(outcomes) == len(CASES)
    assert "refused" in outcomes["empty file"] and "refused" in outcomes["30000x30000 PNG (decompression bomb)"]
