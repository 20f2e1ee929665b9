"""Job lifecycle through the controller: progress, finished, cancelled, error, superseded."""

from typing import Any

import numpy as np
import pytest

from app.controller import JobController
from app.runs import edit_run, extend_run
from engine.runtime.settings import Settings
from gui.fake_engine import FakeBundle


@pytest.fixture
def controller(qtbot):
    c = JobController()
    yield c
    c.cancel()
    c.wait_idle(10)


def _inputs():
    rgb = np.full((64, 64, 3), 90, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    return rgb, mask


def _record(controller):
    events = []
    for name in (
        "started",
        "progress",
        "finished",
        "cancelled",
        "failed",
        "superseded",
        "busy_changed",
    ):
        getattr(controller, name).connect(lambda *a, n=name: events.append((n, *a)))
    return events


def test_progress_then_finished(qtbot, controller):
    bundle = FakeBundle()
    rgb, mask = _inputs()
    events = _record(controller)
    with qtbot.waitSignal(controller.finished, timeout=10000) as done:
        controller.start("edit", lambda: edit_run(bundle, rgb, mask, Settings(seeds=(1,))))
    names = [e[0] for e in events]
    assert names[:2] == ["started", "busy_changed"]
    decoding = [e for e in events if e[0] == "progress" and e[1].phase == "decode"]
    assert len(decoding) == 6  # and the texture stage's rounds after them
    assert names[-2:] == ["busy_changed", "finished"]
    assert done.args[0].candidates[0].seed == 1
    assert not controller.busy


def test_cancel_stops_at_the_next_step(qtbot, controller):
    bundle = FakeBundle(delay=0.05)
    rgb, mask = _inputs()
    events = _record(controller)
    controller.progress.connect(lambda p: controller.cancel() if p.step == 2 else None)
    with qtbot.waitSignal(controller.cancelled, timeout=10000):
        controller.start("edit", lambda: edit_run(bundle, rgb, mask, Settings(seeds=(1,))))
    assert controller.wait_idle(5)
    steps = [e[1].step for e in events if e[0] == "progress"]
    assert steps == [1, 2]  # nothing is reported after Cancel
    assert bundle.calls <= 4
    assert "finished" not in [e[0] for e in events]


def test_engine_error_becomes_one_line(qtbot, controller):
    bundle = FakeBundle(fail_at_call=3)
    rgb, mask = _inputs()
    with qtbot.waitSignal(controller.failed, timeout=10000) as failed:
        controller.start("edit", lambda: edit_run(bundle, rgb, mask, Settings(seeds=(1,))))
    assert failed.args[0] == "model 'fake' failed in transformer.onnx: scripted"
    assert not controller.busy


def test_empty_mask_error_is_reported_not_raised(qtbot, controller):
    rgb, _ = _inputs()
    with qtbot.waitSignal(controller.failed, timeout=10000) as failed:
        controller.start(
            "edit", lambda: edit_run(FakeBundle(), rgb, np.zeros((64, 64), bool), Settings())
        )
    assert "mask is empty" in failed.args[0]


def test_new_job_supersedes_the_running_one(qtbot, controller):
    slow = FakeBundle()
    slow.block()
    fast = FakeBundle()
    rgb, mask = _inputs()
    events = _record(controller)
    controller.start("edit", lambda: edit_run(slow, rgb, mask, Settings(seeds=(1,))))
    qtbot.waitUntil(lambda: slow.calls >= 1, timeout=5000)
    with qtbot.waitSignal(controller.finished, timeout=10000) as done:
        controller.start("edit", lambda: edit_run(fast, rgb, mask, Settings(seeds=(2,))))
        slow.release()
    assert controller.wait_idle(5)
    names = [e[0] for e in events]
    assert "superseded" in names
    assert "cancelled" not in names
    assert names.count("finished") == 1
    assert done.args[0].candidates[0].seed == 2
    assert names.count("busy_changed") == 2  # busy stayed on across the switch
    assert slow.calls == 1  # the old job stopped at its next step


def test_extend_run_cancels_at_the_next_step(qtbot, controller):
    bundle = FakeBundle(delay=0.03)
    rgb = np.full((64, 64, 3), 90, np.uint8)
    controller.progress.connect(lambda p: controller.cancel())
    with qtbot.waitSignal(controller.cancelled, timeout=10000):
        controller.start(
            "extend", lambda: extend_run(bundle, rgb, None, "right", 2, Settings(seeds=(1,)))
        )
    assert bundle.calls <= 2


def test_real_bundle_lifecycle(qtbot, controller, tiny_bundle):
    rgb, mask = _inputs()
    progress: list[Any] = []
    controller.progress.connect(progress.append)
    with qtbot.waitSignal(controller.finished, timeout=30000) as done:
        controller.start(
            "edit", lambda: edit_run(tiny_bundle, rgb, mask, Settings(seeds=(1, 2, 3)))
        )
    decoding = [p for p in progress if p.phase == "decode"]
    assert len(decoding) == 8
    assert progress[0].preview is not None
    assert [c.seed for c in done.args[0].candidates] == [1, 2, 3]
