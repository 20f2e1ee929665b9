"""MainWindow: composes the canvas, panels, menus and toolbars; the logic lives in Editor."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QStatusBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.checkpoint_import import CheckpointImporter
from app.editor import Editor
from app.inspector import RunInspector
from app.model_manager import DEVICES, available_bundles
from app.preferences import Preferences
from app.samples import assets_dir
from app.ui.actions import build_actions, refresh_icons
from app.ui.banner import Banner
from app.ui.canvas import CanvasView
from app.ui.keyboard import WindowKeys, set_tab_order
from app.ui.panels.results_panel import ResultsPanel
from app.ui.panels.run_panel import RunPanel
from app.ui.qimage import rgb_from_qimage
from app.ui.save_progress import SaveProgress
from app.ui.theme import THEMES, apply_theme
from app.ui.unsaved import keep_discarded, may_replace_document
from app.ui.welcome import attach_welcome
from engine.runtime.locations import user_models_dir

if TYPE_CHECKING:  # imported on first use: the dialog is rarely opened
    from app.ui.official_models_dialog import OfficialModelsDialog

log = logging.getLogger(__name__)
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"
FIRST_SHARE = (0.8, 0.85)  # first launch: this share of the screen's width and height
GEOMETRY_SAVE_MS = 1000  # the window's size and docks are saved this long after a change
# smallest window: the canvas keeps about 500 px beside the panels, and it fits 1280x720
MINIMUM_SIZE = (880, 560)


class MainWindow(QMainWindow):
    def __init__(
        self, editor: Editor, prefs: Preferences, interactive: bool = True, autosaver=None
    ):
        super().__init__()
        self.editor, self.prefs = editor, prefs
        self.autosaver = autosaver  # app.autosave.Autosaver, or None (no autosave)
        self.interactive = interactive  # False for --screenshot: never open a dialog
        self.output_path = ""  # where Save writes once chosen (never the original)
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
        # Models > Get official models..., made on first use
        self.models_dialog: OfficialModelsDialog | None = None
        self._build_docks()
        self._set_minimum_size()
        self.actions_ = build_actions(self)
        self.welcome = attach_welcome(self)  # sample thumbnails while no image is open
        self._build_status_bar()
        self.save_progress = SaveProgress(self)  # busy bar; closing waits for a save
        self._connect()
        geometry, state = prefs.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self._first_size()
        if state is not None:
            self.restoreState(state)
        # saved soon after every change, not only on a clean close (a crash lost it)
        self._geometry_timer = QTimer(self, singleShot=True, interval=GEOMETRY_SAVE_MS)
        self._geometry_timer.timeout.connect(self.save_geometry)
        # editor-wide keys (compare, brush, menu shortcuts) wherever the focus is
        app = QApplication.instance()
        assert app is not None  # a window lives inside an application
        app.installEventFilter(WindowKeys(self))
        set_tab_order(self)

    def _set_minimum_size(self) -> None:
        """MINIMUM_SIZE, or the screen where that is smaller."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        w, h = MINIMUM_SIZE
        if screen is not None:
            area = screen.availableGeometry()
            w, h = min(w, area.width()), min(h, area.height())
        self.setMinimumSize(w, h)

    def _first_size(self) -> None:
        """First launch: a sensible share of the screen, centred."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        w = min(area.width(), max(int(area.width() * FIRST_SHARE[0]), 1000))
        h = min(area.height(), max(int(area.height() * FIRST_SHARE[1]), 680))
        self.resize(w, h)
        self.move(area.x() + (area.width() - w) // 2, area.y() + (area.height() - h) // 2)

    def save_geometry(self) -> None:
        self.prefs.save_window_state(self.saveGeometry(), self.saveState())
        self.prefs.sync()

    def _schedule_geometry_save(self) -> None:
        if hasattr(self, "_geometry_timer") and self.isVisible():
            self._geometry_timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._schedule_geometry_save()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._schedule_geometry_save()

    def moveEvent(self, event) -> None:
        super().moveEvent(event)
        self._schedule_geometry_save()

    def changeEvent(self, event) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            refresh_icons(self)  # icons in the new palette's text colour
        super().changeEvent(event)

    # -- layout -------------------------------------------------------------------------

    def _build_docks(self) -> None:
        scroll = QScrollArea(widgetResizable=True)
        scroll.setWidget(self.run_panel)
        # as wide as the panel needs: never a horizontal scroll bar
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(
            self.run_panel.minimumSizeHint().width()
            + scroll.verticalScrollBar().sizeHint().width()
            + 4
        )
        # the right-hand panels run the full height; Results sits under the canvas only, so
        # the Run panel needs no scrolling in a 720-pixel-high window
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.run_dock = self._dock("Run", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self.results_dock = self._dock(
            "Results", self.results_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.recognition_panel = _recognition_panel(self.prefs)
        self.recognition_dock = None
        if self.recognition_panel is not None:
            self.recognition_dock = self._dock(
                "Recognition", self.recognition_panel, Qt.DockWidgetArea.RightDockWidgetArea
            )
            self.tabifyDockWidget(self.run_dock, self.recognition_dock)
            # features are computed only while the Recognition tab is the one on show
            self.recognition_dock.visibilityChanged.connect(self.recognition_panel.set_in_view)
            self.run_dock.raise_()

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = StatusBar()
        self.setStatusBar(bar)
        self.size_label, self.zoom_label, self.model_label = QLabel(), QLabel(), QLabel()
        for label in (self.size_label, self.zoom_label, self.model_label):
            label.setContentsMargins(8, 0, 4, 0)
            bar.addPermanentWidget(label)
        self.model_label.setText("Model: loading...")

    def _connect(self) -> None:
        e = self.editor
        e.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        # a problem with what the user just did goes away once it is resolved
        e.error.connect(lambda text: self.banner.show_message(text, "error", "action"))
        e.notice.connect(lambda text: self.banner.show_message(text, "info", "notice"))
        # about this file only: it goes when another image opens
        e.file_notice.connect(lambda text: self.banner.show_message(text, "info", "image"))
        e.document_changed.connect(self._clear_action_banner)
        e.document_changed.connect(self._clear_image_banner)
        e.saved.connect(self._clear_action_banner)
        e.saved.connect(self._update_title)
        e.busy_changed.connect(self._on_busy_banner)
        e.confirm_new_document = self._confirm_generate
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
            lambda o: self.canvas.set_grid_override(*(o or (None, None)))
        )
        self.canvas.files_dropped.connect(lambda paths: self.open_path(paths[0]))
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.brush_size_changed.connect(self._on_brush_size)
        self.importer.finished.connect(self._on_import_finished)
        self.importer.output.connect(lambda line: self.statusBar().showMessage(line, 5000))

    # -- files --------------------------------------------------------------------------

    def choose_file(self, title: str, folder: str, filters: str, save: bool = False) -> str:
        """A file dialog big enough to read its columns, remembering its size and columns."""
        start = Path(folder) if folder else None
        dialog = QFileDialog(
            self, title, str(start.parent if save and start else folder or ""), filters
        )
        dialog.setObjectName("file-dialog")
        if save:
            dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
            dialog.setDefaultSuffix("png")
            if start is not None:
                dialog.selectFile(start.name)
        else:
            dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        state = self.prefs.dialog_state()
        if state is None or not dialog.restoreState(state):
            dialog.setViewMode(QFileDialog.ViewMode.Detail)
        area = (self.screen() or QGuiApplication.primaryScreen()).availableGeometry()
        dialog.resize(min(960, area.width() - 40), min(600, area.height() - 60))
        for view in dialog.findChildren(QTreeView):
            header = view.header()
            header.resizeSection(0, max(header.sectionSize(0), dialog.width() // 2))
            for column in range(1, header.count()):
                header.resizeSection(
                    column, max(header.sectionSize(column), header.sectionSizeHint(column) + 24)
                )
        accepted = dialog.exec() == QFileDialog.DialogCode.Accepted
        self.prefs.save_dialog_state(dialog.saveState())
        files = dialog.selectedFiles() if accepted else []
        return files[0] if files else ""

    def open_dialog(self) -> None:
        path = self.choose_file("Open image", self.prefs.folder("open"), IMAGE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        """Open an image file. The file is read first: a file that cannot be opened is
        reported without asking about the open image's unsaved changes."""
        if not self.editor.open_file(path, confirm=self._may_discard):
            return False
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
            self.editor.report_error("The clipboard holds no image")

    def load_mask_dialog(self) -> None:
        doc = self.editor.document
        if doc is None:
            return
        path = self.choose_file("Load mask", self.prefs.folder("open"), IMAGE_FILTER)
        if path:
            self.load_mask_file(path)

    def load_mask_file(self, path: str) -> bool:
        return self.editor.load_mask_file(path)

    def save(self) -> None:
        if self.output_path:
            self.editor.save(self.output_path)
        else:
            self.save_as()

    def save_as(self) -> None:
        doc = self.editor.document
        if doc is None:
            return
        path = self.choose_file(
            "Save as a new PNG", self._suggested_name(), "PNG (*.png)", save=True
        )
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
        folder = Path(self.prefs.folder("save") or _writable_folder(source.parent))
        candidate, n = folder / f"{source.stem}-edited.png", 2
        while candidate.exists():
            candidate, n = folder / f"{source.stem}-edited-{n}.png", n + 1
        return str(candidate)

    def _may_discard(self) -> bool:
        return may_replace_document(self)  # Save / Discard / Cancel, Save the default

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
            action = QAction(
                device.upper() if device != "auto" else "Auto (CUDA if present)",
                devices,
                checkable=True,
            )
            action.setChecked(device == self.editor.models.device)
            action.triggered.connect(lambda _=False, d=device: self.set_device(d))
            device_group.addAction(action)
            devices.addAction(action)
        menu.addSeparator()
        menu.addAction(self.actions_["get_models"])
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
        path, _ = QFileDialog.getOpenFileName(
            self, "Official MAGE checkpoint", "", "PyTorch checkpoint (*.pth *.pt);;All files (*)"
        )
        if path:
            target = self.importer.start(Path(path))
            self.banner.show_message(
                f"Importing {Path(path).name} into {target}... (you can keep working)", "info"
            )

    def get_official_models(self):
        """Models > Get official models...: one dialog per window, kept while it works."""
        from app.ui.official_models_dialog import OfficialModelsDialog

        if self.models_dialog is None:
            self.models_dialog = OfficialModelsDialog(self)
            self.models_dialog.model_ready.connect(self.load_model)
        self.models_dialog.show()
        self.models_dialog.raise_()
        self.models_dialog.activateWindow()
        return self.models_dialog

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
        self.model_label.setText(
            f"{bundle.device.upper()}  |  {m.name} ({m.image_size} px, {kind})"
        )
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
            app = QApplication.instance()
            assert isinstance(app, QApplication)
            apply_theme(app, theme)

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
            name = Path(doc.path).name if doc is not None and doc.path else ""
            self.recognition_panel.set_image(None if doc is None else doc.rgb, name)

    def _confirm_generate(self) -> bool:
        """Generate opens its result as a new image: ask before closing one with edits."""
        doc = self.editor.document
        if (
            not self.interactive
            or doc is None
            or not self.editor.has_edits()  # an untouched result or sample: nothing to lose
        ):
            return True
        name = Path(doc.path).name if doc.path else "the current image"
        answer = QMessageBox.question(
            self,
            "Generate a new image?",
            f"Generate opens the result as a new, untitled image and closes {name}; its "
            "unsaved edits and undo history are lost. Generate anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            keep_discarded(self)
        return answer == QMessageBox.StandardButton.Yes

    def _on_busy_banner(self, busy: bool) -> None:
        if busy:
            self._clear_action_banner()

    def _clear_action_banner(self, *_) -> None:
        self.banner.clear("action")

    def _clear_image_banner(self, *_) -> None:
        self.banner.clear("image")

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
            # closed on purpose with nothing unsaved (discarded changes were set aside); a
            # scripted window never removes the session a restore read from
            self.autosaver.close(clean=self.interactive)
        super().closeEvent(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0].toLocalFile())


class ElidedLabel(QLabel):
    """One line that shortens itself with "..." to the width it gets."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.full_text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(20)

    def set_full_text(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text)
        self._elide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(self.contentsRect().width() - 2, 0)
        self.setText(
            self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideRight, width)
        )


class StatusBar(QStatusBar):
    """Transient messages in a label that elides to the room left of the size, zoom and model
    labels, instead of running into them in a small window."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.message_label = ElidedLabel()
        self.addWidget(self.message_label, 1)
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.clearMessage)

    def showMessage(self, text: str, timeout: int | None = 0) -> None:  # noqa: N802 - Qt's name
        self.message_label.set_full_text(text)
        if timeout is not None and timeout > 0:
            self._timer.start(timeout)
        else:
            self._timer.stop()

    def clearMessage(self) -> None:  # noqa: N802 - Qt's name
        self.showMessage("")

    def currentMessage(self) -> str:  # noqa: N802 - Qt's name
        return self.message_label.full_text


def _recognition_panel(prefs: Preferences):
    """The recognition dock's panel, or None when it fails to start (the editor works without
    it; the failure is logged)."""
    try:
        from app.ui.recognition_panel import RecognitionPanel

        return RecognitionPanel(store=prefs)
    except Exception:  # noqa: BLE001 - a broken optional panel must not stop the editor
        log.exception("the recognition panel failed to load")
        return None


def _writable_folder(folder: Path) -> Path:
    """`folder` when a save there can succeed; the shipped samples' folder (read-only in an
    installed app) and unwritable folders give way to the user's pictures or home folder."""
    samples = assets_dir().resolve()
    if (
        str(folder) not in ("", ".")
        and os.access(folder, os.W_OK)
        and not folder.resolve().is_relative_to(samples)
    ):
        return folder
    pictures = Path.home() / "Pictures"
    return pictures if pictures.is_dir() else Path.home()
