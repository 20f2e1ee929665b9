"""QUndoStack glue: the stack wraps `Document`'s history and keeps no state of its own.

One command per change of the document's history, standing for its position there: undo and
redo only move the document (which tells its listeners). A command whose document is already
where it leads does nothing, so the stack can follow a document that moved by itself. Another
candidate of one run takes the place of the last change: its command merges into the one on
top and only renames it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from PySide6.QtGui import QUndoCommand

from app.core.document import Document

CHANGE_COMMAND = 1  # QUndoCommand.id() of every change command (merging replaces the top one)


class ChangeCommand(QUndoCommand):
    def __init__(
        self,
        document: Document,
        position: int,
        replaces: bool = False,
        moving: Callable[[], AbstractContextManager] = nullcontext,
    ):
        super().__init__(document.history[position].label)
        self.document = document
        self._moving = moving  # entered while the command moves the document
        self.position = position  # index of its change in document.history
        self.replaces = replaces  # takes the place of the command on top (another candidate)

    def id(self) -> int:
        return CHANGE_COMMAND

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (
            isinstance(other, ChangeCommand)
            and other.replaces
            and other.document is self.document
            and other.position == self.position
        ):
            return False
        self.setText(other.text())
        return True

    def redo(self) -> None:
        if self.document.history_index == self.position:
            with self._moving():
                self.document.redo()

    def undo(self) -> None:
        if self.document.history_index == self.position + 1:
            with self._moving():
                self.document.undo()
