"""Everyday words find the default model's ten classes ("dog" is one of the animals), a text
that matches nothing lists them all, and the hint under the class box always speaks of what is
typed now. Driven with keys in the Run panel of a real window."""

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from engine.runtime.classes import find_class
from engine.runtime.locations import REPO_MODELS
from engine.runtime.manifest import read_manifest
from gui.fake_engine import FakeBundle

DEFAULT = Path(REPO_MODELS) / "mage-photos-128"


@pytest.fixture(scope="module")
def manifest():
    return read_manifest(DEFAULT, verify_hashes=False)


@pytest.fixture
def panel(window, qtbot, manifest):
    # the default bundle's classes on a fake engine (its classifier head left out)
    window.editor.models.use(FakeBundle(replace(manifest, heads={})))
    run = window.run_panel
    run.mode.setFocus()
    QTest.keyClick(run.mode, Qt.Key.Key_Down)  # Remove / fill -> Fill as class
    assert window.editor.options.mode == "class"
    assert run.classes.isVisible()
    run.classes.lineEdit().setFocus()
    return run


def type_in(panel, text: str) -> None:
    field = panel.classes.lineEdit()
    QTest.keyClick(field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(field, Qt.Key.Key_Backspace)
    QTest.keyClicks(field, text)


def rows(panel) -> list[str]:
    model = panel.classes.suggestions
    return [model.item(i).text() for i in range(model.rowCount())]


def enter(panel) -> None:
    picker = panel.classes
    target = picker.completer_.popup() if picker.popup_shown() else picker.lineEdit()
    QTest.keyClick(target, Qt.Key.Key_Return)


def test_the_default_bundle_names_everyday_words_for_each_class(manifest):
    assert manifest.class_synonyms is not None
    assert len(manifest.class_synonyms) == len(manifest.class_names) == 10
    words = [w.casefold() for s in manifest.class_synonyms for w in s]
    assert len(words) == len(set(words))  # each word leads to one class
    for word, expected in (("dog", "animals"), ("lighthouse", "monuments"), ("boat", "outdoors")):
        assert find_class(word, manifest.class_names, manifest.class_synonyms).name == expected


@pytest.mark.parametrize(
    ("typed", "chosen", "first_row"),
    [
        ("dog", "animals", "animals — matched 'dog'"),
        ("lighthouse", "monuments", "monuments — matched 'lighthouse'"),
        ("boat", "outdoors", "outdoors — matched 'boat'"),
        ("dog on grass", "animals", "animals — matched 'dog'"),
        ("flowers", "nature", "nature — matched 'flowers'"),
    ],
)
def test_everyday_words_find_a_class_and_say_what_matched(
    window, qtbot, panel, typed, chosen, first_row
):
    type_in(panel, typed)
    assert rows(panel)[0] == first_row
    assert panel.class_hint.text().endswith(f"Enter takes {chosen}")
    enter(panel)
    assert window.editor.options.class_name == chosen
    assert panel.class_hint.isVisible()
    assert "Matched '" in panel.class_hint.text()
    assert f": {chosen} (also: " in panel.class_hint.text()


def test_a_word_matching_nothing_lists_every_class(window, qtbot, panel, manifest):
    type_in(panel, "qwxz")
    assert panel.classes.popup_shown()
    assert rows(panel) == list(manifest.class_names)
    hint = panel.class_hint.text()
    assert hint.startswith("No class matches 'qwxz'. This model knows 10 classes: animals, energy")
    QTest.keyClick(panel.classes.completer_.popup(), Qt.Key.Key_Down)
    enter(panel)
    assert window.editor.options.class_name == "energy"  # picked from the list with keys


def test_the_hint_never_speaks_of_an_earlier_text(window, qtbot, panel):
    type_in(panel, "qwxz")
    assert "No class matches 'qwxz'" in panel.class_hint.text()
    type_in(panel, "anmials")  # a misspelling: the suggestion is there, the old hint is not
    assert rows(panel)[0] == "animals"
    assert panel.class_hint.text() == "Enter takes animals"
    field = panel.classes.lineEdit()
    for _ in range(len("anmials")):
        QTest.keyClick(field, Qt.Key.Key_Backspace)
    assert field.text() == ""
    assert panel.class_hint.text() == ""
    type_in(panel, "qwxz")
    for _ in range(4):
        QTest.keyClick(field, Qt.Key.Key_Backspace)
    assert "qwxz" not in panel.class_hint.text()
