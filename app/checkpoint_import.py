"""Converting an official MAGE checkpoint into a bundle, in a background QProcess.

The conversion (the import layer: NumPy + onnx, no PyTorch) runs `main.py import-mage` in a
child process, so the window stays responsive, the checkpoint's gigabyte never sits in the
editor's memory, Cancel stops it at once and a crash there cannot take the editor down. Its
numbered step lines ("[2/3] writing ...") are the progress shown.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

from engine.runtime.locations import user_models_dir
from engine.runtime.workdirs import sweep

MAIN_PY = Path(__file__).resolve().parents[1] / "main.py"


def import_target(checkpoint: Path) -> Path:
    """A new folder in the user models folder named after the checkpoint."""
    base = user_models_dir() / Path(checkpoint).stem
    target, n = base, 2
    while target.exists():
        target, n = base.with_name(f"{base.name}-{n}"), n + 1
    return target


class CheckpointImporter(QObject):
    output = Signal(str)  # a line of the importer's output
    finished = Signal(bool, str)  # ok, bundle folder or the reason it failed

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._process: QProcess | None = None
        self._target: Path | None = None
        self._tail: list[str] = []

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, checkpoint: Path) -> Path:
        target = import_target(checkpoint)
        return self.start_command(["import-mage", str(checkpoint), "-o", str(target)], target)

    def start_command(self, args: list[str], target: Path) -> Path:
        """Run `main.py ARGS` (an import writing the bundle `target`) in a child process."""
        self._target = Path(target)
        self._target.parent.mkdir(parents=True, exist_ok=True)
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._done)
        process.errorOccurred.connect(self._failed_to_start)
        self._process, self._tail = process, []
        process.start(sys.executable, [str(MAIN_PY), *args])
        return self._target

    def cancel(self) -> None:
        if self._process is not None:
            self._process.kill()

    def _read(self) -> None:
        process = self._process
        if process is None:  # ended: its output has no one waiting for it
            return
        text = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._tail = (self._tail + [line.strip()])[-5:]
                self.output.emit(line.strip())

    def _done(self, code: int, _status) -> None:
        self._process = None
        if self._target is not None:  # the work folder of an import that was killed (Cancel)
            sweep(self._target.parent)
        if code == 0:
            self.finished.emit(True, str(self._target))
        else:
            reason = self._tail[-1] if self._tail else f"exit code {code}"
            self.finished.emit(False, f"Import failed: {reason}")

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self._process = None
            self.finished.emit(False, f"Import failed: could not start {sys.executable}")
