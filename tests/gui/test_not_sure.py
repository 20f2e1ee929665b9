"""Recognition says "not sure" where the head's calibrated confidence is under its threshold,
instead of a confident wrong name; a head sure of its answer shows it plainly. The heads are
switched with the keyboard in the panel's chooser."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.ui.recognition_panel import RecognitionPanel
from engine.runtime.bundle import Bundle
from engine.runtime.recognition import fit_linear_probe, image_features, store_in_bundle
from gui.test_recognition_panel import KINDS, pattern

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bundle(tiny_bundle_path, tmp_path):
    path = Path(shutil.copytree(tiny_bundle_path, tmp_path / "tiny"))
    bundle = Bundle(path, device="cpu")
    rng = np.random.default_rng(0)
    images = [pattern(k, rng) for k in KINDS for _ in range(10)]
    labels = np.repeat(np.arange(len(KINDS)), 10)
    head = fit_linear_probe(image_features(bundle, images), labels, KINDS, bundle=bundle)
    store_in_bundle(bundle, head, "stripes")
    # the same head after temperature scaling on held-out photos found it overconfident:
    # its probabilities are flatter and a threshold marks what it is not sure of
    unsure = replace(head, info={**head.info, "temperature": 40.0, "not_sure_below": 0.6})
    unsure.save(tmp_path / "calibrated.npz")
    return Bundle(path, device="cpu"), tmp_path / "calibrated.npz"


def test_not_sure_below_the_calibrated_threshold(qtbot, bundle):
    loaded, calibrated = bundle
    panel = RecognitionPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_bundle(loaded)
    panel.set_image(pattern("vertical", np.random.default_rng(9)), "stripes.png")
    qtbot.waitUntil(lambda: len(panel.predictions) == len(KINDS), timeout=30000)
    head = panel.current_head()
    assert not head.calibrated
    assert head.not_sure_below == 0.7
    assert panel.predictions[0][0] == "vertical"
    assert panel.predictions[0][1] >= 0.7
    assert not panel.not_sure
    assert not panel.status.isVisible()
    assert panel.load_head_file(calibrated)  # a second head in the chooser, now in use
    qtbot.waitUntil(lambda: panel.not_sure, timeout=10000)
    top_name, top_p = panel.predictions[0]
    assert top_name == "vertical"
    assert top_p < 0.6
    assert panel.status.isVisible()
    assert panel.status.text().startswith("Not sure:")
    assert "calibrated on held-out photos" in panel.status.text()
    assert panel.row_labels[0].text().startswith("vertical?")
    # back to the first head with the keyboard: a plain answer again
    panel.head_combo.setFocus()
    QTest.keyClick(panel.head_combo, Qt.Key.Key_Up)
    qtbot.waitUntil(lambda: not panel.not_sure, timeout=10000)
    assert not panel.status.isVisible()
    assert panel.row_labels[0].text().startswith("vertical ")
    panel.wait_idle()
