"""QUndoStack glue: one QUndoCommand per `Document` change.

The document keeps its own history (plain data, serialisable); the QUndoStack gives the GUI its
undo/redo actions and labels. Both move in lockstep: a command is pushed right after its
change was applied and recorded, so its first redo() does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from app.document import Change


class ChangeCommand(QUndoCommand):
    def __init__(self, change: Change, on_undo: Callable[[], None],
                 on_redo: Callable[[], None]):
        super().__init__(change.label)
        self.change = change
        self._on_undo = on_undo
        self._on_redo = on_redo
        self._applied = True   # pushed after the change was made

    def redo(self) -> None:
        if self._applied:
            return
        self._on_redo()
        self._applied = True

    def undo(self) -> None:
        self._on_undo()
        self._applied = False
