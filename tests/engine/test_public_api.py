"""engine.runtime's public API: every listed name resolves, and an edit runs on it alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import engine.runtime as runtime
from conftest import REPO


def test_every_listed_name_resolves_and_unknown_names_fail():
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name
    assert set(runtime.__all__) <= set(dir(runtime))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        runtime.nothing_here  # noqa: B018


def test_submodules_never_shadow_the_api_names():
    # a module named like a function would replace it on the package once imported
    code = (
        "import engine.runtime.runs, engine.runtime.plan, engine.runtime.compose\n"
        "from engine.runtime import run, plan_edit, compose_squares\n"
        "assert callable(run) and callable(plan_edit) and callable(compose_squares)\n"
        "assert run.__module__ == 'engine.runtime.runs'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_an_edit_through_the_public_api(tiny_bundle):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
    mask = np.zeros((80, 100), bool)
    mask[30:50, 40:60] = True
    settings = runtime.Settings(seeds=runtime.seeds_from(7, 2))
    plan = runtime.plan_edit(tiny_bundle.manifest, mask, settings)
    result = runtime.run_to_end(runtime.run(tiny_bundle, runtime.Edit(rgb, plan), settings))
    assert [c.seed for c in result.candidates] == [7, 8]
    patch = result.candidates[0].patch
    assert isinstance(patch, runtime.Patch)
    assert patch.box == plan.parts[0].box
    with pytest.raises(runtime.MaskError, match="empty"):
        runtime.plan_or_raise(tiny_bundle.manifest, rgb, np.zeros((80, 100), bool), settings)
