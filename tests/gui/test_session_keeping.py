"""A session is never deleted unless the user said so: scripted restores, --open over a
restore, and the Save / Discard / Cancel question before an image with edits is closed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from app import launch
from app.autosave import Autosaver, SessionStore
from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow
from engine.runtime.imageio import load_image
from gui.conftest import photo, run_main


@pytest.fixture
def root(tmp_path):
    return tmp_path / "data" / "session"


def _mask(h, w, box):
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def _crashed(root: Path) -> bytes:
    """A session a crash left behind; returns its session.json bytes."""
    editor = Editor()
    saver = Autosaver(editor, root=root, delay_ms=20)
    editor.set_image(photo())
    saver.start()
    editor.set_mask(_mask(120, 160, (5, 5, 30, 30)))
    saver.close(clean=False)
    return (root / "session.json").read_bytes()


def _window(qtbot, root, interactive: bool):
    editor = Editor()
    saver = Autosaver(editor, root=root, delay_ms=20)
    window = MainWindow(editor, Preferences(), interactive=interactive, autosaver=saver)
    qtbot.addWidget(window)
    return window, saver


def _never_ask(parent, info):
    raise AssertionError("a scripted run asked")


# -- scripted restores ------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["ask", "yes"])
def test_a_scripted_run_never_removes_or_rewrites_the_session(qtbot, root, monkeypatch, choice):
    before = _crashed(root)
    monkeypatch.setattr(launch, "ask_restore", _never_ask)
    window, saver = _window(qtbot, root, interactive=False)
    restored = launch.offer_restore(window, saver, choice, scripted=True)
    assert restored == (choice == "yes")
    assert (window.editor.document is not None) == (choice == "yes")
    if restored:  # a scripted edit on the restored image
        window.editor.set_mask(_mask(120, 160, (50, 50, 90, 90)))
    window.close()  # the end of a --screenshot run
    assert (root / "session.json").read_bytes() == before
    assert not (root.parent / "older sessions").exists()
    _again, saver2 = _window(qtbot, root, interactive=False)
    assert saver2.pending() is not None  # still offered at the next start
    saver2.close(clean=False)


def test_an_explicit_open_wins_over_a_restore(qtbot, root, monkeypatch):
    before = _crashed(root)
    monkeypatch.setattr(launch, "ask_restore", _never_ask)
    # scripted: not restored, left where it was
    window, saver = _window(qtbot, root, interactive=False)
    assert not launch.offer_restore(window, saver, "yes", opening="rocket.jpg", scripted=True)
    assert window.editor.document is None
    window.close()
    assert (root / "session.json").read_bytes() == before
    # interactive: not restored, and kept in "older sessions" before autosave reuses the folder
    window, saver = _window(qtbot, root, interactive=True)
    assert not launch.offer_restore(window, saver, "yes", opening="rocket.jpg")
    kept = list((root.parent / "older sessions").glob("*-not restored/session.json"))
    assert [p.read_bytes() for p in kept] == [before]
    assert "rocket.jpg was opened instead" in window.banner.text.text()
    saver.close(clean=False)


def _data_home_session(data_home: Path) -> Path:
    return data_home / "MAGE Studio" / "session"


@pytest.mark.slow
def test_scripted_main_runs_keep_the_crashed_session(tmp_path):
    """main.py --restore yes --screenshot --save, MAGE_STUDIO_RESTORE=yes with --open, and
    --restore ask with --screenshot (which must not wait on a question)."""
    data_home = tmp_path / "xdg"
    folder = _data_home_session(data_home)
    before = _crashed(folder)
    env = dict(os.environ, XDG_DATA_HOME=str(data_home), QT_QPA_PLATFORM="offscreen")
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    shot, out = tmp_path / "s.png", tmp_path / "out.png"
    done = run_main(
        "--restore", "yes", "--screenshot", shot, "--save", out, "--model", no_model, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    restored = SessionStore(folder).load()[0]
    np.testing.assert_array_equal(load_image(out).rgb, restored.rgb)
    assert (folder / "session.json").read_bytes() == before

    rocket = tmp_path / "rocket.png"
    Image.fromarray(photo(64, 96)).save(rocket)
    done = run_main(
        "--open", rocket, "--screenshot", shot, "--save", out, "--model", no_model,
        env=dict(env, MAGE_STUDIO_RESTORE="yes"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_image(out).rgb.shape == (64, 96, 3)  # the opened image, not the restored one
    assert "was not restored (--open was given)" in done.stderr
    assert (folder / "session.json").read_bytes() == before

    done = run_main(
        "--restore", "ask", "--screenshot", shot, "--model", no_model, env=env, timeout=60
    )
    assert done.returncode == 0
    assert "a scripted run never asks" in done.stderr
    assert (folder / "session.json").read_bytes() == before


# -- the close question -----------------------------------------------------------------------


def _answer(key, seen: list) -> None:
    """Acts in the unsaved-changes question as soon as it is up: presses `key` with QTest,
    or clicks Discard (key None; its shortcut differs between styles). `seen` gets (Save is
    the default, the question's text)."""
    deadline = time.monotonic() + 60  # a loaded machine may take seconds to show it

    def act():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or box.windowTitle() != "Unsaved changes":
            if time.monotonic() < deadline:
                QTimer.singleShot(10, act)
            return
        save = box.button(QMessageBox.StandardButton.Save)
        seen.append((box.defaultButton() is save, box.text()))
        if key is None:
            box.button(QMessageBox.StandardButton.Discard).click()
        else:
            QTest.keyClick(box, key)

    QTimer.singleShot(0, act)


def _edited(qtbot, root, output: Path | None):
    window, saver = _window(qtbot, root, interactive=True)
    window.show()
    window.editor.set_image(photo())
    saver.start()
    window.editor.set_mask(_mask(120, 160, (5, 5, 30, 30)))
    assert window.editor.document.modified
    assert saver.flush()
    if output is not None:
        window.output_path = str(output)
    return window, saver


def _leave(window, saver) -> None:
    """The test is over: the teardown's close must not ask about the edits."""
    saver.close(clean=False)
    window.interactive = False


def _asked(seen) -> tuple:
    assert len(seen) == 1, seen
    return seen[0]


def test_enter_in_the_close_question_saves_and_then_closes(qtbot, root, tmp_path):
    out = tmp_path / "out.png"
    window, _saver = _edited(qtbot, root, out)
    seen: list = []
    _answer(Qt.Key.Key_Return, seen)
    assert window.close()
    save_is_default, text = _asked(seen)
    assert save_is_default
    assert "unsaved changes" in text
    np.testing.assert_array_equal(load_image(out).rgb, window.editor.document.rgb)
    assert not window.isVisible()
    assert not (root / "session.json").exists()  # saved, then closed on purpose


def test_a_save_that_does_not_happen_keeps_the_window_open(qtbot, root, tmp_path, monkeypatch):
    # no output file yet: Save asks for one, and the user cancels that dialog
    window, saver = _edited(qtbot, root, None)
    monkeypatch.setattr(window, "choose_file", lambda *a, **k: "")
    seen: list = []
    _answer(Qt.Key.Key_Return, seen)
    assert not window.close()
    _asked(seen)
    assert window.isVisible()
    assert window.editor.document.modified
    # a save that fails (the folder is gone): still open, nothing lost
    window.output_path = str(tmp_path / "gone" / "out.png")
    seen.clear()
    _answer(Qt.Key.Key_Return, seen)
    assert not window.close()
    assert window.isVisible()
    assert window.editor.document.modified
    assert (root / "session.json").is_file()
    _leave(window, saver)


def test_escape_in_the_close_question_cancels(qtbot, root, tmp_path):
    window, saver = _edited(qtbot, root, tmp_path / "out.png")
    seen: list = []
    _answer(Qt.Key.Key_Escape, seen)
    assert not window.close()
    _asked(seen)
    assert window.isVisible()
    assert not (tmp_path / "out.png").exists()
    _leave(window, saver)


def test_discard_keeps_the_session_in_older_sessions(qtbot, root, tmp_path):
    window, _saver = _edited(qtbot, root, tmp_path / "out.png")
    doc = window.editor.document
    seen: list = []
    _answer(None, seen)
    assert window.close()
    _asked(seen)
    kept = list((root.parent / "older sessions").glob("*-discarded"))
    assert len(kept) == 1
    again = SessionStore(kept[0]).load()[0]
    np.testing.assert_array_equal(again.mask, doc.mask)
    assert again.history_index == doc.history_index == 1
    assert not (root / "session.json").exists()
    assert not (tmp_path / "out.png").exists()


def test_opening_another_image_after_discard_keeps_the_old_session(qtbot, root, tmp_path):
    window, saver = _edited(qtbot, root, None)
    other = tmp_path / "other.png"
    Image.fromarray(photo(64, 96)).save(other)
    seen: list = []
    _answer(None, seen)
    assert window.open_path(str(other))
    _asked(seen)
    assert window.editor.document.size == (96, 64)
    kept = list((root.parent / "older sessions").glob("*-discarded"))
    assert len(kept) == 1
    assert SessionStore(kept[0]).load()[0].size == (160, 120)
    # autosave goes on with the new image in the session folder
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if saver.flush() and (root / "session.json").is_file():
            break
    assert SessionStore(root).load()[0].size == (96, 64)
    _leave(window, saver)


def test_generate_over_unsaved_edits_keeps_them_in_older_sessions(qtbot, root, monkeypatch):
    window, saver = _edited(qtbot, root, None)
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    older = root.parent / "older sessions"
    assert not window._confirm_generate()
    assert not older.exists()
    assert window._confirm_generate()
    kept = list(older.glob("*-discarded"))
    assert len(kept) == 1
    assert SessionStore(kept[0]).load()[0].history_index == 1
    _leave(window, saver)
