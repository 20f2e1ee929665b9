"""The dependency rule: the shipped app and runtime never need torch/onnx, the import layer
never needs torch; engine never Qt."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO


def test_import_linter_contracts():
    lint = shutil.which("lint-imports", path=str(REPO / ".venv" / "bin")) or shutil.which(
        "lint-imports"
    )
    assert lint, "import-linter is a dev dependency"
    proc = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 7 kept, 0 broken" in proc.stdout
    for name in (
        "app core and view-models never import the widgets",
        "widgets reach the engine only through the view-models",
    ):
        assert f"{name} KEPT" in proc.stdout


def test_app_core_runs_without_qt():
    """Block PySide6 and qtawesome, then import the app core and edit a document with it."""
    code = (
        "import sys, importlib, pkgutil\n"
        "for name in ('PySide6', 'shiboken6', 'qtawesome'): sys.modules[name] = None\n"
        "import numpy as np, app.core\n"
        "for mod in pkgutil.walk_packages(app.core.__path__, 'app.core.'):\n"
        "    importlib.import_module(mod.name)\n"
        "from app.core.document import Document\n"
        "doc = Document(np.zeros((8, 8, 3), np.uint8))\n"
        "doc.apply_image_patch(2, 2, np.ones((3, 3, 3), np.uint8), 'Edit')\n"
        "doc.undo()\n"
        "print(int(doc.rgb.sum()), len(doc.history))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1"], proc.stderr


def test_runtime_and_app_import_without_torch():
    """Block torch and onnx entirely, then import everything the installed GUI uses."""
    code = (
        "import sys, importlib, pkgutil\n"
        "for name in ('torch', 'onnx'): sys.modules[name] = None\n"
        "import engine.runtime, app, engine.cli\n"
        "for pkg in (engine.runtime, app):\n"
        "    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(mod.name)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok", proc.stderr


def test_import_layer_imports_without_torch():
    """Block torch (and the modeling side), then import every module of the import layer."""
    code = (
        "import sys, importlib, pkgutil\n"
        "for name in ('torch', 'engine.modeling', 'jax', 'flax'): sys.modules[name] = None\n"
        "import engine.importing as pkg\n"
        "for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(mod.name)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok", proc.stderr
