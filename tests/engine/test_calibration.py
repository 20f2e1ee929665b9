"""Temperature scaling of a classifier head: fitted on labelled held-out examples it makes an
overconfident head say how sure it really is, without changing what it answers."""

import numpy as np
import pytest

from engine.runtime.errors import MageError
from engine.runtime.recognition import calibration, fit_temperature, softmax


def overconfident(n: int = 600, classes: int = 10, seed: int = 0):
    """Logits whose argmax is right about 45% of the time but whose softmax says 90%+."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    right = rng.random(n) < 0.45
    logits[np.arange(n), labels] += np.where(right, 2.5, 0.0)
    return logits * 4.0, labels  # sharpened: confident far beyond its accuracy


def test_fitted_temperature_makes_confidence_match_accuracy():
    logits, labels = overconfident()
    before = calibration(softmax(logits), labels)
    t = fit_temperature(logits, labels)
    after = calibration(softmax(logits / t), labels)
    assert t > 2.0  # it was overconfident: the fitted temperature softens it
    assert after["accuracy"] == before["accuracy"]  # the answers do not change
    assert after["nll"] < before["nll"]
    assert after["ece"] < before["ece"] / 3
    assert abs(after["mean_confidence"] - after["accuracy"]) < 0.1  # was about 0.5


def test_a_calibrated_head_is_left_alone_and_bad_input_is_refused():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 2000)
    logits = rng.normal(0, 1, (2000, 5))
    # sampled from its own softmax: already calibrated
    probs = softmax(logits)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)
    with pytest.raises(MageError):
        fit_temperature(np.zeros((3, 4)), np.zeros(2, int))
