"""Where an edit works: the mask -> its parts -> one context square and token mask each.

An `EditPlan` is computed once per mask (`plan_edit`): the editor's token grid draws it, and the
run (engine/runtime/runs.py) fills exactly its parts. A part is a group of connected mask pieces
whose context squares do not overlap any other part's; far-apart pieces get their own square so
each keeps full detail. A context square is cut around the part's bounding box (twice its side
by default), resized to the model size; every token the mask touches plus a ring is regenerated
(the MAGE authors' recipe, https://github.com/LTH14/mage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from engine.runtime.errors import ImageError, MaskError
from engine.runtime.manifest import Manifest
from engine.runtime.masking import mask_bbox, token_mask_from_pixels
from engine.runtime.schedule import masked_counts
from engine.runtime.settings import Settings


@dataclass(frozen=True)
class Square:
    """A square in image pixel coordinates; may extend past the image border."""

    x0: int
    y0: int
    side: int

    def clip(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The part inside the image as (x0, y0, x1, y1)."""
        return (
            max(self.x0, 0),
            max(self.y0, 0),
            min(self.x0 + self.side, width),
            min(self.y0 + self.side, height),
        )


@dataclass(frozen=True, eq=False)
class Part:
    """One context square of a plan and the tokens it regenerates."""

    square: Square
    model_mask: np.ndarray  # bool [S,S] model pixels the mask touches (zeroed to encode)
    token_mask: np.ndarray  # bool [gh,gw] tokens to regenerate
    painted: np.ndarray  # bool [y1-y0, x1-x0] the user's mask over `box`
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1): the square clipped to the image
    cell_edges: np.ndarray  # int [gw + 1] pixel offsets of the cell borders in the square
    steps: int  # decoding steps (speed options may scale them per part)
    start_step: int = 0

    @property
    def masked_count(self) -> int:
        return int(self.token_mask.sum())

    @cached_property
    def cost(self) -> int:
        """Token predictions the run makes: masked tokens entering each step, summed."""
        if not self.masked_count:
            return 0
        return int(sum(masked_counts(self.masked_count, self.steps, self.start_step)))

    @property
    def run_steps(self) -> int:
        """Steps the decoding loop runs for this part."""
        return self.steps - self.start_step

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Image-pixel box (x0, y0, x1, y1) of one token cell."""
        e, sq = self.cell_edges, self.square
        return sq.x0 + e[col], sq.y0 + e[row], sq.x0 + e[col + 1], sq.y0 + e[row + 1]


@dataclass(frozen=True, eq=False)
class EditPlan:
    """The parts of one edit, run in order, on an image of `width` x `height`."""

    parts: tuple[Part, ...]
    width: int
    height: int
    mask: np.ndarray  # bool [H,W] the mask it was planned for (not copied)
    settings_key: tuple  # plan_key() of the settings it was planned with
    coverage: float = 0.0
    settings: Settings | None = None  # the settings it was planned with
    resolved: Settings | None = None  # the same, resolved for the manifest (steps, ...)
    checked: bool = False  # validated with its image by plan_or_raise (a run trusts it)

    @property
    def masked_count(self) -> int:
        return sum(part.masked_count for part in self.parts)

    @property
    def cost(self) -> int:
        return sum(part.cost for part in self.parts)

    @property
    def steps(self) -> int:
        return max(part.steps for part in self.parts)

    @property
    def run_steps(self) -> int:
        """Decoding steps of the whole run (the parts run one after the other)."""
        return sum(part.run_steps for part in self.parts)

    @property
    def cell_side(self) -> float:
        """Image pixels per token cell in the largest square (the coarsest part)."""
        side = max(part.square.side for part in self.parts)
        return side / (len(self.parts[0].cell_edges) - 1)

    def check(self) -> None:
        """Raises MaskError when a part would regenerate no token."""
        for part in self.parts:
            if not part.token_mask.any():
                raise MaskError(
                    f"the mask covers no token at coverage {self.coverage:g}: "
                    "paint more or lower the coverage"
                )


def plan_key(settings: Settings) -> tuple:
    """The settings a plan depends on: a plan made with other ones is made again."""
    return (
        settings.context,
        settings.ring,
        settings.coverage,
        settings.steps,
        settings.start_step,
        settings.speed,
    )


def plan_edit(
    manifest: Manifest, mask: np.ndarray, settings: Settings = Settings()
) -> EditPlan | None:
    """The plan for `mask` (bool [H,W]), or None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise MaskError(f"expected a 2-D mask, got shape {mask.shape}")
    if mask_bbox(mask) is None:
        return None
    h, w = mask.shape
    parts = mask_parts(manifest, mask, settings)
    min_side = min(manifest.image_size, max(w, h))
    resolved = settings.resolved(manifest)
    out = []
    for part in parts:
        bbox = mask_bbox(part)
        assert bbox is not None  # mask_parts returns no empty part
        sq = context_square(bbox, w, h, min_side=min_side, context=settings.context)
        out.append(plan_square(manifest, part, sq, resolved))
    key = plan_key(settings)
    return EditPlan(tuple(out), w, h, mask, key, settings.coverage, settings, resolved)


def plan_square(manifest: Manifest, mask: np.ndarray, sq: Square, settings: Settings) -> Part:
    """The part that regenerates `mask` (bool [H,W]) inside the context square `sq`."""
    h, w = mask.shape
    size = manifest.image_size
    painted_sq = cut_square(mask[..., None], sq)[..., 0]
    # pixels of the padding past the border never count as painted
    ys, xs = np.arange(sq.y0, sq.y0 + sq.side), np.arange(sq.x0, sq.x0 + sq.side)
    painted_sq &= ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
    model_mask = mask_to_model(painted_sq, size)
    token_mask = token_mask_from_pixels(model_mask, manifest.grid, settings.ring, settings.coverage)
    # the step count may depend on how many tokens are masked (speed options); the one place
    # a part's steps are decided: its run decodes with them
    if settings.steps is None:
        settings = settings.resolved(manifest)
    resolved = settings.scaled_for(manifest, int(token_mask.sum()))
    assert resolved.steps is not None
    x0, y0, x1, y1 = box = sq.clip(w, h)
    return Part(
        sq,
        model_mask,
        token_mask,
        mask[y0:y1, x0:x1].copy(),
        box,
        cell_edges(sq.side, manifest),
        resolved.steps,
        resolved.start_step,
    )


def check_inputs(rgb: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Raises ImageError/MaskError for an image that is not RGB uint8 or a mask of another size."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an RGB uint8 image, got {rgb.dtype} {rgb.shape}")
    if mask is not None and mask.shape != rgb.shape[:2]:
        raise MaskError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{rgb.shape[1]}x{rgb.shape[0]}"
        )


# -- geometry ---------------------------------------------------------------------------------


def context_square(
    bbox: tuple[int, int, int, int], width: int, height: int, min_side: int, context: float = 2.0
) -> Square:
    """A square around the mask's bounding box with room for context, kept inside the image
    where the image is large enough."""
    x0, y0, x1, y1 = bbox
    want = max(math.ceil(max(x1 - x0, y1 - y0) * context), min_side)
    side = min(want, max(width, height))
    side = max(side, x1 - x0, y1 - y0, 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def place(center: float, extent: int) -> int:
        start = round(center - side / 2)
        if side <= extent:
            return min(max(start, 0), extent - side)
        return (extent - side) // 2  # larger than the image: centre it, pad both sides

    return Square(place(cx, width), place(cy, height), side)


def cut_square(rgb: np.ndarray, sq: Square) -> np.ndarray:
    """uint8 [side,side,C]: the square's pixels, edge pixels repeated past the border."""
    h, w = rgb.shape[:2]
    ys = np.clip(np.arange(sq.y0, sq.y0 + sq.side), 0, h - 1)
    xs = np.clip(np.arange(sq.x0, sq.x0 + sq.side), 0, w - 1)
    return rgb[ys[:, None], xs[None, :]]


def mask_to_model(painted_sq: np.ndarray, size: int) -> np.ndarray:
    """Any-overlap downscale: a model pixel is masked if any image pixel inside it is."""
    if painted_sq.shape[0] == size:
        return painted_sq.copy()
    m = Image.fromarray(painted_sq.astype(np.float32), mode="F")
    return np.asarray(m.resize((size, size), Image.Resampling.BOX)) > 0


def cell_index(side: int, size: int, down: int) -> np.ndarray:
    """For each image pixel along a square side, the token cell it falls in (BOX-consistent)."""
    return (np.arange(side) * size // side) // down


def cell_edges(side: int, manifest: Manifest) -> np.ndarray:
    """Pixel offsets where each token cell starts along a square side, plus the side itself,
    by the pixel-to-cell rule compositing uses, so a drawn grid is the one the fill follows."""
    cells = cell_index(side, manifest.image_size, manifest.downsample)
    starts = np.searchsorted(cells, np.arange(manifest.grid[1]), side="left")
    return np.append(starts, side).astype(np.int64)


# -- parts ----------------------------------------------------------------------------------


def mask_parts(
    manifest: Manifest, mask: np.ndarray, settings: Settings = Settings()
) -> list[np.ndarray]:
    """Split a mask into groups of connected parts whose context squares do not overlap.

    Parts are found on a coarse grid (at most 256 cells a side) so huge images stay fast; parts
    whose squares would overlap are merged and edited together, since each edit must see the
    other's surroundings unchanged. The groups come in raster order of their first pixel.

    The cost is near-linear in the number of parts: each part's exact bounding box comes from
    one vectorised pass over the mask, and merging works on boxes only, with the live squares
    (pairwise apart) kept in buckets of a coarse grid so a square meets only its neighbours.
    Thousands of dust spots take milliseconds, not minutes."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    block = max(1, math.ceil(max(h, w) / 256))
    gh, gw = math.ceil(h / block), math.ceil(w / block)
    padded = np.zeros((gh * block, gw * block), bool)
    padded[:h, :w] = mask
    cells = padded.reshape(gh, block, gw, block)
    coarse = np.asarray(cells.any(axis=(1, 3)))
    labels = _label(coarse)
    count = int(labels.max())
    if count <= 1:
        return [mask.copy()] if count else []
    boxes = _part_boxes(cells, labels, count, block)
    min_side = min(manifest.image_size, max(w, h))
    groups = _merge_boxes(
        boxes,
        lambda box: context_square(box, w, h, min_side, settings.context),
        max(min_side, math.ceil(max(w, h) / 32), 1),
        max(w, h),
    )
    lut = np.zeros(count + 1, np.int32)
    for number, members in enumerate(groups, start=1):
        lut[np.asarray(members) + 1] = number
    grouped = lut[labels]
    parts, firsts = [], []
    for number, members in enumerate(groups, start=1):
        x0, y0, x1, y1 = _union_box(boxes[m] for m in members)
        # the group's coarse cells over its bounding box only: no full-image work per group
        cx0, cy0, cx1, cy1 = x0 // block, y0 // block, -(-x1 // block), -(-y1 // block)
        own = grouped[cy0:cy1, cx0:cx1] == number
        own = np.repeat(np.repeat(own, block, 0), block, 1)
        oy, ox = cy0 * block, cx0 * block
        part = np.zeros((h, w), bool)
        part[y0:y1, x0:x1] = own[y0 - oy : y1 - oy, x0 - ox : x1 - ox] & mask[y0:y1, x0:x1]
        parts.append(part)
        # the box is exact, so its top row holds the group's first pixel in raster order
        firsts.append(y0 * w + x0 + int(part[y0, x0:x1].argmax()))
    # coarse cells span several rows: order by the first pixel, not the first cell
    return [parts[i] for i in np.argsort(firsts, kind="stable")]


def _part_boxes(cells: np.ndarray, labels: np.ndarray, count: int, block: int) -> np.ndarray:
    """int64 [count, 4]: the exact pixel bounding box (x0, y0, x1, y1) of each labelled part,
    from `cells` (the mask as [gh, block, gw, block]) in one pass."""
    _gh, _, _gw, _ = cells.shape
    rows = np.asarray(cells.any(axis=3)).transpose(0, 2, 1)  # [gh, gw, block]: row has a pixel
    cols = np.asarray(cells.any(axis=1))  # [gh, gw, block]: column has one
    gy, gx = np.nonzero(labels)
    part = labels[gy, gx] - 1
    r, c = rows[gy, gx], cols[gy, gx]
    top = gy * block + r.argmax(-1)
    bottom = gy * block + block - r[:, ::-1].argmax(-1)
    left = gx * block + c.argmax(-1)
    right = gx * block + block - c[:, ::-1].argmax(-1)
    boxes = np.empty((count, 4), np.int64)
    boxes[:, :2] = np.iinfo(np.int64).max
    boxes[:, 2:] = np.iinfo(np.int64).min
    np.minimum.at(boxes[:, 0], part, left)
    np.minimum.at(boxes[:, 1], part, top)
    np.maximum.at(boxes[:, 2], part, right)
    np.maximum.at(boxes[:, 3], part, bottom)
    return boxes


def _union_box(boxes) -> tuple[int, int, int, int]:
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for bx0, by0, bx1, by1 in boxes:
        x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
    return int(x0), int(y0), int(x1), int(y1)


def _merge_boxes(boxes: np.ndarray, square, cell: int, extent: int) -> list[list[int]]:
    """Groups of box indices whose squares (`square(box)`) are pairwise apart: a box whose
    square overlaps live squares absorbs them, and the grown group's square is checked again.

    Live squares are pairwise apart and at least `cell` wide, so each cell of a grid of that
    pitch meets only a handful of them: the grid holds their ids (a few slots per cell), and a
    check reads only the cells its square covers, in NumPy. `extent` is the image's longer
    side (squares lie within [-extent, 2 * extent))."""
    n = 3 * extent // cell + 2
    owners = np.full((n, n, 4), -1, np.int64)
    live: dict[int, Square] = {}
    box_of: dict[int, tuple[int, int, int, int]] = {}
    members: dict[int, list[int]] = {}

    def region(sq: Square) -> tuple[slice, slice]:
        return (
            slice((sq.y0 + extent) // cell, (sq.y0 + sq.side - 1 + extent) // cell + 1),
            slice((sq.x0 + extent) // cell, (sq.x0 + sq.side - 1 + extent) // cell + 1),
        )

    last = -1  # the group the previous box went to
    for index in range(len(boxes)):
        x0, y0, x1, y1 = (int(v) for v in boxes[index])
        box = (x0, y0, x1, y1)
        if last in live and _union_box((box, box_of[last])) == box_of[last]:
            members[last].append(index)  # inside that group's box: its square stays
            continue
        group = [index]
        while True:
            sq = square(box)
            ids = owners[region(sq)]
            hits = [
                other for other in np.unique(ids[ids >= 0]).tolist() if _overlap(sq, live[other])
            ]
            inside = [other for other in hits if _union_box((box, box_of[other])) == box_of[other]]
            if inside:
                members[inside[0]] += group  # inside a group's box: its square stays
                last, group = inside[0], []
                break
            if not hits:
                break
            for other in hits:
                ids = owners[region(live.pop(other))]
                ids[ids == other] = -1
                box = _union_box((box, box_of.pop(other)))
                group += members.pop(other)
        if not group:
            continue
        live[index], box_of[index], members[index] = sq, box, group
        last = index
        ids = owners[region(sq)]
        free = ids < 0
        if not free.any(axis=-1).all():  # a crowded cell: more slots everywhere
            owners = np.concatenate([owners, np.full_like(owners, -1)], axis=-1)
            ids = owners[region(sq)]
            free = ids < 0
        np.put_along_axis(ids, free.argmax(-1)[..., None], index, axis=-1)
    return sorted((sorted(group) for group in members.values()), key=lambda g: g[0])


def _overlap(a: Square, b: Square) -> bool:
    return (
        a.x0 < b.x0 + b.side
        and b.x0 < a.x0 + a.side
        and a.y0 < b.y0 + b.side
        and b.y0 < a.y0 + a.side
    )


def _label(grid: np.ndarray) -> np.ndarray:
    """8-connected component labels (1..n, 0 = background, numbered in raster order of their
    first pixel) of a small bool grid. Works on horizontal runs joined by union-find, so a
    large blob costs one step per row, not one per pixel, and a row's runs meet the runs above
    in one merge-like walk."""
    grid = np.asarray(grid, bool)
    runs: list[tuple[int, int, int]] = []  # (row, first col, last col)
    row_runs: list[list[int]] = []
    for y, line in enumerate(grid):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(np.int8), [0]])))
        row_runs.append(list(range(len(runs), len(runs) + len(edges) // 2)))
        runs += [(y, int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2], strict=True)]
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for y in range(1, len(row_runs)):
        # both rows' runs are sorted: walk them together (diagonal neighbours touch too)
        current, above = row_runs[y], row_runs[y - 1]
        a = b = 0
        while a < len(current) and b < len(above):
            i, j = current[a], above[b]
            s, e = runs[i][1], runs[i][2]
            s_above, e_above = runs[j][1], runs[j][2]
            if e_above + 1 < s:
                b += 1
            elif e + 1 < s_above:
                a += 1
            else:
                ri, rj = root(i), root(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
                if e < e_above:
                    a += 1
                else:
                    b += 1
    labels = np.zeros(grid.shape, np.int32)
    numbers: dict[int, int] = {}
    for i, (y, s, e) in enumerate(runs):
        labels[y, s : e + 1] = numbers.setdefault(root(i), len(numbers) + 1)
    return labels
