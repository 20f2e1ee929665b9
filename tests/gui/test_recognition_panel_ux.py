"""The Recognition panel for a new user: its icons follow a theme change at once, dropped
examples show their own thumbnails as soon as the files are read (no model needed), and
example copies move out of the doubled data folder of earlier versions."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow
from app.ui.recognition_panel import doubled_fewshot_folder, fewshot_folder
from app.ui.theme import apply_theme

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _fresh_settings(qapp):
    Preferences()._s.clear()
    yield
    Preferences()._s.clear()
    apply_theme(qapp, "dark")


def make_window(qtbot) -> MainWindow:
    window = MainWindow(Editor(), Preferences(), interactive=False)
    window.resize(1280, 720)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.recognition_dock is not None
    window.recognition_dock.raise_()
    return window


def luma(icon, size: int = 20) -> float:
    image = icon.pixmap(size, size).toImage()
    pixels = np.array([[image.pixelColor(x, y).getRgb() for x in range(size)] for y in range(size)])
    ink = pixels[..., 3] > 128
    return float(pixels[ink][:, :3].mean())


def _submenu(action) -> QMenu:
    menu = action.menu()  # typed as a QObject: Qt's menu() is a template
    assert isinstance(menu, QMenu)
    return menu


def test_recognition_icons_follow_a_theme_change_at_once(qtbot):
    window = make_window(qtbot)
    panel = window.recognition_panel
    QTest.mouseClick(panel.add_class_button, Qt.MouseButton.LeftButton)
    buttons = [panel.add_class_button, panel.load_button, panel.classes[0].remove]
    view = next(_submenu(a) for a in window.menuBar().actions() if a.text() == "&View")
    theme = next(_submenu(a) for a in view.actions() if a.menu() and a.text() == "Theme")
    pick = {a.text(): a for a in theme.actions()}
    pick["Dark"].trigger()
    qtbot.waitUntil(lambda: all(luma(b.icon()) > 160 for b in buttons), timeout=3000)
    pick["Light"].trigger()  # dark ink at once, not after a restart
    qtbot.waitUntil(lambda: all(luma(b.icon()) < 100 for b in buttons), timeout=3000)


def drop_on(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    at = QPointF(10, 10)
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, QDragEnterEvent(at.toPoint(), *args))
    QApplication.sendEvent(widget, QDropEvent(at, *args))


def centre_colour(icon) -> tuple[int, int, int]:
    image = icon.pixmap(48, 48).toImage()
    colour = image.pixelColor(image.width() // 2, image.height() // 2)
    return colour.red(), colour.green(), colour.blue()


def test_dropped_examples_show_their_thumbnails_without_a_model(qtbot, tmp_path):
    window = make_window(qtbot)
    panel = window.recognition_panel
    assert panel.bundle is None  # no model: nothing is encoded, the pictures still come
    QTest.mouseClick(panel.add_class_button, Qt.MouseButton.LeftButton)
    files = []
    for name, colour in (("red.jpg", (220, 20, 20)), ("blue.png", (20, 20, 220))):
        files.append(tmp_path / name)
        Image.new("RGB", (900, 600), colour).save(files[-1])
    box = panel.classes[0]
    drop_on(box.list.viewport(), files)
    assert box.list.count() == 2
    qtbot.waitUntil(lambda: len(panel.model.thumbs) == 2, timeout=5000)
    red, blue = (centre_colour(box.list.item(i).icon()) for i in range(2))
    assert red[0] > 180
    assert red[2] < 60
    assert blue[2] > 180
    assert blue[0] < 60


def test_examples_move_out_of_the_doubled_data_folder(qtbot):
    old = doubled_fewshot_folder()
    assert old.parts[-3] == old.parts[-2] == "MAGE Studio"
    old.mkdir(parents=True)
    kept = old / "0123abcd.png"
    Image.new("RGB", (64, 64), (30, 160, 30)).save(kept)
    Preferences().save_fewshot_classes(
        [{"name": "lawn", "examples": [{"file": str(kept), "label": "my lawn"}]}]
    )
    window = make_window(qtbot)
    box = window.recognition_panel.classes[0]
    assert box.name == "lawn"
    assert box.list.count() == 1
    moved = fewshot_folder() / kept.name
    assert moved.is_file()
    assert not old.exists()
    assert not old.parent.exists()
    assert Path(box.examples[0].source) == moved
    saved = Preferences().fewshot_classes()
    assert saved[0]["examples"][0]["file"] == str(moved)
