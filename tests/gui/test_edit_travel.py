"""One edit in the editor, from Run to the applied result, computes nothing twice: the run uses
the plan the grid shows and its resolved settings (the editor plans with seed 0 and runs with
the seeds it picks), and the applied result, which clears the mask, is planned once."""

from __future__ import annotations

from collections import Counter

import numpy as np

import app.planner as planner_module
import app.runs as app_runs
import engine.runtime.plan as plan_module
import engine.runtime.runs as runs_module
from engine.runtime.plan import EditPlan
from engine.runtime.settings import Settings


def _count(monkeypatch, calls: Counter, owner, name: str, key: str) -> None:
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[key] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


def test_an_edit_from_run_to_result_computes_nothing_twice(editor, qtbot, monkeypatch):
    mask = np.zeros((120, 160), bool)
    mask[40:60, 60:80] = True
    editor.set_mask(mask)
    qtbot.waitUntil(lambda: editor.plan is not None, timeout=5000)
    calls: Counter = Counter()
    _count(monkeypatch, calls, planner_module, "plan_edit", "plan_edit")
    _count(monkeypatch, calls, app_runs, "plan_or_raise", "plan_or_raise")
    _count(monkeypatch, calls, Settings, "resolved", "Settings.resolved")
    _count(monkeypatch, calls, EditPlan, "check", "EditPlan.check")
    _count(monkeypatch, calls, runs_module, "check_inputs", "check_inputs")
    _count(monkeypatch, calls, plan_module, "check_inputs", "check_inputs")
    with qtbot.waitSignal(editor.run_changed, timeout=20000):
        assert editor.start_run()
    assert editor.jobs.wait_idle(10)
    assert editor.run is not None
    assert editor.run.seeds != (0,) or editor.options.fixed_seed  # other seeds than the plan's
    assert not editor.document.mask.any()  # the applied result cleared the mask
    qtbot.waitUntil(lambda: editor.plan is None, timeout=5000)
    assert editor.planner.wait_idle(5)
    qtbot.wait(50)  # a second plan, if one were scheduled, would start now
    assert calls["plan_or_raise"] == 0  # the grid's plan ran as it was
    assert calls["EditPlan.check"] == 1  # validated once, by its run
    assert calls["check_inputs"] == 1
    assert calls["Settings.resolved"] == 0  # the plan's resolution, with the run's seeds
    assert calls["plan_edit"] == 1  # the cleared mask, planned once
