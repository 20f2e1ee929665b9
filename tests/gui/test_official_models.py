"""Models > Get official models...: the list, and one click that downloads from a loopback
server (progress bar moving), cancels (a .part stays), resumes, imports and selects the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback import LoopbackServer, bundle_entry
from PySide6.QtCore import Qt

from app.official_downloads import ModelDownloader
from app.ui.official_models_dialog import OfficialModelsDialog
from engine.runtime import official_models as om
from engine.runtime.downloads import ENV_BASE, part_path
from engine.runtime.locations import user_models_dir

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def server(monkeypatch):
    with LoopbackServer() as s:
        monkeypatch.setenv(ENV_BASE, s.url)
        yield s


def test_the_list_shows_size_licence_source_and_abilities(qtbot, server, tmp_path):
    dialog = OfficialModelsDialog(models_dir=tmp_path)
    qtbot.addWidget(dialog)
    texts = [dialog.list.item(i).text() for i in range(dialog.list.count())]
    assert len(texts) == len(om.OFFICIAL)
    assert "MAGE ViT-B\nabout 1.0 GB" in texts
    for row, model in enumerate(om.OFFICIAL):
        dialog.list.setCurrentRow(row)
        shown = dialog.details.text()
        assert model.title in shown
        assert "Licence" in shown
        assert "Can do" in shown
        assert model.size_text() in shown
        assert "not downloaded" in shown
    dialog.list.setCurrentRow(2)
    assert "no licence stated" in dialog.details.text()
    assert "1000 ImageNet classes" in dialog.details.text()
    assert server.requests == []  # nothing is fetched until a click


def test_download_cancel_resume_import_and_select(qtbot, server, tiny_bundle_path, tmp_path):
    entry = bundle_entry(tiny_bundle_path, server)
    dialog = OfficialModelsDialog(catalog=(entry,), models_dir=tmp_path / "models")
    qtbot.addWidget(dialog)
    values: list[int] = []
    dialog.progress.valueChanged.connect(values.append)
    server.delay = 0.05  # 64 KiB blocks: the ~3 MB of the tiny bundle take seconds

    with qtbot.waitSignal(dialog.downloader.finished, timeout=20_000) as stopped:
        qtbot.mouseClick(dialog.get_button, LEFT)
        assert dialog.cancel_button.isEnabled()
        assert not dialog.get_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=10_000)
        qtbot.mouseClick(dialog.cancel_button, LEFT)
    assert stopped.args[0] is False
    assert stopped.args[1].startswith("Cancelled;")
    assert dialog.status.text().startswith("Cancelled;")
    raw = om.downloads_dir(tmp_path / "models", entry)
    parts = list(raw.glob("*.part"))
    assert len(parts) == 1
    assert parts[0].stat().st_size > 0
    assert not (tmp_path / "models" / entry.name).exists()
    assert "continues where it stopped" in dialog.details.text()
    before_cancel = list(values)
    assert before_cancel
    assert 0 < before_cancel[-1] < 1000
    assert before_cancel == sorted(before_cancel)  # the bar only moves forward
    assert dialog.get_button.isEnabled()
    kept = {p.name.removesuffix(".part"): p.stat().st_size for p in parts}

    server.delay = 0.0
    n = len(server.requests)
    with qtbot.waitSignal(dialog.model_ready, timeout=30_000) as ready:
        qtbot.mouseClick(dialog.get_button, LEFT)
    name, size = next(iter(kept.items()))
    assert (f"/tiny/{name}", f"bytes={size}-") in server.requests[n:]
    target = tmp_path / "models" / entry.name
    assert Path(ready.args[0]) == target
    assert (target / "manifest.json").is_file()
    assert not raw.exists()
    assert dialog.progress.value() == 1000
    assert dialog.get_button.text() == "Use this model"


def test_main_window_selects_the_new_model(window, qtbot, server, tiny_bundle_path, monkeypatch):
    entry = bundle_entry(tiny_bundle_path, server)
    monkeypatch.setattr(om, "OFFICIAL", (entry,))
    actions = [a.text() for a in window.menuBar().actions()]
    assert any("Models" in a for a in actions)
    dialog = window.get_official_models()
    assert window.get_official_models() is dialog  # one dialog, kept while it works
    with qtbot.waitSignal(window.editor.models.loaded, timeout=60_000):
        qtbot.mouseClick(dialog.get_button, LEFT)
    assert Path(window.editor.models.path) == user_models_dir() / entry.name
    assert window.editor.models.bundle.manifest.class_names == ["cat", "dog", "boat"]


@pytest.mark.parametrize("name", ["mage-vit-b", "maskgit-imagenet-256"])
def test_official_checkpoint_import_runs_in_a_child_process_and_fails_in_one_line(
    qtbot, server, tmp_path, name
):
    """A real entry against fake files (MAGE: through Drive's confirmation page), then
    `main.py import-mage|import-maskgit` in a child process refuses them in one line; the
    files, which have no published size or checksum, are sent back to be fetched again."""
    model = om.find_model(name)
    for remote in model.files.values():
        if remote.drive:
            server.drive[remote.url.rsplit("id=", 1)[-1]] = b"not a checkpoint " * 1000
        else:
            server.files["/" + remote.url.split("/", 3)[3]] = b"not a checkpoint " * 1000
    downloader = ModelDownloader(tmp_path / "models")
    lines: list[str] = []
    downloader.status.connect(lines.append)
    with qtbot.waitSignal(downloader.finished, timeout=120_000) as done:
        downloader.start(model)
    ok, message = done.args
    assert not ok
    assert message.startswith("Import failed: ")
    assert "\n" not in message
    assert "will be downloaded again on the next try" in message
    assert any(line.startswith(f"Importing {name}") for line in lines)
    raw = om.downloads_dir(tmp_path / "models", model)
    for remote in model.files.values():
        assert not (raw / remote.name).exists()
        assert not part_path(raw / remote.name).exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".downloads"]  # no work folder
