"""Offscreen widget tests: real mouse and key events on the canvas, asserts on the arrays."""

from typing import Any

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from gui.conftest import photo


def _view_pos(window, x: float, y: float) -> QPoint:
    return window.canvas.mapFromScene(QPointF(x, y))


def _drag(window, points, button=Qt.MouseButton.LeftButton):
    viewport = window.canvas.viewport()
    QTest.mousePress(
        viewport, button, Qt.KeyboardModifier.NoModifier, _view_pos(window, *points[0])
    )
    for p in points[1:]:
        QTest.mouseMove(viewport, _view_pos(window, *p))
    QTest.mouseRelease(
        viewport, button, Qt.KeyboardModifier.NoModifier, _view_pos(window, *points[-1])
    )


def test_brush_stroke_paints_the_mask_and_undoes(window, qtbot):
    editor = window.editor
    editor.set_image(photo())
    window.canvas.set_brush_size(10)
    _drag(window, [(20, 30), (60, 30), (100, 30)])
    mask = editor.document.mask
    assert mask[30, 22:98].all()  # the whole path is painted, no gaps
    assert mask[24:36, 60].sum() >= 9
    assert not mask[45:, :].any()
    assert editor.undo_stack.count() == 1
    assert editor.undo_stack.undoText() == "Brush"
    # the overlay shows what the array holds
    assert window.canvas._mask._buffer[30, 50] != 0
    assert window.canvas._mask._buffer[80, 50] == 0
    window.canvas.setFocus()
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not editor.document.mask.any()
    QTest.keyClick(
        window,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert editor.document.mask[30, 50]


def test_right_button_erases_and_rectangle_fills(window):
    editor = window.editor
    editor.set_image(photo())
    window.actions_["tool_rect"].trigger()
    _drag(window, [(10, 10), (50, 40), (80, 60)])
    mask = editor.document.mask
    assert mask[10:60, 10:80].all()
    assert mask.sum() == 50 * 70
    window.actions_["tool_brush"].trigger()
    window.canvas.set_brush_size(6)
    _drag(window, [(10, 35), (90, 35)], Qt.MouseButton.RightButton)
    assert not editor.document.mask[35, 12:78].any()
    assert editor.document.mask[15, 40]


def test_lasso_invert_clear_and_grow(window):
    editor = window.editor
    editor.set_image(photo())
    window.actions_["tool_lasso"].trigger()
    _drag(window, [(30, 30), (90, 30), (90, 90), (30, 90)])
    assert editor.document.mask[60, 60]
    assert not editor.document.mask[10, 10]
    before = editor.document.mask.sum()
    window.actions_["grow"].trigger()
    assert editor.document.mask.sum() > before
    window.actions_["shrink"].trigger()
    window.actions_["invert"].trigger()
    assert editor.document.mask[5, 5]
    assert not editor.document.mask[60, 60]
    window.actions_["clear"].trigger()
    assert not editor.document.mask.any()


def test_brush_size_keys_and_backslash_shows_original(window):
    editor = window.editor
    editor.set_image(photo())
    window.canvas.set_brush_size(40)
    window.actions_["larger"].trigger()
    assert window.canvas.brush_size > 40
    assert window.brush_spin.value() == window.canvas.brush_size
    window.actions_["smaller"].trigger()
    window.actions_["smaller"].trigger()
    assert window.canvas.brush_size < 40
    editor.document.apply_image_patch(0, 0, np.zeros((10, 10, 3), np.uint8), "x")
    window.canvas.reload()
    window.canvas.setFocus()
    QTest.keyPress(window.canvas, Qt.Key.Key_Backslash)
    assert window.canvas._showing_original
    assert window.canvas._image._buffer[5, 5] != 0xFF000000  # original pixel shown
    QTest.keyRelease(window.canvas, Qt.Key.Key_Backslash)
    assert window.canvas._image._buffer[5, 5] == 0xFF000000


def test_zoom_fit_and_actual_size(window):
    window.editor.set_image(photo(600, 900))
    window.canvas.actual_size()
    assert abs(window.canvas.zoom - 1.0) < 1e-6
    window.canvas.fit()
    assert window.canvas.zoom < 1.0


def test_grid_follows_the_mask_and_shows_the_cost(window, tiny_bundle, qtbot):
    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_image(photo())
    window.canvas.set_brush_size(12)
    _drag(window, [(70, 50), (90, 55)])
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=3000)
    assert editor.plan.masked_count > 0
    assert str(editor.plan.cost) in window.run_panel.cost.text()


def test_far_apart_strokes_get_a_square_each_and_one_undoable_result(window, tiny_bundle, qtbot):
    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_image(photo(400, 600))
    mask = np.zeros((400, 600), bool)
    mask[30:60, 30:70] = True
    mask[330:370, 520:570] = True
    editor.set_mask(mask)
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=3000)
    assert len(editor.plan.parts) == 2
    assert "in 2 separate squares" in window.run_panel.cost.text()
    assert str(editor.plan.cost) in window.run_panel.cost.text()
    assert len(window.canvas._grid._parts) == 2  # both squares drawn
    original = editor.document.rgb.copy()
    with qtbot.waitSignal(editor.run_changed, timeout=30000):
        editor.start_run()
    changed = (editor.document.rgb != original).any(axis=2)
    assert changed[30:60, 30:70].any()
    assert changed[330:370, 520:570].any()
    assert not window.results_panel.reroll.isEnabled()  # no single token grid to work on
    assert not window.results_panel.scrubber.isEnabled()
    editor.undo_stack.undo()
    np.testing.assert_array_equal(editor.document.rgb, original)


def test_run_applies_candidates_and_undo_restores(window, tiny_bundle, qtbot):
    from dataclasses import replace

    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_image(photo())
    editor.set_options(replace(editor.options, candidates=3, seed=11, fixed_seed=True))
    window.canvas.set_brush_size(16)
    _drag(window, [(70, 50), (90, 55)])
    original = editor.document.rgb.copy()
    progress: list[Any] = []
    editor.progress.connect(progress.append)
    with qtbot.waitSignal(editor.run_changed, timeout=30000):
        window.actions_["run"].trigger()
    assert len([p for p in progress if p.phase == "decode"]) == 8  # then the texture rounds
    assert window.results_panel.candidates.count() == 3
    assert window.results_panel.candidates.item(1).text() == "seed 12"
    first = editor.document.rgb.copy()
    sq = editor.run.fill.square
    changed = np.argwhere((first != original).any(axis=2))
    assert changed.size
    assert changed[:, 0].min() >= max(sq.y0, 0)
    assert not editor.document.mask.any()  # applying a result clears the mask
    item = window.results_panel.candidates.item(2)
    rect = window.results_panel.candidates.visualItemRect(item)
    QTest.mouseClick(
        window.results_panel.candidates.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        rect.center(),
    )
    assert editor.applied == 2
    assert not np.array_equal(editor.document.rgb, first)
    assert editor.undo_stack.count() == 2  # the stroke and one applied result
    editor.undo_stack.undo()
    np.testing.assert_array_equal(editor.document.rgb, original)
    assert editor.document.mask.any()


def test_scrubber_and_heatmap_cover_the_run(window, tiny_bundle, qtbot):
    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_image(photo())
    editor.set_mask(np.pad(np.ones((20, 20), bool), ((40, 60), (60, 80))))
    with qtbot.waitSignal(editor.run_changed, timeout=30000):
        editor.start_run()
    overlays: list[Any] = []
    window.inspector.overlay_changed.connect(overlays.append)
    window.results_panel.heatmap.setChecked(True)
    part, colors = overlays[-1]
    assert colors[..., 3][part.token_mask].all()
    assert not colors[..., 3][~part.token_mask].any()
    with qtbot.waitSignal(editor.preview_changed, timeout=10000) as shown:
        window.results_panel.scrubber.setValue(1)
    assert shown.args[0] is not None
    assert window.results_panel.step_label.text() == "1/8"
    window.results_panel.scrubber.setValue(8)
    assert window.inspector.step == -1


def test_error_shows_in_the_banner_not_a_traceback(window, qtbot):
    window.editor.set_image(photo())
    window.editor.start_run()  # no model loaded
    assert window.banner.isVisible()
    assert window.banner.text.text()
    assert window.editor.open_file("/nonexistent/photo.jpg") is False
    assert "file not found" in window.banner.text.text()


def test_generate_without_an_image_then_extend_and_undo(window, tiny_bundle, qtbot):
    from dataclasses import replace

    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_options(
        replace(editor.options, mode="generate", generate_class=True, class_name="boat")
    )
    with qtbot.waitSignal(editor.run_changed, timeout=30000):
        assert editor.start_run()
    assert editor.document.size == (64, 64)
    editor.set_options(replace(editor.options, mode="extend", extend_side="right", extend_cells=2))
    with qtbot.waitSignal(editor.run_changed, timeout=30000):
        assert editor.start_run()
    assert editor.document.size == (72, 64)
    editor.undo_stack.undo()
    assert editor.document.size == (64, 64)


def test_class_mode_is_offered_only_for_class_models(window, tiny_bundle):
    from gui.fake_engine import FakeBundle, fake_manifest

    panel = window.run_panel
    window.editor.models.use(FakeBundle(fake_manifest(class_names=None)))
    assert panel.mode.view().isRowHidden(1)
    window.editor.models.use(tiny_bundle)
    assert not panel.mode.view().isRowHidden(1)
    assert panel.classes.count() == 3
