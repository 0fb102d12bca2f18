"""The verdict's image checks (brainmri.inference.verdict)."""

import numpy as np
import pytest

from brainmri import Predictor


@pytest.fixture(scope="module")
def predictor(tiny_release):
    return Predictor.from_pretrained(tiny_release)


def test_a_checkerboard_has_no_head(predictor):
    board = ((np.indices((256, 256)).sum(0) // 32) % 2 * 255).astype(np.uint8)
    _, verdict = predictor.screen(board)
    assert verdict.status == "not_mri" and "single head" in verdict.reason
    from brainmri.inference.verdict import head_share

    head = np.zeros((256, 256), np.uint8)
    head[40:220, 50:200] = 120
    assert head_share(board) < 0.15 < head_share(head)


def test_wrapped_noise_is_not_a_slice(predictor):
    from brainmri.evaluation.screening_report import synthetic_outliers
    from brainmri.inference.verdict import jump_share

    noise = synthetic_outliers()["noise"][5]  # random-walk noise wrapped at 256: it has a dark-enough border
    _, verdict = predictor.screen(noise)
    assert verdict.status == "not_mri" and "noise" in verdict.reason
    smooth = np.tile(np.linspace(0, 255, 256).astype(np.uint8), (256, 1))
    assert jump_share(smooth) == 0.0 < 0.05 < jump_share(noise)


def test_a_verdict_is_said_in_one_line_per_language():
    from brainmri.inference.verdict import Verdict

    unsure = Verdict("uncertain", "unsure", {"top": 0.899, "threshold": 0.9})
    assert unsure.said_in("en").startswith("uncertain: The model is unsure (top probability 89.9%")
    assert unsure.said_in("fr").startswith("incertain : ")
