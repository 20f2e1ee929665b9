"""Prompts and messages that belong to one image: Generate asks only when there are edits to
lose, and the "Done" bar and a file's notice go when another image opens. Driven with keys,
clicks and drops on a real window."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow
from gui.conftest import photo

pytestmark = pytest.mark.timeout(120)
SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture(autouse=True)
def _fresh_settings(qapp):
    Preferences()._s.clear()
    yield
    Preferences()._s.clear()


@pytest.fixture
def win(qtbot, tiny_bundle):
    window = MainWindow(Editor(), Preferences(), interactive=True)
    window.resize(1100, 750)
    qtbot.addWidget(window, before_close_func=lambda w: setattr(w, "interactive", False))
    window.editor.models.use(tiny_bundle)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    yield window
    window.editor.jobs.cancel()
    window.editor.jobs.wait_idle(10)


def drop(window, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    target, at = window.canvas.viewport(), QPointF(50, 50)
    copy, left, plain = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    for event in (
        QDragEnterEvent(at.toPoint(), copy, mime, left, plain),
        QDropEvent(at, copy, mime, left, plain),
    ):
        QApplication.sendEvent(target, event)


def run(window, qtbot) -> None:
    with qtbot.waitSignal(window.editor.run_changed, timeout=60000):
        QTest.keyClick(window.canvas, Qt.Key.Key_R, SHIFT)


def stroke(window, points) -> None:
    viewport = window.canvas.viewport()
    at = [window.canvas.mapFromScene(QPointF(*p)) for p in points]
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[0])
    for p in at[1:]:
        QTest.mouseMove(viewport, p)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[-1])


def choose_mode(window, title: str) -> None:
    mode = window.run_panel.mode
    mode.setFocus()
    for _ in range(mode.count()):
        if mode.currentText() == title:
            break
        QTest.keyClick(mode, Qt.Key.Key_Down)
    assert mode.currentText() == title
    window.canvas.setFocus()


def test_generate_asks_only_when_there_are_edits_to_lose(win, qtbot, monkeypatch):
    asked = []

    def question(*args, **kwargs):
        asked.append(args[2])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    # a sample opened with one click holds no edit of the user's
    QTest.mouseClick(win.welcome.buttons[0], Qt.MouseButton.LeftButton)
    assert win.editor.document is not None
    assert win.editor.document.mask.any()
    choose_mode(win, "Generate new image")
    run(win, qtbot)
    assert asked == []
    run(win, qtbot)  # an untouched generated image: nothing to lose either
    assert asked == []
    win.canvas.set_brush_size(8)
    stroke(win, [(10, 10), (30, 20)])  # an edit: now Generate asks
    run(win, qtbot)
    assert len(asked) == 1
    assert "unsaved edits and undo history are lost" in asked[0]


def test_done_bar_and_a_files_notice_go_when_another_image_opens(win, qtbot, tmp_path, monkeypatch):
    frames = [Image.fromarray(photo(60, 80)), Image.fromarray(photo(60, 80)[::-1].copy())]
    animated = tmp_path / "animated.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    drop(win, animated)
    assert win.banner.isVisible()
    assert "animated.gif" in win.banner.text.text()
    plain = tmp_path / "plain.png"
    Image.fromarray(photo(120, 160)).save(plain)
    drop(win, plain)
    assert not win.banner.isVisible()  # the GIF's notice went with the GIF
    win.canvas.set_brush_size(16)
    stroke(win, [(60, 50), (90, 55)])
    qtbot.waitUntil(lambda: win.editor.plan is not None, timeout=10000)
    run(win, qtbot)
    progress = win.run_panel.progress
    qtbot.waitUntil(lambda: progress.format() == "Done", timeout=5000)
    # the refilled photo has unsaved changes: discard them
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    drop(win, animated)
    assert win.editor.document.path.endswith("animated.gif")
    assert progress.format() == "Idle"
    assert progress.value() == 0
    assert np.asarray(win.editor.document.rgb).shape == (60, 80, 3)
