"""The plan is the one truth of an edit: validated once when the edit is built, its parts'
steps the steps the decode makes."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import engine.runtime.plan as plan_module
import engine.runtime.runs as runs_module
from engine.cli import main
from engine.runtime.errors import MaskError
from engine.runtime.plan import EditPlan
from engine.runtime.runs import Edit, plan_or_raise, run, run_to_end
from engine.runtime.settings import Settings


def _spy(monkeypatch, calls: Counter) -> None:
    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    check_inputs = counted("check_inputs", plan_module.check_inputs)
    plan_key = counted("plan_key", plan_module.plan_key)
    for module in (plan_module, runs_module):
        monkeypatch.setattr(module, "check_inputs", check_inputs)
        monkeypatch.setattr(module, "plan_key", plan_key)
    monkeypatch.setattr(EditPlan, "check", counted("EditPlan.check", EditPlan.check))
    monkeypatch.setattr(Settings, "resolved", counted("Settings.resolved", Settings.resolved))


def _photo(size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 4 % 256, y * 4 % 256, (x + y) * 2 % 256], -1).astype(np.uint8)


def test_one_cli_edit_validates_and_resolves_once(tiny_bundle_path, tmp_path, monkeypatch):
    image, mask_path = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(_photo()).save(image)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:36, 20:36] = 255
    Image.fromarray(mask).save(mask_path)
    calls: Counter = Counter()
    _spy(monkeypatch, calls)
    out = tmp_path / "out.png"
    argv = ["edit", image, "--mask", mask_path, "-o", out, "--model", tiny_bundle_path]
    assert main([str(a) for a in argv]) == 0
    assert out.is_file()
    assert calls["check_inputs"] == 1
    assert calls["plan_key"] == 1
    assert calls["EditPlan.check"] == 1
    # once, for the plan: its run and the PNG's settings text take the plan's resolution
    assert calls["Settings.resolved"] == 1


def test_a_plan_made_elsewhere_is_still_checked_by_its_run(tiny_bundle, monkeypatch):
    rgb = _photo()
    mask = np.zeros((64, 64), bool)
    mask[20:36, 20:36] = True
    plan = plan_module.plan_edit(tiny_bundle.manifest, mask, Settings(seeds=(1,)))
    assert plan is not None
    assert not plan.checked
    calls: Counter = Counter()
    _spy(monkeypatch, calls)
    run_to_end(run(tiny_bundle, Edit(rgb, plan), Settings(seeds=(1,))))
    assert calls["check_inputs"] == 1
    assert calls["EditPlan.check"] == 1
    assert calls["plan_key"] == 0  # made with these very settings
    # and a checked plan given another image is refused in one line
    checked = plan_or_raise(tiny_bundle.manifest, rgb, mask, Settings(seeds=(1,)))
    bad = np.zeros((32, 64, 3), np.uint8)
    with pytest.raises(MaskError, match="the plan is for a 64x64 image"):
        run_to_end(run(tiny_bundle, Edit(bad, checked), Settings(seeds=(1,))))


def test_the_decode_makes_the_steps_its_part_was_planned_with(tiny_bundle):
    rgb = _photo()
    mask = np.zeros((64, 64), bool)
    mask[20:36, 20:36] = True
    settings = Settings(seeds=(2,), steps=6)
    plan = plan_or_raise(tiny_bundle.manifest, rgb, mask, settings)
    assert [p.steps for p in plan.parts] == [6]
    # the plan alone says how many steps the part takes, not the settings
    fewer = replace(plan, parts=(replace(plan.parts[0], steps=3),))
    steps = list(run(tiny_bundle, Edit(rgb, fewer), settings, preview_interval=float("inf")))
    decoding = [s for s in steps if s.phase == "decode"]
    assert len(decoding) == 3
    assert decoding[-1].total == 3


def test_a_run_with_other_seeds_takes_the_plans_resolution(tiny_bundle, monkeypatch):
    """The editor plans with seed 0 and runs with the seeds it picks: the run resolves
    nothing again, and decodes with its own seeds."""
    rgb = _photo()
    mask = np.zeros((64, 64), bool)
    mask[20:36, 20:36] = True
    plan = plan_module.plan_edit(tiny_bundle.manifest, mask, Settings(seeds=(0,)))
    assert plan is not None
    calls: Counter = Counter()
    _spy(monkeypatch, calls)
    seeds = Settings(seeds=(5, 6))
    result = run_to_end(run(tiny_bundle, Edit(rgb, plan), seeds, preview_interval=float("inf")))
    assert calls["Settings.resolved"] == 0
    assert result.seeds == (5, 6)
    # the same as planning with those seeds: the seeds, not the plan's, drew the tokens
    again = plan_or_raise(tiny_bundle.manifest, rgb, mask, seeds)
    fresh = run_to_end(run(tiny_bundle, Edit(rgb, again), seeds, preview_interval=float("inf")))
    assert np.array_equal(result.tokens, fresh.tokens)
    # another option than the seeds is resolved for the run
    other = Settings(seeds=(5, 6), temperature=0.5)
    run_to_end(run(tiny_bundle, Edit(rgb, plan), other, preview_interval=float("inf")))
    assert calls["Settings.resolved"] == 2  # the run's own, and the second plan's above
