"""Get official models: where Download cannot work here (gdown missing for a Google Drive
file), the reason stands beside the button before it is pressed, and the button does nothing."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import app.official_downloads as downloads
from app.ui.official_models_dialog import OfficialModelsDialog
from engine.runtime import official_models as om

LEFT = Qt.MouseButton.LeftButton


def row_of(predicate) -> int:
    return next(i for i, m in enumerate(om.OFFICIAL) if predicate(m))


@pytest.fixture
def dialog(qtbot, tmp_path):
    widget = OfficialModelsDialog(models_dir=tmp_path)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_a_missing_gdown_is_named_beside_download(qtbot, dialog, monkeypatch):
    monkeypatch.setattr(downloads, "gdown_available", lambda: False)
    drive = row_of(lambda m: m.needs_gdown)
    plain = row_of(lambda m: not m.needs_gdown)
    dialog.list.setCurrentRow(plain)
    assert dialog.get_button.isEnabled()
    assert not dialog.reason.isVisible()
    dialog.list.setFocus()
    for _ in range(abs(drive - plain)):  # to the Google Drive model with the arrow keys
        QTest.keyClick(dialog.list, Qt.Key.Key_Down if drive > plain else Qt.Key.Key_Up)
    assert dialog.list.currentRow() == drive
    assert dialog.reason.isVisible()
    assert "gdown" in dialog.reason.text()
    assert not dialog.get_button.isEnabled()
    QTest.mouseClick(dialog.get_button, LEFT)
    assert not dialog.downloader.running
