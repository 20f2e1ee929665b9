"""The editor from the keyboard alone: Tab and Shift+Tab move focus through every control,
backslash shows the original, menu shortcuts work from number boxes and lists (not in text
fields), and a sample is opened, refilled, compared, saved and the window closed with keys."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QSpinBox

from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow
from app.ui.qimage import rgb_to_argb32

pytestmark = pytest.mark.timeout(120)
NONE = Qt.KeyboardModifier.NoModifier
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


@pytest.fixture(autouse=True)
def _fresh_settings(qapp):
    Preferences()._s.clear()  # one settings file serves the whole test process
    yield
    Preferences()._s.clear()


@pytest.fixture
def win(qtbot, tiny_bundle):
    window = MainWindow(Editor(), Preferences(), interactive=True)
    window.resize(1280, 720)
    qtbot.addWidget(window, before_close_func=lambda w: setattr(w, "interactive", False))
    window.editor.models.use(tiny_bundle)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    yield window
    window.editor.jobs.cancel()
    window.editor.jobs.wait_idle(10)


def key(keycode, modifiers=NONE) -> None:
    """A key press and release where the focus is, as the keyboard would send it."""
    focus = QApplication.focusWidget()
    assert focus is not None
    QTest.keyClick(focus, keycode, modifiers)


def tab_through(count: int, modifiers=NONE) -> list:
    seen = []
    for _ in range(count):
        key(Qt.Key.Key_Tab, modifiers)
        seen.append(QApplication.focusWidget())
    return seen


def test_tab_moves_focus_through_the_controls_in_reading_order(win, qtbot):
    win.editor.set_image(np.full((96, 128, 3), 90, np.uint8))
    win.canvas.setFocus()
    run, results = win.run_panel, win.results_panel
    forward = tab_through(12)
    expected = [run.mode, run.run_button, run.steps, run.temperature, run.fixed_seed]
    assert [w for w in forward if w in expected] == expected  # hidden and disabled skipped
    assert forward[0] is run.mode  # the canvas hands focus to the task first
    assert all(w.window() is win for w in forward)
    backward = tab_through(len(forward), SHIFT)
    assert backward[-1] is win.canvas  # Shift+Tab walks the same way back
    # the whole loop: canvas -> Run panel -> results -> Recognition -> brush size -> canvas
    loop = tab_through(60)
    assert win.canvas in loop
    assert win.brush_spin in loop
    assert loop.index(run.seamless) < loop.index(win.recognition_panel.head_combo)
    assert loop.index(win.recognition_panel.head_combo) < loop.index(win.brush_spin)
    assert results.reroll not in loop  # disabled before a run: Tab skips it


def test_backslash_shows_the_original_from_a_number_box(win, qtbot):
    editor = win.editor
    editor.set_image(np.full((96, 128, 3), 90, np.uint8))
    editor.document.apply_image_patch(0, 0, np.zeros((8, 8, 3), np.uint8), "dark corner")
    win.run_panel.steps.setFocus()
    QTest.keyPress(win.run_panel.steps, Qt.Key.Key_Backslash)
    assert win.canvas.original_label.isVisible()
    assert win.actions_["original"].isChecked()
    assert win.canvas._image._buffer[2, 2] == rgb_to_argb32(np.full((1, 1, 3), 90, np.uint8))[0, 0]
    QTest.keyRelease(win.run_panel.steps, Qt.Key.Key_Backslash)
    assert not win.canvas.original_label.isVisible()
    steps: QSpinBox = win.run_panel.steps
    assert QApplication.focusWidget() is steps  # focus stayed
    assert steps.value() == 0  # and the box did not take the key


def test_menu_shortcuts_work_from_number_boxes_but_not_in_text(win, qtbot):
    editor = win.editor
    editor.set_image(np.full((96, 128, 3), 90, np.uint8))
    editor.set_mask(np.pad(np.ones((32, 32), bool), ((30, 34), (40, 56))))
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=10000)
    seed = win.run_panel.seed
    win.run_panel.fixed_seed.setChecked(True)
    seed.setFocus()
    with qtbot.waitSignal(editor.run_changed, timeout=60000):
        key(Qt.Key.Key_R, SHIFT)  # Run, from a number box
    assert editor.run is not None
    assert editor.undo_stack.count() == 2
    key(Qt.Key.Key_Z, CTRL)  # Undo, from the same box
    assert editor.undo_stack.index() == 1
    # Delete still edits the number instead of clearing the mask
    QTest.keyClick(seed, Qt.Key.Key_End)
    QTest.keyClick(seed, Qt.Key.Key_Backspace)
    QTest.keyClick(seed, Qt.Key.Key_Delete)
    assert editor.document.mask.any()
    # in a text field the same keys are text
    panel = win.recognition_panel
    win.recognition_dock.raise_()
    QTest.mouseClick(panel.add_class_button, Qt.MouseButton.LeftButton)
    field = panel.classes[-1].name_edit
    field.setFocus()
    field.clear()
    QTest.keyClick(field, Qt.Key.Key_R, SHIFT)
    QTest.keyClick(field, Qt.Key.Key_Z, CTRL)  # the field's own undo
    QTest.keyClicks(field, "ed")
    assert field.text() == "ed"
    assert not editor.jobs.busy
    assert editor.undo_stack.index() == 1


@pytest.mark.slow  # a real refill of a sample photo: about 6 s on a busy CPU
def test_remove_compare_save_and_quit_with_the_keyboard_alone(win, qtbot, tmp_path):
    """A sample card, Run, hold backslash, Ctrl+S with the file dialog answered by keys,
    Ctrl+Q: no mouse and no method calls."""
    editor = win.editor
    assert win.welcome.isVisible()
    assert len(win.welcome.buttons) >= 2
    assert QApplication.focusWidget() is win.welcome.buttons[0]  # the first card to start
    key(Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is win.welcome.buttons[1]
    key(Qt.Key.Key_Tab, SHIFT)  # back to the first sample card
    assert QApplication.focusWidget() is win.welcome.buttons[0]
    key(Qt.Key.Key_Space)
    assert editor.document is not None
    assert editor.document.mask.any()
    assert not win.welcome.isVisible()
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=10000)
    with qtbot.waitSignal(editor.run_changed, timeout=60000):
        key(Qt.Key.Key_R, SHIFT)
    doc = editor.document
    assert not np.array_equal(doc.rgb, doc.original)
    focus = QApplication.focusWidget()
    assert focus is not None
    QTest.keyPress(focus, Qt.Key.Key_Backslash)
    assert np.array_equal(win.canvas._image._buffer, rgb_to_argb32(doc.original))
    QTest.keyRelease(focus, Qt.Key.Key_Backslash)
    assert np.array_equal(win.canvas._image._buffer, rgb_to_argb32(doc.rgb))

    target = tmp_path / "keyboard-only.png"
    answered = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        field = QApplication.focusWidget()
        if not isinstance(dialog, QFileDialog) or field is None or field.window() is not dialog:
            QTimer.singleShot(30, answer)
            return
        if not isinstance(field, QLineEdit):  # the dialog opens in its file name field
            dialog.reject()
            return
        QTest.keyClick(field, Qt.Key.Key_A, CTRL)
        QTest.keyClicks(field, str(target))
        QTest.keyClick(field, Qt.Key.Key_Return)
        answered.append(True)

    QTimer.singleShot(30, answer)
    with qtbot.waitSignal(editor.saved, timeout=30000):
        key(Qt.Key.Key_S, CTRL)
    assert answered
    assert target.is_file()
    saved = np.asarray(Image.open(target).convert("RGB"))
    assert np.array_equal(saved, doc.rgb)
    assert not doc.modified
    # offscreen there is no window manager to make the window active again after the dialog
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=5000)
    QTest.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_Q, CTRL)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)
