"""Saving in the background: the window keeps answering keys while a large PNG is written,
the final name never holds a half-written file, and closing during a save finishes it first.

bench/save_latency.py measures the event-loop latency while a 4000x3000 image is saved."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow

pytestmark = pytest.mark.timeout(120)
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def win(qtbot):
    window = MainWindow(Editor(), Preferences(), interactive=True)
    window.resize(1100, 750)
    qtbot.addWidget(window, before_close_func=lambda w: setattr(w, "interactive", False))
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    return window


def noise(h: int, w: int) -> np.ndarray:
    """Pixels that do not compress: the encoder has real work to do."""
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


class Watcher:
    """A 5 ms timer that counts event-loop turns during the save and checks the target."""

    def __init__(self, window, target):
        self.window, self.target = window, target
        self.ticks_saving = 0
        self.bar_seen = False
        self.complete_files = []
        self.timer = QTimer(interval=5)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        if not self.window.editor.saving:
            return
        self.ticks_saving += 1
        self.bar_seen |= self.window.save_progress.bar.isVisible()
        if self.target.exists():  # visible under its name only once complete
            with Image.open(self.target) as image:
                image.load()
            self.complete_files.append(True)


def test_the_window_answers_keys_while_a_large_image_is_saved(win, qtbot, tmp_path, monkeypatch):
    editor = win.editor
    rgb = noise(1200, 1600)
    editor.set_image(rgb)
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "big.png"
    monkeypatch.setattr(win, "choose_file", lambda *a, **k: str(target))
    watcher = Watcher(win, target)
    tool_at_saved = []
    editor.saved.connect(lambda _path: tool_at_saved.append(win.canvas.tool))
    editor.saving_changed.connect(
        lambda on: on and QTimer.singleShot(0, lambda: QTest.keyClick(win.canvas, Qt.Key.Key_E))
    )
    assert win.canvas.tool == "brush"
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_S, CTRL)
    watcher.timer.stop()
    assert tool_at_saved == ["eraser"]  # the key pressed during the save was handled during it
    assert watcher.ticks_saving >= 3
    assert watcher.bar_seen
    assert not win.save_progress.bar.isVisible()
    assert not editor.saving
    assert np.array_equal(np.asarray(Image.open(target).convert("RGB")), rgb)
    assert [p.name for p in folder.iterdir()] == ["big.png"]  # no temporary file left
    assert not editor.document.modified
    assert win.output_path == str(target)


def test_closing_during_a_save_finishes_the_file_then_closes(win, qtbot, tmp_path, monkeypatch):
    editor = win.editor
    rgb = noise(1000, 1400)
    editor.set_image(rgb)
    editor.document.apply_image_patch(0, 0, np.zeros((4, 4, 3), np.uint8), "edit")
    rgb = editor.document.rgb.copy()
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "closing.png"
    monkeypatch.setattr(win, "choose_file", lambda *a, **k: str(target))
    closed_while_saving = []

    def quit_now(on: bool) -> None:
        if on:
            QTimer.singleShot(0, lambda: QTest.keyClick(win.canvas, Qt.Key.Key_Q, CTRL))
            QTimer.singleShot(1, lambda: closed_while_saving.append(not win.isVisible()))

    editor.saving_changed.connect(quit_now)
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_S, CTRL)
    assert closed_while_saving == [False]  # Ctrl+Q waited for the file
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)  # then the window closed
    assert np.array_equal(np.asarray(Image.open(target).convert("RGB")), rgb)
    assert [p.name for p in folder.iterdir()] == ["closing.png"]


def test_a_second_save_while_saving_is_refused_in_one_line(win, qtbot, tmp_path, monkeypatch):
    editor = win.editor
    editor.set_image(noise(900, 1200))
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    answers = iter([str(first), str(second)])
    monkeypatch.setattr(win, "choose_file", lambda *a, **k: next(answers))
    editor.saving_changed.connect(
        lambda on: (
            on
            and not second.exists()
            and QTimer.singleShot(
                0, lambda: QTest.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_S, CTRL)
            )
        )
    )
    shown = []  # the banner's text while the first save runs (it goes once that is saved)
    editor.error.connect(lambda _text: shown.append(win.banner.text.text()))
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_S, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert first.is_file()
    assert not second.exists()
    assert len(shown) == 1
    assert "still saving" in shown[0]
    assert "first.png" in shown[0]
