"""The document being edited, as plain Python and NumPy: no widgets, no Qt.

A `Document` holds the image (uint8 RGB plus optional alpha), the user's mask (bool), the image
as first opened (for "hold Tab to see the original"), the run options and the undo history.
Every edit is a `Change` that stores only the rectangle it touched (before and after), so a
brush stroke on a large photo costs kilobytes and the whole document serialises cheaply with
`to_arrays` / `from_arrays` (a dict of arrays for `numpy.savez`).

The GUI's QUndoStack mirrors `history` one command per change (see `app.undo`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from app import mask_ops
from app.options import EditOptions

Box = mask_ops.Box


@dataclass
class Patch:
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
    """One undoable step. Exactly one of (mask and/or image patches) or `canvas` is used."""
    label: str
    mask: Patch | None = None
    image: Patch | None = None
    canvas: tuple[Canvas, Canvas] | None = None   # (before, after)
    meta: dict = field(default_factory=dict)      # e.g. seed and run id of an applied result


def patch_between(before: np.ndarray, after: np.ndarray, box: Box | None = None
                  ) -> Patch | None:
    """The smallest patch holding every difference between two same-shape arrays (inside
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
    return Patch(int(xs.start), int(ys.start), before[ys, xs].copy(), after[ys, xs].copy())


class Document:
    def __init__(self, rgb: np.ndarray, alpha: np.ndarray | None = None, path: str = "",
                 options: EditOptions | None = None):
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        self.rgb = np.ascontiguousarray(rgb).copy()
        self.alpha = None if alpha is None else alpha.copy()
        self.mask = np.zeros(rgb.shape[:2], dtype=bool)
        self.original = self.rgb.copy()
        self.path = path
        self.options = options or EditOptions()
        self.history: list[Change] = []
        self.history_index = 0   # changes before this index are applied
        self.saved_index = 0     # history_index when last saved

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
        del self.history[self.history_index:]
        if self.saved_index > self.history_index:
            self.saved_index = -1  # the saved state can no longer be reached
        self.history.append(change)
        self.history_index += 1

    def push(self, change: Change) -> None:
        """Applies a change and records it."""
        self.apply(change, forward=True)
        self.record(change)

    def undo(self) -> Change | None:
        if self.history_index == 0:
            return None
        self.history_index -= 1
        change = self.history[self.history_index]
        self.apply(change, forward=False)
        return change

    def redo(self) -> Change | None:
        if self.history_index >= len(self.history):
            return None
        change = self.history[self.history_index]
        self.apply(change, forward=True)
        self.history_index += 1
        return change

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
        patch = patch_between(self.mask, new_mask)
        if patch is None:
            return None
        change = Change(label, mask=patch)
        self.push(change)
        return change

    def apply_image_patch(self, x0: int, y0: int, pixels: np.ndarray, label: str,
                          clear_mask: bool = True, meta: dict | None = None) -> Change | None:
        """Writes a result into the image (and clears the mask, as one undo step)."""
        h, w = pixels.shape[:2]
        before_region = self.rgb[y0:y0 + h, x0:x0 + w]
        image = patch_between(before_region, pixels)
        if image is not None:
            image.x0 += x0
            image.y0 += y0
        mask = patch_between(self.mask, np.zeros_like(self.mask)) if clear_mask else None
        if image is None and mask is None:
            return None
        change = Change(label, mask=mask, image=image, meta=dict(meta or {}))
        self.push(change)
        return change

    def replace_canvas(self, rgb: np.ndarray, alpha: np.ndarray | None, label: str,
                       meta: dict | None = None) -> Change:
        """Replaces the whole image, possibly with another size (generate, extend)."""
        before = Canvas(self.rgb.copy(), None if self.alpha is None else self.alpha.copy(),
                        self.mask.copy())
        after = Canvas(np.ascontiguousarray(rgb).copy(), alpha,
                       np.zeros(rgb.shape[:2], dtype=bool))
        change = Change(label, canvas=(before, after), meta=dict(meta or {}))
        self.push(change)
        return change

    # -- serialisation ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything as named arrays (for numpy.savez); masks are bit-packed."""
        arrays: dict[str, np.ndarray] = {"rgb": self.rgb, "original": self.original,
                                         "mask": _pack(self.mask)}
        if self.alpha is not None:
            arrays["alpha"] = self.alpha
        entries = []
        for i, change in enumerate(self.history):
            entry: dict = {"label": change.label, "meta": change.meta}
            for part in ("mask", "image"):
                patch = getattr(change, part)
                if patch is not None:
                    entry[part] = [int(patch.x0), int(patch.y0)]
                    arrays[f"h{i}.{part}.before"] = _encode(patch.before)
                    arrays[f"h{i}.{part}.after"] = _encode(patch.after)
            if change.canvas is not None:
                entry["canvas"] = True
                for when, state in zip(("before", "after"), change.canvas, strict=True):
                    arrays[f"h{i}.canvas.{when}.rgb"] = state.rgb
                    arrays[f"h{i}.canvas.{when}.mask"] = _pack(state.mask)
                    if state.alpha is not None:
                        arrays[f"h{i}.canvas.{when}.alpha"] = state.alpha
            entries.append(entry)
        meta = {"version": 1, "path": self.path, "options": self.options.to_dict(),
                "history": entries, "history_index": self.history_index,
                "saved_index": self.saved_index, "mask_shape": list(self.mask.shape)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> Document:
        meta = json.loads(bytes(np.asarray(arrays["meta"], dtype=np.uint8)).decode("utf-8"))
        doc = cls(np.asarray(arrays["rgb"]), arrays["alpha"] if "alpha" in arrays else None,
                  meta["path"], EditOptions.from_dict(meta["options"]))
        doc.original = np.asarray(arrays["original"]).copy()
        doc.mask = _unpack(arrays["mask"])
        for i, entry in enumerate(meta["history"]):
            change = Change(entry["label"], meta=entry.get("meta", {}))
            for part in ("mask", "image"):
                if part in entry:
                    x0, y0 = entry[part]
                    before = _decode(arrays[f"h{i}.{part}.before"])
                    after = _decode(arrays[f"h{i}.{part}.after"])
                    setattr(change, part, Patch(x0, y0, before, after))
            if entry.get("canvas"):
                change.canvas = tuple(_canvas_from(arrays, f"h{i}.canvas.{w}")
                                      for w in ("before", "after"))
            doc.history.append(change)
        doc.history_index = meta["history_index"]
        doc.saved_index = meta["saved_index"]
        return doc


def _pack(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] -> uint8 bits with the shape in front (8x smaller)."""
    h, w = mask.shape
    return np.concatenate([np.array([h, w], dtype=">u4").view(np.uint8),
                           np.packbits(mask, axis=None)])


def _unpack(packed: np.ndarray) -> np.ndarray:
    packed = np.asarray(packed, dtype=np.uint8)
    h, w = (int(v) for v in packed[:8].view(">u4"))
    return np.unpackbits(packed[8:], count=h * w).astype(bool).reshape(h, w)


def _encode(array: np.ndarray) -> np.ndarray:
    """Patches: masks packed, images as they are."""
    return _pack(array) if array.dtype == bool else array


def _decode(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return _unpack(array) if array.ndim == 1 else array.copy()


def _canvas_from(arrays, prefix: str) -> Canvas:
    rgb = np.asarray(arrays[f"{prefix}.rgb"]).copy()
    alpha = np.asarray(arrays[f"{prefix}.alpha"]).copy() if f"{prefix}.alpha" in arrays else None
    return Canvas(rgb, alpha, _unpack(arrays[f"{prefix}.mask"]))
