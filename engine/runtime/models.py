"""Where bundles live: the shipped `exported_models/` and the user's models folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.runtime.errors import BundleError

REPO_MODELS = Path(__file__).resolve().parents[2] / "exported_models"
DEFAULT_FILE = "DEFAULT"  # one line in exported_models/: the folder name of the default bundle
ENV_MODEL = "MAGE_STUDIO_MODEL"


def user_data_dir() -> Path:
    """Per-user data folder (same place Qt's AppDataLocation picks on each platform)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "MAGE Studio"


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def find_bundles(*folders: Path) -> list[Path]:
    """Bundle folders (those holding a manifest.json) directly inside the given folders."""
    found = []
    for folder in folders or (REPO_MODELS, user_models_dir()):
        if Path(folder).is_dir():
            found += sorted(p for p in Path(folder).iterdir() if (p / "manifest.json").is_file())
    return found


def default_bundle_path() -> Path:
    """$MAGE_STUDIO_MODEL, else the bundle named in exported_models/DEFAULT, else the first."""
    if os.environ.get(ENV_MODEL):
        return Path(os.environ[ENV_MODEL])
    marker = REPO_MODELS / DEFAULT_FILE
    if marker.is_file():
        name = marker.read_text(encoding="utf-8").strip()
        if name:
            return REPO_MODELS / name
    bundles = find_bundles()
    if not bundles:
        raise BundleError(f"no model found in {REPO_MODELS} or {user_models_dir()}")
    return bundles[0]
