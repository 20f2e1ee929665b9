"""A dismissible one-line message above the canvas, for problems and notices that must not
block the window (a missing model, a CUDA fallback, a failed run)."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

STYLES = {
    "error": ("mdi6.alert-circle-outline", "#ef9a9a", "rgba(239,83,80,40)"),
    "info": ("mdi6.information-outline", "#90caf9", "rgba(66,165,245,40)"),
}


class Banner(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 4, 4)
        self.icon = QLabel()
        self.text = QLabel(
            wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse
        )
        close = QToolButton(autoRaise=True)
        close.setIcon(qta.icon("mdi6.close"))
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        row.addWidget(self.icon)
        row.addWidget(self.text, 1)
        row.addWidget(close)
        self.cause = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error", cause: str = "") -> None:
        """Show `text`; `cause` names what it is about so that clear(cause) can take it away
        once that is resolved."""
        self.cause = cause
        icon, color, background = STYLES[kind]
        self.icon.setPixmap(qta.icon(icon, color=color).pixmap(18, 18))
        self.setStyleSheet(f"Banner {{ background: {background}; border-radius: 4px; }}")
        self.text.setText(text)
        self.show()

    def clear(self, *causes: str) -> None:
        """Hide the message if it was shown for one of `causes`."""
        if self.isVisible() and self.cause in causes:
            self.hide()
            self.cause = ""
