"""A run over two far-apart painted areas: each candidate's thumbnail shows the two edited
squares side by side, not the whole photo shrunk (where the candidates looked the same)."""

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from app.editor import Editor
from app.preferences import Preferences
from app.runs import THUMB_SIZE, edited_thumbnail
from app.ui.main_window import MainWindow
from gui.conftest import photo

pytestmark = pytest.mark.timeout(120)


def stroke(window, points) -> None:
    viewport = window.canvas.viewport()
    at = [window.canvas.mapFromScene(QPointF(*p)) for p in points]
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[0])
    for p in at[1:]:
        QTest.mouseMove(viewport, p)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[-1])


def test_several_parts_show_their_squares_side_by_side(qtbot, tiny_bundle):
    window = MainWindow(Editor(), Preferences(), interactive=False)
    window.resize(1280, 720)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_image(photo(320, 480))
    window.canvas.set_brush_size(12)
    stroke(window, [(32, 32), (48, 44)])
    stroke(window, [(424, 272), (440, 284)])
    qtbot.waitUntil(lambda: editor.plan is not None and len(editor.plan.parts) == 2, timeout=10000)
    with qtbot.waitSignal(editor.run_changed, timeout=60000):
        QTest.keyClick(window.canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    run, plan = editor.run, editor.plan
    assert run is not None
    assert plan is not None
    thumb = edited_thumbnail(run.candidates[0].patch, run.plan)
    # two square parts and a divider: about twice as wide as high (the photo is 3:2)
    assert thumb.shape[1] == THUMB_SIZE
    assert thumb.shape[1] / thumb.shape[0] > 1.9
    middle = thumb[:, thumb.shape[1] // 2 - 1 : thumb.shape[1] // 2 + 1]
    assert middle.mean() < 60  # the dark line between the parts
    # the left square is the top-left of the photo, the right one the bottom-right
    patch = run.candidates[0].patch
    x0, y0, x1, y1 = plan.parts[0].box
    left = patch.rgb[y0 - patch.y0 : y1 - patch.y0, x0 - patch.x0 : x1 - patch.x0]
    right_box = plan.parts[1].box
    right = patch.rgb[
        right_box[1] - patch.y0 : right_box[3] - patch.y0,
        right_box[0] - patch.x0 : right_box[2] - patch.x0,
    ]
    h = thumb.shape[0]
    assert abs(float(thumb[:, : h // 2].mean()) - float(left.mean())) < 25
    assert abs(float(thumb[:, -h // 2 :].mean()) - float(right.mean())) < 25
    icon = window.results_panel.candidates.item(0).icon().pixmap(160, 160)
    assert icon.width() > 1.9 * icon.height()  # the panel shows that thumbnail
    assert np.asarray(thumb).dtype == np.uint8
