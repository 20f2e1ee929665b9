"""A 1280x720 window after a run: the Results panel stays compact, the Run panel needs no
scrolling, the status bar is whole, sample captions are never cut, and the window cannot shrink
to where the canvas is a sliver."""

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MINIMUM_SIZE, MainWindow
from gui.conftest import photo

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _fresh_settings(qapp):
    Preferences()._s.clear()
    yield
    Preferences()._s.clear()


def make_window(qtbot, size):
    window = MainWindow(Editor(), Preferences(), interactive=False)
    window.resize(*size)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_1280x720_after_a_run_keeps_the_image_big_and_the_run_panel_whole(qtbot, tiny_bundle):
    window = make_window(qtbot, (1280, 720))
    editor = window.editor
    editor.models.use(tiny_bundle)
    editor.set_image(photo(320, 480))
    window.canvas.set_brush_size(16)
    viewport = window.canvas.viewport()
    at = [window.canvas.mapFromScene(QPointF(*p)) for p in ((200, 150), (240, 170))]
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[0])
    QTest.mouseMove(viewport, at[1])
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at[1])
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=10000)
    with qtbot.waitSignal(editor.run_changed, timeout=60000):
        QTest.keyClick(window.canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    QTest.qWait(50)
    assert window.results_panel.candidates.isVisible()
    assert window.results_dock.height() <= 170  # was about 230 for one thumbnail
    assert window.canvas.height() >= 0.6 * window.height()
    scroll = window.run_dock.widget()
    assert scroll.verticalScrollBar().maximum() == 0  # the Run panel fits without scrolling
    bar = window.statusBar()
    assert bar.isVisible()
    assert bar.geometry().bottom() < window.height()
    assert bar.height() >= bar.sizeHint().height()  # not squeezed


def test_sample_captions_are_whole_and_the_window_has_a_sensible_minimum(qtbot):
    window = make_window(qtbot, (1280, 720))
    buttons = window.welcome.buttons
    assert buttons
    for button in buttons:
        words = " ".join(button.text().split())
        assert words == button.toolTip().splitlines()[0]  # every word of the title
        metrics = button.fontMetrics()
        widest = max(metrics.horizontalAdvance(line) for line in button.text().split("\n"))
        assert widest <= button.width()  # no line is shortened with "..."
    area = window.screen().availableGeometry()  # offscreen: 800x800
    wanted = (min(MINIMUM_SIZE[0], area.width()), min(MINIMUM_SIZE[1], area.height()))
    assert (window.minimumWidth(), window.minimumHeight()) == wanted
    window.resize(400, 300)
    QTest.qWait(20)
    assert (window.width(), window.height()) == wanted
    assert window.canvas.width() >= 0.4 * window.width()  # the image keeps room beside the panels
