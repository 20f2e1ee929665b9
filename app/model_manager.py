"""Finding and loading model bundles off the GUI thread.

Loading verifies the file hashes and opens onnxruntime sessions, which takes seconds for a
large model, so it runs on a worker; the window opens at once and says "Loading model...".
A missing or damaged model is a one-line `error`, never a crash: the window still works for
painting and saving.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.controller import JobController
from engine.runtime.bundle import Bundle
from engine.runtime.devices import DEVICES as DEVICES  # the one list, re-exported
from engine.runtime.errors import MageError
from engine.runtime.locations import REPO_MODELS, default_bundle_path, find_bundles, user_models_dir

log = logging.getLogger(__name__)


def available_bundles() -> list[Path]:
    return find_bundles(REPO_MODELS, user_models_dir())


def default_model() -> tuple[Path | None, str]:
    """(path, "") or (None, why there is none)."""
    try:
        return default_bundle_path(), ""
    except MageError as error:
        return None, str(error)


class ModelManager(QObject):
    loading = Signal(str)  # path being loaded
    loaded = Signal(object)  # Bundle
    failed = Signal(str)  # one-line reason

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.bundle: Bundle | None = None
        self.path: Path | None = None
        self.device = "auto"
        self.error = ""
        self._jobs = JobController(self)
        self._jobs.finished.connect(self._on_loaded)
        self._jobs.failed.connect(self._on_failed)

    @property
    def busy(self) -> bool:
        return self._jobs.busy

    def load(self, path: Path | str, device: str = "auto", wait: bool = False) -> None:
        """Load a bundle in the background (or before returning, with wait=True)."""
        self.path, self.device = Path(path), device
        self.loading.emit(str(path))

        self._jobs.call("load", lambda: Bundle(path, device=device))
        if wait:
            self._jobs.wait_idle(600)

    def load_default(self, device: str = "auto", wait: bool = False) -> None:
        path, why = default_model()
        if path is None:
            self._on_failed(
                f"{why}. Use Models > Import official MAGE checkpoint..., or put "
                f"a bundle in {user_models_dir()}"
            )
            return
        self.load(path, device, wait)

    def use(self, bundle: Bundle) -> None:
        """Adopt a bundle that is already loaded."""
        self.path, self.device = Path(bundle.path), bundle.requested_device
        self._on_loaded(bundle)

    def _on_loaded(self, bundle: Bundle) -> None:
        self.bundle, self.error = bundle, ""
        log.info("model %s on %s", bundle.name, bundle.device)
        self.loaded.emit(bundle)

    def _on_failed(self, message: str) -> None:
        self.bundle, self.error = None, message
        log.warning("no model: %s", message)
        self.failed.emit(message)
