"""The document's history is the only one: the QUndoStack wraps it, one command per change,
whoever changes the document (the editor, a direct call, undo from either side)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from app.core.document import RECORDED, REDONE, REPLACED, UNDONE, Document
from app.editor import Editor
from gui.conftest import photo
from gui.fake_engine import FakeBundle


def _in_step(editor: Editor) -> None:
    doc, stack = editor.document, editor.undo_stack
    assert doc is not None
    assert stack.count() == len(doc.history)
    assert stack.index() == doc.history_index
    for position, change in enumerate(doc.history):
        assert stack.text(position) == change.label


@pytest.fixture
def editor(qtbot):
    editor = Editor()
    yield editor
    editor.jobs.cancel()
    editor.jobs.wait_idle(10)


def _masked(editor: Editor) -> None:
    mask = np.zeros((120, 160), bool)
    mask[40:60, 60:80] = True
    editor.set_mask(mask)


def _run(editor: Editor, qtbot) -> None:
    with qtbot.waitSignal(editor.run_changed, timeout=20000):
        assert editor.start_run()
    assert editor.jobs.wait_idle(10)


def test_direct_document_changes_reach_the_undo_stack(editor, qtbot):
    editor.set_image(photo())
    _masked(editor)
    images: list[Any] = []
    editor.image_changed.connect(images.append)
    editor.document.apply_image_patch(0, 0, np.full((8, 8, 3), 9, np.uint8), "Patch")
    _in_step(editor)
    assert images == [(0, 0, 8, 8)]
    editor.document.undo()  # the stack follows the document
    _in_step(editor)
    assert not (editor.document.rgb[:8, :8] == 9).all()
    assert editor.document.mask.any()
    editor.undo_stack.redo()  # and the document the stack
    _in_step(editor)
    assert (editor.document.rgb[:8, :8] == 9).all()
    assert not editor.document.mask.any()
    editor.undo_stack.setIndex(0)
    _in_step(editor)
    np.testing.assert_array_equal(editor.document.rgb, photo())


def test_another_candidate_replaces_the_applied_one_through_the_document(editor, qtbot):
    editor.models.use(FakeBundle())
    editor.set_image(photo())
    editor.set_options(replace(editor.options, candidates=3, seed=4, fixed_seed=True))
    _masked(editor)
    before = editor.document.rgb.copy()
    _run(editor, qtbot)
    _in_step(editor)
    assert editor.undo_stack.count() == 2
    assert editor.undo_stack.undoText() == "Edit (seed 4)"
    events = []
    editor.document.listeners.append(lambda event, change: events.append(event))
    undone: list[int] = []
    editor.undo_stack.indexChanged.connect(undone.append)
    for index in (2, 1):
        editor.apply_candidate(index)
        candidate = editor.run.candidates[index]
        patch = candidate.patch
        h, w = patch.rgb.shape[:2]
        region = editor.document.rgb[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w]
        np.testing.assert_array_equal(region, patch.rgb)
        _in_step(editor)
        assert editor.undo_stack.undoText() == f"Edit (seed {candidate.seed})"
    assert events == [REPLACED, REPLACED]  # never undone through the stack
    assert editor.undo_stack.index() == 2
    assert all(i == 2 for i in undone)
    editor.undo_stack.undo()
    np.testing.assert_array_equal(editor.document.rgb, before)
    assert editor.document.mask.any()
    _in_step(editor)


def test_restored_history_stands_at_its_undo_position(editor, qtbot):
    doc = Document(photo())
    for i in range(3):
        mask = doc.mask.copy()
        mask[i * 10 : i * 10 + 5, :20] = True
        doc.replace_mask(mask, f"Brush {i}")
    doc.undo()
    expected = doc.mask.copy()
    editor.adopt_document(doc)
    _in_step(editor)
    assert editor.undo_stack.index() == 2
    assert editor.undo_stack.redoText() == "Brush 2"
    np.testing.assert_array_equal(editor.document.mask, expected)
    editor.undo_stack.redo()
    assert editor.document.mask[20:25].any()
    _in_step(editor)


def test_document_tells_its_listeners_every_move():
    doc = Document(photo())
    heard = []
    doc.listeners.append(lambda event, change: heard.append((event, change.label)))
    mask = doc.mask.copy()
    mask[5:9, 5:9] = True
    doc.replace_mask(mask, "Brush")
    doc.apply_image_patch(4, 4, np.zeros((6, 6, 3), np.uint8), "Edit (seed 1)")
    doc.apply_image_patch(4, 4, np.ones((6, 6, 3), np.uint8), "Edit (seed 2)", replace_last=True)
    doc.undo()
    doc.redo()
    assert heard == [
        (RECORDED, "Brush"),
        (RECORDED, "Edit (seed 1)"),
        (REPLACED, "Edit (seed 2)"),
        (UNDONE, "Edit (seed 2)"),
        (REDONE, "Edit (seed 2)"),
    ]
    assert [c.label for c in doc.history] == ["Brush", "Edit (seed 2)"]
    assert (doc.rgb[4:10, 4:10] == 1).all()
    assert not doc.mask.any()
    doc.undo()
    np.testing.assert_array_equal(doc.rgb, photo())  # seed 1 left no trace
    np.testing.assert_array_equal(doc.mask, mask)


def test_a_result_patch_is_kept_as_given_and_the_mask_by_its_box():
    doc = Document(photo())
    mask = doc.mask.copy()
    mask[50:53, 70:75] = True
    doc.replace_mask(mask, "Brush")
    pixels = doc.rgb[40:72, 60:92].copy()
    pixels[10:13, 10:15] = 0
    change = doc.apply_image_patch(60, 40, pixels, "Edit")
    assert change is not None
    assert change.image is not None
    assert change.mask is not None
    assert change.image.box == (60, 40, 92, 72)  # the crop, not its changed part
    assert change.mask.box == (70, 50, 75, 53)  # the painted box only
    assert doc.apply_image_patch(60, 40, pixels, "Edit") is None  # nothing to do
    with pytest.raises(ValueError, match="does not fit"):
        doc.apply_image_patch(150, 110, pixels, "Edit")
    assert len(doc.history) == 2
