"""Light and dark Fusion palettes; "system" follows the desktop's colour scheme (Qt 6.5+).

When the platform does not say (Xvfb, many window managers) the dark palette is used: image
editors are conventionally dark so the picture, not the chrome, stands out.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "dark", "light")
ACCENT = QColor(80, 160, 255)


def wants_dark(choice: str) -> bool:
    if choice in ("dark", "light"):
        return choice == "dark"
    scheme = QGuiApplication.styleHints().colorScheme()
    return scheme != Qt.ColorScheme.Light


def apply_theme(app: QApplication, choice: str = "system") -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if wants_dark(choice) else light_palette())


def follow_system(app: QApplication, current_choice) -> None:
    """Re-apply the theme when the desktop switches scheme, if the user chose "system"."""

    def changed(_scheme) -> None:
        if current_choice() == "system":
            apply_theme(app, "system")

    QGuiApplication.styleHints().colorSchemeChanged.connect(changed)


def light_palette() -> QPalette:
    palette = QApplication.style().standardPalette()
    palette.setColor(QPalette.ColorRole.Highlight, ACCENT.darker(115))
    return palette


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 30, 34), QColor(45, 45, 50), QColor(225, 225, 230)
    disabled = QColor(120, 120, 128)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: window,
        QPalette.ColorRole.ToolTipBase: QColor(60, 60, 66),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(55, 55, 61),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.Highlight: ACCENT.darker(130),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.PlaceholderText: disabled,
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p
