"""A brush stroke keeps the mask as it was only where the stroke went (whole tiles around it),
and records exactly the change a whole-mask comparison would find."""

import itertools

import numpy as np

from app.core import mask_ops
from app.core.document import StrokeRecord, region_between


def _paint(mask, record, points, radius, value):
    for p0, p1 in itertools.pairwise(points):
        record.cover(mask, mask_ops.segment_box(mask.shape, p0, p1, radius))
        mask_ops.paint_segment(mask, p0, p1, radius, value)


def test_stroke_record_matches_a_whole_mask_comparison():
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((300, 400)) > 0.7  # painted here and there already
        before = mask.copy()
        record = StrokeRecord()
        points = [tuple(rng.uniform(-20, 420, 2)) for _ in range(rng.integers(1, 6))]
        _paint(
            mask, record, points + points[-1:], float(rng.uniform(1, 30)), bool(rng.random() < 0.5)
        )
        want, got = region_between(before, mask), record.change(mask)
        if want is None:
            assert got is None
            continue
        assert got is not None
        assert got.box == want.box
        np.testing.assert_array_equal(got.before, want.before)
        np.testing.assert_array_equal(got.after, want.after)


def test_a_short_stroke_on_a_large_mask_keeps_a_small_copy():
    mask = np.zeros((3000, 4000), bool)
    record = StrokeRecord()
    _paint(mask, record, [(1000.0, 1000.0), (1030.0, 1010.0), (1060.0, 1000.0)], 8.0, True)
    assert record.before is not None
    assert record.before.size <= 4 * StrokeRecord.TILE**2
    change = record.change(mask)
    assert change is not None
    painted = region_between(np.zeros_like(mask), mask)
    assert painted is not None
    assert change.box == painted.box


def test_editor_stroke_is_undone_exactly(qtbot):
    from app.editor import Editor

    editor = Editor()
    editor.set_image(np.zeros((500, 700, 3), np.uint8))
    doc = editor.document
    assert doc is not None
    editor.set_mask(np.eye(500, 700, dtype=bool))
    start = doc.mask.copy()
    editor.begin_stroke()
    for p0, p1 in [((110, 110), (200, 150)), ((200, 150), (240, 190)), ((240, 190), (240, 190))]:
        editor.stroke_segment(p0, p1, 6)
    assert editor._stroke is not None
    assert editor._stroke.before is not None
    assert editor._stroke.before.size < start.size / 8  # the stroke's tiles only
    editor.end_stroke("Brush")
    painted = doc.mask.copy()
    recorded, want = doc.history[-1].mask, region_between(start, painted)
    assert recorded is not None
    assert want is not None
    assert recorded.box == want.box
    np.testing.assert_array_equal(recorded.before, want.before)
    editor.undo_stack.undo()
    np.testing.assert_array_equal(doc.mask, start)
    editor.undo_stack.redo()
    np.testing.assert_array_equal(doc.mask, painted)
