"""Pixel masks -> token masks, and compositing for editing.

Editing rule (MAGE, Li et al., arXiv 2211.09117; MaskGIT's image editing, Chang et al., arXiv
2202.04200): mask every token the pixel mask touches plus one ring of tokens, because tokens
next to the hole still encode the zero-filled pixels; regenerate those tokens; paste the result
back only inside the token area, with a feathered edge, so pixels outside it stay bit-identical
to the original.

Sizes given as `size` are (width, height), as in Pillow; arrays are [H, W].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BLEND_ROWS = 256  # rows blended at a time, so huge images need no full-size float copy


def token_mask_from_pixels(
    mask: np.ndarray, grid: int | Sequence[int], ring: int = 1, coverage: float = 0.0
) -> np.ndarray:
    """Selects the token cells a pixel mask touches, then grows them by `ring` cells.

    Args:
        mask: bool [H, W] at the model's working resolution; H and W divisible by the grid.
        grid: token grid as an int (square) or (h, w), e.g. 16 or [16, 16].
        ring: extra cells added on every side (8-neighbourhood, square dilation), clipped to
            the grid. MAGE's authors use 1.
        coverage: a cell is selected when the fraction of its pixels in the mask is
            > coverage; 0 selects any overlap. Must be in [0, 1).

    Returns:
        bool [h, w] token mask.

    Raises:
        ValueError: shapes that do not divide, negative ring, coverage outside [0, 1).
    """
    pixels = _as_bool_2d(mask, "mask")
    grid_h, grid_w = _grid_shape(grid)
    height, width = pixels.shape
    if height % grid_h or width % grid_w:
        raise ValueError(
            f"mask size {width}x{height} is not divisible by the grid {grid_w}x{grid_h}"
        )
    if not 0.0 <= coverage < 1.0:
        raise ValueError(f"coverage must be in [0, 1), got {coverage}")
    cell_h, cell_w = height // grid_h, width // grid_w
    cells = pixels.reshape(grid_h, cell_h, grid_w, cell_w)
    if coverage == 0.0:
        selected = np.asarray(cells.any(axis=(1, 3)))
    else:
        # Integer counts compared against the threshold: no float averaging error.
        counts = cells.sum(axis=(1, 3), dtype=np.int64)
        selected = np.asarray(counts > coverage * (cell_h * cell_w))
    return grow_token_mask(selected, ring)


def grow_token_mask(token_mask: np.ndarray, cells: int = 1) -> np.ndarray:
    """Square dilation by `cells` in all 8 directions, clipped to the array.

    Args:
        token_mask: bool [h, w] (works for pixel masks too).
        cells: dilation radius; 0 returns a copy.

    Returns:
        bool [h, w].
    """
    mask = _as_bool_2d(token_mask, "token_mask")
    if cells < 0:
        raise ValueError(f"cells must be >= 0, got {cells}")
    return dilate_pixels(mask, cells)


def composite(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blends `generated` over `original` with per-pixel weights.

    Args:
        original: uint8 [H, W, C], C = 3 or 4.
        generated: uint8 [H, W, C], same shape.
        alpha: float [H, W] in [0, 1] (values outside are clipped).

    Returns:
        uint8 [H, W, C]: bit-identical to `original` where alpha == 0, equal to `generated`
        where alpha == 1, and the rounded blend elsewhere.
    """
    orig = np.asarray(original)
    gen = np.asarray(generated)
    weights = np.asarray(alpha)
    if orig.dtype != np.uint8 or gen.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {orig.dtype} and {gen.dtype}")
    if orig.ndim != 3 or orig.shape[2] not in (3, 4) or gen.shape != orig.shape:
        raise ValueError(
            f"images must be [H, W, 3|4] of equal shape, got {orig.shape}, {gen.shape}"
        )
    if weights.shape != orig.shape[:2]:
        raise ValueError(f"alpha shape {weights.shape} does not match image {orig.shape[:2]}")
    if np.isnan(weights).any():
        raise ValueError("alpha contains NaN")
    out = orig.copy()
    box = mask_bbox(weights > 0)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    # Row chunks bound the float temporaries for very large images.
    for top in range(y0, y1, _BLEND_ROWS):
        rows = slice(top, min(top + _BLEND_ROWS, y1))
        out[rows, x0:x1] = _blend(orig[rows, x0:x1], gen[rows, x0:x1], weights[rows, x0:x1])
    return out


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of the True pixels, Pillow-style with exclusive ends.

    Args:
        mask: bool [H, W].

    Returns:
        (x0, y0, x1, y1) with x1, y1 one past the last True column/row, or None if empty.
    """
    pixels = _as_bool_2d(mask, "mask")
    rows = np.flatnonzero(pixels.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(pixels.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _as_bool_2d(array: np.ndarray, name: str) -> np.ndarray:
    """Returns a 2-D bool view/copy of `array`, or raises ValueError."""
    values = np.asarray(array)
    if values.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {values.shape}")
    return values if values.dtype == bool else values.astype(bool)


def _grid_shape(grid: int | Sequence[int]) -> tuple[int, int]:
    """Normalises a grid given as an int or (h, w) to (h, w)."""
    if isinstance(grid, (int, np.integer)):
        shape: tuple[int, ...] = (int(grid), int(grid))
    else:
        shape = tuple(int(g) for g in grid)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"grid must be a positive int or (h, w), got {grid!r}")
    return shape[0], shape[1]


def _blend(orig: np.ndarray, gen: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Rounded blend of uint8 [h, w, C] blocks with float [h, w] weights."""
    weight = np.clip(alpha, 0.0, 1.0).astype(np.float32)[..., None]
    mixed = orig.astype(np.float32) + (gen.astype(np.float32) - orig) * weight
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    # Exact values where the weight is exactly 0 or 1, independent of float rounding.
    out = np.where(weight == 0.0, orig, out)
    return np.where(weight == 1.0, gen, out)


def dilate_pixels(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation of a bool mask (pixels or token cells) by `radius`, clipped to the array:
    the one dilation of the engine and the editor. Works on the mask's bounding box grown by
    `radius` only (separable box filter on cumulative sums), so a small brush stroke on a large
    photo costs little.

    Args:
        mask: bool [H, W].
        radius: pixels added on every side; 0 returns a copy.

    Returns:
        bool [H, W].
    """
    src = _as_bool_2d(mask, "mask")
    out = src.copy()
    if radius <= 0:
        return out
    rows = np.flatnonzero(src.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(src.any(axis=0))
    height, width = src.shape
    y0, y1 = max(rows[0] - radius, 0), min(rows[-1] + 1 + radius, height)
    x0, x1 = max(cols[0] - radius, 0), min(cols[-1] + 1 + radius, width)
    region = src[y0:y1, x0:x1]
    for axis in (0, 1):
        counts = np.cumsum(region, axis=axis, dtype=np.int32)
        counts = np.concatenate([np.zeros_like(counts.take([0], axis=axis)), counts], axis=axis)
        n = region.shape[axis]
        hi = np.minimum(np.arange(n) + radius + 1, n)
        lo = np.maximum(np.arange(n) - radius, 0)
        region = (counts.take(hi, axis=axis) - counts.take(lo, axis=axis)) > 0
    out[y0:y1, x0:x1] = region
    return out
