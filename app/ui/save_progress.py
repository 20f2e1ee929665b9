"""What the window shows while a save is written in the background, and closing meanwhile.

A busy bar and the megabytes written sit in the status bar until the file is complete. Closing
the window (Ctrl+Q, the title bar) during a save waits for it: the window closes by itself once
the file is written, so the save is finished, never abandoned.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QProgressBar


class SaveProgress(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.close_pending = False
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy: how long the encoder takes is not known ahead
        self.bar.setMaximumWidth(120)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.bar.setToolTip("Saving in the background: you can keep working")
        self.bar.hide()
        window.statusBar().addPermanentWidget(self.bar)
        editor = window.editor
        editor.saving_changed.connect(self._on_saving)
        editor.save_progress.connect(self._on_progress)
        window.installEventFilter(self)

    def _name(self) -> str:
        return Path(self.window.editor.saving_to).name or "the image"

    def _on_saving(self, saving: bool) -> None:
        self.bar.setVisible(saving)
        if not saving and self.close_pending:
            self.close_pending = False
            QTimer.singleShot(0, self.window.close)  # after the save call has returned

    def _on_progress(self, written: int) -> None:
        if self.window.editor.saving:
            self.window.statusBar().showMessage(
                f"Saving {self._name()}... {written / 1e6:.1f} MB written", 0
            )

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if (
            watched is self.window
            and event.type() == QEvent.Type.Close
            and self.window.editor.saving
        ):
            self.close_pending = True
            self.window.statusBar().showMessage(
                f"Finishing the save of {self._name()}; the window closes when it is written"
            )
            event.ignore()
            return True
        return False
