"""User preferences kept between sessions with QSettings (organisation "MAGE Studio"): window
layout, folders, recent files, brush size, theme, the model, few-shot classes and the last
`EditOptions` (app.core.options; the engine's per-run `Settings` are never stored here)."""

from __future__ import annotations

import json

from PySide6.QtCore import QByteArray, QSettings

from app.core.options import EditOptions

ORGANISATION = APPLICATION = "MAGE Studio"
LAYOUT_VERSION = 2  # bump when docks change so an old saved layout is not restored
MAX_RECENT = 10


class Preferences:
    def __init__(self):
        self._s = QSettings(ORGANISATION, APPLICATION)

    def _get(self, key: str, default, kind=str):
        value = self._s.value(key, default)
        try:
            return kind(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    # window
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        if self._get("window/layout_version", 0, int) != LAYOUT_VERSION:
            return None, None
        return self._s.value("window/geometry"), self._s.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self._s.setValue("window/layout_version", LAYOUT_VERSION)
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)

    def dialog_state(self) -> QByteArray | None:
        return self._s.value("window/file_dialog")

    def save_dialog_state(self, state: QByteArray) -> None:
        self._s.setValue("window/file_dialog", state)

    # tools and folders
    @property
    def brush_size(self) -> int:
        return self._get("tools/brush_size", 40, int)

    @brush_size.setter
    def brush_size(self, size: int) -> None:
        self._s.setValue("tools/brush_size", int(size))

    def folder(self, purpose: str) -> str:
        """Last folder used to "open" or "save"."""
        return self._get(f"folders/{purpose}", "", str)

    def set_folder(self, purpose: str, folder: str) -> None:
        self._s.setValue(f"folders/{purpose}", folder)

    def recent_files(self) -> list[str]:
        value = self._s.value("files/recent", [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):  # none stored yet
            return []
        return [str(v) for v in value]

    def add_recent(self, path: str) -> list[str]:
        files = [path] + [p for p in self.recent_files() if p != path]
        self._s.setValue("files/recent", files[:MAX_RECENT])
        return files[:MAX_RECENT]

    # run options, model, look
    def options(self) -> EditOptions:
        try:
            return EditOptions.from_dict(json.loads(self._get("run/options", "{}", str)))
        except (ValueError, TypeError):
            return EditOptions()

    def save_options(self, options: EditOptions) -> None:
        self._s.setValue("run/options", json.dumps(options.to_dict()))

    def model(self) -> tuple[str, str]:
        return self._get("model/path", "", str), self._get("model/device", "auto", str)

    def save_model(self, path: str, device: str) -> None:
        self._s.setValue("model/path", path)
        self._s.setValue("model/device", device)

    @property
    def theme(self) -> str:
        return self._get("look/theme", "system", str)

    @theme.setter
    def theme(self, value: str) -> None:
        self._s.setValue("look/theme", value)

    @property
    def show_grid(self) -> bool:
        return self._get("look/show_grid", "true", str) in ("true", "True", "1")

    @show_grid.setter
    def show_grid(self, on: bool) -> None:
        self._s.setValue("look/show_grid", "true" if on else "false")

    # few-shot classes of the recognition panel: [{"name": str, "examples": [{"file", "label"}]}]
    def fewshot_classes(self) -> list[dict]:
        try:
            value = json.loads(self._get("recognition/fewshot", "[]", str))
        except ValueError:
            return []
        return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []

    def save_fewshot_classes(self, classes: list[dict]) -> None:
        self._s.setValue("recognition/fewshot", json.dumps(classes))

    def sync(self) -> None:
        self._s.sync()
