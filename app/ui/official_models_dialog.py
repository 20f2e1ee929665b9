"""Models > Get official models...: the official checkpoints with size, licence, source and
what each can do; one click downloads (resumable, cancellable), imports and selects it.

The dialog is not modal: the editor stays usable, and closing the dialog hides it while a
download or import goes on (Cancel download stops it; the partial files stay for a resume).
The bar shows the download's bytes, then the import's steps (read, write, check)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from app.official_downloads import ModelDownloader, missing_requirement, state_text
from engine.runtime import official_models as om
from engine.runtime.downloads import human_size

# what converting a checkpoint takes: nothing beyond the app's own install
IMPORT_NOTE = (
    "built in: read, written as a bundle and checked in about a minute, no PyTorch needed "
    "(the modeling extra is only for training and exporting your own models)"
)
# "[2/3] writing the ONNX graphs ..." : a numbered step of the importer's output
IMPORT_STEP = re.compile(r"^\[(\d+)/(\d+)\] (.+)$")


class OfficialModelsDialog(QDialog):
    model_ready = Signal(str)  # the bundle folder to select

    def __init__(
        self,
        parent=None,
        catalog: tuple[om.OfficialModel, ...] | None = None,
        models_dir: Path | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("official-models")
        self.setWindowTitle("Get official models")
        self.resize(760, 520)
        self.catalog = om.OFFICIAL if catalog is None else catalog
        self.downloader = ModelDownloader(models_dir, self)
        self.downloader.progress.connect(self._on_progress)
        self.downloader.status.connect(self._on_status)
        self.downloader.finished.connect(self._on_finished)

        self.list = QListWidget()
        self.list.setSpacing(3)
        for model in self.catalog:
            short = model.title.split(" (")[0]
            item = QListWidgetItem(f"{short}\n{model.size_text()}")
            item.setToolTip(model.title)
            item.setData(Qt.ItemDataRole.UserRole, model.name)
            self.list.addItem(item)
        self.list.currentRowChanged.connect(lambda _row: self._show_details())

        self.details = QLabel()
        self.details.setObjectName("details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setOpenExternalLinks(True)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.status = QLabel("Nothing is downloaded until you click Download.")
        self.status.setObjectName("status")
        self.status.setWordWrap(True)

        self.get_button = QPushButton("Download and import")
        self.get_button.setObjectName("get")
        self.get_button.clicked.connect(self.get_selected)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.clicked.connect(self.downloader.cancel)
        # why Download cannot work here, beside it before it is pressed
        self.reason = QLabel()
        self.reason.setObjectName("reason")
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: #e57373")
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)

        buttons = QHBoxLayout()
        buttons.addWidget(self.get_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.reason, 1)
        buttons.addWidget(self.close_button)
        top = QHBoxLayout()
        top.addWidget(self.list, 1)
        top.addWidget(self.details, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.list.setCurrentRow(0)
        self._update_buttons()

    # -- state --------------------------------------------------------------------------------

    def selected(self) -> om.OfficialModel | None:
        row = self.list.currentRow()
        return self.catalog[row] if 0 <= row < len(self.catalog) else None

    def _show_details(self) -> None:
        model = self.selected()
        if model is None:
            self.details.setText("")
            return
        dir_ = self.downloader.models_dir
        size = model.size_text()
        if not model.exact_size:
            size += " (estimated from the parameter count; checked against the server)"
        rows = [
            ("Download", size),
            ("Licence", model.licence),
            ("Source", model.source),
            ("Can do", "<br>".join(html.escape(a) for a in model.abilities)),
            ("Notes", model.notes),
            ("Import", IMPORT_NOTE if model.importer != "bundle" else ""),
            ("Here", state_text(dir_, model)),
        ]
        why = missing_requirement(model)
        if why:
            rows.append(("Needs", why))
        body = "".join(
            f"<tr><td><b>{html.escape(k)}</b>&nbsp;&nbsp;</td><td>"
            f"{v if k == 'Can do' else html.escape(v)}</td></tr>"
            for k, v in rows
            if v
        )
        self.details.setText(f"<h3>{html.escape(model.title)}</h3><table>{body}</table>")
        self._update_buttons()

    def _update_buttons(self) -> None:
        model, busy = self.selected(), self.downloader.running
        installed = model is not None and om.installed(self.downloader.models_dir, model)
        why = missing_requirement(model) if model is not None and not installed else ""
        self.get_button.setText("Use this model" if installed else "Download and import")
        self.get_button.setEnabled(model is not None and not busy and not why)
        self.get_button.setToolTip(f"Cannot download: {why}" if why else "")
        self.reason.setText(f"Cannot download: {why}" if why else "")
        self.reason.setVisible(bool(why))
        self.cancel_button.setEnabled(busy)
        self.list.setEnabled(not busy)

    # -- actions ------------------------------------------------------------------------------

    def get_selected(self) -> None:
        """Download and import the selected model (or select it when it is installed)."""
        model = self.selected()
        if model is None or self.downloader.running:
            return
        if om.installed(self.downloader.models_dir, model):
            self.model_ready.emit(str(om.bundle_dir(self.downloader.models_dir, model)))
            self.status.setText(f"Using {model.name}.")
            return
        self.status.setText(f"Starting {model.name} ({model.size_text()})...")
        self.downloader.start(model)
        self._update_buttons()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setValue(int(1000 * done / total) if total else 0)
        self.progress.setFormat(f"{human_size(done)} of {human_size(total)}")

    def _on_status(self, line: str) -> None:
        step = IMPORT_STEP.match(line.strip())
        if step:
            k, n = int(step[1]), int(step[2])
            if 0 < k <= n:
                self.progress.setValue(int(1000 * (k - 1) / n))
                self.progress.setFormat(f"Import: step {k} of {n}")
            line = f"Importing: {step[3]}"
        self.status.setText(line)

    def _on_finished(self, ok: bool, message: str) -> None:
        self._show_details()
        if ok:
            self.progress.setValue(1000)
            self.status.setText(f"Installed in {message}; it is now the model in use.")
            self.model_ready.emit(message)
        else:
            self.status.setText(message)
