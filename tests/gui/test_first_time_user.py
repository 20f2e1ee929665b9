"""What a first-time user trips over, driven with real key, mouse, wheel and drop events.

Zoom at the cursor, the H key and a translucent heatmap, banners that go away with their cause,
the first window size, editor-wide keys, a 1280x720 window, light-theme icons, the cost label,
Generate as a new document, the title after Save, the file checked before asking, few-shot
classes kept across restarts, and a file dialog wide enough to read.
"""

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QListWidget, QMessageBox, QTreeView

from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import GEOMETRY_SAVE_MS, MainWindow
from app.ui.theme import apply_theme
from engine.runtime.schedule import masked_counts
from gui.conftest import photo

pytestmark = pytest.mark.timeout(120)
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


@pytest.fixture(autouse=True)
def _fresh_settings(qapp):
    Preferences()._s.clear()  # one settings file serves the whole test process
    yield
    Preferences()._s.clear()
    apply_theme(qapp, "dark")


def _make_window(qtbot, interactive=True, size=(1100, 750)):
    win = MainWindow(Editor(), Preferences(), interactive=interactive)
    if size:
        win.resize(*size)
    # closed by the test run: nothing to ask about then
    qtbot.addWidget(win, before_close_func=lambda w: setattr(w, "interactive", False))
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    return win


@pytest.fixture
def win(qtbot):
    window = _make_window(qtbot)
    yield window
    window.editor.jobs.cancel()
    window.editor.jobs.wait_idle(10)


def _save_photo(tmp_path, name="photo.png", h=120, w=160):
    path = tmp_path / name
    Image.fromarray(photo(h, w)).save(path)
    return path


def _drop(window, path) -> None:
    """Drop a file on the canvas as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    target, at = window.canvas.viewport(), QPointF(50, 50)
    enter = QDragEnterEvent(
        at.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, enter)
    drop = QDropEvent(
        at,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, drop)


def _drag(window, points, button=Qt.MouseButton.LeftButton):
    canvas = window.canvas
    viewport = canvas.viewport()
    at = [canvas.mapFromScene(QPointF(*p)) for p in points]
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, at[0])
    for p in at[1:]:
        QTest.mouseMove(viewport, p)
    QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, at[-1])


def _wheel(widget, pos: QPoint, notches: int) -> None:
    global_pos = widget.mapToGlobal(pos)
    event = QWheelEvent(
        QPointF(pos),
        QPointF(global_pos),
        QPoint(),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def _run(window, qtbot) -> None:
    """Shift+R, then wait for the candidates."""
    with qtbot.waitSignal(window.editor.run_changed, timeout=60000):
        QTest.keyClick(window, Qt.Key.Key_R, SHIFT)


def _painted(window, qtbot, tiny_bundle):
    window.editor.models.use(tiny_bundle)
    window.editor.set_image(photo(120, 160))
    window.canvas.set_brush_size(16)
    _drag(window, [(60, 50), (90, 55), (100, 70)])
    qtbot.waitUntil(lambda: window.editor.plan is not None, timeout=10000)


# -- zoom -------------------------------------------------------------------------------------


def test_wheel_zooms_at_the_cursor_and_keys_at_the_view_centre(win, qtbot):
    win.editor.set_image(photo(300, 400))
    canvas, viewport = win.canvas, win.canvas.viewport()
    for notches, pos in (
        (1, QPoint(viewport.width() // 4, viewport.height() // 3)),
        (2, QPoint(viewport.width() * 3 // 4, viewport.height() // 2)),
        (-1, QPoint(40, viewport.height() - 40)),
    ):
        before, zoom = canvas.mapToScene(pos), canvas.zoom
        _wheel(viewport, pos, notches)
        assert canvas.zoom == pytest.approx(zoom * 1.25**notches)
        after = canvas.mapToScene(pos)
        tolerance = 1.5 / canvas.zoom + 0.5
        assert abs(after.x() - before.x()) < tolerance
        assert abs(after.y() - before.y()) < tolerance
    centre = viewport.rect().center()
    for key, mods in ((Qt.Key.Key_Equal, CTRL), (Qt.Key.Key_Minus, CTRL), (Qt.Key.Key_1, CTRL)):
        before, zoom = canvas.mapToScene(centre), canvas.zoom
        QTest.keyClick(win, key, mods)
        assert canvas.zoom != zoom
        after = canvas.mapToScene(centre)
        assert abs(after.x() - before.x()) < 2
        assert abs(after.y() - before.y()) < 2
    assert canvas.zoom == 1.0


# -- heatmap ----------------------------------------------------------------------------------


def test_h_toggles_a_translucent_heatmap_with_adjustable_opacity(win, qtbot, tiny_bundle):
    _painted(win, qtbot, tiny_bundle)
    assert not win.actions_["heatmap"].isEnabled()  # nothing to show before a run
    _run(win, qtbot)
    win.canvas.setFocus()
    QTest.keyClick(win.canvas, Qt.Key.Key_H)
    assert win.results_panel.heatmap.isChecked()
    assert win.actions_["heatmap"].isChecked()
    assert not win.banner.isVisible(), win.banner.text.text()
    part, colors = win.canvas._override
    alpha = colors[..., 3][part.token_mask]
    assert alpha.max() <= 128
    assert alpha.min() > 0
    QTest.keyClick(win.results_panel.opacity, Qt.Key.Key_End)  # slider to 100%
    _, stronger = win.canvas._override
    assert stronger[..., 3][part.token_mask].max() > alpha.max()
    QTest.keyClick(win.results_panel.opacity, Qt.Key.Key_Home)  # slider to 10%
    assert win.canvas._override[1][..., 3].max() <= 26
    QTest.keyClick(win.canvas, Qt.Key.Key_H)
    assert not win.results_panel.heatmap.isChecked()
    assert win.canvas._override is None


# -- banners ----------------------------------------------------------------------------------


def test_banners_go_away_with_their_cause(win, qtbot, tiny_bundle, tmp_path, monkeypatch):
    editor = win.editor
    editor.models.use(tiny_bundle)
    QTest.keyClick(win, Qt.Key.Key_R, SHIFT)
    assert win.banner.isVisible()
    assert "Open an image first" in win.banner.text.text()
    QGuiApplication.clipboard().setImage(_qimage(photo()))
    QTest.keyClick(win, Qt.Key.Key_V, CTRL)
    assert editor.document is not None
    assert not win.banner.isVisible()
    QTest.keyClick(win, Qt.Key.Key_R, SHIFT)
    assert "Paint over the area" in win.banner.text.text()
    win.canvas.set_brush_size(16)
    _drag(win, [(60, 50), (90, 55)])
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=10000)
    _run(win, qtbot)
    assert not win.banner.isVisible()
    # a failed save, then a good one; then the failure again and another file opened
    choices = iter(
        [
            str(tmp_path / "missing" / "out.png"),
            str(tmp_path / "out.png"),
            str(tmp_path / "missing" / "again.png"),
        ]
    )
    monkeypatch.setattr(win, "choose_file", lambda *a, **k: next(choices))
    QTest.keyClick(win, Qt.Key.Key_S, CTRL)
    assert win.banner.isVisible()
    assert "Cannot save" in win.banner.text.text()
    assert win.windowTitle().startswith("untitled *")
    QTest.keyClick(win, Qt.Key.Key_S, CTRL)
    assert (tmp_path / "out.png").is_file()
    assert not win.banner.isVisible()
    assert win.windowTitle() == "untitled - MAGE Studio"  # no "*" after Save
    _drag(win, [(20, 20), (30, 20)])
    QTest.keyClick(win, Qt.Key.Key_S, CTRL | SHIFT)
    assert "Cannot save" in win.banner.text.text()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    _drop(win, _save_photo(tmp_path))
    assert editor.document.path.endswith("photo.png")
    assert not win.banner.isVisible()


def _qimage(rgb):
    from app.ui.qimage import qimage_from_rgb

    return qimage_from_rgb(rgb)


def test_a_bad_file_is_reported_before_asking_about_unsaved_changes(win, tmp_path, monkeypatch):
    asked = []

    def question(*a, **k) -> QMessageBox.StandardButton:
        asked.append(a)
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", question)
    _drop(win, _save_photo(tmp_path))
    _drag(win, [(20, 20), (40, 30)])
    assert win.editor.document.modified
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    _drop(win, notes)
    assert not asked, "asked about unsaved changes for a file that cannot be opened"
    assert "Cannot load image" in win.banner.text.text()
    assert win.editor.document.path.endswith("photo.png")
    assert win.editor.document.mask.any()
    _drop(win, _save_photo(tmp_path, "other.png"))  # a good file: now it asks (Cancel)
    assert len(asked) == 1
    assert win.editor.document.path.endswith("photo.png")


# -- first launch -------------------------------------------------------------------------------


def test_first_launch_fills_a_share_of_the_screen_and_saves_geometry_early(qtbot):
    window = _make_window(qtbot, size=None)
    area = window.screen().availableGeometry()
    assert window.width() >= min(area.width(), 1000) * 0.95
    assert window.height() >= min(area.height(), 680) * 0.95
    assert window.width() <= area.width()
    assert window.height() <= area.height()
    QTest.qWait(GEOMETRY_SAVE_MS + 300)
    geometry, state = Preferences().window_state()  # saved without closing the window
    assert geometry is not None
    assert state is not None
    QTest.mouseDClick(window.results_dock, Qt.MouseButton.LeftButton)  # undock Results
    window.resize(700, 520)
    QTest.qWait(GEOMETRY_SAVE_MS + 300)
    again = MainWindow(Editor(), Preferences(), interactive=False)
    qtbot.addWidget(again)
    assert (again.width(), again.height()) == (window.width(), window.height()) != (800, 600)


# -- editor-wide keys -----------------------------------------------------------------------------


def test_compare_and_brush_keys_work_wherever_focus_is_except_text(win, qtbot, tiny_bundle):
    _painted(win, qtbot, tiny_bundle)
    _run(win, qtbot)
    candidates: QListWidget = win.results_panel.candidates
    rect = candidates.visualItemRect(candidates.item(0))
    QTest.mouseClick(
        candidates.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        rect.center(),
    )
    assert QApplication.focusWidget() is candidates
    doc = win.editor.document
    assert not np.array_equal(doc.rgb, doc.original)
    QTest.keyPress(candidates, Qt.Key.Key_Backslash)
    shown = win.canvas._image._buffer
    assert win.canvas.original_label.isVisible()
    assert QApplication.focusWidget() is candidates  # the key did not move focus
    from app.ui.qimage import rgb_to_argb32

    assert np.array_equal(shown, rgb_to_argb32(doc.original))
    QTest.keyRelease(candidates, Qt.Key.Key_Backslash)
    assert not win.canvas.original_label.isVisible()
    assert np.array_equal(win.canvas._image._buffer, rgb_to_argb32(doc.rgb))
    spin = win.brush_spin
    spin.setFocus()
    size = win.canvas.brush_size
    QTest.keyClick(spin, Qt.Key.Key_BracketLeft, Qt.KeyboardModifier.NoModifier)
    assert win.canvas.brush_size < size
    assert spin.value() == win.canvas.brush_size
    QTest.keyClick(spin, Qt.Key.Key_BracketRight, Qt.KeyboardModifier.NoModifier)
    assert win.canvas.brush_size >= size
    # typing text: the keys are characters there
    panel = win.recognition_panel
    win.recognition_dock.raise_()
    QTest.mouseClick(panel.add_class_button, Qt.MouseButton.LeftButton)
    field = panel.classes[-1].name_edit
    field.setFocus()
    field.clear()
    size = win.canvas.brush_size
    QTest.keyClicks(field, "a[b]\\")
    assert field.text() == "a[b]\\"
    assert win.canvas.brush_size == size
    assert not win.canvas.original_label.isVisible()


# -- small window --------------------------------------------------------------------------------


def test_1280x720_shows_run_and_cost_without_scrolling_sideways(qtbot, tiny_bundle):
    window = _make_window(qtbot, interactive=False, size=(1280, 720))
    window.editor.models.use(tiny_bundle)
    window.editor.set_image(photo(120, 160))
    QTest.qWait(50)
    scroll = window.run_dock.widget()
    assert not scroll.horizontalScrollBar().isVisible()
    button = window.run_panel.run_button
    bottom = button.mapTo(window, button.rect().bottomLeft()).y()
    assert bottom < window.statusBar().y(), "the Run button is below the fold"
    assert window.results_dock.height() <= 120, "the empty Results dock takes too much room"
    window.resize(700, 500)
    window.statusBar().showMessage(
        "A long message about what just happened that cannot fit "
        "next to the size, zoom and model labels of a small window"
    )
    QTest.qWait(50)
    label = window.statusBar().message_label
    assert label.geometry().right() < window.size_label.geometry().left()
    assert label.text().endswith("…")
    assert label.fontMetrics().horizontalAdvance(label.text()) <= label.width()


# -- light theme -------------------------------------------------------------------------------


def _icon_luma(action) -> float:
    image = action.icon().pixmap(22, 22).toImage()
    pixels = np.array([[image.pixelColor(x, y).getRgb() for x in range(22)] for y in range(22)])
    ink = pixels[..., 3] > 128
    return float(pixels[ink][:, :3].mean())


def test_icons_follow_the_palette(win, qtbot):
    view = next(a.menu() for a in win.menuBar().actions() if a.text() == "&View")
    theme = next(a.menu() for a in view.actions() if a.menu() and a.text() == "Theme")
    pick = {a.text(): a for a in theme.actions()}
    pick["Light"].trigger()
    qtbot.waitUntil(lambda: _icon_luma(win.actions_["tool_brush"]) < 100)
    assert _icon_luma(win.actions_["undo"]) < 100
    pick["Dark"].trigger()
    qtbot.waitUntil(lambda: _icon_luma(win.actions_["tool_brush"]) > 160)


# -- cost -------------------------------------------------------------------------------------


def test_cost_label_numbers_add_up(win, qtbot, tiny_bundle):
    _painted(win, qtbot, tiny_bundle)
    text = re.sub("<[^>]+>", "", win.run_panel.cost.text())
    found = re.match(r"(\d+) tokens regenerate in (\d+) steps.*: (\d+) token predictions", text)
    assert found is not None, text
    tokens, steps, predictions = (int(x) for x in found.groups())
    part = win.editor.plan.parts[0]
    counts = masked_counts(part.masked_count, part.steps, part.start_step)
    assert tokens == part.masked_count == counts[0]
    assert steps == len(counts)
    assert predictions == sum(counts) <= tokens * steps
    assert f"{counts[0]} + {counts[1]} + ... + {counts[-1]}" in text


# -- generate ----------------------------------------------------------------------------------


def test_generate_asks_and_opens_a_new_document(win, qtbot, tiny_bundle, tmp_path, monkeypatch):
    answers: list[Any] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    editor = win.editor
    editor.models.use(tiny_bundle)
    _drop(win, _save_photo(tmp_path))
    _drag(win, [(30, 30), (60, 40)])
    photo_doc = editor.document
    editor.set_options(replace(editor.options, mode="generate", generate_class=False))
    answers.append(QMessageBox.StandardButton.Cancel)
    QTest.keyClick(win, Qt.Key.Key_R, SHIFT)
    QTest.qWait(100)
    assert not answers
    assert not editor.jobs.busy
    assert editor.document is photo_doc
    assert editor.undo_stack.count() == 1
    answers.append(QMessageBox.StandardButton.Yes)
    _run(win, qtbot)
    assert editor.document is not photo_doc
    assert editor.document.path == ""
    assert editor.document.size == (64, 64)
    assert win.windowTitle().startswith("untitled *")
    assert photo_doc.rgb.shape == (120, 160, 3)  # the photo itself was not replaced


# -- few-shot ----------------------------------------------------------------------------------


def test_fewshot_examples_are_named_and_classes_survive_a_restart(win, qtbot, tmp_path):
    _drop(win, _save_photo(tmp_path, "bison.png"))
    panel = win.recognition_panel
    win.recognition_dock.raise_()
    QTest.mouseClick(panel.add_class_button, Qt.MouseButton.LeftButton)
    box = panel.classes[0]
    box.name_edit.setFocus()
    box.name_edit.selectAll()
    QTest.keyClicks(box.name_edit, "bison")
    QTest.keyClick(box.name_edit, Qt.Key.Key_Return)
    QTest.mouseClick(box.add_current, Qt.MouseButton.LeftButton)
    QTest.mouseClick(box.add_current, Qt.MouseButton.LeftButton)
    labels = [box.list.item(i).text() for i in range(box.list.count())]
    assert labels == ["bison.png", "bison.png (2)"]
    QTest.mouseClick(panel.add_class_button, Qt.MouseButton.LeftButton)
    win.close()
    again = _make_window(qtbot)
    restored = again.recognition_panel.classes
    assert [b.name for b in restored] == ["bison", "class 2"]
    assert [restored[0].list.item(i).text() for i in range(restored[0].list.count())] == [
        "bison.png",
        "bison.png (2)",
    ]


# -- file dialog -------------------------------------------------------------------------------


def test_open_dialog_columns_are_readable(win, qtbot, tmp_path):
    _save_photo(tmp_path, "a-photo-with-a-long-descriptive-file-name.png")
    win.prefs.set_folder("open", str(tmp_path))
    seen = {}

    def inspect() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(50, inspect)
            return
        view = next(v for v in dialog.findChildren(QTreeView) if v.isVisible())
        header = view.header()
        seen["width"] = dialog.width()
        seen["name"] = header.sectionSize(0)
        seen["others_fit"] = all(
            header.sectionSize(c) >= header.sectionSizeHint(c)
            for c in range(1, header.count())
            if not header.isSectionHidden(c)
        )
        dialog.reject()

    QTimer.singleShot(50, inspect)
    QTest.keyClick(win, Qt.Key.Key_O, CTRL)
    area = win.screen().availableGeometry()
    assert seen["width"] >= min(900, area.width() - 40)
    assert seen["name"] >= seen["width"] // 2 - 1
    assert seen["others_fit"]


def test_save_as_never_writes_over_the_loaded_mask_or_the_photo(win, tmp_path, monkeypatch):
    photo_path = _save_photo(tmp_path)
    mask_path = tmp_path / "mask.png"
    mask = np.zeros((120, 160), np.uint8)
    mask[40:70, 60:100] = 255
    Image.fromarray(mask).save(mask_path)
    _drop(win, photo_path)
    assert win.load_mask_file(str(mask_path))
    before = {p: p.read_bytes() for p in (photo_path, mask_path)}
    choices = iter([str(mask_path), str(photo_path), str(tmp_path / "new.png")])
    monkeypatch.setattr(win, "choose_file", lambda *a, **k: next(choices))
    QTest.keyClick(win, Qt.Key.Key_S, CTRL | SHIFT)
    assert "a file this image was made from" in win.banner.text.text()
    QTest.keyClick(win, Qt.Key.Key_S, CTRL | SHIFT)
    assert "that is the original" in win.banner.text.text()
    assert {p: p.read_bytes() for p in before} == before
    QTest.keyClick(win, Qt.Key.Key_S, CTRL | SHIFT)
    assert (tmp_path / "new.png").is_file()
    assert not win.banner.isVisible()
