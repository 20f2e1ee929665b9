"""The class picker, driven by typed keys: class numbers, names, synonyms, free text and close
spellings over the 1000 ImageNet classes, and the run panel with a class-only model (MaskGIT
style: no null class, so Remove cannot run and Generate always draws a class)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFocusEvent

from app.ui.panels.class_picker import ClassPicker
from engine.runtime.classes import imagenet_classes
from gui.fake_engine import FakeBundle, fake_manifest


@pytest.fixture
def picker(qtbot):
    widget = ClassPicker()
    widget.set_classes(*imagenet_classes())
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    widget.lineEdit().setFocus()
    return widget


def type_into(qtbot, picker: ClassPicker, text: str) -> None:
    picker.lineEdit().selectAll()
    qtbot.keyClicks(picker.lineEdit(), text)


def press_enter(qtbot, picker: ClassPicker) -> None:
    target = picker.completer_.popup() if picker.popup_shown() else picker.lineEdit()
    qtbot.keyClick(target, Qt.Key.Key_Return)


def rows(picker: ClassPicker) -> list[str]:
    return [picker.suggestions.item(i).text() for i in range(picker.suggestions.rowCount())]


def test_free_text_finds_a_synonym_and_shows_what_matched(qtbot, picker):
    with qtbot.waitSignal(picker.class_chosen) as chosen:
        type_into(qtbot, picker, "lighthouse at night")
        assert picker.popup_shown()
        assert rows(picker)[0] == "beacon — matched 'lighthouse'"
        press_enter(qtbot, picker)
    assert chosen.args == ["beacon"]
    assert picker.chosen() == "beacon"
    assert picker.currentIndex() == 437
    assert picker.lineEdit().text() == "beacon"
    assert picker.hint.startswith("Matched 'lighthouse'. Class 437: beacon (also: lighthouse")
    assert not picker.popup_shown()


@pytest.mark.parametrize(
    ("typed", "index", "first_row"),
    [
        ("207", 207, "golden retriever — class 207"),
        ("golden retr", 207, "golden retriever"),
        ("goldne retriever", 207, "golden retriever"),
        ("a lighthose", 437, "beacon — close to 'lighthouse'"),
        ("pharos", 437, "beacon — matched 'pharos'"),
        ("crane bi", 134, "crane (bird)"),
    ],
)
def test_typing_and_enter_takes_the_best_suggestion(qtbot, picker, typed, index, first_row):
    type_into(qtbot, picker, typed)
    assert rows(picker)[0] == first_row
    press_enter(qtbot, picker)
    assert picker.currentIndex() == index


def test_arrow_keys_pick_another_suggestion(qtbot, picker):
    type_into(qtbot, picker, "crane")
    assert rows(picker)[:2] == [
        "crane (bird) — matched 'crane'",
        "crane (machine) — matched 'crane'",
    ]
    qtbot.keyClick(picker.completer_.popup(), Qt.Key.Key_Down)
    press_enter(qtbot, picker)
    assert picker.chosen() == "crane (machine)"


def test_nothing_matching_keeps_the_class_and_says_why(qtbot, picker):
    picker.select("tench")
    type_into(qtbot, picker, "xyzzy")
    assert not picker.popup_shown()
    assert picker.hint == "No class matches 'xyzzy'"
    press_enter(qtbot, picker)
    assert picker.chosen() == "tench"
    assert picker.hint.startswith("Unknown class 'xyzzy'")
    assert picker.lineEdit().text() == "xyzzy"  # still there to correct
    picker.eventFilter(
        picker.lineEdit(), QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.MouseFocusReason)
    )
    assert picker.lineEdit().text() == "tench"  # leaving the field shows the chosen class


def test_a_thousand_classes_answer_every_key_fast(qtbot, picker):
    start = time.process_time()
    type_into(qtbot, picker, "a lighthose at nite")
    per_key = (time.process_time() - start) / len("a lighthose at nite")
    assert rows(picker)[0].startswith("beacon")
    assert per_key < 0.15  # CPU seconds a key (not wall time: a loaded machine does not count)


# -- the run panel with a class-only model ------------------------------------------------------


def class_only_manifest():
    names = ["cat", "dog", "boat"]
    return replace(
        fake_manifest(names), null_class_id=None, class_synonyms=[["kitty"], ["hound"], []]
    )


def test_class_only_model_needs_a_class_and_says_so(window, qtbot):
    panel, editor = window.run_panel, window.editor
    editor.set_options(replace(editor.options, mode="remove", generate_class=False))
    editor.models.use(FakeBundle(class_only_manifest()))
    # Remove cannot run without a class: the panel offers Fill as class, nothing preselected
    assert editor.options.mode == "class"
    assert editor.options.class_name == ""
    assert not panel.run_button.isEnabled()
    assert panel.cost.text().startswith("Pick a class first")
    panel.classes.lineEdit().setFocus()
    type_into(qtbot, panel.classes, "kitty")
    press_enter(qtbot, panel.classes)
    assert editor.options.class_name == "cat"
    assert panel.class_hint.text().startswith("Matched 'kitty'. Class 0: cat")
    assert panel.class_hint.isVisible()
    assert panel.run_button.isEnabled()
    panel.mode.setCurrentIndex(0)  # Remove / fill
    assert editor.options.mode == "remove"
    assert not panel.run_button.isEnabled()
    assert "cannot remove or fill from the surroundings" in panel.cost.text()
    assert editor.start_run() is False
    panel.mode.setCurrentIndex(2)  # Generate: always of the chosen class
    assert panel.of_class.isChecked()
    assert not panel.of_class.isEnabled()
    assert panel.run_button.isEnabled()
    assert editor.options.settings((1,)).class_name == "cat"


def test_a_model_with_a_null_class_keeps_remove(window):
    panel, editor = window.run_panel, window.editor
    editor.set_options(replace(editor.options, mode="remove", generate_class=False))
    editor.models.use(FakeBundle(fake_manifest()))
    assert editor.options.mode == "remove"
    assert panel.run_button.isEnabled()
    assert panel.of_class.isEnabled()


def test_generate_with_a_class_only_bundle_runs(window, qtbot, tiny_bundle_path, tmp_path):
    from engine.runtime.bundle import Bundle

    folder = Path(shutil.copytree(tiny_bundle_path, tmp_path / "class-only"))
    data = json.loads((folder / "manifest.json").read_text())
    data.update(null_class_id=None, class_synonyms=[["kitty"], ["hound"], ["dinghy"]])
    (folder / "manifest.json").write_text(json.dumps(data))
    panel, editor = window.run_panel, window.editor
    editor.models.use(Bundle(folder, device="cpu"))
    panel.mode.setCurrentIndex(2)
    panel.classes.lineEdit().setFocus()
    type_into(qtbot, panel.classes, "dinghy")
    press_enter(qtbot, panel.classes)
    assert editor.options.class_name == "boat"
    assert panel.run_button.isEnabled()
    editor.set_options(replace(editor.options, steps=2))
    with qtbot.waitSignal(editor.run_changed, timeout=30000):
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert editor.run.settings.class_name == "boat"
    assert editor.document.size == (64, 64)


def test_a_class_the_new_model_lacks_is_not_kept(window):
    editor = window.editor
    editor.models.use(FakeBundle(fake_manifest()))
    editor.set_options(replace(editor.options, mode="class", class_name="dog"))
    editor.models.use(FakeBundle(fake_manifest(["ship", "dog"])))
    assert editor.options.class_name == "dog"
    assert window.run_panel.classes.chosen() == "dog"
    editor.models.use(FakeBundle(fake_manifest(["ship", "car"])))
    assert editor.options.class_name == ""
    assert not window.run_panel.run_button.isEnabled()
    assert window.run_panel.cost.text().startswith("Pick a class first")
