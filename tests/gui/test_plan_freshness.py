"""The plan the token grid shows is the plan the run uses while the mask is unchanged since it
was asked for; any change since (a stroke still being painted included) plans again."""

from __future__ import annotations

import numpy as np
import pytest

import app.runs as app_runs
from app.editor import Editor


@pytest.fixture
def planned(monkeypatch):
    calls = []
    original = app_runs.plan_or_raise

    def counting(manifest, rgb, mask, settings):
        calls.append(mask.copy())
        return original(manifest, rgb, mask, settings)

    monkeypatch.setattr(app_runs, "plan_or_raise", counting)
    return calls


def _run(editor: Editor, qtbot):
    with qtbot.waitSignal(editor.run_changed, timeout=20000):
        assert editor.start_run()
    assert editor.jobs.wait_idle(10)
    return editor.run


def test_the_shown_plan_runs_as_it_is(editor, qtbot, planned):
    mask = np.zeros((120, 160), bool)
    mask[40:60, 60:80] = True
    editor.set_mask(mask)
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=5000)
    shown = editor.plan
    result = _run(editor, qtbot)
    assert planned == []
    assert result.plan.parts == shown.parts


def test_a_change_after_the_plan_was_asked_for_plans_again(editor, qtbot, planned):
    mask = np.zeros((120, 160), bool)
    mask[40:60, 60:80] = True
    editor.set_mask(mask)
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=5000)
    editor.begin_stroke()  # painting, not yet recorded: the plan shown is for the old mask
    editor.stroke_segment((20.0, 20.0), (30.0, 20.0), 4.0)
    painted = editor.document.mask.copy()
    result = _run(editor, qtbot)
    assert len(planned) == 1
    assert np.array_equal(planned[0], painted)
    assert np.array_equal(result.plan.mask, painted)
    editor.end_stroke("Brush")
