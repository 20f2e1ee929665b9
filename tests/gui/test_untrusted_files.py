"""Files that come with a bundle or a session from someone else: a model card that is a FIFO,
a device, a link out of the bundle or full of bidi tricks and file: links; session blobs whose
headers lie about their size."""

from __future__ import annotations

import os
import threading
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


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
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
    assert not problem and text.endswith("(cut at 256 KB)*")
    assert len(text) < about.MAX_CARD_BYTES + 100


def test_bidi_controls_are_shown_as_codes_and_card_links_open_nothing(
    qtbot, tmp_path, monkeypatch
):
    (tmp_path / CARD_FILE).write_text(
        "# Card\nDownload [weights\u202egnp.exe](file:///etc/passwd) or <file:///etc/shadow>\n"
        "<a href='file:///etc/group'>html</a>\n",
        encoding="utf-8",
    )
    card = _card_of(tmp_path)
    assert "\u202e" not in card and "[U+202E]" in card
    monkeypatch.setattr(about, "about_markdown", lambda *a: "## Model card\n\n" + card)
    opened: list[str] = []
    monkeypatch.setattr(
        about.QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True
    )
    dialog = AboutDialog(None)
    qtbot.addWidget(dialog)
    assert not dialog.browser.openExternalLinks() and not dialog.browser.openLinks()
    shown = dialog.browser.toPlainText()
    assert "[U+202E]" in shown
    assert "<a href='file:///etc/group'>html</a>" in shown  # HTML is shown as text
    for url in ("file:///etc/passwd", "file:///etc/shadow", "file:///etc/group"):
        dialog.browser.anchorClicked.emit(QUrl(url))
    assert opened == []
    dialog.browser.anchorClicked.emit(QUrl("https://arxiv.org/abs/2211.09117"))  # our own
    assert opened == ["https://arxiv.org/abs/2211.09117"]


