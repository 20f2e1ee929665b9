"""Recognition panel: the widgets of "What is this?" for the current image and of the few-shot
classifier builder. The work (model calls, the fit, keeping the classes between sessions) is
`app.recognition.Recognition`'s; the panel shows its state and tells it when the panel is on
screen, the only time the image's features are computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.recognition import (
    FEWSHOT,
    TOP,
    Example,
    FewShotClass,
    Recognition,
    doubled_fewshot_folder,
    fewshot_folder,
)
from app.ui.actions import ICON_PROPERTY, themed_icon
from engine.runtime.errors import MageError

__all__ = ["FEWSHOT", "RecognitionPanel", "doubled_fewshot_folder", "fewshot_folder"]

THUMB = 48
HEAD_ICONS = {"bundle": "fa5s.cube", "file": "fa5s.file", FEWSHOT: "fa5s.shapes"}
PLACEHOLDER = "fa5s.image"  # an example whose thumbnail is on its way


def _thumb(rgb: np.ndarray) -> QIcon:
    h, w = rgb.shape[:2]
    step = max(1, max(h, w) // (THUMB * 2))
    small = np.ascontiguousarray(rgb[::step, ::step])
    img = QImage(
        small.data, small.shape[1], small.shape[0], small.strides[0], QImage.Format.Format_RGB888
    ).copy()
    return QIcon(
        QPixmap.fromImage(img).scaled(
            THUMB,
            THUMB,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    )


class DropList(QListWidget):
    """Thumbnails of one class's examples; accepts dropped image files and folders."""

    filesDropped = Signal(list)

    def __init__(self):
        super().__init__()
        self.setAcceptDrops(True)
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        # one cell per example, its name on one line shortened in the middle: names never
        # run into each other, and the row is tall enough for its own scroll bar
        line = self.fontMetrics().height()
        self.setGridSize(QSize(THUMB + 36, THUMB + line + 10))
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setUniformItemSizes(True)
        self.setFixedHeight(
            THUMB
            + line
            + 16
            + self.horizontalScrollBar().sizeHint().height()
            + 2 * self.frameWidth()
        )
        self.setToolTip("Drop example images (or folders) of this class here")

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event):
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.filesDropped.emit(paths)


class ClassBox(QFrame):
    """One few-shot class: name field, example thumbnails, add-current and remove buttons."""

    def __init__(self, panel: RecognitionPanel, cls: FewShotClass):
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.cls = cls
        self.name_edit = QLineEdit(cls.name)
        self.name_edit.setPlaceholderText("class name")
        self.add_current = QToolButton()
        self.add_current.setIcon(themed_icon("fa5s.plus-square"))
        self.add_current.setToolTip("Add the current image as an example")
        self.remove = QToolButton()
        self.remove.setIcon(themed_icon("fa5s.trash-alt"))
        self.remove.setToolTip("Remove this class")
        self.add_current.setProperty(ICON_PROPERTY, "fa5s.plus-square")
        self.remove.setProperty(ICON_PROPERTY, "fa5s.trash-alt")
        self.list = DropList()
        top = QHBoxLayout()
        top.addWidget(self.name_edit, 1)
        top.addWidget(self.add_current)
        top.addWidget(self.remove)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.list)
        self.list.filesDropped.connect(lambda paths: panel.add_examples(self, paths))
        self.add_current.clicked.connect(lambda: panel.add_current_image(self))
        self.remove.clicked.connect(lambda: panel.remove_class(self))
        self.name_edit.editingFinished.connect(
            lambda: panel.model.rename_class(cls, self.name_edit.text())
        )

    @property
    def name(self) -> str:
        return self.name_edit.text().strip()

    @property
    def examples(self) -> list[Example]:
        return self.cls.examples

    def show_examples(self) -> None:
        """One item per example (the panel sets their pictures)."""
        self.list.clear()
        for ex in self.cls.examples:
            item = QListWidgetItem(ex.label)
            item.setToolTip(str(ex.source) if isinstance(ex.source, Path) else ex.label)
            self.list.addItem(item)

    def focus_chain(self) -> list[QWidget]:
        return [self.name_edit, self.add_current, self.remove, self.list]

    @staticmethod
    def row_height() -> int:
        """The height one class takes: its name field and its row of examples."""
        field = QLineEdit().sizeHint().height()
        return field + DropList().height() + 16


class RecognitionPanel(QWidget):
    """Top-5 classes of the current image, and a few-shot classifier made from examples."""

    predictionsChanged = Signal(list)  # [(class name, probability)], best first
    fewshotChanged = Signal()  # the few-shot head was rebuilt or cleared

    def __init__(self, parent: QWidget | None = None, store=None):
        """`store` (app.preferences.Preferences, or None): where the few-shot classes and their
        examples are kept between sessions."""
        super().__init__(parent)
        self.model = Recognition(self, store)
        self._in_view = True  # until a dock says its tab is behind another
        self.classes: list[ClassBox] = []
        self._icons: dict[int, QIcon] = {}  # example id -> its own picture
        self._build()
        m = self.model
        m.status_changed.connect(self._show_status)
        m.predictions_changed.connect(self._show_predictions)
        m.heads_changed.connect(self._show_heads)
        m.fewshot_status_changed.connect(self.fewshot_status.setText)
        m.fewshot_changed.connect(self._on_fewshot)
        m.examples_changed.connect(self._show_examples)
        m.thumbnails_ready.connect(self._on_thumbs)
        self._show_status(m.status)
        for cls in m.restore():
            self._add_box(cls)

    # -- what the model's state shows -------------------------------------------------------

    @property
    def bundle(self):
        return self.model.bundle

    @property
    def predictions(self) -> list[tuple[str, float]]:
        return self.model.predictions

    @property
    def not_sure(self) -> bool:
        return self.model.not_sure

    @property
    def fewshot_head(self):
        return self.model.fewshot_head

    @property
    def fewshot_loo(self) -> float | None:
        return self.model.fewshot_loo

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        what = QGroupBox("What is this?")
        self.head_combo = QComboBox()
        self.head_combo.setToolTip("Which classifier names the image")
        self.load_button = QToolButton()
        self.load_button.setIcon(themed_icon("fa5s.folder-open"))
        self.load_button.setToolTip("Load a classifier head (.npz)")
        self.load_button.setProperty(ICON_PROPERTY, "fa5s.folder-open")
        row = QHBoxLayout()
        row.addWidget(self.head_combo, 1)
        row.addWidget(self.load_button)
        self.rows = QGridLayout()
        self.row_labels, self.row_bars = [], []
        for i in range(TOP):
            # class names come from model files: shown as text, never as rich text
            label, bar = QLabel(textFormat=Qt.TextFormat.PlainText), QProgressBar()
            bar.setRange(0, 1000)
            bar.setFormat("")
            bar.setFixedHeight(12)
            self.rows.addWidget(label, i, 0)
            self.rows.addWidget(bar, i, 1)
            self.row_labels.append(label)
            self.row_bars.append(bar)
        self.status = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        lay = QVBoxLayout(what)
        lay.addLayout(row)
        lay.addLayout(self.rows)
        lay.addWidget(self.status)

        few = QGroupBox("Teach new classes (few-shot)")
        holder = QWidget()
        self.class_layout = QVBoxLayout(holder)
        self.class_layout.setContentsMargins(0, 0, 0, 0)
        self.class_layout.addStretch(1)
        scroll = QScrollArea(widgetResizable=True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(holder)
        # classes scroll up and down only (each example row scrolls sideways by itself), and
        # one whole class is always in view
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumHeight(ClassBox.row_height())
        self.add_class_button = QPushButton(themed_icon("fa5s.plus"), "Add class")
        self.save_button = QPushButton(themed_icon("fa5s.save"), "Save…")
        self.add_class_button.setProperty(ICON_PROPERTY, "fa5s.plus")
        self.save_button.setProperty(ICON_PROPERTY, "fa5s.save")
        self.save_button.setEnabled(False)
        self.fewshot_status = QLabel(self.model.fewshot_status, wordWrap=True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_class_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        lay = QVBoxLayout(few)
        lay.addWidget(scroll, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.fewshot_status)

        outer = QVBoxLayout(self)
        outer.addWidget(what)
        outer.addWidget(few, 1)
        self.head_combo.currentIndexChanged.connect(
            lambda _i: self.model.select_head(self.head_combo.currentData())
        )
        self.load_button.clicked.connect(self._ask_load_head)
        self.add_class_button.clicked.connect(lambda: self.add_class())
        self.save_button.clicked.connect(self._ask_save)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._refresh_icons()  # drawn in the new theme's text colour, not a restart away
        super().changeEvent(event)

    def _refresh_icons(self) -> None:
        for button in self.findChildren(QAbstractButton):
            name = button.property(ICON_PROPERTY)
            if name:
                button.setIcon(themed_icon(name))
        self._show_heads()
        for box in self.classes:
            self._show_icons(box)

    # -- public API ----------------------------------------------------------------------------

    def set_bundle(self, bundle) -> None:
        """Use `bundle` (or None): its heads fill the chooser; examples are re-encoded."""
        self.model.set_bundle(bundle)

    def set_image(self, rgb: np.ndarray | None, name: str = "") -> None:
        """The image to name (uint8 [H,W,3]) or None; `name` labels it as an example. Its
        features are computed when (and while) the panel is on screen."""
        self.model.set_image(rgb, name)

    def focus_chain(self) -> list[QWidget]:
        """The panel's controls in the order Tab visits them."""
        chain: list[QWidget] = [self.head_combo, self.load_button]
        for box in self.classes:
            chain += box.focus_chain()
        return chain + [self.add_class_button, self.save_button]

    def add_class(self, name: str = "", paths: list | None = None) -> ClassBox:
        box = self._add_box(self.model.add_class(name))
        if paths:
            self.add_examples(box, paths)
        else:
            self.model.refresh_fewshot()
        return box

    def remove_class(self, box: ClassBox) -> None:
        self.classes.remove(box)
        box.setParent(None)
        box.deleteLater()
        self.model.remove_class(box.cls)

    def add_examples(self, box: ClassBox, paths: list) -> None:
        self.model.add_files(box.cls, paths)
        self._show_examples()

    def add_current_image(self, box: ClassBox) -> None:
        example = self.model.add_current_image(box.cls)
        if example is not None:
            assert isinstance(example.source, np.ndarray)  # the open image, in memory
            self._icons[example.id] = _thumb(example.source)
            self._show_examples()

    def load_head_file(self, path: str | Path) -> bool:
        """Add a head file to the chooser and select it; False (status says why) if refused."""
        return self.model.load_head_file(path)

    def save_fewshot(self, path: str | Path) -> None:
        self.model.save_fewshot(path)

    def busy(self) -> bool:
        return self.model.busy()

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Process events until no job runs (results are delivered; a fit may follow)."""
        return self.model.wait_idle(msecs)

    def current_head(self):
        return self.model.current_head()

    def stop_jobs(self) -> None:
        """Cancel the model calls and thumbnail reads and wait for them."""
        self.model.stop_jobs()

    # -- on screen or not --------------------------------------------------------------------

    def set_in_view(self, in_view: bool) -> None:
        """Whether the panel's tab is the one on show (a dock's `visibilityChanged`: a tab
        behind another stays "visible" to Qt, only moved out of sight)."""
        self._in_view = in_view
        self.model.set_active(in_view and self.isVisible())

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.model.set_active(self._in_view)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)
        self.model.set_active(False)

    # -- showing the model's state -------------------------------------------------------------

    def _add_box(self, cls: FewShotClass) -> ClassBox:
        box = ClassBox(self, cls)
        after = self.classes[-1].focus_chain()[-1] if self.classes else self.load_button
        self.classes.append(box)
        self.class_layout.insertWidget(self.class_layout.count() - 1, box)  # above the stretch
        # Tab reaches the new class after the one above it, before "Add class"
        for first in box.focus_chain():
            QWidget.setTabOrder(after, first)
            after = first
        box.show_examples()
        self._show_icons(box)
        return box

    def _show_examples(self) -> None:
        for box in self.classes:
            if box.list.count() != len(box.examples) or any(
                box.list.item(row).text() != ex.label for row, ex in enumerate(box.examples)
            ):
                box.show_examples()
            self._show_icons(box)

    def _show_icons(self, box: ClassBox) -> None:
        for row, ex in enumerate(box.examples):
            icon = self._icons.get(ex.id)
            box.list.item(row).setIcon(icon if icon is not None else themed_icon(PLACEHOLDER))

    def _on_thumbs(self, thumbs: dict) -> None:
        for example_id, rgb in thumbs.items():
            self._icons[example_id] = _thumb(rgb)
        self._show_examples()

    def _show_heads(self) -> None:
        combo, m = self.head_combo, self.model
        combo.blockSignals(True)
        combo.clear()
        for entry in m.heads:
            combo.addItem(themed_icon(HEAD_ICONS[entry.kind]), entry.text, entry.key)
        combo.setCurrentIndex(combo.findData(m.head_key) if m.head_key is not None else -1)
        combo.blockSignals(False)

    def _on_fewshot(self) -> None:
        self.save_button.setEnabled(self.model.fewshot_head is not None)
        self.fewshotChanged.emit()

    def _show_predictions(self, best: list[tuple[str, float]]) -> None:
        for i in range(TOP):
            shown = i < len(best)
            self.row_labels[i].setVisible(shown)
            self.row_bars[i].setVisible(shown)
            if shown:
                name, p = best[i]
                unsure = "?" if i == 0 and self.model.not_sure else ""
                self.row_labels[i].setText(f"{name}{unsure}  {100 * p:.1f}%")
                self.row_bars[i].setValue(round(1000 * p))
        self.predictionsChanged.emit(list(best))

    def _show_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # -- dialogs -------------------------------------------------------------------------------

    def _ask_load_head(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load classifier head", "", "Classifier heads (*.npz)"
        )
        if path:
            self.load_head_file(path)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save few-shot classifier", "classifier.npz", "Classifier heads (*.npz)"
        )
        if path:
            try:
                self.save_fewshot(path if path.endswith(".npz") else path + ".npz")
            except MageError as e:
                self.fewshot_status.setText(str(e))

    def closeEvent(self, event):  # noqa: N802 - Qt's name
        self.stop_jobs()
        super().closeEvent(event)
