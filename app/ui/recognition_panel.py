"""Recognition panel: "What is this?" for the current image, and a few-shot classifier builder.

The model only runs through the app's job controllers (features of the current image, of
dropped examples, the few-shot fit), one per kind on a one-thread pool; the GUI thread just
applies the small head (a matrix product) and shows the top 5. A new image, bundle or example
set supersedes the job of its kind, whose late result is dropped.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QSize, Qt, QThreadPool, Signal
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

from app.controller import JobController
from app.ui.actions import ICON_PROPERTY, themed_icon
from engine.runtime.errors import MageError
from engine.runtime.imageio import load_image
from engine.runtime.locations import user_data_dir
from engine.runtime.recognition import (
    Head,
    bundle_head,
    find_images,
    fit_fewshot,
    image_features,
    leave_one_out_accuracy,
    load_head,
    topk,
)

TOP = 5
THUMB = 48
FEWSHOT = "fewshot"
_ids = itertools.count(1)
JOB_KINDS = ("image", "examples", "fit")
EXAMPLES_FOLDER = "fewshot-examples"
HEAD_ICONS = {"bundle": "fa5s.cube", "file": "fa5s.file", FEWSHOT: "fa5s.shapes"}
PLACEHOLDER = "fa5s.image"  # an example whose thumbnail is on its way


@dataclass
class Example:
    id: int
    source: object  # Path or uint8 [H,W,3]
    label: str
    file: str = ""  # where a copy of an in-memory example is kept between sessions


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

    def __init__(self, panel: RecognitionPanel, name: str):
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.examples: list[Example] = []
        self.name_edit = QLineEdit(name)
        self.name_edit.setPlaceholderText("class name")
        self.add_current = QToolButton(
            icon=themed_icon("fa5s.plus-square"), toolTip="Add the current image as an example"
        )
        self.remove = QToolButton(icon=themed_icon("fa5s.trash-alt"), toolTip="Remove this class")
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
        self.name_edit.editingFinished.connect(panel._refresh_fewshot)

    @property
    def name(self) -> str:
        return self.name_edit.text().strip()

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
        self._store = store
        self._restoring = False
        self._image_name = ""
        self.bundle = None
        self.pool = QThreadPool(self)
        self._jobs = {kind: JobController(self, self.pool) for kind in JOB_KINDS}
        self.pool.setMaxThreadCount(1)  # one model call at a time
        for kind, jobs in self._jobs.items():
            jobs.failed.connect(partial(self._on_failed, kind))
        self._jobs["image"].finished.connect(self._on_image_features)
        self._jobs["examples"].finished.connect(self._on_examples)
        self._jobs["fit"].finished.connect(self._on_fit)
        # thumbnails of dropped examples come at once, never behind a model call
        self.thumb_pool = QThreadPool(self)
        self.thumb_pool.setMaxThreadCount(1)
        self._thumb_jobs = JobController(self, self.thumb_pool)
        self._thumb_jobs.finished.connect(self._on_thumbs)
        self._thumbs: set[int] = set()  # examples whose own thumbnail is shown
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_jobs)  # bound: dropped with the panel
        self.predictions: list[tuple[str, float]] = []
        self.not_sure = False  # the top class is under the head's "not sure" threshold
        self.fewshot_head: Head | None = None
        self.fewshot_loo: float | None = None
        self.classes: list[ClassBox] = []
        self._rgb: np.ndarray | None = None
        self._image_features: np.ndarray | None = None
        self._heads: dict[str, Head] = {}
        self._features: dict[int, np.ndarray] = {}  # example id -> features
        self._note = ""  # appended to the next few-shot status (skipped files)
        self._build()
        self._show_status("Open a model to recognise images.")
        if store is not None:
            self._restore_classes()

    # -- layout --------------------------------------------------------------------------------

    def _build(self) -> None:
        what = QGroupBox("What is this?")
        self.head_combo = QComboBox(toolTip="Which classifier names the image")
        self.load_button = QToolButton(
            icon=themed_icon("fa5s.folder-open"), toolTip="Load a classifier head (.npz)"
        )
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
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
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
        self.fewshot_status = QLabel(
            "Add two or more classes and drop a few example images of each.", wordWrap=True
        )
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
        self.head_combo.currentIndexChanged.connect(lambda _i: self._predict())
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
        for i in range(self.head_combo.count()):
            key = str(self.head_combo.itemData(i))
            kind = FEWSHOT if key == FEWSHOT else key.split(":", 1)[0]
            if kind in HEAD_ICONS:
                self.head_combo.setItemIcon(i, themed_icon(HEAD_ICONS[kind]))
        for box in self.classes:
            for row, ex in enumerate(box.examples):
                if ex.id not in self._thumbs:
                    box.list.item(row).setIcon(themed_icon(PLACEHOLDER))

    # -- public API ----------------------------------------------------------------------------

    def set_bundle(self, bundle) -> None:
        """Use `bundle` (or None): its heads fill the chooser; examples are re-encoded."""
        self.bundle = bundle
        self._heads.clear()
        self._features.clear()
        self._image_features = None
        for jobs in self._jobs.values():
            jobs.cancel()  # results for the previous model are dropped
        self._fill_heads()
        self._compute_image_features()
        self._refresh_fewshot()

    def set_image(self, rgb: np.ndarray | None, name: str = "") -> None:
        """The image to name (uint8 [H,W,3]) or None; `name` labels it as an example."""
        self._image_name = name
        self._rgb = None if rgb is None else np.ascontiguousarray(rgb[..., :3], np.uint8)
        self._image_features = None
        self._jobs["image"].cancel()
        self._compute_image_features()

    def focus_chain(self) -> list[QWidget]:
        """The panel's controls in the order Tab visits them."""
        chain: list[QWidget] = [self.head_combo, self.load_button]
        for box in self.classes:
            chain += box.focus_chain()
        return chain + [self.add_class_button, self.save_button]

    def add_class(self, name: str = "", paths: list | None = None) -> ClassBox:
        box = ClassBox(self, name or f"class {len(self.classes) + 1}")
        after = self.classes[-1].focus_chain()[-1] if self.classes else self.load_button
        self.classes.append(box)
        self.class_layout.insertWidget(self.class_layout.count() - 1, box)  # above the stretch
        # Tab reaches the new class after the one above it, before "Add class"
        for first in box.focus_chain():
            QWidget.setTabOrder(after, first)
            after = first
        if paths:
            self.add_examples(box, paths)
        else:
            self._refresh_fewshot()
        return box

    def remove_class(self, box: ClassBox) -> None:
        self.classes.remove(box)
        box.setParent(None)
        box.deleteLater()
        self._refresh_fewshot()

    def add_examples(self, box: ClassBox, paths: list) -> None:
        try:
            files = find_images(paths)
        except MageError as e:
            self.fewshot_status.setText(str(e))
            return
        for f in files:
            self._add_example(box, f, themed_icon(PLACEHOLDER), f.name)
        self._load_thumbs()
        self._refresh_fewshot()

    def add_current_image(self, box: ClassBox) -> None:
        if self._rgb is None:
            self.fewshot_status.setText("There is no image open to add.")
            return
        base = self._image_name or "untitled image"
        used = {ex.label for ex in box.examples}
        label, n = base, 2
        while label in used:
            label, n = f"{base} ({n})", n + 1
        self._add_example(box, self._rgb.copy(), _thumb(self._rgb), label)
        self._thumbs.add(box.examples[-1].id)
        if self._store is not None:
            box.examples[-1].file = _keep_copy(self._rgb)
        self._refresh_fewshot()

    def load_head_file(self, path: str | Path) -> bool:
        """Add a head file to the chooser and select it; False (status says why) if refused."""
        try:
            head = load_head(path)
            if self.bundle is not None:
                head.check_bundle(self.bundle)
        except MageError as e:
            self._show_status(str(e))
            return False
        key = f"file:{path}"
        self._heads[key] = head
        self._select(key, f"File: {Path(path).name}")
        return True

    def save_fewshot(self, path: str | Path) -> None:
        if self.fewshot_head is None:
            raise MageError("there is no few-shot classifier yet")
        self.fewshot_head.save(path)

    def busy(self) -> bool:
        return any(jobs.busy for jobs in self._jobs.values())

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Process events until no job runs (results are delivered; a fit may follow)."""
        while self.busy():
            if not all(jobs.wait_idle(msecs / 1000) for jobs in self._jobs.values()):
                return False
        return True

    def current_head(self) -> Head | None:
        key = self.head_combo.currentData()
        if key is None:
            return None
        if key == FEWSHOT:
            return self.fewshot_head
        if key not in self._heads and key.startswith("bundle:"):
            try:
                self._heads[key] = self._bundle_head(key.split(":", 1)[1])
            except MageError as e:
                self._show_status(str(e))
                return None
        return self._heads.get(key)

    # -- heads and predictions -----------------------------------------------------------------

    def _bundle_head(self, name: str) -> Head:
        head = bundle_head(self.bundle, name)
        head.check_bundle(self.bundle)
        return head

    def _fill_heads(self) -> None:
        keep = [
            (self.head_combo.itemText(i), self.head_combo.itemData(i))
            for i in range(self.head_combo.count())
            if str(self.head_combo.itemData(i)).startswith("file:")
        ]
        self.head_combo.blockSignals(True)
        self.head_combo.clear()
        if self.bundle is not None:
            for name in self.bundle.manifest.heads:
                icon = themed_icon(HEAD_ICONS["bundle"])
                self.head_combo.addItem(icon, f"Model: {name}", f"bundle:{name}")
        for text, key in keep:  # file heads stay only if they suit the new model
            try:
                head = load_head(key.split(":", 1)[1])
                if self.bundle is not None:
                    head.check_bundle(self.bundle)
            except MageError:
                continue
            self._heads[key] = head
            self.head_combo.addItem(themed_icon(HEAD_ICONS["file"]), text, key)
        if self.fewshot_head is not None:
            self.head_combo.addItem(themed_icon(HEAD_ICONS[FEWSHOT]), "Few-shot (below)", FEWSHOT)
        self.head_combo.blockSignals(False)

    def _select(self, key: str, text: str) -> None:
        index = self.head_combo.findData(key)
        if index < 0:
            icon = themed_icon(HEAD_ICONS[FEWSHOT if key == FEWSHOT else "file"])
            self.head_combo.addItem(icon, text, key)
            index = self.head_combo.count() - 1
        if index == self.head_combo.currentIndex():
            self._predict()
        self.head_combo.setCurrentIndex(index)

    def _compute_image_features(self) -> None:
        self._show_predictions([])
        if self.bundle is None or self._rgb is None:
            self._predict()
            return
        bundle, rgb = self.bundle, self._rgb
        self._show_status("Looking…")
        self._start("image", lambda: image_features(bundle, [rgb]))

    def _on_image_features(self, features: np.ndarray) -> None:
        self._image_features = features
        self._predict()

    def _predict(self) -> None:
        if self.bundle is None:
            return self._show_status("Open a model to recognise images.")
        head = self.current_head()
        if head is None:
            if self.head_combo.count() == 0:
                self._show_status(
                    f"Model '{self.bundle.name}' has no classifier: teach one "
                    "below, load a head file, or make one with `python main.py "
                    "probe`."
                )
            return self._show_predictions([])
        if self._rgb is None:
            return self._show_status("Open an image to see what the model thinks it shows.")
        if self._image_features is None:
            return  # features are on their way
        try:
            best = topk(head, head.predict_proba(self._image_features), TOP)[0]
        except MageError as e:
            return self._show_status(str(e))
        self.not_sure = bool(best) and best[0][1] < head.not_sure_below
        if self.not_sure:
            # below the head's threshold the first name is no answer: say so, keep the guesses
            how = "calibrated on held-out photos" if head.calibrated else "uncalibrated head"
            self._show_status(
                f"Not sure: no class reaches {100 * head.not_sure_below:.0f}% ({how}). "
                f"Best guesses: {', '.join(name for name, _ in best[:3])}."
            )
        else:
            self._show_status("")
        self._show_predictions(best)

    def _show_predictions(self, best: list[tuple[str, float]]) -> None:
        self.predictions = list(best)
        if not best:
            self.not_sure = False
        for i in range(TOP):
            shown = i < len(best)
            self.row_labels[i].setVisible(shown)
            self.row_bars[i].setVisible(shown)
            if shown:
                name, p = best[i]
                unsure = "?" if i == 0 and self.not_sure else ""
                self.row_labels[i].setText(f"{name}{unsure}  {100 * p:.1f}%")
                self.row_bars[i].setValue(round(1000 * p))
        self.predictionsChanged.emit(self.predictions)

    def _show_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # -- few-shot ------------------------------------------------------------------------------

    def _add_example(self, box: ClassBox, source, icon: QIcon, text: str) -> None:
        ex = Example(next(_ids), source, text)
        box.examples.append(ex)
        item = QListWidgetItem(icon, text)
        item.setToolTip(str(source) if isinstance(source, Path) else text)
        box.list.addItem(item)

    def _save_classes(self) -> None:
        if self._store is None or self._restoring:
            return
        classes = []
        for box in self.classes:
            examples = []
            for ex in box.examples:
                file = str(ex.source) if isinstance(ex.source, Path) else ex.file
                if file:
                    examples.append({"file": file, "label": ex.label})
            classes.append({"name": box.name_edit.text(), "examples": examples})
        self._store.save_fewshot_classes(classes)

    def _restore_classes(self) -> None:
        """The classes and examples of the last session; files gone since are skipped."""
        self._restoring = True
        missing = 0
        moved = migrate_fewshot_folder()
        try:
            for entry in self._store.fewshot_classes():
                box = self.add_class(str(entry.get("name", "")))
                for example in entry.get("examples", []):
                    file = str(example.get("file", ""))
                    path = Path(moved.get(file, file))
                    if not path.is_file():
                        missing += 1
                        continue
                    label = str(example.get("label") or path.name)
                    self._add_example(box, path, themed_icon(PLACEHOLDER), label)
        finally:
            self._restoring = False
        if missing:
            self._note = f" ({missing} example file(s) from last time are gone)"
        self._load_thumbs()
        self._refresh_fewshot()

    def _refresh_fewshot(self) -> None:
        """Encode examples that lack features, then refit; stale results are ignored."""
        self._save_classes()
        self._jobs["fit"].cancel()
        boxes = [b for b in self.classes if b.examples]
        if self.bundle is None or len(boxes) < 2:
            return self._set_fewshot(
                None, "Add two or more classes and drop a few example images of each."
            )
        names = [b.name for b in boxes]
        if "" in names or len(set(names)) < len(names):
            return self._set_fewshot(None, "Give every class its own name.")
        todo = [ex for b in boxes for ex in b.examples if ex.id not in self._features]
        if todo:
            self.fewshot_status.setText(f"Reading {len(todo)} example(s)…")
            bundle = self.bundle
            return self._start("examples", lambda: _encode_examples(bundle, todo))
        x = np.stack([self._features[ex.id] for b in boxes for ex in b.examples])
        y = np.array([c for c, b in enumerate(boxes) for _ in b.examples])
        bundle = self.bundle
        self.fewshot_status.setText("Fitting…")
        self._start("fit", lambda: _fit(bundle, x, y, names))

    def _on_examples(self, result: tuple) -> None:
        bundle, features, bad, thumbs = result
        if bundle is not self.bundle:
            return
        self._features.update(features)
        for box in self.classes:
            for row, ex in enumerate(box.examples):
                if ex.id in thumbs and isinstance(ex.source, Path) and ex.id not in self._thumbs:
                    box.list.item(row).setIcon(_thumb(thumbs[ex.id]))
                    self._thumbs.add(ex.id)
        for box in self.classes:  # unreadable files leave the list
            for ex in [e for e in box.examples if e.id in bad]:
                row = box.examples.index(ex)
                box.examples.pop(row)
                box.list.takeItem(row)
        if bad:
            self._note = f" Skipped {len(bad)} unreadable file(s): {next(iter(bad.values()))}"
        self._refresh_fewshot()

    def _load_thumbs(self) -> None:
        """Small pictures of the example files still shown as placeholders, read on their own
        thread (a quick JPEG draft, no model), so they appear as soon as the files are read."""
        todo = [
            (ex.id, ex.source)
            for box in self.classes
            for ex in box.examples
            if ex.id not in self._thumbs and isinstance(ex.source, Path)
        ]
        if todo:
            self._thumb_jobs.call("thumbs", lambda: _quick_thumbs(todo))

    def _on_thumbs(self, thumbs: dict) -> None:
        for box in self.classes:
            for row, ex in enumerate(box.examples):
                if ex.id in thumbs and ex.id not in self._thumbs:
                    box.list.item(row).setIcon(_thumb(thumbs[ex.id]))
                    self._thumbs.add(ex.id)
        self._load_thumbs()  # examples dropped while these were read

    def _on_fit(self, result: tuple[Head, float | None]) -> None:
        head, loo = result
        shots = head.info.get("shots", 1)
        text = (
            f"Classifier ready: {len(head.class_names)} classes, "
            f"{head.info['train_size']} examples ({head.kind}). "
        )
        if loo is not None:
            text += (
                f"Leave-one-out accuracy {100 * loo:.0f}% (chance "
                f"{100 / len(head.class_names):.0f}%)."
            )
        elif shots < 2:
            text += "Add 2 or more examples per class to estimate its accuracy."
        self._set_fewshot(head, text + self._note, loo)
        self._note = ""

    def _set_fewshot(self, head: Head | None, text: str, loo: float | None = None) -> None:
        had = self.fewshot_head is not None
        self.fewshot_head, self.fewshot_loo = head, loo
        self.fewshot_status.setText(text)
        self.save_button.setEnabled(head is not None)
        if head is not None:
            self._select(FEWSHOT, "Few-shot (below)")
        elif had:
            index = self.head_combo.findData(FEWSHOT)
            if index >= 0:
                self.head_combo.removeItem(index)
            self._predict()
        if head is not None or had:
            self.fewshotChanged.emit()

    # -- jobs and dialogs ----------------------------------------------------------------------

    def _start(self, kind: str, fn) -> None:
        """Run `fn` on the pool as the job of `kind` (superseding the one before)."""
        self._jobs[kind].call(kind, fn)

    def _on_failed(self, kind: str, message: str) -> None:
        (self._show_status if kind == "image" else self.fewshot_status.setText)(message)

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

    def closeEvent(self, event):
        self.stop_jobs()
        super().closeEvent(event)

    def stop_jobs(self) -> None:
        """Cancel the model calls and thumbnail reads and wait for them (on close, and when the
        application quits: a thread must not report to a panel that is gone)."""
        for jobs in (*self._jobs.values(), self._thumb_jobs):
            jobs.cancel()  # a cancelled job that has not started yet ends at once
        self.pool.waitForDone(10000)
        self.thumb_pool.waitForDone(10000)


def _encode_examples(bundle, examples: list[Example]) -> tuple[object, dict, dict]:
    """Worker: (bundle, example id -> features, example id -> why unreadable)."""
    ok, images, bad, thumbs = [], [], {}, {}
    for ex in examples:
        try:
            rgb = load_image(ex.source).rgb if isinstance(ex.source, Path) else ex.source
        except MageError as e:
            bad[ex.id] = str(e)
            continue
        ok.append(ex.id)
        images.append(rgb)
        step = max(1, max(rgb.shape[:2]) // (THUMB * 2))
        thumbs[ex.id] = np.ascontiguousarray(rgb[::step, ::step])  # QIcon is made in the GUI
    feats = image_features(bundle, images) if images else []
    return bundle, dict(zip(ok, feats, strict=True)), bad, thumbs


def _quick_thumbs(examples: list[tuple[int, Path]]) -> dict[int, np.ndarray]:
    """Worker: example id -> a small RGB picture; unreadable files are left out (the encoder
    reports them)."""
    from PIL import Image

    side = THUMB * 2
    out = {}
    for example_id, path in examples:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (side, side))  # JPEG: decoded at a fraction of its size
                image = image.convert("RGB")
                image.thumbnail((side, side))
                out[example_id] = np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return out


def _fit(bundle, x: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[Head, float | None]:
    """Worker: the few-shot head and, with 2+ examples in every class, its LOO accuracy."""
    head = fit_fewshot(x, y, names, bundle=bundle)
    loo = None
    if np.bincount(y).min() >= 2:
        kind = "logistic" if head.kind == "linear" else "centroid"
        loo = leave_one_out_accuracy(x, y, names, kind, folds=None if kind == "centroid" else 5)
    return head, loo


def fewshot_folder() -> Path:
    """Where copies of in-memory examples are kept: in the user data folder."""
    return user_data_dir() / EXAMPLES_FOLDER


def doubled_fewshot_folder() -> Path:
    """Where earlier versions kept them: Qt's AppDataLocation, which names the organisation
    and the application, both "MAGE Studio" (".../MAGE Studio/MAGE Studio/...")."""
    return user_data_dir() / user_data_dir().name / EXAMPLES_FOLDER


def migrate_fewshot_folder() -> dict[str, str]:
    """Moves the example copies out of the doubled folder (removed once empty); returns old
    path -> new path for each file moved, or already there. Files that cannot move stay."""
    old, new = doubled_fewshot_folder(), fewshot_folder()
    moved: dict[str, str] = {}
    if not old.is_dir():
        return moved
    try:
        new.mkdir(parents=True, exist_ok=True)
        for path in sorted(old.iterdir()):
            target = new / path.name
            if path.is_file() and not target.exists():
                os.replace(path, target)
            if target.is_file():
                moved[str(path)] = str(target)
        old.rmdir()  # only when empty
        old.parent.rmdir()
    except OSError:
        pass  # what did not move is still found where it was
    return moved


def _keep_copy(rgb: np.ndarray) -> str:
    """Save an in-memory example (the open image) as a PNG in the user data folder, so the
    class keeps it after a restart; "" when that is not possible."""
    from PIL import Image

    folder = fewshot_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.ascontiguousarray(rgb[..., :3], np.uint8))
        image.thumbnail((1024, 1024))
        path = folder / f"{uuid.uuid4().hex}.png"
        image.save(path)
        return str(path)
    except (OSError, ValueError):
        return ""
