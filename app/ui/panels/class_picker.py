"""A searchable class picker: type any part of a name (ImageNet has 1000 of them)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QCompleter


class ClassPicker(QComboBox):
    class_chosen = Signal(str)  # "" when cleared

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.lineEdit().setPlaceholderText("Search classes...")
        self.lineEdit().setClearButtonEnabled(True)
        self.setMaxVisibleItems(15)
        self.currentIndexChanged.connect(self._on_index)

    def set_classes(self, names: list[str] | None) -> None:
        self.blockSignals(True)
        self.clear()
        self.addItems(names or [])
        completer = QCompleter(names or [], self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)  # "ship" finds "container ship"
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setCompleter(completer)
        self.setCurrentIndex(-1)
        self.blockSignals(False)

    def select(self, name: str) -> None:
        index = self.findText(name, Qt.MatchFlag.MatchFixedString)
        self.setCurrentIndex(index)

    def _on_index(self, index: int) -> None:
        self.class_chosen.emit(self.itemText(index) if index >= 0 else "")
