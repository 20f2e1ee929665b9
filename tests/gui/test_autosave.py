"""Issue: never lose the user's work. The session is autosaved after every change (cheaply:
only new blobs, debounced, off the GUI thread) and restored after a crash or kill -9 exactly as
it was: pixels, alpha, mask, undo history and position, applied results, options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from app import autosave, launch
from app.autosave import Autosaver, SessionStore, session_root
from app.core import session
from app.editor import Editor
from app.preferences import Preferences
from app.ui.main_window import MainWindow
from engine.runtime.imageio import file_digest, load_image
from gui.conftest import photo, run_main
from gui.fake_engine import FakeBundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_settings(tmp_path):
    """Qt caches the settings folder per process (XDG_CONFIG_HOME is read once), so recent
    files and options written here would leak into later tests: give each test its own."""
    QSettings.setPath(
        QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings")
    )
    yield
    # options a restored session brought in must not reach the next test's window
    QSettings.setPath(
        QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings-after")
    )


# -- helpers --------------------------------------------------------------------------------


def assert_same_document(a, b) -> None:
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.original, b.original)
    assert (a.alpha is None) == (b.alpha is None)
    if a.alpha is not None:
        np.testing.assert_array_equal(a.alpha, b.alpha)
    assert a.path == b.path
    assert a.options == b.options
    assert (a.history_index, a.saved_index) == (b.history_index, b.saved_index)
    assert len(a.history) == len(b.history)
    for x, y in zip(a.history, b.history, strict=True):
        assert (x.label, x.meta) == (y.label, y.meta)
        for part in ("mask", "image"):
            px, py = getattr(x, part), getattr(y, part)
            assert (px is None) == (py is None)
            if px is not None:
                assert px.box == py.box
                np.testing.assert_array_equal(px.before, py.before)
                np.testing.assert_array_equal(px.after, py.after)
        assert (x.canvas is None) == (y.canvas is None)
        for sx, sy in zip(x.canvas or (), y.canvas or (), strict=True):
            np.testing.assert_array_equal(sx.rgb, sy.rgb)
            np.testing.assert_array_equal(sx.mask, sy.mask)
            assert (sx.alpha is None) == (sy.alpha is None)


def _run(editor, qtbot):
    with qtbot.waitSignal(editor.run_changed, timeout=20000):
        assert editor.start_run()
    assert editor.jobs.wait_idle(10)


def _mask(h, w, box):
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def root(tmp_path):
    return tmp_path / "data" / "session"


def _editor_with_autosave(qtbot, root, delay_ms=20):
    editor = Editor()
    saver = Autosaver(editor, root=root, delay_ms=delay_ms)
    return editor, saver


def _busy_session(editor, saver, qtbot, tmp_path):
    """An image with alpha opened from a file, strokes, two applied results (one replaced by
    another candidate), an extend that resized the canvas, options, and an undo."""
    rgb = photo(96, 128)
    alpha = np.full((96, 128), 255, np.uint8)
    alpha[:10, :10] = 40
    path = tmp_path / "photo.png"
    Image.fromarray(np.dstack([rgb, alpha])).save(path)
    digest = file_digest(path)
    editor.models.use(FakeBundle())
    assert editor.open_file(str(path))
    saver.start()
    editor.set_options(replace(editor.options, candidates=2, seed=5, fixed_seed=True))
    editor.set_mask(_mask(96, 128, (30, 20, 60, 50)))
    _run(editor, qtbot)
    editor.apply_candidate(1)  # replaces candidate 0: still one undo step
    editor.begin_stroke()
    editor.stroke_segment((10, 80), (50, 85), 4)
    editor.end_stroke("Brush")
    editor.set_options(
        replace(editor.options, mode="extend", extend_side="right", extend_cells=2, candidates=1)
    )
    _run(editor, qtbot)
    editor.fill_shape("rect", [(2, 2), (20, 12)])
    editor.undo_stack.undo()  # a redo tail to keep
    return path, digest


# -- round trip -----------------------------------------------------------------------------


def test_round_trip_restores_the_document_exactly(qtbot, root, tmp_path):
    editor, saver = _editor_with_autosave(qtbot, root)
    path, digest = _busy_session(editor, saver, qtbot, tmp_path)
    doc = editor.document
    assert doc.size[0] > 128
    assert doc.size[1] == 96
    assert doc.alpha is not None
    assert editor.undo_stack.count() == 5
    assert editor.undo_stack.index() == 4
    saver.close(clean=False)  # like a crash: the session stays

    editor2, saver2 = _editor_with_autosave(qtbot, root)
    assert saver2.folder == root  # the crashed folder is free again
    info = saver2.pending()
    assert info["history_index"] == 4
    assert info["path"] == str(path)
    assert info["original"]["sha256"] == digest
    assert saver2.restore() == ""
    again = editor2.document
    assert_same_document(again, doc)
    assert editor2.options == editor.options
    assert editor2.undo_stack.count() == 5
    assert editor2.undo_stack.index() == 4
    assert [editor2.undo_stack.text(i) for i in range(5)] == [
        editor.undo_stack.text(i) for i in range(5)
    ]
    # the restored history works both ways, exactly like the original one
    editor2.undo_stack.redo()
    editor.undo_stack.redo()
    assert_same_document(again, doc)
    editor2.undo_stack.setIndex(0)
    editor.undo_stack.setIndex(0)
    assert_same_document(again, doc)
    np.testing.assert_array_equal(again.rgb, load_image(path).rgb)
    editor2.undo_stack.setIndex(5)
    editor.undo_stack.setIndex(5)
    assert_same_document(again, doc)
    assert file_digest(path) == digest  # the original is only ever read
    saver2.close()


def test_only_new_blobs_are_written_and_writes_are_debounced(qtbot, root):
    editor, saver = _editor_with_autosave(qtbot, root, delay_ms=200)
    editor.set_image(photo(300, 400))
    saver.start()
    assert saver.flush()
    blobs = root / "blobs"
    first = {p.name: p.stat().st_mtime_ns for p in blobs.iterdir()}
    assert len(first) == 1  # the image as opened
    writes = saver.writes
    started = time.monotonic()
    for i in range(20):  # a burst of edits: one write at the end
        editor.set_mask(_mask(300, 400, (10 + i, 10, 40 + i, 40)))
    assert time.monotonic() - started < 0.2
    qtbot.waitUntil(lambda: saver.writes > writes, timeout=3000)
    assert saver.flush()
    assert saver.writes - writes <= 2
    after = {p.name: p.stat().st_mtime_ns for p in blobs.iterdir()}
    for name, mtime in first.items():
        assert after[name] == mtime  # nothing written twice
    meta = json.loads((root / "session.json").read_text())
    assert meta["history_index"] == 20
    assert len(after) <= 1 + 2 * 20
    # undo then a new edit drops the redo tail: its blobs are collected
    for _ in range(10):
        editor.undo_stack.undo()
    editor.set_mask(_mask(300, 400, (200, 200, 210, 210)))
    assert saver.flush()
    meta = json.loads((root / "session.json").read_text())
    assert len(meta["history"]) == 11
    assert len(list(blobs.iterdir())) <= 1 + 2 * 11
    saver.close()


def test_snapshot_on_the_gui_thread_is_cheap(qtbot, root):
    editor, saver = _editor_with_autosave(qtbot, root)
    editor.set_image(np.zeros((3000, 4000, 3), np.uint8))
    for i in range(30):
        editor.set_mask(_mask(3000, 4000, (i * 10, 0, i * 10 + 500, 500)))
    started = time.perf_counter()
    for _ in range(100):
        autosave.snapshot(editor.document)
    assert (time.perf_counter() - started) / 100 < 0.002  # references, not pixels
    saver.close()


def test_clean_close_removes_the_session_and_nothing_is_offered(qtbot, root):
    editor, saver = _editor_with_autosave(qtbot, root)
    editor.set_image(photo())
    saver.start()
    editor.set_mask(_mask(120, 160, (5, 5, 30, 30)))
    assert saver.flush()
    assert (root / "session.json").is_file()
    saver.close(clean=True)
    assert not (root / "session.json").exists()
    assert not (root / "blobs").exists()
    _, saver2 = _editor_with_autosave(qtbot, root)
    assert saver2.pending() is None
    saver2.close()


def test_window_close_is_a_clean_exit(qtbot, root, tmp_path):
    """Closing the window with nothing unsaved removes the session; a scripted
    (non-interactive) window never does."""
    for interactive in (True, False):
        editor, saver = _editor_with_autosave(qtbot, root)
        window = MainWindow(editor, Preferences(), interactive=interactive, autosaver=saver)
        qtbot.addWidget(window)
        editor.set_image(photo())
        saver.start()
        editor.set_mask(_mask(120, 160, (5, 5, 30, 30)))
        editor.save(str(tmp_path / "saved.png"))
        assert saver.flush()
        assert (root / "session.json").is_file()
        window.close()
        assert (root / "session.json").exists() == (not interactive)


def test_a_second_instance_uses_its_own_folder(qtbot, root):
    editor, saver = _editor_with_autosave(qtbot, root)
    editor.set_image(photo())
    saver.start()
    assert saver.flush()
    _editor2, saver2 = _editor_with_autosave(qtbot, root)
    assert saver2.folder == root.with_name("session-2")
    assert saver2.pending() is None  # the other instance's live session is not offered
    saver2.close()
    saver.close()


def test_default_folder_is_in_the_user_data_folder(qtbot, tmp_path):
    editor = Editor()
    saver = Autosaver(editor)
    assert saver.folder == session_root()
    assert str(saver.folder).startswith(str(tmp_path / "xdg-data"))  # isolated by conftest
    saver.close()


def test_very_large_images_are_referenced_not_copied(qtbot, root, tmp_path, monkeypatch):
    monkeypatch.setattr(session, "REFERENCE_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.fromarray(photo(90, 120)).save(path)
    editor, saver = _editor_with_autosave(qtbot, root)
    assert editor.open_file(str(path))
    saver.start()
    editor.set_mask(_mask(90, 120, (10, 10, 50, 50)))
    saver.close(clean=False)
    meta = json.loads((root / "session.json").read_text())
    assert "pixels" not in meta["original"]
    assert meta["original"]["file"] == str(path)
    editor2, saver2 = _editor_with_autosave(qtbot, root)
    assert saver2.restore() == ""
    assert_same_document(editor2.document, editor.document)
    saver2.close(clean=False)
    # the file changed meanwhile: say so, keep the session aside, keep working
    Image.fromarray(photo(90, 120)[::-1].copy()).save(path)
    editor3, saver3 = _editor_with_autosave(qtbot, root)
    message = saver3.restore()
    assert "changed since it was opened" in message
    assert "\n" not in message
    assert editor3.document is None
    assert list((root.parent / "older sessions").glob("*-unrestorable/session.json"))
    saver3.close()


@pytest.mark.parametrize("damage", ["json", "blob", "missing-blob", "bad-index"])
def test_a_damaged_session_is_one_line_and_set_aside(qtbot, root, damage):
    editor, saver = _editor_with_autosave(qtbot, root)
    editor.set_image(photo())
    saver.start()
    editor.set_mask(_mask(120, 160, (5, 5, 30, 30)))
    saver.close(clean=False)
    blob = next((root / "blobs").glob("m*.npy"))
    if damage == "json":
        (root / "session.json").write_text('{"version": 1, "hist')
    elif damage == "blob":
        blob.write_bytes(blob.read_bytes()[:-3] + b"xyz")
    elif damage == "missing-blob":
        blob.unlink()
    else:
        meta = json.loads((root / "session.json").read_text())
        meta["history_index"] = 7
        (root / "session.json").write_text(json.dumps(meta))
    editor2, saver2 = _editor_with_autosave(qtbot, root)
    assert saver2.pending() is not None
    message = saver2.restore()
    assert message.startswith("Could not restore the last session: ")
    assert "\n" not in message
    assert editor2.document is None
    assert saver2.pending() is None  # set aside, not offered again
    saver2.start()
    editor2.set_image(photo())  # and autosave goes on working
    assert saver2.flush()
    assert (root / "session.json").is_file()
    saver2.close()


def test_autosave_failure_is_reported_once_and_does_not_crash(qtbot, root, monkeypatch):
    editor, saver = _editor_with_autosave(qtbot, root)
    messages: list[str] = []
    saver.failed.connect(messages.append)

    def broken(self, snap):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SessionStore, "write", broken)
    editor.set_image(photo())
    saver.start()
    for i in range(3):
        editor.set_mask(_mask(120, 160, (i, 0, 20, 20)))
        assert saver.flush()
    qtbot.waitUntil(lambda: bool(messages), timeout=2000)
    qtbot.wait(50)
    assert len(messages) == 1
    assert "No space left" in messages[0]
    monkeypatch.undo()
    saver.close()


def test_offer_restore_choices(qtbot, root, monkeypatch):
    def crashed_session():
        editor, saver = _editor_with_autosave(qtbot, root)
        editor.set_image(photo())
        saver.start()
        editor.set_mask(_mask(120, 160, (5, 5, 30, 30)))
        saver.close(clean=False)
        return editor.document

    def start(choice):
        editor, saver = _editor_with_autosave(qtbot, root)
        window = MainWindow(editor, Preferences(), interactive=False, autosaver=saver)
        qtbot.addWidget(window)
        restored = launch.offer_restore(window, saver, choice)
        return window, saver, restored

    before = crashed_session()
    asked = []

    def ask_restore(parent, info) -> bool:
        asked.append(info)
        return True

    monkeypatch.setattr(launch, "ask_restore", ask_restore)
    window, saver, restored = start("ask")
    assert restored
    assert asked
    assert asked[0]["history_index"] == 1
    assert_same_document(window.editor.document, before)
    assert window.windowTitle().startswith("untitled *")
    saver.close(clean=False)
    window, saver, restored = start("no")  # declined: the session is set aside
    assert not restored
    assert window.editor.document is None
    aside = list((root.parent / "older sessions").glob("*-declined"))
    assert len(aside) == 1
    assert (aside[0] / "session.json").is_file()
    restored_aside, _ = SessionStore(aside[0]).load()
    assert_same_document(restored_aside, before)
    saver.close(clean=False)
    window, saver, restored = start("yes")
    assert not restored  # nothing left to offer
    saver.close()


# -- kill -9 --------------------------------------------------------------------------------


def _session_json(data_home: Path) -> dict | None:
    path = data_home / "MAGE Studio" / "session" / "session.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_kill_9_mid_edit_then_restart_restores_the_session(tmp_path, tiny_bundle_path):
    data_home = Path(os.environ["XDG_DATA_HOME"])
    rgb = photo(200, 260)
    image, mask_path = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(rgb).save(image)
    mask = _mask(200, 260, (100, 60, 170, 120))
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    digest = file_digest(image)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # open, load the mask, run the edit and apply it: then kill -9 with no chance to clean up
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "main.py"),
            "--open",
            str(image),
            "--mask",
            str(mask_path),
            "--run",
            "--seed",
            "3",
            "--model",
            str(tiny_bundle_path),
            "--device",
            "cpu",
            "--restore",
            "no",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 90
        meta = None
        while time.monotonic() < deadline and proc.poll() is None:
            meta = _session_json(data_home)
            if meta and meta["history_index"] == 2:
                break
            time.sleep(0.05)
        assert meta, proc.stderr.read() if proc.poll() else ""
        assert meta["history_index"] == 2, proc.stderr.read() if proc.poll() else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    proc.stderr.close()
    assert [e["label"] for e in meta["history"]] == ["Load mask", "Edit (seed 3)"]
    assert (data_home / "MAGE Studio" / "session" / "lock").exists()  # stale, not removed
    # what was autosaved is the document at the kill
    crashed, _ = SessionStore(data_home / "MAGE Studio" / "session").load()
    assert crashed.history_index == 2
    assert not crashed.mask.any()
    assert not np.array_equal(crashed.rgb[60:120, 100:170], rgb[60:120, 100:170])
    crashed.undo()
    np.testing.assert_array_equal(crashed.mask, mask)
    np.testing.assert_array_equal(crashed.rgb, rgb)
    crashed.redo()

    # restart: the session comes back, and the restored image is saved for comparison
    out, shot = tmp_path / "restored.png", tmp_path / "shot.png"
    again = run_main(
        "--restore",
        "yes",
        "--screenshot",
        str(shot),
        "--save",
        str(out),
        "--model",
        str(tiny_bundle_path),
        "--device",
        "cpu",
        env=env,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "restored session: 2 changes, at step 2" in again.stderr
    np.testing.assert_array_equal(load_image(out).rgb, crashed.rgb)
    assert _session_json(data_home) == meta  # a scripted run never removes the session
    assert file_digest(image) == digest  # the original was never written


# -- issue 11: sessions are set aside, never deleted; damaged ones never stop the app ----------


def _crashed(qtbot, root, box=(5, 5, 30, 30)):
    editor, saver = _editor_with_autosave(qtbot, root)
    editor.set_image(photo())
    saver.start()
    editor.set_mask(_mask(120, 160, box))
    saver.close(clean=False)
    return editor.document


def test_declined_sessions_are_set_aside_and_only_the_newest_are_kept(qtbot, root, monkeypatch):
    monkeypatch.setattr(autosave, "KEEP_OLDER", 3)
    older = root.parent / "older sessions"
    for i in range(5):
        _crashed(qtbot, root, (i, i, 30 + i, 30))
        text = (root / "session.json").read_bytes()
        editor, saver = _editor_with_autosave(qtbot, root)
        assert saver.pending() is not None
        saver.discard()  # what --restore no and the Discard button do
        assert not (root / "session.json").exists()
        assert saver.pending() is None
        newest = max(older.iterdir(), key=lambda p: p.stat().st_mtime)
        assert (newest / "session.json").read_bytes() == text
        assert len(list(older.iterdir())) == min(i + 1, 3)
        saver.start()  # the folder is ready for this run's session
        editor.set_image(photo())
        assert saver.flush()
        assert (root / "session.json").is_file()
        saver.close()


def test_an_unwritable_session_folder_turns_autosave_off_with_a_reason(qtbot, tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    _editor, saver = _editor_with_autosave(qtbot, blocker / "session")
    assert not saver.enabled
    assert saver.problem.startswith("Autosave is off: cannot write to ")
    assert "backed up" in saver.problem
    assert "\n" not in saver.problem
    assert blocker.read_text() == "a file where the data folder should be"
    saver.start()  # harmless
    saver.close()


@pytest.mark.slow
def test_the_app_shows_why_autosave_is_off(tmp_path):
    """A real start with an unwritable data folder: the window opens, says so, exits 0."""
    data = tmp_path / "data"
    data.write_text("not a folder")
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(data))
    run = run_main("--screenshot", str(shot), "--restore", "no", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Autosave is off: cannot write to" in run.stderr
    assert "Traceback" not in run.stderr
    assert shot.is_file()
    assert data.read_text() == "not a folder"


def test_instances_claim_one_folder_each_and_a_crashed_one_first(qtbot, root):
    _editor1, saver1 = _editor_with_autosave(qtbot, root)
    assert saver1.folder == root
    assert sorted(p.name for p in root.parent.iterdir()) == ["session"]  # no spare claims
    _editor2, saver2 = _editor_with_autosave(qtbot, root)
    assert saver2.folder == root.with_name("session-2")
    assert not root.with_name("session-3").exists()
    saver2.close()
    saver1.close()
    # a session a crash left in session-4 is the one a new start takes (and offers)
    crashed = root.with_name("session-4")
    _crashed(qtbot, crashed)
    _editor3, saver3 = _editor_with_autosave(qtbot, root)
    assert saver3.folder == crashed
    assert saver3.pending() is not None
    saver3.close(clean=False)


def _valid_session(qtbot, root) -> dict:
    _crashed(qtbot, root)
    return json.loads((root / "session.json").read_text())


_DAMAGE = [
    "[" * 100_000 + "]" * 100_000,  # RecursionError in json
    '{"version": 1, "history": ' + "[" * 50_000 + "]" * 50_000 + "}",
    "\xff\xfe not json",
    "",
    "null",
    "[]",
    '{"version": "1"}',
]


def _start_with_session(qtbot, root, text: bytes, choice: str, monkeypatch):
    """Writes `text` as session.json and starts as the app does with --restore `choice`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "session.json").write_bytes(text)
    questions = []

    def ask_restore(parent, info) -> bool:
        questions.append(launch.restore_question(info))
        return True

    monkeypatch.setattr(launch, "ask_restore", ask_restore)
    editor, saver = _editor_with_autosave(qtbot, root)
    window = MainWindow(editor, Preferences(), interactive=False, autosaver=saver)
    qtbot.addWidget(window)
    restored = launch.offer_restore(window, saver, choice)
    return window, saver, restored, questions


def _check_nothing_lost(root, text: bytes, restored: bool, choice: str, window) -> None:
    older = root.parent / "older sessions"
    kept = [p for p in older.glob("*/session.json") if p.read_bytes() == text]
    if restored:
        assert window.editor.document is not None
        assert choice in ("yes", "ask")
    else:
        assert window.editor.document is None
        assert len(kept) == 1  # set aside byte for byte, not deleted
        assert not (root / "session.json").exists()
        message = window.banner.text.text() if window.banner.isVisible() else ""
        assert "\n" not in message


@pytest.mark.parametrize("choice", ["ask", "yes", "no"])
@pytest.mark.parametrize("text", _DAMAGE, ids=range(len(_DAMAGE)))
def test_a_damaged_session_json_is_set_aside_in_every_restore_mode(
    qtbot, root, monkeypatch, text, choice
):
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    window, saver, restored, questions = _start_with_session(qtbot, root, data, choice, monkeypatch)
    assert not restored
    assert not questions
    _check_nothing_lost(root, data, restored, choice, window)
    if choice != "no":
        assert window.banner.text.text().startswith("Could not restore the last session: ")
    saver.start()  # and autosave goes on in the same folder
    window.editor.set_image(photo())
    assert saver.flush()
    assert (root / "session.json").is_file()
    saver.close()


@pytest.mark.slow
def test_session_files_with_any_damage_never_crash_the_start(qtbot, tmp_path, monkeypatch):
    """Property: whatever a session.json holds (a real session with any field replaced by
    any JSON value, at any depth), the start neither raises nor loses it: the session is
    restored, or set aside byte for byte with a one-line message."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base_root = tmp_path / "base" / "session"
    base = _valid_session(qtbot, base_root)
    blobs = base_root / "blobs"
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
    specials: st.SearchStrategy[object] = st.sampled_from(
        [
            "yesterday",
            1e300,
            -1,
            5,
            "",
            "../../etc/passwd",
            [],
            {},
            "a" * 10,
            float("nan"),
            True,
            None,
            2**63,
        ]
    )

    def paths(value, prefix=()):
        yield prefix
        if isinstance(value, dict):
            for k, v in value.items():
                yield from paths(v, (*prefix, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from paths(v, (*prefix, i))

    all_paths = [p for p in paths(base) if p]
    counter = iter(range(10**6))

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.lists(
            st.tuples(st.sampled_from(all_paths), json_values | specials), min_size=1, max_size=3
        ),
        st.sampled_from(["ask", "yes", "no"]),
    )
    def check(changes, choice):
        import copy
        import shutil

        meta = copy.deepcopy(base)
        for path, value in changes:
            target = meta
            try:
                for step in path[:-1]:
                    target = target[step]
                target[path[-1]] = value
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change replaced this field's parent
        root = tmp_path / f"case{next(counter)}" / "session"
        root.mkdir(parents=True)
        shutil.copytree(blobs, root / "blobs")
        text = json.dumps(meta).encode()
        with monkeypatch.context() as patch:
            window, saver, restored, _ = _start_with_session(qtbot, root, text, choice, patch)
            _check_nothing_lost(root, text, restored, choice, window)
            saver.close(clean=False)
            window.close()

    check()
