"""Issue: never crash on what users throw at the app. The test corpus through the app's loader
(one line in the banner, the open document kept, input files unchanged), broken models, and
jobs that fail or are cancelled leaving the document exactly as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from app import launch
from conftest import REPO
from corpus import damaged_bundle, make_corpus
from engine.runtime.imageio import file_digest
from gui.conftest import photo, run_main, session_copy
from gui.fake_engine import FakeBundle
from gui.test_autosave import assert_same_document


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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def _edited(window):
    """An open document with a mask stroke and an applied change: work that must survive."""
    editor = window.editor
    editor.set_image(photo())
    mask = np.zeros((120, 160), bool)
    mask[10:30, 20:60] = True
    editor.set_mask(mask)
    editor.document.apply_image_patch(0, 0, np.full((8, 8, 3), 9, np.uint8), "Patch")
    return editor.document


def _banner(window) -> str:
    return window.banner.text.text() if window.banner.isVisible() else ""


# -- the corpus -----------------------------------------------------------------------------


def test_corpus_through_the_app_loader(window, corpus):
    editor = window.editor
    for case in corpus:
        before_file = file_digest(case.path)
        doc = _edited(window)
        kept = session_copy(doc)
        undo = (editor.undo_stack.count(), editor.undo_stack.index())
        window.banner.hide()
        ok = window.open_path(str(case.path))
        assert file_digest(case.path) == before_file, case.name
        text = _banner(window)
        assert "Traceback" not in text, (case.name, text)
        assert "\n" not in text, (case.name, text)
        if case.ok:
            assert ok, (case.name, text)
            assert editor.document is not doc
            assert editor.document.path == str(case.path)
            w, h = editor.document.size
            assert w >= 1
            assert h >= 1
            assert editor.undo_stack.count() == 0
            assert not editor.document.modified
            if case.expect:
                assert case.expect in text, (case.name, text)
                assert window.banner.icon.pixmap() is not None
        else:
            assert not ok, case.name
            assert text.startswith(f"Cannot load image '{case.path}': "), (case.name, text)
            assert case.expect in text, (case.name, text)
            assert editor.document is doc, case.name  # the open image stays
            assert_same_document(doc, kept)
            assert (editor.undo_stack.count(), editor.undo_stack.index()) == undo


def test_loaded_corpus_images_have_the_right_shape(window, corpus):
    by_name = {c.name: c for c in corpus}
    editor = window.editor
    assert window.open_path(str(by_name["exif-rotated.jpg"].path))
    assert editor.document.size == (64, 96)  # EXIF orientation applied
    assert window.open_path(str(by_name["palette-transparent.png"].path))
    assert editor.document.alpha is not None
    assert window.open_path(str(by_name["gray-alpha.png"].path))
    assert editor.document.alpha is not None
    assert window.open_path(str(by_name["one-pixel.png"].path))
    assert editor.document.size == (1, 1)
    editor.set_mask(np.ones((1, 1), bool))  # tiny images can be painted
    assert editor.document.mask.all()


def test_a_good_file_after_a_bad_one_clears_the_old_message(window, corpus):
    by_name = {c.name: c for c in corpus}
    assert not window.open_path(str(by_name["empty.png"].path))
    assert "the file is empty" in _banner(window)
    assert window.open_path(str(by_name["gray16.png"].path))
    assert _banner(window) == ""
    assert not window.open_path(str(by_name["notes.jpg"].path))
    assert window.open_path(str(by_name["animated.gif"].path))  # a notice replaces the error
    assert "using the first of 3 frames" in _banner(window)
    assert "Cannot load" not in _banner(window)


def test_corpus_masks_are_refused_in_one_line(window, corpus):
    doc = _edited(window)
    kept = session_copy(doc)
    for case in corpus:
        if case.ok:
            continue
        window.banner.hide()
        assert not window.load_mask_file(str(case.path))
        text = _banner(window)
        assert text.startswith("Cannot load mask"), text
        assert case.expect in text, text
        assert_same_document(doc, kept)


def test_save_never_writes_the_original(window, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo()).save(path)
    digest = file_digest(path)
    assert window.open_path(str(path))
    window.editor.set_mask(np.ones((120, 160), bool))
    link = tmp_path / "link.png"
    link.symlink_to(path)
    for target in (path, tmp_path / "." / "photo.png", link):
        window.banner.hide()
        window.editor.save(str(target))
        assert "that is the original" in _banner(window)
        assert file_digest(path) == digest
    window.editor.save(str(tmp_path / "out.png"))
    assert (tmp_path / "out.png").is_file()
    assert file_digest(path) == digest


# -- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "expect"),
    [
        ("missing-folder", "model folder not found"),
        ("missing-file", "model file missing"),
        ("hash-mismatch", "sha256 does not match"),
        ("truncated-onnx", "transformer.onnx"),
        ("newer-version", "newer than this app understands"),
        ("shapes", "but the manifest says codebook_size"),
    ],
)
def test_broken_models_are_one_line_and_the_window_keeps_working(
    window, qtbot, tmp_path, tiny_bundle_path, how, expect
):
    path = (
        tmp_path / "nowhere"
        if how == "missing-folder"
        else damaged_bundle(tiny_bundle_path, tmp_path, how)
    )
    doc = _edited(window)
    kept = session_copy(doc)
    with qtbot.waitSignal(window.editor.models.failed, timeout=30000) as failed:
        window.load_model(path, "cpu")
    assert expect in failed.args[0]
    assert "\n" not in failed.args[0]
    assert "Traceback" not in failed.args[0]
    assert _banner(window).startswith("No model loaded: ")
    assert expect in _banner(window)
    assert window.model_label.text() == "No model"
    assert_same_document(window.editor.document, kept)
    window.banner.hide()
    assert not window.editor.start_run()  # says why, does not crash
    assert expect in _banner(window)
    window.editor.set_mask(np.zeros((120, 160), bool))  # editing still works


def test_cuda_fallback_during_a_run_is_told_once(window, qtbot):
    editor = window.editor
    bundle = FakeBundle()
    editor.models.use(bundle)
    _edited(window)
    editor.set_mask(np.pad(np.ones((20, 20), bool), ((40, 60), (60, 80))))
    bundle.notices.append("CUDA failed while running (Fail); running on the CPU from now on")
    shown: list[str] = []
    editor.notice.connect(shown.append)
    for _ in range(2):
        with qtbot.waitSignal(editor.run_changed, timeout=10000):
            editor.start_run()
        editor.jobs.wait_idle(5)
        editor.undo_stack.undo()
    assert len(shown) == 1
    assert "CUDA failed" in shown[0]
    assert "CUDA failed" in _banner(window)


# -- jobs -----------------------------------------------------------------------------------


def _ready(window, bundle, mode="remove"):
    editor = window.editor
    editor.models.use(bundle)
    doc = _edited(window)
    editor.set_mask(np.pad(np.ones((20, 20), bool), ((40, 60), (60, 80))))
    editor.set_options(replace(editor.options, candidates=2, seed=1, fixed_seed=True, mode=mode))
    undo = (editor.undo_stack.count(), editor.undo_stack.index())
    return editor, doc, session_copy(doc), undo


def test_a_failing_job_leaves_the_document_as_it_was(window, qtbot):
    editor, doc, kept, undo = _ready(window, FakeBundle(fail_at_call=3))
    with qtbot.waitSignal(editor.jobs.failed, timeout=10000):
        assert editor.start_run()
    assert editor.jobs.wait_idle(5)
    assert editor.document is doc
    assert_same_document(doc, kept)
    assert (editor.undo_stack.count(), editor.undo_stack.index()) == undo
    assert "failed in transformer.onnx" in _banner(window)
    assert editor.run is None
    assert editor.applied == -1


@pytest.mark.parametrize("mode", ["remove", "extend"])
def test_a_cancelled_job_leaves_the_document_as_it_was(window, qtbot, mode):
    editor, _doc, kept, undo = _ready(window, FakeBundle(delay=0.03), mode)
    editor.progress.connect(lambda p: editor.cancel_run() if p.step == 2 else None)
    with qtbot.waitSignal(editor.jobs.cancelled, timeout=10000):
        assert editor.start_run()
    assert editor.jobs.wait_idle(5)
    qtbot.wait(50)
    assert_same_document(editor.document, kept)
    assert (editor.undo_stack.count(), editor.undo_stack.index()) == undo


def test_cancel_after_the_job_returned_still_cancels(window, qtbot):
    """Cancel pressed while the finished result waits in the event queue: not applied."""
    editor, _doc, kept, undo = _ready(window, FakeBundle())
    assert editor.start_run()
    worker = editor.jobs._current
    assert worker.done.wait(10)  # returned; its signals are not delivered yet
    editor.cancel_run()
    with qtbot.waitSignal(editor.jobs.cancelled, timeout=5000):
        pass
    qtbot.wait(50)
    assert_same_document(editor.document, kept)
    assert (editor.undo_stack.count(), editor.undo_stack.index()) == undo


def test_a_result_never_lands_in_another_image(window, qtbot):
    bundle = FakeBundle()
    editor, _, _, _ = _ready(window, bundle)
    bundle.block()
    assert editor.start_run()
    other = photo(80, 100)
    editor.set_image(other)  # opened while the run was going
    bundle.release()
    assert editor.jobs.wait_idle(10)
    qtbot.wait(50)
    np.testing.assert_array_equal(editor.document.rgb, other)
    assert editor.undo_stack.count() == 0
    assert editor.run is None


def test_unexpected_errors_in_slots_become_one_line(window, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    launch._install_excepthook(window.editor)
    try:
        raise KeyError("boom\nsecond line")
    except KeyError:
        sys.excepthook(*sys.exc_info())
    text = _banner(window)
    assert text.startswith("Unexpected error: ")
    assert "boom" in text
    assert "\n" not in text


@pytest.mark.slow
def test_huge_but_legal_image_opens_in_the_app_and_autosaves_by_reference(huge_png, tmp_path):
    """12000x9000 (108 MP): opens with a notice, paints, and the autosave references the
    file by hash instead of copying 324 MB; the file is never written."""
    image = huge_png
    digest = file_digest(image)
    probe = (
        "import json, sys, time\n"
        # VmHWM of this process: ru_maxrss would include the test runner's peak (Linux keeps
        # it across fork and exec)
        "def peak_mb():\n"
        "    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
        "    return int(hwm.split()[1]) // 1024\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import numpy as np\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from app.autosave import Autosaver\n"
        "from app.editor import Editor\n"
        "from app.ui.main_window import MainWindow\n"
        "from app.preferences import Preferences\n"
        "app = QApplication([])\n"
        "editor = Editor(); saver = Autosaver(editor)\n"
        "window = MainWindow(editor, Preferences(), interactive=False, autosaver=saver)\n"
        "window.show(); saver.start()\n"
        f"assert window.open_path({str(image)!r}), window.banner.text.text()\n"
        "notice = window.banner.text.text()\n"
        "editor.fill_shape('rect', [(6000, 4000), (6900, 4600)])\n"
        "start = time.monotonic(); saver.save_now(); assert saver.flush(120)\n"
        "meta = json.loads((saver.folder / 'session.json').read_text())\n"
        "print(json.dumps({'notice': notice, 'size': editor.document.size,\n"
        "                  'original': meta['original'], 'history': meta['history_index'],\n"
        "                  'blob_bytes': sum(p.stat().st_size for p in\n"
        "                                    (saver.folder / 'blobs').iterdir()),\n"
        "                  'peak_mb': peak_mb()}))\n"
        "window.close()\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["size"] == [12000, 9000]
    assert "very large image" in out["notice"]
    assert out["history"] == 1
    assert "pixels" not in out["original"]
    assert out["original"]["sha256"] == digest
    assert out["blob_bytes"] < 5_000_000  # the mask patch only
    assert out["peak_mb"] < 4000, out
    assert file_digest(image) == digest


# -- issue 11: scripted outputs never overwrite inputs; files never block; the GUI never waits


def _inputs(tmp_path):
    image, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(photo()).save(image)
    m = np.zeros((120, 160), np.uint8)
    m[20:50, 30:80] = 255
    Image.fromarray(m).save(mask)
    return image, mask


def test_scripted_outputs_refuse_every_input_and_missing_folders(tmp_path):
    image, mask = _inputs(tmp_path)
    link = tmp_path / "link.png"
    link.symlink_to(image)
    hard = tmp_path / "hard.png"
    os.link(mask, hard)
    shot = str(tmp_path / "shot.png")
    base = ["--open", str(image), "--mask", str(mask)]
    cases = {
        ("--screenshot", shot, "--save", str(mask)): "that is the --mask file",
        ("--screenshot", shot, "--save", str(image)): "that is the --open file",
        ("--screenshot", shot, "--save", str(link)): "that is the --open file",
        ("--screenshot", shot, "--save", str(hard)): "that is the --mask file",
        ("--screenshot", str(image)): "that is the --open file",
        ("--screenshot", shot, "--save", str(tmp_path / "no" / "out.png")): "does not exist",
        ("--screenshot", str(tmp_path / "no" / "s.png")): "does not exist",
        ("--screenshot", shot, "--save", str(tmp_path)): "a folder with that name exists",
        ("--screenshot", shot, "--save", shot): "name the same file",
        ("--save", str(tmp_path / "out.png")): "only with --screenshot",
    }
    for extra, reason in cases.items():
        problem = launch.check_outputs(launch.parse_args(base + list(extra)))
        assert reason in problem, (extra, problem)
        assert "\n" not in problem, (extra, problem)
    assert (
        launch.check_outputs(
            launch.parse_args(base + ["--screenshot", shot, "--save", str(tmp_path / "out.png")])
        )
        == ""
    )


@pytest.mark.slow
def test_gui_save_over_the_mask_or_into_a_missing_folder_fails_loudly(tmp_path):
    """Real runs: rc non-zero, one line on stderr, the inputs unchanged, nothing written."""
    image, mask = _inputs(tmp_path)
    before = {p: file_digest(p) for p in (image, mask)}
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    shot = tmp_path / "shot.png"
    for save in (mask, image, tmp_path / "missing" / "out.png"):
        run = run_main(
            "--open",
            str(image),
            "--mask",
            str(mask),
            "--no-run",
            "--screenshot",
            str(shot),
            "--save",
            str(save),
            env=env,
        )
        assert run.returncode == 2, run.stderr[-2000:]
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("main.py: cannot write --save")
        assert not shot.exists()
        assert not (tmp_path / "missing").exists()
        assert {p: file_digest(p) for p in (image, mask)} == before


@pytest.mark.slow
def test_a_failed_save_keeps_the_restored_session(tmp_path, tiny_bundle_path):
    """--restore yes then a save that fails at write time: rc 1, one line, and the session
    is still there to restore (it used to be deleted by the clean close)."""
    from app.autosave import Autosaver, SessionStore, session_root
    from app.editor import Editor

    editor = Editor()
    saver = Autosaver(editor)
    editor.set_image(photo())
    saver.start()
    editor.fill_shape("rect", [(10, 10), (60, 40)])
    saver.close(clean=False)
    root = session_root()
    too_long = tmp_path / ("x" * 300 + ".png")  # the folder exists; the name cannot
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = run_main(
        "--restore",
        "yes",
        "--screenshot",
        str(tmp_path / "shot.png"),
        "--save",
        str(too_long),
        "--model",
        str(tiny_bundle_path),
        "--device",
        "cpu",
        env=env,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert [ln for ln in run.stderr.splitlines() if ln.startswith("Cannot save")]
    doc, _ = SessionStore(root).load()  # still there, as the crash left it
    assert doc.mask[10:40, 10:60].all()
    assert doc.history_index == 1


@pytest.mark.slow
def test_gui_open_of_a_fifo_or_device_is_one_line_and_never_hangs(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    image, _ = _inputs(tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for opened, mask in ((fifo, None), ("/dev/zero", None), (image, fifo)):
        args = ["--open", str(opened)] + (["--mask", str(mask)] if mask else [])
        run = run_main(*args, "--no-run", "--screenshot", str(tmp_path / "shot.png"), env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        refused = [ln for ln in run.stderr.splitlines() if "not a regular file" in ln]
        assert len(refused) == 1, run.stderr[-2000:]


def test_the_gui_thread_never_waits_for_the_token_plan(window, qtbot, monkeypatch):
    """A speckle mask on a large photo: the plan runs on a worker (the latest request wins)
    while the GUI thread keeps turning its event loop; the overlay follows when it lands."""
    import threading
    import time

    from PySide6.QtCore import QTimer

    import app.planner as planner

    real = planner.plan_edit
    threads, gate = [], threading.Event()

    def slow_parts(*args, **kwargs):
        threads.append(threading.current_thread())
        gate.wait(5)  # a plan that takes seconds, as dust spots used to
        return real(*args, **kwargs)

    monkeypatch.setattr(planner, "plan_edit", slow_parts)
    editor = window.editor
    editor.models.use(FakeBundle())
    editor.set_image(photo(900, 1200))
    rng = np.random.default_rng(0)
    first = rng.random((900, 1200)) < 0.002
    second = first.copy()
    second[:, 600:] = False
    plans: list[Any] = []
    editor.plan_changed.connect(plans.append)
    ticks = []
    timer = QTimer(interval=10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    editor.set_mask(first)
    qtbot.waitUntil(lambda: len(threads) == 1, timeout=3000)
    editor.set_mask(second)  # overtakes the first while it is still being planned
    qtbot.wait(400)
    assert editor.plan is None
    assert not plans
    gate.set()
    qtbot.waitUntil(lambda: bool(plans), timeout=10000)
    qtbot.wait(100)
    timer.stop()
    assert all(t is not threading.main_thread() for t in threads)
    assert len(plans) == 1
    assert editor.plan is plans[0]
    settings = editor.options.settings((0,))
    wanted, before = (real(editor.bundle.manifest, m, settings) for m in (second, first))
    assert wanted is not None
    assert before is not None
    assert [x.square for x in editor.plan.parts] == [x.square for x in wanted.parts]
    assert editor.plan.masked_count == sum(x.masked_count for x in wanted.parts)
    assert editor.plan.masked_count != before.masked_count
    gaps = np.diff(ticks)
    assert len(ticks) > 30, gaps.max()
    assert gaps.max() < 0.3, gaps.max()
