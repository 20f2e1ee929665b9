"""RecognitionPanel offscreen: top-5 from a bundle head, few-shot classes built from dropped
examples, save/load, refusal of a head for another model, no model call on the GUI thread, and
no features while the panel is hidden."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

import app.recognition as rp
from app.ui.recognition_panel import RecognitionPanel
from engine.runtime.bundle import Bundle
from engine.runtime.recognition import (
    fit_centroid,
    fit_linear_probe,
    image_features,
    load_head,
    store_in_bundle,
)

KINDS = ("horizontal", "vertical", "flat")


def pattern(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    per, ph = 16 * rng.uniform(0.9, 1.1), rng.uniform(0, 2 * np.pi)
    wave = {
        "horizontal": np.sin(2 * np.pi * yy / per + ph),
        "vertical": np.sin(2 * np.pi * xx / per + ph),
        "flat": np.zeros((size, size)),
    }[kind]
    img = rng.uniform(70, 180, 3) + 60 * wave[..., None] + rng.normal(0, 10, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def examples(tmp_path) -> dict[str, list[Path]]:
    rng = np.random.default_rng(5)
    out: dict[str, list[Path]] = {}
    for kind in KINDS:
        (tmp_path / kind).mkdir()
        out[kind] = []
        for i in range(4):
            path = tmp_path / kind / f"{i}.png"
            Image.fromarray(pattern(kind, rng)).save(path)
            out[kind].append(path)
    return out


@pytest.fixture
def panel(qtbot):
    widget = RecognitionPanel()
    qtbot.addWidget(widget)
    widget.show()  # features are computed only while the panel is on screen
    yield widget
    widget.wait_idle()


@pytest.fixture
def headed_bundle(tiny_bundle_path, tmp_path):
    """A private tiny bundle with a built-in head 'stripes'."""
    path = Path(shutil.copytree(tiny_bundle_path, tmp_path / "tiny"))
    bundle = Bundle(path, device="cpu")
    rng = np.random.default_rng(0)
    images = [pattern(k, rng) for k in KINDS for _ in range(10)]
    labels = np.repeat(np.arange(len(KINDS)), 10)
    head = fit_linear_probe(image_features(bundle, images), labels, KINDS, bundle=bundle)
    store_in_bundle(bundle, head, "stripes")
    return Bundle(path, device="cpu")


def settle(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.busy(), timeout=30000)


def test_without_model_or_head_says_what_to_do(qtbot, panel, tiny_bundle):
    assert "Open a model" in panel.status.text()
    panel.set_bundle(tiny_bundle)
    panel.set_image(pattern("flat", np.random.default_rng(0)))
    settle(qtbot, panel)
    assert "has no classifier" in panel.status.text()
    assert panel.predictions == []
    assert panel.head_combo.count() == 0


def test_top_classes_come_from_the_bundle_head_off_the_gui_thread(
    qtbot, panel, headed_bundle, monkeypatch
):
    threads = []
    real = rp.image_features

    def spy(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(rp, "image_features", spy)
    panel.set_bundle(headed_bundle)
    assert panel.head_combo.currentText() == "Model: stripes"
    with qtbot.waitSignal(
        panel.predictionsChanged,
        timeout=30000,
        check_params_cb=lambda best: len(best) == len(KINDS),
    ) as sig:
        panel.set_image(pattern("vertical", np.random.default_rng(9)))
    best = sig.args[0]
    assert [p for _, p in best] == sorted((p for _, p in best), reverse=True)
    assert abs(sum(p for _, p in best) - 1) < 1e-4
    assert best[0][0] == "vertical"
    assert threads
    assert not any(threads)
    assert panel.row_labels[0].text().startswith("vertical")
    panel.set_image(None)
    settle(qtbot, panel)
    assert panel.predictions == []
    assert "Open an image" in panel.status.text()


def test_fewshot_classes_build_a_classifier_with_loo(qtbot, panel, tiny_bundle, examples, tmp_path):
    panel.set_bundle(tiny_bundle)
    panel.set_image(pattern("horizontal", np.random.default_rng(11)))
    for kind in KINDS:
        panel.add_class(kind, examples[kind])
    qtbot.waitUntil(lambda: panel.fewshot_loo is not None, timeout=30000)
    settle(qtbot, panel)
    head = panel.fewshot_head
    assert head.class_names == list(KINDS)
    assert head.info["train_size"] == 12
    assert panel.fewshot_loo >= 0.5  # chance is 1/3
    assert "Leave-one-out accuracy" in panel.fewshot_status.text()
    assert panel.head_combo.currentData() == rp.FEWSHOT
    assert len(panel.predictions) == len(KINDS)
    assert panel.save_button.isEnabled()
    panel.save_fewshot(tmp_path / "few.npz")
    back = load_head(tmp_path / "few.npz")
    x = np.random.default_rng(0).normal(size=(3, head.feature_dim)).astype(np.float32)
    assert np.array_equal(back.predict_proba(x), head.predict_proba(x))
    # removing a class below two drops the classifier
    panel.remove_class(panel.classes[0])
    panel.remove_class(panel.classes[0])
    settle(qtbot, panel)
    assert panel.fewshot_head is None
    assert panel.head_combo.findData(rp.FEWSHOT) < 0
    assert not panel.save_button.isEnabled()


def test_dropping_files_adds_examples_and_skips_unreadable(
    qtbot, panel, tiny_bundle, examples, tmp_path
):
    panel.set_bundle(tiny_bundle)
    a = panel.add_class("horizontal", examples["horizontal"][:2])
    b = panel.add_class("vertical")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in [*examples["vertical"][:2], broken]])
    event = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    b.list.dropEvent(event)
    qtbot.waitUntil(lambda: panel.fewshot_head is not None and not panel.busy(), timeout=30000)
    assert len(a.examples) == 2
    assert len(b.examples) == 2
    assert b.list.count() == 2
    assert panel.fewshot_head.info["train_size"] == 4
    assert "Skipped 1 unreadable" in panel.fewshot_status.text()


def test_current_image_can_be_an_example(qtbot, panel, tiny_bundle):
    panel.set_bundle(tiny_bundle)
    rng = np.random.default_rng(3)
    a, b = panel.add_class("flat"), panel.add_class("vertical")
    panel.add_current_image(a)
    assert "no image" in panel.fewshot_status.text()
    panel.set_image(pattern("flat", rng))
    panel.add_current_image(a)
    panel.set_image(pattern("vertical", rng))
    panel.add_current_image(b)
    qtbot.waitUntil(lambda: panel.fewshot_head is not None and not panel.busy(), timeout=30000)
    assert panel.predictions
    assert panel.predictions[0][0] == "vertical"
    assert "Add 2 or more examples" in panel.fewshot_status.text()


def test_duplicate_class_names_are_refused(qtbot, panel, tiny_bundle, examples):
    panel.set_bundle(tiny_bundle)
    panel.add_class("same", examples["flat"][:1])
    panel.add_class("same", examples["vertical"][:1])
    settle(qtbot, panel)
    assert panel.fewshot_head is None
    assert "own name" in panel.fewshot_status.text()


def test_head_for_another_model_is_refused(qtbot, panel, tiny_bundle, tmp_path):
    panel.set_bundle(tiny_bundle)
    wrong = fit_centroid(np.eye(4, 7, dtype=np.float32), np.arange(4) % 2, ["a", "b"])
    wrong.save(tmp_path / "wrong.npz")
    assert not panel.load_head_file(tmp_path / "wrong.npz")
    assert "takes 7 features" in panel.status.text()
    assert panel.head_combo.count() == 0
    d = tiny_bundle.manifest.features_dim
    good = fit_centroid(
        np.random.default_rng(0).normal(size=(4, d)),
        np.arange(4) % 2,
        ["a", "b"],
        bundle=tiny_bundle,
    )
    good.save(tmp_path / "good.npz")
    with qtbot.waitSignal(
        panel.predictionsChanged, timeout=30000, check_params_cb=lambda best: len(best) == 2
    ):
        panel.set_image(pattern("flat", np.random.default_rng(0)))
        assert panel.load_head_file(tmp_path / "good.npz")
    assert panel.head_combo.currentText() == "File: good.npz"


def test_no_features_while_the_panel_is_hidden(qtbot, headed_bundle, monkeypatch):
    calls = []
    real = rp.image_features

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(rp, "image_features", spy)
    panel = RecognitionPanel()
    qtbot.addWidget(panel)
    panel.set_bundle(headed_bundle)
    rng = np.random.default_rng(4)
    for kind in KINDS:  # image changes while the tab is hidden: no model call
        panel.set_image(pattern(kind, rng))
    settle(qtbot, panel)
    assert calls == []
    assert panel.predictions == []
    with qtbot.waitSignal(
        panel.predictionsChanged, timeout=30000, check_params_cb=lambda best: len(best) == 3
    ):
        panel.show()  # one call, for the image on show now
    assert calls == [1]
    assert panel.predictions[0][0] == "flat"
    panel.hide()
    panel.set_image(pattern("vertical", rng))
    settle(qtbot, panel)
    assert calls == [1]
    panel.wait_idle()
