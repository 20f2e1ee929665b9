"""One plan per mask: the squares and token cells the editor draws are the ones the run fills."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.runtime.plan import EditPlan, cell_index, context_square, plan_edit
from engine.runtime.runs import Edit, run, run_to_end
from engine.runtime.settings import Settings


def _two_spots(h=300, w=450):
    mask = np.zeros((h, w), bool)
    mask[20:40, 25:50] = True  # top left
    mask[250:280, 380:430] = True  # bottom right: its square cannot overlap the first
    return mask


def _plan(manifest, mask, settings) -> EditPlan:
    """The plan of a mask that paints something."""
    plan = plan_edit(manifest, mask, settings)
    assert plan is not None
    return plan


def test_empty_mask_has_no_plan(tiny_bundle):
    assert plan_edit(tiny_bundle.manifest, np.zeros((10, 10), bool), Settings()) is None


def test_cell_edges_follow_the_pixel_to_cell_rule(tiny_bundle):
    manifest = tiny_bundle.manifest
    mask = np.zeros((333, 333), bool)
    mask[100:140, 100:140] = True
    part = _plan(manifest, mask, Settings()).parts[0]
    cells = cell_index(part.square.side, manifest.image_size, manifest.downsample)
    for col in range(manifest.grid[1]):
        x0, _, x1, _ = part.cell_box(0, col)
        assert (cells[np.arange(x0, x1) - part.square.x0] == col).all()


def test_far_apart_parts_get_their_own_finer_squares(tiny_bundle):
    manifest = tiny_bundle.manifest
    mask = _two_spots()
    plan = _plan(manifest, mask, Settings())
    assert len(plan.parts) == 2
    assert plan.masked_count == sum(p.masked_count for p in plan.parts)
    assert plan.cost == sum(p.cost for p in plan.parts)
    whole = context_square((25, 20, 430, 280), 450, 300, manifest.image_size)
    assert plan.cell_side < whole.side / manifest.grid[1]
    for part in plan.parts:  # each square holds its own spot
        x0, y0, x1, y1 = part.box
        assert part.painted.any()
        assert part.painted.sum() == mask[y0:y1, x0:x1].sum()
    single = _plan(manifest, mask & (np.arange(450) < 225)[None, :], Settings())
    assert len(single.parts) == 1


def test_the_run_fills_the_plan_it_is_given(tiny_bundle):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    mask = np.zeros((120, 200), bool)
    mask[40:70, 90:150] = True
    settings = Settings(seeds=(3,))
    plan = _plan(tiny_bundle.manifest, mask, settings)
    steps: list[Any] = []
    result = run_to_end(run(tiny_bundle, Edit(rgb, plan), settings), steps.append)
    part = plan.parts[0]
    assert result.fill is not None
    assert result.fill.part is part
    assert result.plan is plan
    assert {s.phase for s in steps} == {"decode", "texture"}
    steps = [s for s in steps if s.phase == "decode"]  # then the texture stage's rounds
    assert len(steps) == part.run_steps
    # the cost the editor shows: the hidden tokens entering each step, summed
    before = [part.masked_count] + [s.remaining for s in steps[:-1]]
    assert sum(before) == plan.cost
    x0, y0, x1, y1 = part.box
    patch = result.candidates[0].patch
    assert patch.box == part.box
    outside = np.ones(mask.shape, bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(result.images[0][outside], rgb[outside])


def test_a_plan_made_with_other_settings_is_made_again(tiny_bundle):
    rgb = np.full((64, 64, 3), 90, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:30, 20:30] = True
    stale = _plan(tiny_bundle.manifest, mask, Settings(ring=0))
    result = run_to_end(run(tiny_bundle, Edit(rgb, stale), Settings(ring=2)))
    assert result.plan is not stale
    assert result.fill is not None
    assert result.fill.part.masked_count > stale.masked_count
