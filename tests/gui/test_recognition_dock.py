"""The recognition dock: present in every window; a panel that fails to start is logged and the
editor opens without the dock."""

from __future__ import annotations

import logging

from app.editor import Editor
from app.preferences import Preferences
from app.ui import recognition_panel
from app.ui.main_window import MainWindow


def _window(qtbot) -> MainWindow:
    win = MainWindow(Editor(), Preferences(), interactive=False)
    qtbot.addWidget(win)
    return win


def test_every_window_has_the_recognition_dock(qtbot):
    win = _window(qtbot)
    assert isinstance(win.recognition_panel, recognition_panel.RecognitionPanel)
    assert win.recognition_dock is not None
    assert win.recognition_dock.widget() is not None


def test_a_panel_that_fails_to_start_leaves_the_editor_without_its_dock(qtbot, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("recognition settings unreadable")

    monkeypatch.setattr(recognition_panel, "RecognitionPanel", broken)
    with caplog.at_level(logging.ERROR):
        win = _window(qtbot)
    assert win.recognition_panel is None
    assert win.recognition_dock is None
    assert "recognition panel failed to load" in caplog.text
    assert "recognition settings unreadable" in caplog.text
