"""The app's runs as plain generators, against the scripted fake engine and the tiny real
bundle."""

from typing import Any

import numpy as np

from app.runs import edit_run, extend_run, generate_run, reroll_run, step_image
from engine.runtime.runs import Step
from engine.runtime.settings import Settings
from gui.fake_engine import FakeBundle


def _image_and_mask(h=90, w=120):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[30:50, 40:70] = True
    return rgb, mask


def _drain(gen):
    """The decoding steps a run yields (not the texture stage's rounds) and its outcome."""
    steps: list[Any] = []
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return steps, stop.value
        if step.phase == "decode":
            steps.append(step)


def test_edit_run_reports_every_step_and_previews_throttled():
    bundle = FakeBundle()
    rgb, mask = _image_and_mask()
    ticks = iter(range(0, 1000))
    steps, outcome = _drain(
        edit_run(
            bundle,
            rgb,
            mask,
            Settings(seeds=(1, 2)),
            preview_interval=2.5,
            clock=lambda: next(ticks),
        )
    )
    assert [s.step for s in steps] == list(range(1, 7))
    assert all(isinstance(s, Step) and s.total == 6 for s in steps)
    previews = [s.preview for s in steps if s.preview is not None]
    assert 1 <= len(previews) < len(steps)  # throttled, never on the last step
    assert steps[-1].remaining == 0
    assert [c.seed for c in outcome.candidates] == [1, 2]
    patch = outcome.candidates[0].patch
    sq = outcome.fill.square
    assert (patch.x0, patch.y0) == (max(sq.x0, 0), max(sq.y0, 0))
    # outside the patch nothing changes; the patch equals the engine's full composite there
    full = outcome.images[0]
    h, w = patch.rgb.shape[:2]
    np.testing.assert_array_equal(full[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w], patch.rgb)


def test_same_seed_same_result_on_the_real_bundle(tiny_bundle):
    rgb, mask = _image_and_mask()
    _, first = _drain(edit_run(tiny_bundle, rgb, mask, Settings(seeds=(5, 6))))
    _, again = _drain(edit_run(tiny_bundle, rgb, mask, Settings(seeds=(6,))))
    np.testing.assert_array_equal(first.candidates[1].patch.rgb, again.candidates[0].patch.rgb)
    assert not np.array_equal(first.candidates[0].patch.rgb, first.candidates[1].patch.rgb)
    # the full image is the input with the patch written over it
    full, patch = again.images[0], again.candidates[0].patch
    h, w = patch.rgb.shape[:2]
    np.testing.assert_array_equal(full[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w], patch.rgb)
    outside = np.ones(mask.shape, bool)
    outside[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w] = False
    np.testing.assert_array_equal(full[outside], rgb[outside])


def test_reroll_changes_only_masked_tokens(tiny_bundle):
    rgb, mask = _image_and_mask()
    _, outcome = _drain(edit_run(tiny_bundle, rgb, mask, Settings(seeds=(3,))))
    _, rerolled = _drain(reroll_run(tiny_bundle, outcome, 0, 10, Settings(seeds=(9,))))
    before, after = outcome.tokens[0], rerolled.tokens[0]
    changed = before != after
    assert changed.sum() <= 10
    assert not changed[~outcome.fill.token_mask.reshape(-1)].any()


def test_generate_and_history_preview(tiny_bundle):
    settings = Settings(seeds=(1,), class_name="dog")
    steps, outcome = _drain(generate_run(tiny_bundle, settings))
    assert outcome.resizes_canvas
    assert outcome.candidates[0].patch.rgb.shape == (64, 64, 3)
    assert len(outcome.history) == len(steps)
    first = step_image(tiny_bundle, outcome, 0, 0)
    last = step_image(tiny_bundle, outcome, 0, len(steps) - 1)
    np.testing.assert_array_equal(last.rgb, outcome.candidates[0].patch.rgb)
    assert first.rgb.shape == last.rgb.shape


def test_extend_reports_every_step(tiny_bundle):
    rgb = np.full((64, 80, 3), 100, np.uint8)
    alpha = np.full((64, 80), 50, np.uint8)
    reports, outcome = _drain(
        extend_run(tiny_bundle, rgb, alpha, "left", 2, Settings(seeds=(4, 5)))
    )
    image = outcome.candidates[0].patch.rgb
    assert image.shape == (64, 88, 3)
    # the new strip continues the edge's alpha, as the CLI saves it
    assert outcome.alpha.shape == (64, 88)
    assert (outcome.alpha == 50).all()
    assert [c.seed for c in outcome.candidates] == [4]  # extend makes one candidate
    assert reports
    assert [r.step for r in reports] == list(range(1, len(reports) + 1))
    assert all(r.total == len(reports) for r in reports)


def test_far_apart_parts_are_edited_in_their_own_squares(tiny_bundle):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    mask = np.zeros((300, 400), bool)
    mask[20:40, 20:45] = True
    mask[250:280, 340:380] = True
    settings = Settings(seeds=(4, 5))
    steps, outcome = _drain(edit_run(tiny_bundle, rgb, mask, settings))
    assert outcome.fill is None
    assert outcome.extra["parts"] == 2
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    assert len({s.total for s in steps}) == 1
    assert steps[-1].step == steps[-1].total
    assert steps[-1].remaining == 0
    assert steps[0].remaining > 0
    # each candidate's patch is its full image over the union of the squares, the rest kept
    for candidate, image in zip(outcome.candidates, outcome.images, strict=True):
        p = candidate.patch
        h, w = p.rgb.shape[:2]
        np.testing.assert_array_equal(image[p.y0 : p.y0 + h, p.x0 : p.x0 + w], p.rgb)
        outside = np.ones(mask.shape, bool)
        outside[p.y0 : p.y0 + h, p.x0 : p.x0 + w] = False
        np.testing.assert_array_equal(image[outside], rgb[outside])
    assert not np.array_equal(outcome.images[0], outcome.images[1])
