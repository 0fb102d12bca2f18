"""Temperature scaling (brainmri.training.calibration)."""

import torch

from brainmri.evaluation.metrics import expected_calibration_error
from brainmri.training.calibration import fit_temperature


def test_temperature_fit_recovers_a_known_temperature():
    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 4, generator=gen) * 3
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=gen).squeeze(1)
    assert abs(fit_temperature(true_logits * 2.5, labels) - 2.5) < 0.25
    probs = torch.softmax(true_logits, 1).numpy()
    assert expected_calibration_error(probs, labels.numpy()) < 0.03
    assert expected_calibration_error(torch.softmax(true_logits * 4, 1).numpy(), labels.numpy()) > 0.1
