"""The editor's token plan, computed off the GUI thread.

The plan is the engine's own `EditPlan` (engine/runtime/plan.py): the context squares and token
cells the overlay draws are the object the run is handed. `LayoutPlanner` computes plans on a
worker thread (the latest request wins), so a mask of thousands of dust spots or a very large
photo never blocks the window.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.runtime.manifest import Manifest
from engine.runtime.plan import EditPlan, plan_edit
from engine.runtime.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["EditPlan", "LayoutPlanner"]


class LayoutPlanner(QObject):
    """Plans on a thread of its own Qt thread pool: `request` returns at once, `ready` brings
    (number, plan) to the GUI thread through a queued signal. Only the latest request is
    computed; requests it overtook are dropped, and a plan that arrives after a newer request
    is marked stale by its number."""

    ready = Signal(int, object)      # request number, EditPlan | None

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: tuple | None = None
        self._busy = False           # a drain is scheduled or running
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self.latest = 0              # number of the newest request

    def request(self, manifest: Manifest, mask: np.ndarray, settings: Settings) -> int:
        """Plan for `mask` (the caller hands over a copy it no longer changes)."""
        with self._cond:
            self.latest += 1
            self._pending = (self.latest, manifest, mask, settings)
            start = not self._busy
            self._busy = True
            number = self.latest
        if start:
            self._pool.start(_Drain(self))
        return number

    def forget(self) -> int:
        """Drops a pending request; a plan being computed arrives stale. The new number."""
        with self._cond:
            self.latest += 1
            self._pending = None
            return self.latest

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._busy

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Blocks until no plan is pending or being computed (scripts and tests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _drain(self) -> None:
        """On the pool thread: plan the pending request until none is left."""
        while True:
            with self._cond:
                if self._pending is None:
                    self._busy = False
                    self._cond.notify_all()
                    return
                (number, manifest, mask, settings), self._pending = self._pending, None
            try:
                plan = plan_edit(manifest, mask, settings)
            except Exception as error:  # noqa: BLE001 - a plan is advice; never take the app down
                log.warning("no token layout for this mask: %s", error)
                plan = None
            with self._cond:
                stale = number != self.latest
            if not stale:
                try:
                    self.ready.emit(number, plan)
                except RuntimeError:   # the editor is gone
                    with self._cond:
                        self._pending, self._busy = None, False
                        self._cond.notify_all()
                    return


class _Drain(QRunnable):
    def __init__(self, planner: LayoutPlanner):
        super().__init__()
        self._planner = planner

    def run(self) -> None:
        self._planner._drain()
