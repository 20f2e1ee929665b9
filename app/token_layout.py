"""Where the model will work for the current mask: the context square and its token cells.

This follows `engine.runtime.editing.prepare_edit` step by step with the engine's own functions
(context_square, cut_square, mask_to_model, token_mask_from_pixels), minus the pixel work
(cutting and resizing the RGB square, which costs tens of milliseconds on large photos), so the
grid overlay can follow the brush live. tests/app/test_token_layout.py checks that the square
and the token mask equal what prepare_edit returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.runtime.editing import Settings, Square, cell_index, map_mask
from engine.runtime.manifest import Manifest
from engine.runtime.masking import mask_bbox
from engine.runtime.schedule import masked_counts


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


def cell_edges(side: int, manifest: Manifest) -> np.ndarray:
    """Pixel offsets where each token cell starts along a square side, plus the side itself,
    using the engine's pixel-to-cell rule so the drawn grid is the one paste_back uses."""
    cells = cell_index(side, manifest.image_size, manifest.downsample)
    starts = np.searchsorted(cells, np.arange(manifest.grid[1]), side="left")
    return np.append(starts, side).astype(np.int64)
