"""The document being edited, as plain Python and NumPy: no widgets, no Qt.

A `Document` holds the image (uint8 RGB plus optional alpha), the user's mask (bool), the image
as first opened (for "hold backslash to see the original"), the run options and the undo history.
Every edit is a `Change` that stores only the rectangle it touched (before and after), so a
brush stroke on a large photo costs kilobytes and the whole document serialises cheaply with
the session store (`app.autosave`).

The history here is the only one: the GUI's QUndoStack holds one command per change that only
moves the document (see `app.undo`). Whoever shows the document subscribes with `listeners`
and hears of every recorded, replaced, undone and redone change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.core import mask_ops
from app.core.options import EditOptions

Box = mask_ops.Box


@dataclass
class Region:
    """A rectangle of one array, before and after a change."""

    x0: int
    y0: int
    before: np.ndarray
    after: np.ndarray

    @property
    def box(self) -> Box:
        h, w = self.before.shape[:2]
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def write(self, target: np.ndarray, forward: bool) -> None:
        x0, y0, x1, y1 = self.box
        target[y0:y1, x0:x1] = self.after if forward else self.before


@dataclass
class Canvas:
    """A whole image state, for changes that resize the canvas (generate, extend)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    mask: np.ndarray


@dataclass
class Change:
    """One undoable step. Exactly one of (mask and/or image regions) or `canvas` is used."""

    label: str
    mask: Region | None = None
    image: Region | None = None
    canvas: tuple[Canvas, Canvas] | None = None  # (before, after)
    meta: dict = field(default_factory=dict)  # e.g. seed and run id of an applied result


RECORDED, REPLACED, UNDONE, REDONE = "recorded", "replaced", "undone", "redone"


def _cleared(mask: np.ndarray) -> Region | None:
    """The region that clears `mask`: its painted bounding box, before and after."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    before = mask[ys, xs].copy()
    return Region(int(xs.start), int(ys.start), before, np.zeros_like(before))


def region_between(before: np.ndarray, after: np.ndarray, box: Box | None = None) -> Region | None:
    """The smallest region holding every difference between two same-shape arrays (inside
    `box` when given), or None when they are equal."""
    if box is None:
        box = (0, 0, before.shape[1], before.shape[0])
    x0, y0, x1, y1 = box
    diff = before[y0:y1, x0:x1] != after[y0:y1, x0:x1]
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff.any(axis=0))
    ys = slice(y0 + rows[0], y0 + rows[-1] + 1)
    xs = slice(x0 + cols[0], x0 + cols[-1] + 1)
    return Region(int(xs.start), int(ys.start), before[ys, xs].copy(), after[ys, xs].copy())


class StrokeRecord:
    """What a brush stroke needs to record its change: the mask as it was, kept only over the
    box the stroke may have touched so far (grown in whole tiles as it moves), never a copy of
    the whole mask."""

    TILE = 64

    def __init__(self) -> None:
        self.box: Box | None = None
        self.before: np.ndarray | None = None

    def cover(self, mask: np.ndarray, box: Box | None) -> None:
        """Keeps `mask`'s values over `box`; call it before painting there."""
        if box is None:
            return
        if self.box is not None and mask_ops.union_box(self.box, box) == self.box:
            return
        t, (height, width) = self.TILE, mask.shape
        x0, y0, x1, y1 = mask_ops.union_box(self.box, box)  # type: ignore[misc]
        grown: Box = (
            x0 // t * t,
            y0 // t * t,
            min(-(-x1 // t) * t, width),
            min(-(-y1 // t) * t, height),
        )
        gx0, gy0, gx1, gy1 = grown
        before = mask[gy0:gy1, gx0:gx1].copy()  # untouched outside the old box: still as it was
        if self.box is not None and self.before is not None:
            ox0, oy0, ox1, oy1 = self.box
            before[oy0 - gy0 : oy1 - gy0, ox0 - gx0 : ox1 - gx0] = self.before
        self.box, self.before = grown, before

    def change(self, mask: np.ndarray) -> Region | None:
        """The smallest region the stroke changed in `mask` (None: nothing changed)."""
        if self.box is None or self.before is None:
            return None
        x0, y0, x1, y1 = self.box
        region = region_between(self.before, mask[y0:y1, x0:x1])
        if region is None:
            return None
        return Region(region.x0 + x0, region.y0 + y0, region.before, region.after)


class Document:
    def __init__(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray | None = None,
        path: str = "",
        options: EditOptions | None = None,
    ):
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        self.rgb = np.ascontiguousarray(rgb).copy()
        self.alpha = None if alpha is None else alpha.copy()
        self.mask = np.zeros(rgb.shape[:2], dtype=bool)
        self.original = self.rgb.copy()
        self.path = path
        self.options = options or EditOptions()
        self.history: list[Change] = []
        self.history_index = 0  # changes before this index are applied
        self.saved_index = 0  # history_index when last saved
        # called as listener(event, change), event one of RECORDED, REPLACED, UNDONE, REDONE
        self.listeners: list[Callable[[str, Change], None]] = []

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def modified(self) -> bool:
        return self.history_index != self.saved_index

    # -- history --------------------------------------------------------------------------

    def record(self, change: Change) -> None:
        """Adds a change that is already applied; drops whatever could be redone."""
        self._append(change)
        self._notify(RECORDED, change)

    def push(self, change: Change, replace_last: bool = False) -> None:
        """Applies a change and records it. `replace_last`: it takes the place of the last
        applied change, which is undone and forgotten first (another candidate of one run)."""
        if replace_last:
            self._take_back()
        self._commit(change, REPLACED if replace_last else RECORDED)

    def undo(self) -> Change | None:
        if self.history_index == 0:
            return None
        self.history_index -= 1
        change = self.history[self.history_index]
        self.apply(change, forward=False)
        self._notify(UNDONE, change)
        return change

    def redo(self) -> Change | None:
        if self.history_index >= len(self.history):
            return None
        change = self.history[self.history_index]
        self.apply(change, forward=True)
        self.history_index += 1
        self._notify(REDONE, change)
        return change

    def _append(self, change: Change) -> None:
        del self.history[self.history_index :]
        if self.saved_index > self.history_index:
            self.saved_index = -1  # the saved state can no longer be reached
        self.history.append(change)
        self.history_index += 1

    def _commit(self, change: Change, event: str) -> None:
        self.apply(change, forward=True)
        self._append(change)
        self._notify(event, change)

    def _take_back(self) -> None:
        """Undoes the last applied change and drops it with the redo tail (no notice: the
        change that replaces it follows at once)."""
        if self.history_index == 0:
            raise ValueError("no applied change to replace")
        self.history_index -= 1
        self.apply(self.history[self.history_index], forward=False)
        del self.history[self.history_index :]

    def _notify(self, event: str, change: Change) -> None:
        for listener in list(self.listeners):
            listener(event, change)

    def apply(self, change: Change, forward: bool) -> None:
        if change.canvas is not None:
            state = change.canvas[1 if forward else 0]
            self.rgb, self.alpha, self.mask = state.rgb.copy(), state.alpha, state.mask.copy()
            if self.alpha is not None:
                self.alpha = self.alpha.copy()
            return
        if change.image is not None:
            change.image.write(self.rgb, forward)
        if change.mask is not None:
            change.mask.write(self.mask, forward)

    # -- edits that build changes -----------------------------------------------------------

    def replace_mask(self, new_mask: np.ndarray, label: str) -> Change | None:
        """Sets the whole mask; records only the changed rectangle. None when nothing changed."""
        patch = region_between(self.mask, new_mask)
        if patch is None:
            return None
        change = Change(label, mask=patch)
        self.push(change)
        return change

    def apply_image_patch(
        self,
        x0: int,
        y0: int,
        pixels: np.ndarray,
        label: str,
        clear_mask: bool = True,
        meta: dict | None = None,
        replace_last: bool = False,
    ) -> Change | None:
        """Writes a crop-local result (its top-left corner at x0, y0) into the image and
        clears the mask, as one undo step. The change keeps that rectangle before and after
        (nothing outside it is compared). None when it would change nothing; with
        `replace_last` it always takes the place of the last applied change."""
        if replace_last:
            self._take_back()
        h, w = pixels.shape[:2]
        region = self.rgb[y0 : y0 + h, x0 : x0 + w]
        if x0 < 0 or y0 < 0 or region.shape != pixels.shape:
            raise ValueError(
                f"a {w}x{h} patch at ({x0}, {y0}) does not fit the "
                f"{self.size[0]}x{self.size[1]} image"
            )
        image = None
        if not np.array_equal(region, pixels):
            image = Region(x0, y0, region.copy(), np.array(pixels, dtype=np.uint8))
        mask = _cleared(self.mask) if clear_mask else None
        change = Change(label, mask=mask, image=image, meta=dict(meta or {}))
        if image is None and mask is None and not replace_last:
            return None
        self._commit(change, REPLACED if replace_last else RECORDED)
        return change

    def replace_canvas(
        self,
        rgb: np.ndarray,
        alpha: np.ndarray | None,
        label: str,
        meta: dict | None = None,
        replace_last: bool = False,
    ) -> Change:
        """Replaces the whole image, possibly with another size (generate, extend)."""
        if replace_last:
            self._take_back()
        before = Canvas(
            self.rgb.copy(), None if self.alpha is None else self.alpha.copy(), self.mask.copy()
        )
        after = Canvas(np.ascontiguousarray(rgb).copy(), alpha, np.zeros(rgb.shape[:2], dtype=bool))
        change = Change(label, canvas=(before, after), meta=dict(meta or {}))
        self._commit(change, REPLACED if replace_last else RECORDED)
        return change
