"""MainWindow: composes the canvas, panels, menus and toolbars; the logic lives in Editor."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.actions import build_actions
from app.banner import Banner
from app.canvas import CanvasView
from app.editor import Editor
from app.importer import CheckpointImporter, missing_torch_message, torch_available
from app.inspector import RunInspector
from app.model_manager import DEVICES, available_bundles
from app.panels.results_panel import ResultsPanel
from app.panels.run_panel import RunPanel
from app.qimage import rgb_from_qimage
from app.settings import Preferences
from app.theme import THEMES, apply_theme
from app.welcome import attach_welcome
from engine.runtime.errors import MageError
from engine.runtime.imageio import load_mask
from engine.runtime.models import user_models_dir

log = logging.getLogger(__name__)
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, editor: Editor, prefs: Preferences, interactive: bool = True,
                 autosaver=None):
        super().__init__()
        self.editor, self.prefs = editor, prefs
        self.autosaver = autosaver          # app.autosave.Autosaver, or None (no autosave)
        self.interactive = interactive      # False for --screenshot: never open a dialog
        self.output_path = ""               # where Save writes once chosen (never the original)
        self.setWindowTitle("MAGE Studio")
        self.setAcceptDrops(True)
        self.canvas = CanvasView(editor)
        self.canvas.set_brush_size(prefs.brush_size)
        self.canvas.set_show_grid(prefs.show_grid)
        self.banner = Banner()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.inspector = RunInspector(editor, self)
        self.run_panel = RunPanel(editor)
        self.results_panel = ResultsPanel(editor, self.inspector)
        self.importer = CheckpointImporter(self)
        self._build_docks()
        self.actions_ = build_actions(self)
        self.welcome = attach_welcome(self)   # sample thumbnails while no image is open
        self._build_status_bar()
        self._connect()
        geometry, state = prefs.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # -- layout -------------------------------------------------------------------------

    def _build_docks(self) -> None:
        scroll = QScrollArea(widgetResizable=True)
        scroll.setWidget(self.run_panel)
        scroll.setMinimumWidth(300)
        self.run_dock = self._dock("Run", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self.results_dock = self._dock("Results", self.results_panel,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.recognition_panel = _recognition_panel()
        self.recognition_dock = None
        if self.recognition_panel is not None:
            self.recognition_dock = self._dock("Recognition", self.recognition_panel,
                                               Qt.DockWidgetArea.RightDockWidgetArea)
            self.tabifyDockWidget(self.run_dock, self.recognition_dock)
            self.run_dock.raise_()

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.size_label, self.zoom_label, self.model_label = QLabel(), QLabel(), QLabel()
        for label in (self.size_label, self.zoom_label, self.model_label):
            bar.addPermanentWidget(label)
        self.model_label.setText("Model: loading...")

    def _connect(self) -> None:
        e = self.editor
        e.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        e.error.connect(lambda text: self.banner.show_message(text, "error"))
        e.notice.connect(lambda text: self.banner.show_message(text, "info"))
        if self.autosaver is not None:
            self.autosaver.failed.connect(lambda text: self.banner.show_message(text, "error"))
        e.document_changed.connect(self._on_document)
        # bound methods, not lambdas: Qt drops them when the window is destroyed
        e.image_changed.connect(self._send_image_to_recognition)
        e.undo_stack.indexChanged.connect(self._update_title)
        e.options_changed.connect(self.prefs.save_options)
        e.models.loading.connect(lambda p: self.model_label.setText(f"Loading {Path(p).name}..."))
        e.models.loaded.connect(self._on_model_loaded)
        e.models.failed.connect(self._on_model_failed)
        self.inspector.overlay_changed.connect(
            lambda o: self.canvas.set_grid_override(*(o or (None, None))))
        self.canvas.files_dropped.connect(lambda paths: self.open_path(paths[0]))
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.brush_size_changed.connect(self._on_brush_size)
        self.importer.finished.connect(self._on_import_finished)
        self.importer.output.connect(lambda line: self.statusBar().showMessage(line, 5000))

    # -- files --------------------------------------------------------------------------

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.prefs.folder("open"),
                                              IMAGE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        if not self._may_discard():
            return False
        shown = self.banner.text.text() if self.banner.isVisible() else ""
        if not self.editor.open_file(path):
            return False
        if shown.startswith("Cannot load image") and self.banner.text.text() == shown:
            self.banner.hide()   # an earlier file's problem, not this one's
        self.prefs.set_folder("open", str(Path(path).parent))
        self.prefs.add_recent(str(Path(path).resolve()))
        self.output_path = ""
        return True

    def paste(self) -> None:
        clip = QGuiApplication.clipboard()
        mime = clip.mimeData()
        if mime is not None and mime.hasUrls() and mime.urls()[0].isLocalFile():
            self.open_path(mime.urls()[0].toLocalFile())
        elif not clip.image().isNull():
            if self._may_discard():
                self.editor.set_image(rgb_from_qimage(clip.image()), None, "")
                self.output_path = ""
        else:
            self.editor.error.emit("The clipboard holds no image")

    def load_mask_dialog(self) -> None:
        doc = self.editor.document
        if doc is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", self.prefs.folder("open"),
                                              IMAGE_FILTER)
        if path:
            self.load_mask_file(path)

    def load_mask_file(self, path: str) -> bool:
        try:
            mask = load_mask(path, self.editor.document.size, scale=True)
        except MageError as error:
            self.editor.error.emit(str(error))
            return False
        self.editor.set_mask(mask)
        return True

    def save(self) -> None:
        if self.output_path:
            self.editor.save(self.output_path)
        else:
            self.save_as()

    def save_as(self) -> None:
        doc = self.editor.document
        if doc is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save as a new PNG", self._suggested_name(),
                                              "PNG (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        self.editor.save(path)
        if not doc.modified:
            self.output_path = path
            self.prefs.set_folder("save", str(Path(path).parent))

    def _suggested_name(self) -> str:
        doc = self.editor.document
        source = Path(doc.path) if doc and doc.path else Path("untitled.png")
        folder = Path(self.prefs.folder("save") or source.parent or Path.home())
        candidate, n = folder / f"{source.stem}-edited.png", 2
        while candidate.exists():
            candidate, n = folder / f"{source.stem}-edited-{n}.png", n + 1
        return str(candidate)

    def _may_discard(self) -> bool:
        doc = self.editor.document
        if not self.interactive or doc is None or not doc.modified:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", "The current image has unsaved changes. Discard them?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    # -- models ---------------------------------------------------------------------------

    def fill_models_menu(self, menu) -> None:
        menu.clear()
        group = QActionGroup(menu)
        current = self.editor.models.path
        bundles = available_bundles()
        for path in bundles:
            action = QAction(path.name, menu, checkable=True)
            action.setChecked(current is not None and Path(current) == path)
            action.setToolTip(str(path))
            action.triggered.connect(lambda _=False, p=path: self.load_model(p))
            group.addAction(action)
            menu.addAction(action)
        if not bundles:
            menu.addAction(QAction("No models found", menu, enabled=False))
        menu.addSeparator()
        devices = menu.addMenu("Device")
        device_group = QActionGroup(devices)
        for device in DEVICES:
            action = QAction(device.upper() if device != "auto" else "Auto (CUDA if present)",
                             devices, checkable=True)
            action.setChecked(device == self.editor.models.device)
            action.triggered.connect(lambda _=False, d=device: self.set_device(d))
            device_group.addAction(action)
            devices.addAction(action)
        menu.addSeparator()
        menu.addAction(self.actions_["import"])
        menu.addAction(self.actions_["models_folder"])

    def load_model(self, path, device: str | None = None) -> None:
        self.editor.jobs.cancel()
        device = device or self.editor.models.device
        self.prefs.save_model(str(path), device)
        self.editor.models.load(path, device)

    def set_device(self, device: str) -> None:
        if self.editor.models.path is not None:
            self.load_model(self.editor.models.path, device)

    def import_checkpoint(self) -> None:
        if not torch_available():
            QMessageBox.information(self, "PyTorch needed", missing_torch_message())
            return
        path, _ = QFileDialog.getOpenFileName(self, "Official MAGE checkpoint", "",
                                              "PyTorch checkpoint (*.pth *.pt);;All files (*)")
        if path:
            target = self.importer.start(Path(path))
            self.banner.show_message(f"Importing {Path(path).name} into {target}... "
                                     "(you can keep working)", "info")

    def open_models_folder(self) -> None:
        user_models_dir().mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(user_models_dir())))

    def _on_import_finished(self, ok: bool, message: str) -> None:
        if ok:
            self.banner.show_message(f"Imported to {message}; loading it now", "info")
            self.load_model(message)
        else:
            self.banner.show_message(message, "error")

    def _on_model_loaded(self, bundle) -> None:
        m = bundle.manifest
        kind = f"{len(m.class_names)} classes" if m.class_conditional else "unconditional"
        self.model_label.setText(f"{bundle.device.upper()}  |  {m.name} ({m.image_size} px, "
                                 f"{kind})")
        self.model_label.setToolTip(str(bundle.path))
        if bundle.notices:
            self.banner.show_message(" ".join(bundle.notices), "info")
        elif self.banner.isVisible() and "model" in self.banner.text.text().lower():
            self.banner.hide()
        if self.recognition_panel is not None:
            self.recognition_panel.set_bundle(bundle)

    def _on_model_failed(self, message: str) -> None:
        self.model_label.setText("No model")
        self.banner.show_message(f"No model loaded: {message}", "error")

    # -- view state ---------------------------------------------------------------------------

    def set_theme(self, theme: str) -> None:
        if theme in THEMES:
            self.prefs.theme = theme
            apply_theme(QGuiApplication.instance(), theme)

    def toggle_grid(self, on: bool) -> None:
        self.prefs.show_grid = on
        self.canvas.set_show_grid(on)

    def _on_brush_size(self, size: int) -> None:
        self.prefs.brush_size = size
        self.statusBar().showMessage(f"Brush {size} px", 1500)

    def _on_document(self) -> None:
        doc = self.editor.document
        if doc is not None:
            w, h = doc.size
            self.size_label.setText(f"{w} x {h}")
        self._update_title()
        self._send_image_to_recognition()

    def _send_image_to_recognition(self, *_) -> None:
        if self.recognition_panel is not None:
            doc = self.editor.document
            self.recognition_panel.set_image(None if doc is None else doc.rgb)

    def _update_title(self, *_) -> None:
        doc = self.editor.document
        name = Path(doc.path).name if doc is not None and doc.path else "untitled"
        mark = " *" if doc is not None and doc.modified else ""
        self.setWindowTitle(f"{name}{mark} - MAGE Studio" if doc is not None else "MAGE Studio")

    def closeEvent(self, event) -> None:
        if not self._may_discard():
            event.ignore()
            return
        self.editor.jobs.cancel()
        self.prefs.save_window_state(self.saveGeometry(), self.saveState())
        self.prefs.sync()
        if self.autosaver is not None:
            self.autosaver.close(clean=True)   # closed on purpose: nothing to offer next time
        super().closeEvent(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0].toLocalFile())


def _recognition_panel():
    """The recognition dock's panel when app/recognition_panel.py is installed."""
    if importlib.util.find_spec("app.recognition_panel") is None:
        return None
    try:
        from app.recognition_panel import RecognitionPanel
        return RecognitionPanel()
    except Exception:  # noqa: BLE001 - a broken optional panel must not stop the editor
        log.exception("the recognition panel failed to load")
        return None

