"""The Qt binding must not drop references to None.

PySide6 6.12.0 on Python 3.11 lowers None's reference count by one on every call of a void Qt
method; the interpreter aborts ("none_dealloc: deallocating None") once the count runs out,
which took the editor down after a few dozen brush strokes. These are the calls the canvas makes
on every repaint, each repeated a few hundred times and measured on its own (few enough that a
broken binding fails the test instead of aborting the test run). On Python 3.12+ None is
immortal and its count never moves.
"""

import sys

import pytest
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

CALLS = 400


def _drift(call) -> int:
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        call()
    return sys.getrefcount(None) - before


@pytest.fixture
def painter():
    image = QImage(64, 64, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    yield painter
    painter.end()


def test_painter_calls_keep_none_alive(painter):
    source = QImage(8, 8, QImage.Format.Format_RGB32)
    source.fill(QColor(10, 20, 30))
    pen, colour, rect = (
        QPen(QColor(255, 255, 255, 60), 0),
        QColor(80, 200, 255, 70),
        QRectF(2, 2, 10, 10),
    )
    a, b = QPointF(0, 0), QPointF(30, 30)
    calls = {
        "fillRect": lambda: painter.fillRect(rect, colour),
        "setPen(NoPen)": lambda: painter.setPen(Qt.PenStyle.NoPen),
        "setPen(QPen)": lambda: painter.setPen(pen),
        "drawLine": lambda: painter.drawLine(a, b),
        "setBrush": lambda: painter.setBrush(QBrush()),
        "drawRect": lambda: painter.drawRect(rect),
        "drawImage": lambda: painter.drawImage(rect, source, QRectF(0, 0, 8, 8)),
        "setRenderHint": lambda: painter.setRenderHint(
            QPainter.RenderHint.SmoothPixmapTransform, True
        ),
    }
    for name, call in calls.items():
        drift = _drift(call)
        # a broken binding loses one reference per call (-400); allow a little noise
        assert drift > -20, f"QPainter.{name}: None lost {-drift} references in {CALLS} calls"


def test_widget_calls_keep_none_alive(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    area = QRect(0, 0, 4, 4)
    calls = {
        "update()": widget.update,
        "update(QRect)": lambda: widget.update(area),
        "setToolTip": lambda: widget.setToolTip("x"),
    }
    for name, call in calls.items():
        drift = _drift(call)
        assert drift > -20, f"QWidget.{name}: None lost {-drift} references in {CALLS} calls"
