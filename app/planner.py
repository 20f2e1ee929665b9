"""The editor's token plan, computed off the GUI thread.

The plan is the engine's own `EditPlan` (engine/runtime/plan.py): the context squares and token
cells the overlay draws are the object the run is handed. `Planner` computes plans on a
worker thread (the latest request wins), so a mask of thousands of dust spots or a very large
photo never blocks the window.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from engine.runtime.manifest import Manifest
from engine.runtime.plan import EditPlan, plan_edit
from engine.runtime.plan import Part as Part  # what the token grid draws
from engine.runtime.schedule import masked_counts as masked_counts  # the cost line
from engine.runtime.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["EditPlan", "Planner"]


class Planner(QObject):
    """Plans on a daemon thread: `request` returns at once, and `ready` brings (number, plan)
    on the GUI thread, where a short timer picks up what the thread left (the thread itself
    makes no Qt call). Only the latest request is computed; requests it overtook are dropped,
    and a plan that arrives after a newer request is marked stale by its number."""

    ready = Signal(int, object)  # request number, EditPlan | None

    def __init__(self, parent: QObject | None = None, poll_ms: int = 15):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: tuple | None = None
        self._result: tuple | None = None  # (number, plan) waiting for the GUI thread
        self._busy = False  # the thread is planning
        self._thread: threading.Thread | None = None
        self._poll = QTimer(self, interval=poll_ms)
        self._poll.timeout.connect(self._deliver)
        self.latest = 0  # number of the newest request

    def request(self, manifest: Manifest, mask: np.ndarray, settings: Settings) -> int:
        """Plan for `mask` (the caller hands over a copy it no longer changes)."""
        with self._cond:
            self.latest += 1
            self._pending = (self.latest, manifest, mask, settings)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="token-planner", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            number = self.latest
        if not self._poll.isActive():
            self._poll.start()
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
            return self._pending is None and not self._busy and self._result is None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Blocks until no plan is pending or being computed (scripts and tests); the last
        one is handed over at the next turn of the event loop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _deliver(self) -> None:
        """GUI thread: hands over a finished plan unless a newer request overtook it."""
        with self._cond:
            result, self._result = self._result, None
            done = self._pending is None and not self._busy
        if done:
            self._poll.stop()
        if result is not None and result[0] == self.latest:
            self.ready.emit(*result)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                (number, manifest, mask, settings), self._pending = self._pending, None
                self._busy = True
            try:
                plan = plan_edit(manifest, mask, settings)
            except Exception as error:  # noqa: BLE001 - a plan is advice; never take the app down
                log.warning("no token plan for this mask: %s", error)
                plan = None
            with self._cond:
                self._result = (number, plan)
                self._busy = False
                self._cond.notify_all()
