"""A class picker people can search: a class number, a name, a synonym, free text or a close
spelling (ImageNet has 1000 classes; "lighthouse" finds "beacon"). Each suggestion says what
matched; Enter takes the best one.

A model with many classes (more than SYNC_TEXTS names and synonyms together; the manifest
allows up to MAX_CLASS_TEXTS) is indexed once on a worker thread, and each search runs there
too, the latest text winning: typing never waits for a search."""

from __future__ import annotations

import contextlib
import html
import threading

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QCompleter, QLineEdit

from engine.runtime.classes import ClassIndex, ClassMatch
from engine.runtime.errors import MageError

INDEX_ROLE = Qt.ItemDataRole.UserRole + 1  # a suggestion's class index
SUGGESTIONS = 30  # rows in the suggestion list
# Up to this many names and synonyms a search takes a few milliseconds and runs on the GUI
# thread (ImageNet-1k has about 3,000); more are indexed and searched on a worker thread.
SYNC_TEXTS = 5000
IDLE_SECONDS = 60  # the search thread ends after this long without work
FEW_CLASSES = 30  # up to this many classes, a text that matches none lists them all


class ClassSearcher(QObject):
    """Builds a ClassIndex and runs searches on one worker thread; only the newest request
    is run (older ones still waiting are dropped). Results come back on the GUI thread."""

    indexed = Signal(int)  # generation whose index is ready
    answered = Signal(int, str, str, object)  # generation, kind, text, result

    def __init__(self, parent=None):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._generation = 0
        # (generation, names, synonyms) to index
        self._classes: tuple[int, list[str], list[list[str]] | None] | None = None
        self._index: ClassIndex | None = None
        self._request: tuple[int, str, str] | None = None
        self._thread: threading.Thread | None = None

    @property
    def index(self) -> ClassIndex | None:
        with self._cond:
            return self._index

    def set_classes(self, names: list[str], synonyms: list[list[str]] | None) -> int:
        with self._cond:
            self._generation += 1
            self._classes = (self._generation, list(names), synonyms)
            self._index, self._request = None, None
            self._start()
            return self._generation

    def ask(self, kind: str, text: str) -> None:
        """kind "search" (suggestions) or "find" (Enter): answered later by `answered`."""
        with self._cond:
            self._request = (self._generation, kind, text)
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="class-search", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _loop(self) -> None:
        with contextlib.suppress(RuntimeError):  # the picker was deleted while this thread worked
            self._serve()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while self._classes is None and (self._request is None or self._index is None):
                    if not self._cond.wait(IDLE_SECONDS):
                        self._thread = None  # idle: the next request starts a new thread
                        return
                classes, self._classes = self._classes, None
                request = None
                if classes is None:
                    request, self._request = self._request, None
                index = self._index
            if classes is not None:
                generation, names, synonyms = classes
                built = ClassIndex(names, synonyms)
                with self._cond:
                    if generation != self._generation:
                        continue
                    self._index = built
                self.indexed.emit(generation)
                continue
            assert request is not None  # the wait ends only with both
            assert index is not None
            generation, kind, text = request
            result: ClassMatch | list[ClassMatch] | MageError
            try:
                result = index.find(text) if kind == "find" else index.search(text, SUGGESTIONS)
            except MageError as error:
                result = error
            self.answered.emit(generation, kind, text, result)


def tip(text: str) -> str:
    """A tooltip that shows `text` as it is: class names come from model files, and Qt would
    render one that looks like HTML (an <img> could load any file)."""
    return f"<qt>{html.escape(text)}</qt>" if text else ""


def suggestion_text(match: ClassMatch) -> str:
    """One suggestion row: the class name, and what matched when that is not the name."""
    if match.how == "number":
        return f"{match.name} — class {match.index}"
    if match.matched.casefold() == match.name.casefold():
        return match.name
    if match.how == "spelling":
        return f"{match.name} — close to '{match.matched}'"
    return f"{match.name} — matched '{match.matched}'"


def match_phrase(match: ClassMatch) -> str:
    """What matched, when the text was neither the name nor the number ("" then)."""
    if match.how == "number" or match.matched.casefold() == match.name.casefold():
        return ""
    if match.how == "spelling":
        return f"Close to '{match.matched}'"
    return f"Matched '{match.matched}'"


class ClassPicker(QComboBox):
    class_chosen = Signal(str)  # the class name; "" when cleared
    hint_changed = Signal(str)  # what the last choice or search matched, or why nothing did

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        # suggestions come from the class search below (Qt takes None; the stub wants one)
        self.setCompleter(None)  # type: ignore[arg-type]
        self.lineEdit().setPlaceholderText("Class: name, synonym or number...")
        self.lineEdit().setClearButtonEnabled(True)
        self.setMaxVisibleItems(15)
        self.index = ClassIndex([])
        self.synonyms: list[list[str]] = []
        self.hint = ""
        self.searcher = ClassSearcher(self)  # for models with many classes
        self.searcher.indexed.connect(self._on_indexed)
        self.searcher.answered.connect(self._on_answer)
        self.background = False  # searches run on the searcher's thread
        self._generation = 0
        self._last: tuple[str, list[ClassMatch]] = ("", [])  # the newest suggestions shown
        self.suggestions = QStandardItemModel(self)
        self.completer_ = QCompleter(self.suggestions, self)
        self.completer_.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer_.setMaxVisibleItems(12)
        self.completer_.setWidget(self.lineEdit())
        # the QModelIndex overload; the stub's signals do not list their overloads
        self.completer_.activated[QModelIndex].connect(self._on_suggestion)  # type: ignore[index]
        self.lineEdit().textEdited.connect(self._suggest)
        self.lineEdit().returnPressed.connect(self._take_typed)
        self.lineEdit().installEventFilter(self)
        self.currentIndexChanged.connect(self._on_index)

    def lineEdit(self) -> QLineEdit:  # noqa: N802 - Qt's name
        """The text field, which this box (editable from the start) always has."""
        edit = super().lineEdit()
        assert edit is not None
        return edit

    # -- the model's classes --------------------------------------------------------------------

    def set_classes(self, names: list[str] | None, synonyms: list[list[str]] | None = None) -> None:
        self.blockSignals(True)
        self.clear()
        self.addItems(names or [])
        self.synonyms = [list(s) for s in synonyms] if synonyms else []
        texts = len(names or []) + sum(len(s) for s in self.synonyms)
        self.background = texts > SYNC_TEXTS
        self._last = ("", [])
        if self.background:
            self.index = ClassIndex([])  # the worker's, once it is built
            self._generation = self.searcher.set_classes(names or [], self.synonyms or None)
        else:
            self.index = ClassIndex(names or [], self.synonyms or None)
            for i, name in enumerate(names or []):
                self.setItemData(i, tip(self._describe_class(i, name)), Qt.ItemDataRole.ToolTipRole)
        self.suggestions.clear()
        self.setCurrentIndex(-1)
        self.blockSignals(False)
        self._set_hint("")

    def select(self, name: str) -> None:
        index = self.findText(name, Qt.MatchFlag.MatchFixedString) if name else -1
        self.setCurrentIndex(index)
        if index < 0:
            self.lineEdit().clear()

    def chosen(self) -> str:
        """The chosen class name ("" for none), whatever is being typed."""
        return self.itemText(self.currentIndex()) if self.currentIndex() >= 0 else ""

    def popup_shown(self) -> bool:
        return self._popup().isVisible()

    def _popup(self) -> QAbstractItemView:
        popup = self.completer_.popup()
        assert popup is not None  # the completer makes its list when first asked
        return popup

    # -- searching ------------------------------------------------------------------------------

    def _suggest(self, text: str) -> None:
        if self.background:
            if text.strip():
                self.searcher.ask("search", text)
            else:
                self._show_suggestions(text, [])
            return
        self._show_suggestions(text, self.index.search(text, SUGGESTIONS))

    def _on_indexed(self, generation: int) -> None:
        if generation != self._generation:
            return
        self.index = self.searcher.index or self.index
        typed = self.lineEdit().text()
        if typed.strip() and typed != self.chosen():
            self.searcher.ask("search", typed)  # what was typed while indexing

    def _on_answer(self, generation: int, kind: str, text: str, result) -> None:
        if generation != self._generation or text != self.lineEdit().text():
            return  # a newer model or newer text: this answer is stale
        if kind == "search":
            self._show_suggestions(text, [] if isinstance(result, MageError) else result)
        elif isinstance(result, MageError):
            self._set_hint(str(result)[:1].upper() + str(result)[1:])
        else:
            self._choose(result.index, result)

    def _show_suggestions(self, text: str, matches: list[ClassMatch]) -> None:
        self._last = (text, matches)
        typed = text.strip()
        listing = bool(typed) and not matches and self.count() <= FEW_CLASSES
        if listing:  # nothing matched, and the model's classes fit in a short list: show them
            matches = [ClassMatch(i, n, n, "exact", 0.0) for i, n in enumerate(self.index.names)]
        self.suggestions.clear()
        for m in matches:
            item = QStandardItem(suggestion_text(m))
            item.setData(m.index, INDEX_ROLE)
            item.setToolTip(tip(self._describe_class(m.index, m.name)))
            item.setEditable(False)
            self.suggestions.appendRow(item)
        popup = self._popup()
        if matches:
            area = self.lineEdit().rect()  # wide enough for "name — matched 'synonym'"
            wanted = popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width() + 8
            area.setWidth(max(area.width(), min(wanted, 480)))
            self.completer_.complete(area)
            popup.setCurrentIndex(self.suggestions.index(0, 0))  # Enter takes the best
        else:
            popup.hide()
        # the hint always speaks of what is in the box now, never of an earlier text
        if not typed:
            chosen = self.currentIndex()
            self._set_hint(self._describe_class(chosen, self.chosen()) if chosen >= 0 else "")
        elif listing:
            self._set_hint(
                f"No class matches '{typed}'. This model knows {self.count()} classes: "
                + ", ".join(self.index.names)
            )
        elif not matches:
            self._set_hint(f"No class matches '{typed}'")
        else:
            best = matches[0]
            said = match_phrase(best)
            self._set_hint(
                f"{said}: Enter takes {best.name}" if said else f"Enter takes {best.name}"
            )

    def _on_suggestion(self, index: QModelIndex) -> None:
        row = index.data(INDEX_ROLE)
        if row is None:
            return
        typed = self.lineEdit().text()
        if self.background:
            shown = self._last[1] if self._last[0] == typed else []
            self._choose(int(row), next((m for m in shown if m.index == int(row)), None))
            return
        self._choose(int(row), next(iter(self.index.search(typed, SUGGESTIONS)), None))

    def _take_typed(self) -> None:
        """Enter without a suggestion list: the one class the text means, or why none."""
        if self.popup_shown():
            return  # the popup's Enter activates its current row
        text = self.lineEdit().text()
        if not text.strip() or (self.currentIndex() >= 0 and text == self.chosen()):
            return
        if self.background:
            self.searcher.ask("find", text)
            return
        try:
            match = self.index.find(text)
        except MageError as e:
            self._set_hint(str(e)[:1].upper() + str(e)[1:])
            return
        self._choose(match.index, match)

    def eventFilter(self, watched, event) -> bool:
        """Leaving the field with unfinished text shows the chosen class again."""
        if (
            watched is self.lineEdit()
            and event.type() == QEvent.Type.FocusOut
            and event.reason() != Qt.FocusReason.PopupFocusReason
            and not self.popup_shown()
            and self.lineEdit().text() != self.chosen()
        ):
            self.lineEdit().setText(self.chosen())
        return super().eventFilter(watched, event)

    def _choose(self, row: int, match: ClassMatch | None) -> None:
        self._popup().hide()
        if row == self.currentIndex():
            self.lineEdit().setText(self.chosen())
            self._on_index(row)
        else:
            self.setCurrentIndex(row)
        if match is not None and match.index == row:
            said = match_phrase(match)
            if said:
                self._set_hint(f"{said}. {self._describe_class(row, self.chosen())}")

    def _on_index(self, index: int) -> None:
        name = self.itemText(index) if index >= 0 else ""
        self._set_hint(self._describe_class(index, name) if index >= 0 else "")
        self.class_chosen.emit(name)

    def _describe_class(self, index: int, name: str) -> str:
        others = [s for s in (self.synonyms[index] if index < len(self.synonyms) else [])]
        others = [s for s in others if s.casefold() != name.casefold()]
        return f"Class {index}: {name}" + (f" (also: {', '.join(others)})" if others else "")

    def _set_hint(self, text: str) -> None:
        self.hint = text
        self.setToolTip(tip(text))
        self.hint_changed.emit(text)
