"""Long mask painting in the real editor window (run under Xvfb by test_long_painting.py).

    python tests/gui/long_paint.py [--model BUNDLE] [--strokes 300]

Opens the main window on the xcb platform with a model loaded and the token-grid overlay on,
paints and erases hundreds of brush strokes through mouse events on the canvas, with undo and
redo keys in between, letting every repaint of the image, mask and grid happen. Keeps its own
copy of what each stroke should paint and prints one line:

    ALIVE strokes=N grid_paints=N mask_ok=True|False undo_ok=True|False

A binding that corrupts reference counts kills the process (Fatal Python error) long before.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtCore import QCoreApplication, QEventLoop, QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.core import mask_ops
from app.editor import Editor
from app.preferences import Preferences
from app.ui import canvas_items
from app.ui.main_window import MainWindow

GRID_PAINTS = 0


def _counting(paint):
    def wrapped(self, painter, option, widget=None):
        global GRID_PAINTS
        GRID_PAINTS += 1
        return paint(self, painter, option, widget)

    return wrapped


def _settle(seconds: float = 0.0) -> None:
    end = time.monotonic() + seconds
    while True:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if time.monotonic() >= end:
            return
        time.sleep(0.005)


def _photo(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1)
    return rgb.astype(np.uint8)


def _mask(editor: Editor) -> np.ndarray:
    document = editor.document
    assert document is not None  # the photo opened at the start
    return document.mask


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="bundle folder (default: the shipped default model)")
    parser.add_argument("--strokes", type=int, default=300)
    args = parser.parse_args()
    # every repaint of the grid counted, for the whole run
    patch.object(canvas_items.GridItem, "paint", _counting(canvas_items.GridItem.paint)).start()
    app = QApplication.instance() or QApplication(["long-paint"])
    editor = Editor()
    prefs = Preferences()
    prefs.show_grid = True
    window = MainWindow(editor, prefs, interactive=False)
    window.resize(1200, 800)
    window.show()
    window.raise_()
    window.activateWindow()  # keys reach the window's shortcuts only when it is active
    if args.model:
        editor.models.load(args.model, "cpu", wait=True)
    else:
        editor.models.load_default("cpu", wait=True)
    _settle(0.2)
    if editor.bundle is None:
        print("NO MODEL", editor.models.error)
        return 2
    if QApplication.activeWindow() is not window:
        print("the window never became active")
        return 3
    h, w = 300, 400
    editor.set_image(_photo(h, w))
    _settle(0.2)
    canvas, viewport = window.canvas, window.canvas.viewport()
    canvas.set_brush_size(14)
    radius = canvas.brush_size / 2
    rng = np.random.default_rng(7)
    expected = np.zeros((h, w), bool)
    history = [expected.copy()]  # mask after each recorded stroke
    position = 0  # index in history of what is shown
    undo_ok = True
    vw, vh = viewport.width(), viewport.height()
    for stroke in range(args.strokes):
        erase = stroke % 5 == 4
        button = Qt.MouseButton.RightButton if erase else Qt.MouseButton.LeftButton
        start = rng.uniform((0.15 * vw, 0.15 * vh), (0.85 * vw, 0.85 * vh))
        points = [
            QPoint(int(x), int(y)) for x, y in start + np.cumsum(rng.normal(0, 12, (8, 2)), axis=0)
        ]
        mask = history[position].copy()
        last = canvas.mapToScene(points[0])
        QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, points[0])
        mask_ops.paint_segment(mask, (last.x(), last.y()), (last.x(), last.y()), radius, not erase)
        for p in points[1:]:
            QTest.mouseMove(viewport, p)
            scene = canvas.mapToScene(p)
            mask_ops.paint_segment(
                mask, (last.x(), last.y()), (scene.x(), scene.y()), radius, not erase
            )
            last = scene
            _settle()
        QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, points[-1])
        if not np.array_equal(mask, history[position]):
            history[position + 1 :] = [mask]
            position += 1
        _settle(0.035)  # the grid plan follows 30 ms after a change
        if stroke % 15 == 14:
            QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
            QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
            position = max(position - 2, 0)
            _settle(0.035)
            undo_ok &= np.array_equal(_mask(editor), history[position])
            QTest.keyClick(
                window,
                Qt.Key.Key_Z,
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
            )
            position = min(position + 1, len(history) - 1)
            _settle(0.035)
            undo_ok &= np.array_equal(_mask(editor), history[position])
    _settle(0.2)
    mask_ok = bool(np.array_equal(_mask(editor), history[position]))
    overlay_ok = bool(np.array_equal(canvas._mask._buffer != 0, _mask(editor)))
    print(
        f"ALIVE strokes={args.strokes} grid_paints={GRID_PAINTS} mask_ok={mask_ok} "
        f"overlay_ok={overlay_ok} undo_ok={undo_ok} painted={int(_mask(editor).sum())}",
        flush=True,
    )
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
