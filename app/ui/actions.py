"""Menus, toolbars and shortcuts of the main window (IOPaint's keys where they exist).

Every action's tooltip names its shortcut, and `SHORTCUTS` is the single list the Help dialog
and the README show.
"""

from __future__ import annotations

from functools import partial

import qtawesome as qta
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox, QSpinBox, QToolBar

from app.ui.about import show_about
from app.ui.demo import start_demo
from app.ui.keyboard import COMPARE_NAME
from app.ui.theme import THEMES

# (what, keys) in the order the Help dialog lists them
SHORTCUTS = [
    ("Open image", "Ctrl+O"),
    ("Paste image", "Ctrl+V"),
    ("Save (to a new file)", "Ctrl+S"),
    ("Save as", "Ctrl+Shift+S"),
    ("Undo", "Ctrl+Z"),
    ("Redo", "Ctrl+Shift+Z"),
    ("Brush / Eraser / Rectangle / Lasso", "B / E / R / L"),
    ("Erase with any tool", "right mouse button"),
    ("Smaller / larger brush", "[ / ]"),
    ("Clear mask", "Delete"),
    ("Invert mask", "Ctrl+I"),
    ("Grow / shrink mask by one token", "G / Shift+G"),
    ("Run", "Shift+R"),
    ("Cancel the run", "Ctrl+."),
    ("Fit to window", "Ctrl+F or Esc"),
    ("Actual size", "Ctrl+1"),
    ("Zoom", "mouse wheel, Ctrl+= / Ctrl+-"),
    ("Pan", "Space+drag or middle button"),
    ("Show the original (before / after)", f"hold {COMPARE_NAME}"),
    ("Move between controls", "Tab / Shift+Tab"),
    ("Token grid on/off", "Ctrl+G"),
    ("Confidence heatmap", "H"),
    ("Demo mode (any key leaves it)", "F5"),
]


ICON_PROPERTY = "mage_icon"


def themed_icon(name: str):
    """A qtawesome icon drawn in the current palette's text colours (readable on light and
    dark themes alike)."""
    palette = QApplication.palette()
    return qta.icon(
        name,
        color=palette.color(QPalette.ColorRole.ButtonText),
        color_disabled=palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText),
    )


def set_themed_icon(action: QAction, name: str) -> None:
    action.setProperty(ICON_PROPERTY, name)
    action.setIcon(themed_icon(name))


def refresh_icons(window) -> None:
    """Redraw every action icon in the palette now in use (after a theme change)."""
    for action in window.findChildren(QAction):
        name = action.property(ICON_PROPERTY)
        if name:
            action.setIcon(themed_icon(name))


def _action(
    window, text: str, icon: str | None, keys, slot, checkable=False, pass_checked=False
) -> QAction:
    action = QAction(text, window)
    if icon:
        set_themed_icon(action, icon)
    keys = [keys] if isinstance(keys, str) else list(keys or [])
    if keys:
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(f"{text} ({keys[0]})")
    action.setCheckable(checkable)
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    # triggered(bool) would land in the slot's first parameter; pass it only when wanted
    if pass_checked:
        action.triggered.connect(slot)
    else:
        action.triggered.connect(lambda _checked=False: slot())
    window.addAction(action)  # shortcuts work even when the action is in no visible menu
    return action


def build_actions(window) -> dict[str, QAction]:
    e, c = window.editor, window.canvas
    a = {
        "open": _action(
            window, "Open...", "mdi6.folder-open-outline", "Ctrl+O", window.open_dialog
        ),
        "paste": _action(window, "Paste image", "mdi6.content-paste", "Ctrl+V", window.paste),
        "save": _action(window, "Save", "mdi6.content-save-outline", "Ctrl+S", window.save),
        "save_as": _action(window, "Save as...", None, "Ctrl+Shift+S", window.save_as),
        "load_mask": _action(window, "Load mask...", None, None, window.load_mask_dialog),
        "quit": _action(window, "Quit", None, "Ctrl+Q", window.close),
        "clear": _action(window, "Clear mask", "mdi6.eraser-variant", "Delete", e.clear_mask),
        "invert": _action(window, "Invert mask", "mdi6.invert-colors", "Ctrl+I", e.invert_mask),
        "grow": _action(
            window, "Grow mask by one token", "mdi6.arrow-expand-all", "G", e.grow_mask
        ),
        "shrink": _action(
            window, "Shrink mask by one token", "mdi6.arrow-collapse-all", "Shift+G", e.shrink_mask
        ),
        "smaller": _action(
            window, "Smaller brush", None, "[", lambda: c.set_brush_size(round(c.brush_size / 1.25))
        ),
        "larger": _action(
            window,
            "Larger brush",
            None,
            "]",
            lambda: c.set_brush_size(round(c.brush_size * 1.25) + 1),
        ),
        "fit": _action(window, "Fit to window", "mdi6.fit-to-screen-outline", "Ctrl+F", c.fit),
        "actual": _action(
            window, "Actual size", "mdi6.numeric-1-box-outline", "Ctrl+1", c.actual_size
        ),
        "zoom_in": _action(
            window,
            "Zoom in",
            "mdi6.magnify-plus-outline",
            ["Ctrl+=", "Ctrl++"],
            lambda: c.zoom_by(1.25),
        ),
        "zoom_out": _action(
            window, "Zoom out", "mdi6.magnify-minus-outline", "Ctrl+-", lambda: c.zoom_by(0.8)
        ),
        "original": _action(
            window,
            "Show the original",
            "mdi6.compare",
            None,
            c.show_original,
            True,
            True,
        ),
        "grid": _action(
            window, "Token grid", "mdi6.grid", "Ctrl+G", window.toggle_grid, True, True
        ),
        "heatmap": _action(
            window,
            "Confidence heatmap",
            "mdi6.fire",
            "H",
            window.results_panel.set_heatmap,
            True,
            True,
        ),
        "run": _action(window, "Run", "mdi6.play", "Shift+R", e.start_run),
        "cancel": _action(window, "Cancel run", "mdi6.stop", "Ctrl+.", e.cancel_run),
        "get_models": _action(
            window,
            "Get official models...",
            "mdi6.download",
            None,
            window.get_official_models,
        ),
        "import": _action(
            window,
            "Import official MAGE checkpoint...",
            "mdi6.database-import",
            None,
            window.import_checkpoint,
        ),
        "models_folder": _action(
            window, "Open models folder", None, None, window.open_models_folder
        ),
        "shortcuts": _action(
            window,
            "Keyboard shortcuts",
            "mdi6.keyboard-outline",
            "F1",
            partial(show_shortcuts, window),
        ),
        "about": _action(
            window,
            "About MAGE Studio",
            "mdi6.information-outline",
            None,
            partial(show_about, window),
        ),
        "demo": _action(
            window, "Demo mode", "mdi6.presentation-play", "F5", partial(start_demo, window)
        ),
    }
    a["undo"] = e.undo_stack.createUndoAction(window, "Undo")
    a["undo"].setShortcuts([QKeySequence("Ctrl+Z")])
    a["redo"] = e.undo_stack.createRedoAction(window, "Redo")
    a["redo"].setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    for key, icon, tip in (
        ("undo", "mdi6.undo", "Undo (Ctrl+Z)"),
        ("redo", "mdi6.redo", "Redo (Ctrl+Shift+Z)"),
    ):
        set_themed_icon(a[key], icon)
        a[key].setToolTip(tip)
        window.addAction(a[key])
    a["grid"].setChecked(c.show_grid)
    # held, not pressed: the key is handled by app.ui.keyboard, the menu only names it
    a["original"].setText(f"Show the original\tHold {COMPARE_NAME}")
    a["original"].setToolTip(f"Show the original image: hold {COMPARE_NAME} (before / after)")
    c.original_shown.connect(a["original"].setChecked)
    a["cancel"].setEnabled(False)
    e.busy_changed.connect(a["cancel"].setEnabled)
    window.results_panel.heatmap.toggled.connect(a["heatmap"].setChecked)
    a["heatmap"].setEnabled(window.results_panel.heatmap.isEnabled())
    window.results_panel.heatmap_available.connect(a["heatmap"].setEnabled)
    _tool_actions(window, a)
    _menus(window, a)
    _toolbars(window, a)
    return a


def _tool_actions(window, a: dict) -> None:
    group = QActionGroup(window)
    for tool, text, icon, key in (
        ("brush", "Brush", "mdi6.brush", "B"),
        ("eraser", "Eraser", "mdi6.eraser", "E"),
        ("rect", "Rectangle", "mdi6.rectangle-outline", "R"),
        ("lasso", "Lasso", "mdi6.lasso", "L"),
    ):
        action = _action(window, text, icon, key, partial(window.canvas.set_tool, tool), True)
        action.setChecked(tool == window.canvas.tool)
        group.addAction(action)
        a[f"tool_{tool}"] = action


def _menus(window, a: dict) -> None:
    bar = window.menuBar()
    file = bar.addMenu("&File")
    file.addActions([a["open"], a["paste"]])
    recent = file.addMenu("Open recent")
    recent.aboutToShow.connect(partial(_fill_recent, window, recent))
    file.addSeparator()
    file.addActions([a["load_mask"], a["save"], a["save_as"]])
    file.addSeparator()
    file.addAction(a["quit"])
    edit = bar.addMenu("&Edit")
    edit.addActions([a["undo"], a["redo"]])
    edit.addSeparator()
    edit.addActions([a["clear"], a["invert"], a["grow"], a["shrink"]])
    view = bar.addMenu("&View")
    view.addActions([a["fit"], a["actual"], a["zoom_in"], a["zoom_out"]])
    view.addSeparator()
    view.addActions([a["original"], a["grid"], a["heatmap"]])
    view.addAction(a["demo"])
    theme = view.addMenu("Theme")
    group = QActionGroup(theme)
    for name in THEMES:
        action = QAction(name.capitalize(), theme, checkable=True)
        action.setChecked(window.prefs.theme == name)
        action.triggered.connect(partial(window.set_theme, name))
        group.addAction(action)
        theme.addAction(action)
    view.addSeparator()
    for dock in (window.run_dock, window.results_dock, window.recognition_dock):
        if dock is not None:
            view.addAction(dock.toggleViewAction())
    run = bar.addMenu("&Run")
    run.addActions([a["run"], a["cancel"]])
    models = bar.addMenu("&Models")
    models.aboutToShow.connect(partial(window.fill_models_menu, models))
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(a["shortcuts"])
    help_menu.addAction(a["about"])


def _toolbars(window, a: dict) -> None:
    tools = QToolBar("Tools", window)
    tools.setObjectName("toolbar-tools")
    tools.setIconSize(QSize(22, 22))
    for key in ("tool_brush", "tool_eraser", "tool_rect", "tool_lasso"):
        tools.addAction(a[key])
    tools.addSeparator()
    tools.addActions([a["clear"], a["invert"], a["grow"], a["shrink"]])
    window.addToolBar(Qt.ToolBarArea.LeftToolBarArea, tools)
    main = QToolBar("Main", window)
    main.setObjectName("toolbar-main")
    main.setIconSize(QSize(20, 20))
    main.addActions([a["open"], a["save"]])
    main.addSeparator()
    main.addActions([a["undo"], a["redo"]])
    main.addSeparator()
    size = QSpinBox(minimum=1, maximum=2000, suffix=" px", value=window.canvas.brush_size)
    size.setToolTip("Brush size in image pixels ([ and ])")
    size.setPrefix("Brush ")
    size.valueChanged.connect(window.canvas.set_brush_size)
    window.canvas.brush_size_changed.connect(size.setValue)
    main.addWidget(size)
    main.addSeparator()
    main.addActions([a["fit"], a["actual"], a["grid"]])
    main.addSeparator()
    main.addActions([a["run"], a["cancel"]])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
    window.brush_spin = size


def _fill_recent(window, menu: QMenu) -> None:
    menu.clear()
    files = window.prefs.recent_files()
    for path in files:
        menu.addAction(path, partial(window.open_path, path))
    if not files:
        menu.addAction("No recent files").setEnabled(False)


def show_shortcuts(window) -> None:
    rows = "".join(f"<tr><td>{what}</td><td><b>{keys}</b></td></tr>" for what, keys in SHORTCUTS)
    QMessageBox.information(window, "Keyboard shortcuts", f"<table cellspacing=6>{rows}</table>")
