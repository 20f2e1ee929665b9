"""The Run panel's Texture setting: chosen with real clicks and keys, it reaches the run and the
saved PNG's settings, and the progress bar says when the texture stage runs."""

from dataclasses import replace

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui.conftest import photo


def _choose(qtbot, combo, title):
    """Open the combo with a click and pick `title` with the arrow keys and Enter."""
    QTest.mouseClick(combo, Qt.MouseButton.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=3000)
    target = combo.findText(title)
    while combo.view().currentIndex().row() != target:
        key = Qt.Key.Key_Down if view.currentIndex().row() < target else Qt.Key.Key_Up
        QTest.keyClick(view, key)
    QTest.keyClick(view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: combo.currentText() == title, timeout=3000)


def test_texture_choice_reaches_the_run(window, tiny_bundle, qtbot):
    editor, panel = window.editor, window.run_panel
    editor.models.use(tiny_bundle)
    editor.set_image(photo())
    assert panel.texture.currentText() == "From the photo"
    assert panel.texture.isVisible()
    mask = np.zeros(editor.document.rgb.shape[:2], bool)
    mask[40:80, 60:110] = True
    editor.set_mask(mask)
    editor.set_options(replace(editor.options, fixed_seed=True, seed=3))

    runs = {}
    for title, texture in (("Model only", "model"), ("From the photo", "photo")):
        _choose(qtbot, panel.texture, title)
        assert editor.options.texture == texture
        formats: list[str] = []
        set_format = panel.progress.setFormat
        panel.progress.setFormat = lambda text, f=formats, s=set_format: (f.append(text), s(text))
        with qtbot.waitSignal(editor.run_changed, timeout=30000):
            editor.start_run()
        assert editor.run.settings.texture == texture
        runs[texture] = editor.run.candidates[0].patch.rgb.copy()
        del panel.progress.setFormat
        if texture == "photo":
            assert "Adding the photo's texture..." in formats
        else:
            assert not any("texture" in f for f in formats)
            assert any(f.startswith("Step") for f in formats)
        editor.undo_stack.undo()  # back to the photo with its mask
    assert runs["photo"].shape == runs["model"].shape
    assert np.abs(runs["photo"].astype(int) - runs["model"]).mean() > 1.0


def test_texture_hidden_for_generate_and_no_classic_extend(window, tiny_bundle, qtbot):
    editor, panel = window.editor, window.run_panel
    editor.models.use(tiny_bundle)
    editor.set_image(photo())
    _choose(qtbot, panel.mode, "Generate new image")
    assert not panel.texture.isVisible()
    _choose(qtbot, panel.mode, "Extend canvas")
    assert panel.texture.isVisible()
    assert panel.texture.view().isRowHidden(panel.texture.findData("classic"))
    editor.set_options(replace(editor.options, texture="classic"))
    assert editor.options.settings((1,)).texture == "photo"
