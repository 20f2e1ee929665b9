"""Preferences survive a restart; an import never reuses a folder."""

from pathlib import Path

from PySide6.QtCore import QCoreApplication

from app.checkpoint_import import import_target
from app.core.options import EditOptions
from app.preferences import Preferences
from app.ui.theme import dark_palette, wants_dark


def test_preferences_round_trip(qapp, tmp_path):
    QCoreApplication.setOrganizationName("MAGE Studio")
    prefs = Preferences()
    prefs.brush_size = 77
    prefs.set_folder("open", str(tmp_path))
    for name in ("a.png", "b.png", "a.png"):
        prefs.add_recent(name)
    prefs.save_options(EditOptions(mode="generate", candidates=4))
    prefs.sync()
    again = Preferences()
    assert again.brush_size == 77
    assert again.folder("open") == str(tmp_path)
    assert again.recent_files() == ["a.png", "b.png"]
    assert again.options() == EditOptions(mode="generate", candidates=4)


def test_import_target_never_reuses_a_folder(tmp_path):
    first = import_target(Path("/x/mage-vitb.pth"))
    assert first.name == "mage-vitb"
    first.mkdir(parents=True)
    assert import_target(Path("/x/mage-vitb.pth")).name == "mage-vitb-2"


def test_dark_theme_when_asked(qapp):
    assert wants_dark("dark")
    assert not wants_dark("light")
    assert dark_palette().window().color().lightness() < 80
