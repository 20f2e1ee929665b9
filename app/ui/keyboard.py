"""Editor-wide keys and the order Tab moves focus in.

Hold backslash to see the original (Lightroom's before/after key), `[` and `]` size the brush,
and every menu shortcut (Run, Cancel, Undo, Save...) works wherever the focus is: a number box
or a list would otherwise keep Shift+R or Ctrl+Z for itself. Text fields keep their keys, and
Tab / Shift+Tab move focus through the window's controls in reading order.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow

COMPARE_KEY = Qt.Key.Key_Backslash
COMPARE_NAME = "\\"  # as menus, tooltips and the help show it
BRUSH_KEYS = {Qt.Key.Key_BracketLeft: "smaller", Qt.Key.Key_BracketRight: "larger"}
TYPING = (QLineEdit, QTextEdit, QPlainTextEdit)
# keys a number box needs to edit its number, even where a menu shortcut uses them (Delete)
NUMBER_EDITING = {Qt.Key.Key_Delete, Qt.Key.Key_Backspace}
# modifiers that do not make another key: the keypad, and AltGr where it types the backslash
NEUTRAL = Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.GroupSwitchModifier
KEY_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride)


def typing(widget: QWidget) -> bool:
    """True for widgets where keys are text (a name field, an editable class list)."""
    if isinstance(widget, TYPING):
        return True
    if isinstance(widget, QComboBox) and widget.isEditable():
        return True
    return (
        isinstance(widget, QAbstractItemView)
        and widget.state() == QAbstractItemView.State.EditingState
    )


class WindowKeys(QObject):
    """An application event filter for one main window (see the module docstring)."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind not in KEY_EVENTS:
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self.window or typing(obj):
            return False
        key = event.key()
        plain = not (event.modifiers() & ~NEUTRAL)
        if plain and (key == COMPARE_KEY or key in BRUSH_KEYS):
            if kind == QEvent.Type.ShortcutOverride:
                event.accept()  # delivered as a key press below, in every widget
                return True
            if key == COMPARE_KEY:
                if not event.isAutoRepeat():
                    self.window.canvas.show_original(kind == QEvent.Type.KeyPress)
                return True
            if kind == QEvent.Type.KeyPress:
                self.window.actions_[BRUSH_KEYS[key]].trigger()
            return True
        if kind == QEvent.Type.ShortcutOverride and self._is_shortcut(event):
            if isinstance(obj, QAbstractSpinBox) and plain and key in NUMBER_EDITING:
                return False
            # not handed to the control, which would claim the key: the shortcut fires
            event.ignore()
            return True
        return False

    def _is_shortcut(self, event) -> bool:
        pressed = QKeySequence(event.keyCombination())
        for action in self.window.actions():
            if not action.isEnabled():
                continue
            for keys in action.shortcuts():
                if keys.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch:
                    return True
        return False


def reading_order(container: QWidget) -> list[QWidget]:
    """The controls Tab can reach inside `container`, in the order they were made; a compound
    control (a combo box, a number box) counts once, with its inner field."""
    found: list[QWidget] = []
    for child in container.children():
        if not isinstance(child, QWidget):
            continue
        if child.focusPolicy() & Qt.FocusPolicy.TabFocus:
            found.append(child)
        else:
            found += reading_order(child)
    return found


def set_tab_order(window) -> list[QWidget]:
    """Tab goes from the canvas through the Run panel (task, Run, settings), the results,
    the Recognition panel and the toolbar's brush size, and back to the canvas. The sample
    cards of the empty window come first. Returns the chain (for tests and the help)."""
    chain: list[QWidget] = list(window.welcome.buttons) if window.welcome else []
    chain.append(window.canvas)
    # the panels' controls in the order they were built, which is their reading order (task,
    # Run, settings; candidates, step, heatmap, re-roll), so a control added later fits in
    chain += reading_order(window.run_panel)
    chain += reading_order(window.results_panel)
    panel = window.recognition_panel
    if panel is not None:
        chain += panel.focus_chain()
    chain.append(window.brush_spin)
    for first, second in itertools.pairwise(chain):
        QWidget.setTabOrder(first, second)
    return chain
