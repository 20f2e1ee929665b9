"""Where the model will work for the current mask: the context squares and their token cells.

This follows `engine.runtime.editing.prepare_edit` step by step with the engine's own functions
(context_square, cut_square, mask_to_model, token_mask_from_pixels), minus the pixel work
(cutting and resizing the RGB square, which costs tens of milliseconds on large photos), so the
grid overlay can follow the brush live. tests/app/test_token_layout.py checks that the square
and the token mask equal what prepare_edit returns. A mask made of parts far apart is edited as
one square per part (engine.runtime.editing.mask_parts), so the plan holds one layout each.

`LayoutPlanner` computes plans on a worker thread (the latest request wins), so a mask of
thousands of dust spots or a very large photo never blocks the window.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.runtime.editing import Settings, Square, cell_index, map_mask, mask_parts
from engine.runtime.manifest import Manifest
from engine.runtime.masking import mask_bbox
from engine.runtime.schedule import masked_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenLayout:
    square: Square
    token_mask: np.ndarray        # bool [gh, gw] cells that will regenerate
    cell_edges: np.ndarray        # int [gw + 1] pixel offsets of the cell borders in the square
    steps: int
    start_step: int = 0

    @property
    def masked_count(self) -> int:
        return int(self.token_mask.sum())

    @cached_property
    def cost(self) -> int:
        """Token predictions the run will make (what EditJob.cost reports)."""
        if not self.masked_count:
            return 0
        return int(sum(masked_counts(self.masked_count, self.steps, self.start_step)))

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Image-pixel box (x0, y0, x1, y1) of one token cell."""
        e, sq = self.cell_edges, self.square
        return sq.x0 + e[col], sq.y0 + e[row], sq.x0 + e[col + 1], sq.y0 + e[row + 1]


def layout_for(manifest: Manifest, mask: np.ndarray, settings: Settings) -> TokenLayout | None:
    """The layout prepare_edit would produce for this mask, or None for an empty mask."""
    bbox = mask_bbox(mask)
    if bbox is None:
        return None
    sq, _, token_mask = map_mask(manifest, mask, bbox, settings)
    # the step count may depend on how many tokens are masked (speed options)
    resolved = settings.for_masked(manifest, int(token_mask.sum()))
    return TokenLayout(sq, token_mask, cell_edges(sq.side, manifest), resolved.steps,
                       resolved.start_step)


@dataclass(frozen=True)
class EditPlan:
    """The layouts of one edit: one per separately edited part of the mask, run in order."""
    layouts: tuple[TokenLayout, ...]

    @property
    def masked_count(self) -> int:
        return sum(layout.masked_count for layout in self.layouts)

    @property
    def cost(self) -> int:
        return sum(layout.cost for layout in self.layouts)

    @property
    def steps(self) -> int:
        return max(layout.steps for layout in self.layouts)

    @property
    def cell_side(self) -> float:
        """Image pixels per token cell in the largest square (the coarsest part)."""
        side = max(layout.square.side for layout in self.layouts)
        return side / (len(self.layouts[0].cell_edges) - 1)


def plan_for(manifest: Manifest, mask: np.ndarray, settings: Settings) -> EditPlan | None:
    """What edit_image would do with this mask, or None for an empty mask."""
    if mask_bbox(mask) is None:
        return None
    layouts = [layout_for(manifest, part, settings)
               for part in mask_parts(manifest, mask, settings)]
    return EditPlan(tuple(layout for layout in layouts if layout is not None))


def cell_edges(side: int, manifest: Manifest) -> np.ndarray:
    """Pixel offsets where each token cell starts along a square side, plus the side itself,
    using the engine's pixel-to-cell rule so the drawn grid is the one paste_back uses."""
    cells = cell_index(side, manifest.image_size, manifest.downsample)
    starts = np.searchsorted(cells, np.arange(manifest.grid[1]), side="left")
    return np.append(starts, side).astype(np.int64)


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
                plan = plan_for(manifest, mask, settings)
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
