import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from app.core.session import SessionStore, snapshot
from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow
from gui.fake_engine import FakeBundle

REPO = Path(__file__).resolve().parents[2]


def run_main(*args, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`main.py ARGS` in a child process (offscreen Qt, output captured as text)."""
    env = dict(os.environ if env is None else env, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def photo(h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth gradient with a dark block: many colours, easy to check."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1)
    rgb = rgb.astype(np.uint8)
    rgb[40:70, 60:100] = (20, 30, 40)
    return rgb


@pytest.fixture(autouse=True)
def _own_qt_settings(tmp_path, qapp):
    """Qt reads the settings folder once per process, so each GUI test gets its own folder, and
    windows a test leaves behind are destroyed before the next test starts: their timers
    (deferred geometry and option saves) must not write into another test's settings."""
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings

    QSettings.setPath(
        QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings")
    )
    yield
    for widget in qapp.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qapp.processEvents()
    QSettings.setPath(
        QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings-closed")
    )


def session_copy(doc):
    """`doc` written by the session store (the one serialisation) and read back."""
    with tempfile.TemporaryDirectory() as folder:
        store = SessionStore(Path(folder))
        store.write(snapshot(doc))
        return store.load()[0]


@pytest.fixture
def window(qtbot):
    editor = Editor()
    win = MainWindow(editor, Preferences(), interactive=False)
    win.resize(1100, 750)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    editor.jobs.cancel()
    editor.jobs.wait_idle(10)


@pytest.fixture
def editor(qtbot):
    """An editor on the fake model with a photo open (a test module may define its own)."""
    editor = Editor()
    editor.models.use(FakeBundle())
    editor.set_image(photo())
    yield editor
    editor.jobs.cancel()
    editor.jobs.wait_idle(10)
