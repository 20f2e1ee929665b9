"""The application icon (assets/icons: the SVG and its PNG renderings), for every window."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from engine.runtime.locations import shipped_dir

DESKTOP_ID = "mage-studio"  # the .desktop file's name: lets the desktop match the windows


def app_icon() -> QIcon:
    """QIcon with every shipped size (an empty icon if the assets are missing)."""
    icon = QIcon()
    folder = shipped_dir("assets") / "icons"
    for png in sorted(folder.glob(f"{DESKTOP_ID}-*.png")):
        icon.addFile(str(png))
    svg = folder / f"{DESKTOP_ID}.svg"
    if svg.is_file():
        icon.addFile(str(svg))
    return icon
