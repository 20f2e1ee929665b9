"""The empty window's welcome: how to start, and the sample photos as thumbnails.

It lies over the canvas while no image is open. One click on a sample opens the photo with its
mask loaded in Remove mode, so Run (Shift+R) is the only step left.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from PIL import Image
from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app.samples import Sample, load_samples
from app.ui.canvas_items import MASK_RGBA
from app.ui.qimage import qimage_from_rgb

log = logging.getLogger(__name__)
THUMB = 180
CAPTION_PT = 11
COLUMNS = 4
HEADLINE = "Open, drop or paste an image, or choose Generate to make one"


def sample_thumbnail(sample: Sample, size: int = THUMB) -> np.ndarray:
    """The sample photo, long side `size`, with the mask tinted as the canvas shows it."""
    image = Image.open(sample.image).convert("RGB")
    mask = Image.open(sample.mask).convert("L").resize(image.size, Image.Resampling.NEAREST)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    mask = mask.resize(image.size, Image.Resampling.BILINEAR)
    rgb = np.asarray(image, np.float32)
    r, g, b, a = MASK_RGBA
    alpha = (np.asarray(mask, np.float32) / 255.0 * a / 255.0)[..., None]
    rgb = rgb * (1 - alpha) + np.array([r, g, b], np.float32) * alpha
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def wrapped(text: str, metrics, width: int) -> str:
    """`text` broken into lines at spaces so that each fits `width` pixels: a tool button
    would otherwise shorten a long caption in its middle ("Try: remove...uttle model")."""
    lines: list[str] = []
    for word in text.split():
        if lines and metrics.horizontalAdvance(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def open_sample(window, sample: Sample) -> bool:
    """Opens the sample photo with its mask, in Remove mode: ready to Run."""
    if not window.open_path(str(sample.image)):
        return False
    editor = window.editor
    if editor.options.mode != "remove":
        editor.set_options(replace(editor.options, mode="remove"))
    if not window.load_mask_file(str(sample.mask)):
        return False
    editor.mark_opened()  # the mask came with the sample: no edit of the user's yet
    window.statusBar().showMessage(f"{sample.title}: press Run (Shift+R)", 10000)
    return True


class WelcomeOverlay(QWidget):
    """Covers the canvas viewport while no document is open."""

    sample_chosen = Signal(object)  # Sample

    def __init__(self, canvas, samples: list[Sample]):
        super().__init__(canvas.viewport())
        self.setObjectName("welcome")
        self.canvas = canvas
        self.samples = list(samples)
        self.buttons: list[QToolButton] = []
        column = QVBoxLayout(self)
        column.addStretch(1)
        headline = QLabel(HEADLINE, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        headline.setStyleSheet("color: rgb(200, 200, 208); font-size: 16pt;")
        column.addWidget(headline)
        self.headline = headline
        if self.samples:
            hint = QLabel(
                "or try a sample: a click (or Space) opens it with its mask, ready to Run",
                alignment=Qt.AlignmentFlag.AlignCenter,
                wordWrap=True,
            )
            hint.setStyleSheet("color: rgb(160, 160, 170); font-size: 11pt; margin-top: 6px;")
            column.addWidget(hint)
            grid = QGridLayout()
            grid.setSpacing(14)
            for n, sample in enumerate(self.samples):
                grid.addWidget(self._button(sample), n // COLUMNS, n % COLUMNS)
            row = QWidget()
            row.setLayout(grid)
            column.addWidget(row, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addStretch(1)
        canvas.viewport().installEventFilter(self)
        canvas.editor.document_changed.connect(self._follow_document)
        self.setGeometry(canvas.viewport().rect())
        self._follow_document()

    def _button(self, sample: Sample) -> QToolButton:
        button = QToolButton()
        button.setObjectName(f"sample-{sample.name}")
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        caption = QFont(button.font())
        caption.setPointSize(CAPTION_PT)  # as the style sheet below sets it
        button.setText(wrapped(sample.title, QFontMetrics(caption), THUMB + 20))
        button.setIconSize(QSize(THUMB, THUMB))
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.setAutoRaise(True)
        button.setStyleSheet(
            f"QToolButton {{ color: rgb(225, 225, 232); font-size: {CAPTION_PT}pt; padding: 6px; "
            "border: 1px solid rgba(255, 255, 255, 30); border-radius: 6px; }"
            "QToolButton:hover { background: rgba(255, 255, 255, 28); "
            "border-color: rgba(80, 200, 255, 200); }"
        )
        credit = ", ".join(p for p in (sample.source, sample.licence) if p)
        button.setToolTip(f"{sample.title}\n{credit}" if credit else sample.title)
        try:
            button.setIcon(QIcon(QPixmap.fromImage(qimage_from_rgb(sample_thumbnail(sample)))))
        except (OSError, ValueError) as error:
            log.warning("no thumbnail for %s: %s", sample.image, error)
        button.clicked.connect(lambda _=False, s=sample: self.sample_chosen.emit(s))
        self.buttons.append(button)
        return button

    def _follow_document(self) -> None:
        self.setVisible(self.canvas.editor.document is None)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.setGeometry(self.canvas.viewport().rect())
        return False

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        brush = self.canvas.backgroundBrush()
        painter.fillRect(
            self.rect(), brush if brush.style() != Qt.BrushStyle.NoBrush else QColor(38, 38, 42)
        )
        painter.end()


def attach_welcome(window) -> WelcomeOverlay:
    """Puts the welcome over the window's canvas; a chosen sample opens in the window."""
    overlay = WelcomeOverlay(window.canvas, load_samples())
    overlay.sample_chosen.connect(lambda sample: open_sample(window, sample))
    if overlay.buttons and window.editor.document is None:
        overlay.buttons[0].setFocus()  # Space opens the first sample; Tab moves on
    return overlay
