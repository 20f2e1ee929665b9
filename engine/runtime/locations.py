"""Where bundles live: the shipped `exported_models/` and the user's models folder.

The shipped folders (`exported_models/`, `assets/`) sit at the top of a checkout; an installed
wheel carries them as plain folders inside the `mage_studio` package
(`site-packages/mage_studio/exported_models`, `.../assets`). Both are found without importing
anything and without the network.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from engine.runtime.errors import BundleError

CHECKOUT = Path(__file__).resolve().parents[2]
DATA_PACKAGE = "mage_studio"  # the installed wheel's home of the shipped folders


def shipped_dir(name: str) -> Path:
    """The shipped folder `name` ("exported_models" or "assets"): the checkout's top-level
    folder when running from a checkout, else the copy inside the installed package."""
    top = CHECKOUT / name
    if top.is_dir() and (CHECKOUT / "pyproject.toml").is_file():  # not a stray site-packages/NAME
        return top
    try:
        spec = importlib.util.find_spec(DATA_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / name).is_dir():
            return Path(location) / name
    return top  # missing: callers report this path


REPO_MODELS = shipped_dir("exported_models")  # the shipped bundles (checkout or wheel)
ASSETS = shipped_dir("assets")
DEFAULT_FILE = "DEFAULT"  # one line in exported_models/: the folder name of the default bundle
ENV_MODEL = "MAGE_STUDIO_MODEL"


def user_data_dir() -> Path:
    """Per-user data folder (same place Qt's AppDataLocation picks on each platform)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        # the XDG spec: a relative $XDG_DATA_HOME is invalid and is ignored
        env = os.environ.get("XDG_DATA_HOME", "").strip()
        base = Path(env) if os.path.isabs(env) else Path.home() / ".local" / "share"
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
