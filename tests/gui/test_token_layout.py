"""The grid overlay must show exactly the square and cells the engine will regenerate."""

import numpy as np
import pytest

from app import mask_ops
from app.token_layout import layout_for
from engine.runtime.editing import Settings, cell_index, prepare_edit

from .fake_engine import fake_manifest


def _random_mask(rng, h, w):
    mask = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        mask_ops.paint_segment(mask, (x, y), (x + rng.uniform(-40, 40), y + rng.uniform(-40, 40)),
                               rng.uniform(1, 12))
    return mask


@pytest.mark.parametrize("size", [(64, 64), (97, 150), (300, 41), (500, 700)])
@pytest.mark.parametrize("settings", [Settings(), Settings(ring=0, coverage=0.3),
                                      Settings(ring=2, context=3.0)])
def test_layout_equals_prepare_edit(size, settings):
    manifest = fake_manifest()
    rng = np.random.default_rng(hash((size, settings.ring)) % 1000)
    h, w = size
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for _ in range(5):
        mask = _random_mask(rng, h, w)
        if not mask.any():
            continue
        layout = layout_for(manifest, mask, settings)
        if not layout.token_mask.any():
            continue  # prepare_edit refuses a mask that covers no token
        job = prepare_edit(manifest, rgb, mask, settings)
        assert layout.square == job.square
        np.testing.assert_array_equal(layout.token_mask, job.token_mask)
        steps = settings.for_masked(manifest, job.masked_count).steps
        assert layout.cost == job.cost(steps)


def test_layout_matches_the_tiny_real_bundle(tiny_bundle):
    rgb = np.full((120, 200, 3), 128, np.uint8)
    mask = np.zeros((120, 200), bool)
    mask[40:70, 90:150] = True
    layout = layout_for(tiny_bundle.manifest, mask, Settings())
    job = prepare_edit(tiny_bundle.manifest, rgb, mask, Settings())
    assert layout.square == job.square
    np.testing.assert_array_equal(layout.token_mask, job.token_mask)


def test_cell_edges_follow_the_engine_pixel_to_cell_rule():
    manifest = fake_manifest()
    mask = np.zeros((333, 333), bool)
    mask[100:140, 100:140] = True
    layout = layout_for(manifest, mask, Settings())
    side = layout.square.side
    cells = cell_index(side, manifest.image_size, manifest.downsample)
    for col in range(manifest.grid[1]):
        x0, _, x1, _ = layout.cell_box(0, col)
        offsets = np.arange(x0, x1) - layout.square.x0
        assert (cells[offsets] == col).all()


def test_empty_mask_has_no_layout():
    assert layout_for(fake_manifest(), np.zeros((10, 10), bool), Settings()) is None


def test_plan_has_one_square_per_far_apart_part():
    from app.token_layout import plan_for
    from engine.runtime.editing import mask_parts

    manifest = fake_manifest()
    rgb = np.zeros((600, 900, 3), np.uint8)
    mask = np.zeros((600, 900), bool)
    mask[40:80, 50:100] = True      # top left
    mask[500:560, 780:860] = True   # bottom right: its square cannot overlap the first
    plan = plan_for(manifest, mask, Settings())
    parts = mask_parts(manifest, mask, Settings())
    assert len(plan.layouts) == len(parts) == 2
    for layout, part in zip(plan.layouts, parts, strict=True):
        job = prepare_edit(manifest, rgb, part, Settings())
        assert layout.square == job.square
        np.testing.assert_array_equal(layout.token_mask, job.token_mask)
    assert plan.masked_count == sum(x.masked_count for x in plan.layouts)
    assert plan.cost == sum(x.cost for x in plan.layouts)
    # one square for the whole mask would be far coarser than either part's square
    whole = layout_for(manifest, mask, Settings())
    assert plan.cell_side < whole.square.side / manifest.grid[1]
    # a single part gives the single layout
    single = plan_for(manifest, mask & (np.arange(900) < 450)[None, :], Settings())
    assert len(single.layouts) == 1
    assert plan_for(manifest, np.zeros((10, 10), bool), Settings()) is None
