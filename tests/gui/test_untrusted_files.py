"""Files that come with a bundle or a session from someone else: a model card that is a FIFO,
a device, a link out of the bundle or full of bidi tricks and file: links; session blobs whose
headers lie about their size."""

from __future__ import annotations

import json
import os
import threading
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QUrl

from app.ui import about
from app.ui.about import CARD_FILE, AboutDialog, read_card


def _card_of(folder) -> str:
    return about._model_card(SimpleNamespace(path=folder))


def _bounded(fn, seconds: float = 10.0):
    """Runs fn on a thread and fails (instead of hanging the suite) when it blocks."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    return out[0]


@pytest.mark.skipif(
    not hasattr(os, "mkfifo"), reason="no FIFOs on this OS (Windows); CI on Linux runs it"
)
def test_a_model_card_fifo_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / CARD_FILE)
    text = _bounded(lambda: _card_of(tmp_path))
    assert text == f"*{CARD_FILE} is not shown: it is not a regular file.*"


def test_a_model_card_linking_out_of_the_bundle_is_refused(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / CARD_FILE).symlink_to("/dev/zero")
    assert _bounded(lambda: read_card(bundle)) == (
        "",
        "it is a link to a file outside the model folder",
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the About box")
    (bundle / CARD_FILE).unlink()
    (bundle / CARD_FILE).symlink_to(secret)
    assert "not for the About box" not in _card_of(bundle)
    # a link inside the folder is fine
    (bundle / "card-v2.md").write_text("# Inside\nfine")
    (bundle / CARD_FILE).unlink()
    (bundle / CARD_FILE).symlink_to("card-v2.md")
    assert read_card(bundle) == ("# Inside\nfine", "")


def test_a_huge_model_card_is_cut_at_the_limit(tmp_path):
    with open(tmp_path / CARD_FILE, "wb") as f:
        f.write(b"x" * (3 * about.MAX_CARD_BYTES))
    text, problem = read_card(tmp_path)
    assert not problem
    assert text.endswith("(cut at 256 KB)*")
    assert len(text) < about.MAX_CARD_BYTES + 100


def test_bidi_controls_are_shown_as_codes_and_card_links_open_nothing(qtbot, tmp_path, monkeypatch):
    (tmp_path / CARD_FILE).write_text(
        "# Card\nDownload [weights\u202egnp.exe](file:///etc/passwd) or <file:///etc/shadow>\n"
        "<a href='file:///etc/group'>html</a>\n",
        encoding="utf-8",
    )
    card = _card_of(tmp_path)
    assert "\u202e" not in card
    assert "[U+202E]" in card
    monkeypatch.setattr(about, "about_markdown", lambda *a: "## Model card\n\n" + card)
    opened: list[str] = []

    def open_url(url) -> bool:
        opened.append(url.toString())
        return True

    monkeypatch.setattr(about.QDesktopServices, "openUrl", open_url)
    dialog = AboutDialog(None)
    qtbot.addWidget(dialog)
    assert not dialog.browser.openExternalLinks()
    assert not dialog.browser.openLinks()
    shown = dialog.browser.toPlainText()
    assert "[U+202E]" in shown
    assert "<a href='file:///etc/group'>html</a>" in shown  # HTML is shown as text
    for url in ("file:///etc/passwd", "file:///etc/shadow", "file:///etc/group"):
        dialog.browser.anchorClicked.emit(QUrl(url))
    assert opened == []
    dialog.browser.anchorClicked.emit(QUrl("https://arxiv.org/abs/2211.09117"))  # our own
    assert opened == ["https://arxiv.org/abs/2211.09117"]


# -- session blobs ------------------------------------------------------------------------------


def _crashed_session(root):
    from app.autosave import Autosaver
    from app.editor import Editor
    from gui.conftest import photo

    editor = Editor()
    saver = Autosaver(editor, root=root, delay_ms=20)
    editor.set_image(photo())
    saver.start()
    mask = np.zeros((120, 160), bool)
    mask[5:30, 5:30] = True
    editor.set_mask(mask)
    saver.close(clean=False)
    meta = json.loads((root / "session.json").read_text())
    return meta["history"][0]["mask"]["after"], meta["original"]["pixels"]


def _npy(path, array: np.ndarray, claim: tuple | None = None) -> None:
    """Writes `array` as .npy, with a header that claims the shape `claim` when given."""
    with open(path, "wb") as f:
        header = {"descr": array.dtype.str, "fortran_order": False, "shape": claim or array.shape}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(array.tobytes())


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("case", ["mask-60000-header", "mask-larger-than-image", "rgb-header-lies"])
def test_session_blobs_whose_headers_lie_are_refused_before_decoding(qapp, tmp_path, case):
    from app.core.session import RestoreError, SessionStore

    root = tmp_path / "session"
    mask_key, rgb_key = _crashed_session(root)
    blobs = root / "blobs"
    if case == "mask-60000-header":  # 3.6 GB of bools once unpacked, from 20 bytes
        packed = np.concatenate(
            [np.array([60000, 60000], ">u4").view(np.uint8), np.ones(12, np.uint8)]
        )
        _npy(blobs / f"{mask_key}.npy", packed)
    elif case == "mask-larger-than-image":  # consistent, but 2000x2000 > the 160x120 image
        packed = np.concatenate(
            [np.array([2000, 2000], ">u4").view(np.uint8), np.zeros(500_000, np.uint8)]
        )
        _npy(blobs / f"{mask_key}.npy", packed)
    else:  # an image header claiming 60000x60000x3 over a few bytes
        _npy(blobs / f"{rgb_key}.npy", np.zeros(16, np.uint8), claim=(60000, 60000, 3))
    problems: list[str] = []

    def load():
        try:
            SessionStore(root).load()
        except RestoreError as error:
            problems.append(str(error))

    assert _peak_bytes(load) < 20 << 20
    assert len(problems) == 1
    assert "\n" not in problems[0]
    assert problems[0].startswith("the autosaved session is damaged")


# -- a model with very many classes ---------------------------------------------------------------


def _many_classes(n: int, k: int) -> tuple[list[str], list[list[str]]]:
    names = [f"class {i} word{i % 977}" for i in range(n)]
    synonyms = [[f"syn{i}x{j} kind{j}" for j in range(k)] for i in range(n)]
    names[4321], synonyms[4321] = "beacon", ["lighthouse", "pharos"]
    return names, synonyms


def test_a_picker_with_many_classes_indexes_and_searches_off_the_gui_thread(qtbot):
    from PySide6.QtCore import Qt

    from app.ui.panels.class_picker import SYNC_TEXTS, ClassPicker

    names, synonyms = _many_classes(12_000, 4)  # 60,000 names and synonyms
    picker = ClassPicker()
    qtbot.addWidget(picker)
    picker.show()
    picker.lineEdit().setFocus()
    gui = time.thread_time()  # CPU of this (the GUI) thread only, not the worker's
    picker.set_classes(names, synonyms)
    assert picker.background
    assert len(names) * 5 > SYNC_TEXTS
    typed = "lighthouse"
    per_key = []
    for ch in typed:
        before = time.thread_time()
        qtbot.keyClick(picker.lineEdit(), ch)
        per_key.append(time.thread_time() - before)
    gui_total = time.thread_time() - gui
    qtbot.waitUntil(lambda: picker.suggestions.rowCount() > 0, timeout=60_000)
    first = picker.suggestions.item(0).text()
    assert first == "beacon — matched 'lighthouse'"
    # the index (about 60,000 entries) and every search ran on the worker: the GUI thread
    # spent CPU only on the combo box's items and the keys
    assert max(per_key) < 0.05, per_key
    assert gui_total < 2.0, gui_total
    qtbot.keyClick(picker.completer_.popup(), Qt.Key.Key_Return)
    assert picker.chosen() == "beacon"
    # Enter with no list open: the lookup runs on the worker too, and its answer is taken
    picker.lineEdit().setText("pharos")
    qtbot.keyClick(picker.lineEdit(), Qt.Key.Key_Escape)
    picker._popup().hide()
    picker.select("")
    picker.lineEdit().setText("pharos")
    picker._take_typed()
    qtbot.waitUntil(lambda: picker.chosen() == "beacon", timeout=60_000)


def test_recognition_rows_show_class_names_as_plain_text(qtbot):
    """A head's class names come from a file: '<img src=file:...>' is text, not an image."""
    from PySide6.QtCore import Qt

    from app.ui.recognition_panel import RecognitionPanel

    panel = RecognitionPanel()
    qtbot.addWidget(panel)
    for label in [*panel.row_labels, panel.status]:
        assert label.textFormat() == Qt.TextFormat.PlainText


def test_class_names_that_look_like_html_are_shown_as_text(qtbot):
    from PySide6.QtCore import Qt

    from app.ui.panels.class_picker import ClassPicker, tip

    hostile = "<img src='file:///dev/zero'>"
    picker = ClassPicker()
    qtbot.addWidget(picker)
    picker.set_classes([hostile, "dog"], [["<b>bold</b>"], []])
    shown = picker.itemData(0, Qt.ItemDataRole.ToolTipRole)
    assert shown == tip(f"Class 0: {hostile} (also: <b>bold</b>)")
    assert "<img" not in shown
    assert "&lt;img" in shown
    picker.setCurrentIndex(0)
    assert "&lt;img" in picker.toolTip()
    assert picker.hint.startswith("Class 0: <img")
    from app.editor import Editor
    from app.ui.panels.run_panel import RunPanel

    panel = RunPanel(Editor())
    qtbot.addWidget(panel)
    assert panel.class_hint.textFormat() == Qt.TextFormat.PlainText


def test_a_picker_deleted_while_it_indexes_ends_its_thread_quietly(qtbot, monkeypatch):
    from PySide6.QtCore import QCoreApplication, QEvent

    from app.ui.panels import class_picker
    from app.ui.panels.class_picker import ClassPicker

    errors: list = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    monkeypatch.setattr(class_picker, "IDLE_SECONDS", 0.2)
    picker = ClassPicker()
    picker.set_classes(*_many_classes(5000, 4))
    thread = picker.searcher._thread
    assert thread is not None
    picker.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del picker
    thread.join(60)
    assert not thread.is_alive()
    assert errors == []
