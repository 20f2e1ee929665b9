"""Get official models from a plain install: the dialog (a real window) downloads the
official-format MaskGIT pair of the real sizes from a loopback server and imports it in a child
process where PyTorch cannot be imported, showing the import's steps on its bar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import LoopbackServer
from PySide6.QtCore import Qt

from app.ui.official_models_dialog import OfficialModelsDialog
from engine.runtime import official_models as om
from engine.runtime.downloads import ENV_BASE
from engine.runtime.manifest import read_manifest

LEFT = Qt.MouseButton.LeftButton


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_dialog_downloads_and_imports_maskgit_without_torch(
    qtbot, maskgit_pair, tmp_path, monkeypatch
):
    # a `torch` that cannot be imported, first on the child's path: as a plain install
    shim = tmp_path / "no-torch" / "torch"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('PyTorch is not installed')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])
    )
    blocked = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True)
    assert blocked.returncode != 0
    assert "PyTorch is not installed" in blocked.stderr
    model = om.find_model("maskgit-imagenet-256")
    with LoopbackServer() as server:
        monkeypatch.setenv(ENV_BASE, server.url)
        for remote in model.files.values():
            server.files["/" + remote.url.split("/", 3)[3]] = maskgit_pair[0].parent / remote.name
        dialog = OfficialModelsDialog(models_dir=tmp_path / "models")
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.list.setCurrentRow(list(om.OFFICIAL).index(model))
        lines: list[str] = []
        bars: list[str] = []
        dialog.downloader.status.connect(lines.append)
        dialog.progress.valueChanged.connect(lambda _v: bars.append(dialog.progress.format()))
        with qtbot.waitSignal(dialog.model_ready, timeout=1_500_000) as ready:
            qtbot.mouseClick(dialog.get_button, LEFT)
    target = tmp_path / "models" / model.name
    assert Path(ready.args[0]) == target
    manifest = read_manifest(target, verify_hashes=True)
    assert manifest.class_names is not None
    assert len(manifest.class_names) == 1000
    assert manifest.grid == [16, 16]
    assert {"transformer.weights", "tokenizer.weights"} <= set(manifest.files)
    assert any(line.startswith("[3/3] checking the bundle") for line in lines), lines
    assert "Import: step 3 of 3" in bars
    assert any(" of " in b and "B" in b for b in bars)
    assert dialog.status.text().startswith("Installed in")
    assert not any("PyTorch" in line for line in lines)


def test_the_details_say_the_import_needs_no_pytorch(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("app.official_downloads.gdown_available", lambda: True)
    dialog = OfficialModelsDialog(models_dir=tmp_path)
    qtbot.addWidget(dialog)
    for row, model in enumerate(om.OFFICIAL):
        dialog.list.setCurrentRow(row)
        shown = dialog.details.text()
        assert "no PyTorch needed" in shown, model.name
        assert "modeling extra" in shown, model.name
        assert "Needs" not in shown  # nothing to install first (gdown aside)
        assert dialog.get_button.isEnabled()
