"""The question asked before an image with unsaved changes is closed or replaced.

Save / Discard / Cancel, with Save the default, so Enter never loses work: Save runs the
window's normal save flow (Save As when there is no output file yet) and the close or open goes
on only when the image was really written. Discard keeps the session (image, history, settings)
in "older sessions" in the data folder, as a declined crash session is kept; Cancel, Esc or
closing the question changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
BUTTONS = {
    QMessageBox.StandardButton.Save: SAVE,
    QMessageBox.StandardButton.Discard: DISCARD,
    QMessageBox.StandardButton.Cancel: CANCEL,
}


TITLE = "Unsaved changes"


def ask_unsaved(window, name: str, keeps: bool) -> str:
    """SAVE, DISCARD or CANCEL (Esc or closing the question is CANCEL)."""
    text = f"{name} has unsaved changes. Save them first?"
    if keeps:
        text += (
            '\n\nDiscard keeps a copy of the session, with its undo history, in "older '
            'sessions" in the data folder.'
        )
    answer = QMessageBox.question(
        window,
        TITLE,
        text,
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Save,
    )
    return BUTTONS.get(answer, CANCEL)


def may_replace_document(window) -> bool:
    """True when the window's image may be closed or replaced now (asking when it has
    unsaved changes; a window that is not interactive never asks and never saves)."""
    doc = window.editor.document
    if not window.interactive or doc is None or not doc.modified:
        return True
    autosaver = window.autosaver
    keeps = autosaver is not None and autosaver.enabled
    name = Path(doc.path).name if doc.path else "The untitled image"
    answer = ask_unsaved(window, name, keeps)
    if answer == CANCEL:
        return False
    if answer == SAVE:
        window.save()  # may show Save As; a cancelled or failed save leaves it modified
        return window.editor.document is doc and not doc.modified
    keep_discarded(window)
    return True


def keep_discarded(window) -> None:
    """Discard: the session goes to "older sessions" rather than being lost (only when it
    holds unsaved changes: saved work needs no copy, and copies push the oldest out)."""
    autosaver = window.autosaver
    doc = window.editor.document
    if autosaver is None or not autosaver.enabled or doc is None or not doc.modified:
        return
    where = autosaver.keep_discarded()
    if where is not None:
        window.statusBar().showMessage(f"The discarded changes were kept in {where}", 15000)
