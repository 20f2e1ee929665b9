"""Getting an official model from the editor: download on a worker thread, then import.

The download (engine.runtime.downloads: resumable, verified, cancellable) runs on a Python
thread and reports through Qt signals. A checkpoint is imported by `main.py
import-mage|import-maskgit` (the import layer: NumPy + onnx, no PyTorch) in a child process
(app/checkpoint_import.py), so a gigabyte of weights never sits in the editor's memory and Cancel
can stop it at any point; a ready bundle is checked and installed on the worker thread. Nothing
is downloaded unless `start` is called (a click in Models > Get official models...).
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.checkpoint_import import CheckpointImporter
from engine.runtime import official_models as om
from engine.runtime.downloads import (
    GDOWN_HINT,
    DownloadCancelled,
    gdown_available,
    human_size,
    part_path,
    regular_size,
)
from engine.runtime.errors import MageError
from engine.runtime.locations import user_models_dir
from engine.runtime.workdirs import sweep


def partial_bytes(models_dir: Path, model: om.OfficialModel) -> int:
    """Bytes of `model` already downloaded (finished files and `.part` files)."""
    folder = om.downloads_dir(models_dir, model)
    total = 0
    for remote in model.files.values():
        for path in (folder / remote.name, part_path(folder / remote.name)):
            total += regular_size(path)
    return total


def state_text(models_dir: Path, model: om.OfficialModel) -> str:
    """Installed, partly downloaded, or not yet downloaded, in a few words."""
    if om.installed(models_dir, model):
        return "installed"
    have = partial_bytes(models_dir, model)
    if have:
        return f"{human_size(have)} downloaded; continues where it stopped"
    return "not downloaded"


def missing_requirement(model: om.OfficialModel) -> str:
    """Why `model` cannot be fetched in this environment, or "" (before anything is
    downloaded). The importers need only onnx and msgpack, which every install has."""
    if model.needs_gdown and not gdown_available():
        return (
            f"{model.name} is on Google Drive, whose large-file confirmation needs the gdown "
            f"package: {GDOWN_HINT}"
        )
    return ""


class ModelDownloader(QObject):
    """Downloads and imports one official model at a time."""

    progress = Signal(object, object)  # bytes done, bytes expected (may pass 2**31)
    status = Signal(str)  # a line to show: the file being fetched, import output
    finished = Signal(bool, str)  # ok, bundle folder or the one-line reason

    _fetched = Signal(object, object)  # (model, files) or (model, error) from the thread

    def __init__(self, models_dir: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.models_dir = Path(models_dir) if models_dir else user_models_dir()
        self.model: om.OfficialModel | None = None
        self.importing = False
        self.cancelled = False
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._importer = CheckpointImporter(self)
        self._importer.output.connect(self.status)
        self._importer.finished.connect(self._imported)
        self._fetched.connect(self._on_fetched)
        sweep(self.models_dir)  # work folders left by an import that was killed

    @property
    def running(self) -> bool:
        return self.model is not None

    def start(self, model: om.OfficialModel) -> None:
        if self.running:
            raise MageError("a download is already running")
        why = missing_requirement(model)
        if why:
            self.finished.emit(False, why)
            return
        self.model, self.importing, self.cancelled = model, False, False
        self._cancel = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(model, self._cancel), name="download", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        """Stop the download (its `.part` files stay for a resume) or the import."""
        self._cancel.set()
        if self.importing:
            self.cancelled = True
            self._importer.cancel()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- worker thread ------------------------------------------------------------------------

    def _work(self, model: om.OfficialModel, cancel: threading.Event) -> None:
        last = {"step": -1, "name": ""}

        def report(name: str, done: int, total: int) -> None:
            step = int(1000 * done / total) if total else 0
            if step != last["step"]:  # at most a thousand updates of the bar
                last["step"] = step
                self.progress.emit(done, total)
            if name != last["name"]:
                last["name"] = name
                self.status.emit(f"Downloading {name}...")

        try:
            files = om.fetch_files(
                model, self.models_dir, report, cancel, say=lambda line: self.status.emit(line)
            )
            if model.importer == "bundle":
                self.status.emit("Checking and installing the model...")
                target = om.install_bundle(files, om.bundle_dir(self.models_dir, model))
                om.remove_downloads(self.models_dir, model)
                self._fetched.emit(model, target)
                return
            self._fetched.emit(model, files)
        except DownloadCancelled:
            self._fetched.emit(model, DownloadCancelled("cancelled"))
        except MageError as e:
            self._fetched.emit(model, e)
        except Exception as e:  # a bug: one line, the editor stays up
            self._fetched.emit(model, MageError(f"download failed ({type(e).__name__}: {e})"))

    # -- GUI thread ---------------------------------------------------------------------------

    def _on_fetched(self, model: om.OfficialModel, result) -> None:
        if isinstance(result, DownloadCancelled):
            self.model = None
            have = partial_bytes(self.models_dir, model)
            self.finished.emit(
                False,
                f"Cancelled; {human_size(have)} kept, the next download continues from there",
            )
        elif isinstance(result, Exception):
            self.model = None
            self.finished.emit(False, str(result))
        elif isinstance(result, Path):
            self.model = None
            self.finished.emit(True, str(result))
        else:
            self.importing = True
            target = om.bundle_dir(self.models_dir, model)
            self.status.emit(f"Importing {model.name} (this takes a few minutes)...")
            self._importer.start_command(model.import_argv(result, target), target)

    def _imported(self, ok: bool, message: str) -> None:
        model, self.model, self.importing = self.model, None, False
        sweep(self.models_dir)  # the work folder of an import that was stopped
        if ok and model is not None:
            om.remove_downloads(self.models_dir, model)
        elif model is not None and self.cancelled:
            where = om.downloads_dir(self.models_dir, model)
            message = f"Import cancelled; the downloaded files stay in {where}"
        elif model is not None:
            message = f"{message} ({om.after_failed_import(self.models_dir, model)})"
        self.finished.emit(ok, message)
