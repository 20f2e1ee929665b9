"""In the window, the Recognition tab sits behind the Run tab: editing the image there costs no
model call; bringing the tab forward computes the features of the image on show, once."""

import numpy as np

import app.recognition as recognition
from gui.conftest import photo


def test_features_wait_for_the_recognition_tab(window, tiny_bundle, qtbot, monkeypatch):
    calls = []
    real = recognition.image_features

    def spy(bundle, images, *args, **kwargs):
        calls.append(images[0].copy())
        return real(bundle, images, *args, **kwargs)

    monkeypatch.setattr(recognition, "image_features", spy)
    panel, editor = window.recognition_panel, window.editor
    window.run_dock.raise_()
    qtbot.waitUntil(lambda: not panel.model.active, timeout=3000)
    editor.models.use(tiny_bundle)
    qtbot.waitUntil(lambda: panel.bundle is tiny_bundle, timeout=10000)
    editor.set_image(photo())
    mask = np.zeros(editor.document.rgb.shape[:2], bool)
    mask[10:30, 10:30] = True
    editor.set_mask(mask)
    editor.set_image(photo(96, 128))
    assert not panel.busy()
    qtbot.wait(200)
    assert calls == []
    window.recognition_dock.raise_()
    qtbot.waitUntil(lambda: panel.model.active, timeout=3000)
    qtbot.waitUntil(lambda: len(calls) == 1 and not panel.busy(), timeout=30000)
    np.testing.assert_array_equal(calls[0], editor.document.rgb)  # the image on show
    window.run_dock.raise_()
    qtbot.waitUntil(lambda: not panel.model.active, timeout=3000)
    editor.set_image(photo(64, 64))
    qtbot.wait(200)
    assert len(calls) == 1
