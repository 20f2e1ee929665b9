import numpy as np

from app.core import mask_ops
from app.core.document import Document, region_between
from app.core.options import EditOptions
from gui.conftest import session_copy


def _doc(h=40, w=60):
    rgb = (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)
    return Document(rgb, path="photo.jpg")


def test_replace_mask_records_only_the_changed_rectangle():
    doc = _doc()
    new = doc.mask.copy()
    mask_ops.paint_segment(new, (10, 10), (20, 12), 3)
    change = doc.replace_mask(new, "Brush")
    assert change.mask.before.shape == change.mask.after.shape
    assert change.mask.before.size < doc.mask.size / 4
    np.testing.assert_array_equal(doc.mask, new)
    assert doc.replace_mask(new, "Brush") is None  # nothing changed, nothing recorded


def test_undo_redo_mask_and_applied_result():
    doc = _doc()
    painted = doc.mask.copy()
    painted[5:15, 5:15] = True
    doc.replace_mask(painted, "Brush")
    before = doc.rgb.copy()
    doc.apply_image_patch(4, 4, np.full((12, 12, 3), 7, np.uint8), "Refill")
    assert (doc.rgb[4:16, 4:16] == 7).all()
    assert not doc.mask.any()
    doc.undo()
    np.testing.assert_array_equal(doc.rgb, before)
    np.testing.assert_array_equal(doc.mask, painted)
    doc.undo()
    assert not doc.mask.any()
    assert doc.undo() is None
    doc.redo()
    doc.redo()
    assert (doc.rgb[4:16, 4:16] == 7).all()
    assert doc.redo() is None


def test_new_change_drops_the_redo_tail():
    doc = _doc()
    m = doc.mask.copy()
    m[1, 1] = True
    doc.replace_mask(m, "a")
    doc.undo()
    m2 = doc.mask.copy()
    m2[2, 2] = True
    doc.replace_mask(m2, "b")
    assert [c.label for c in doc.history] == ["b"]
    assert doc.redo() is None


def test_canvas_change_resizes_and_undoes():
    doc = _doc()
    bigger = np.zeros((40, 80, 3), np.uint8)
    doc.replace_canvas(bigger, None, "Extend")
    assert doc.size == (80, 40)
    assert doc.mask.shape == (40, 80)
    doc.undo()
    assert doc.size == (60, 40)


def test_serialises_with_history_and_restores_identically():
    doc = _doc()
    doc.options = EditOptions(mode="class", class_name="dog", seed=7, fixed_seed=True)
    m = doc.mask.copy()
    m[3:9, 3:30] = True
    doc.replace_mask(m, "Brush")
    doc.apply_image_patch(0, 0, np.full((5, 5, 3), 1, np.uint8), "Refill", meta={"seed": 7})
    doc.replace_canvas(np.zeros((10, 10, 3), np.uint8), np.full((10, 10), 9, np.uint8), "Gen")
    doc.undo()
    again = session_copy(doc)
    assert again.options == doc.options
    assert again.path == "photo.jpg"
    np.testing.assert_array_equal(again.rgb, doc.rgb)
    np.testing.assert_array_equal(again.mask, doc.mask)
    assert again.history_index == 2
    assert again.history[1].meta == {"seed": 7}
    again.redo()
    assert again.size == (10, 10)
    assert again.alpha[0, 0] == 9
    again.undo()
    again.undo()
    again.undo()
    np.testing.assert_array_equal(again.rgb, doc.original)
    assert not again.mask.any()


def test_region_between_finds_the_difference():
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[2:4, 5:8] = 1
    patch = region_between(a, b)
    assert patch is not None
    assert patch.box == (5, 2, 8, 4)
    assert region_between(a, a) is None


def test_options_round_trip_and_tolerate_junk():
    options = EditOptions(
        mode="extend", extend_side="top", candidates=3, feather=2.5, seamless=False
    )
    assert EditOptions.from_dict(options.to_dict()) == options
    assert not options.settings((1,)).seamless
    assert EditOptions().settings((1,)).seamless
    odd = EditOptions.from_dict({"mode": "nonsense", "steps": "x", "unknown": 1, "seed": "5"})
    assert odd.mode == "remove"
    assert odd.steps == 0
    assert odd.seed == 5
