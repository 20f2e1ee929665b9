"""Pixel masks <-> token masks, feathering and compositing for editing.

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


def shrink_token_mask(token_mask: np.ndarray, cells: int = 1) -> np.ndarray:
    """Square erosion by `cells`; cells outside the array count as selected.

    Treating the outside as selected means a mask that reaches the image border (outpainting)
    is not eaten away there, and grow(shrink(m)) is still contained in m.

    Args:
        token_mask: bool [h, w].
        cells: erosion radius; 0 returns a copy.

    Returns:
        bool [h, w].
    """
    return ~grow_token_mask(~_as_bool_2d(token_mask, "token_mask"), cells)


def pixel_mask_from_tokens(token_mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Expands each token cell to its block of pixels, at any output size.

    When the size is a multiple of the grid every cell becomes an exact block. Otherwise (the
    original image's resolution) each pixel takes the cell under its centre, i.e. the token
    mask is stretched over the image like the image was stretched to the model's resolution.

    Args:
        token_mask: bool [h, w].
        size: (width, height) in pixels, both >= 1.

    Returns:
        bool [height, width].
    """
    tokens = _as_bool_2d(token_mask, "token_mask")
    width, height = int(size[0]), int(size[1])
    grid_h, grid_w = tokens.shape
    if height < 1 or width < 1:
        raise ValueError(f"size must be at least 1x1, got {width}x{height}")
    if height % grid_h == 0 and width % grid_w == 0:
        return np.repeat(np.repeat(tokens, height // grid_h, axis=0), width // grid_w, axis=1)
    rows = _cell_of_pixels(height, grid_h)
    cols = _cell_of_pixels(width, grid_w)
    return tokens[rows[:, None], cols[None, :]]


def feather_alpha(region: np.ndarray, painted: np.ndarray, radius: float) -> np.ndarray:
    """Blend weights: 0 outside `region`, 1 on `painted`, rising inward from the region's edge.

    The ramp is a smoothstep of a box-filtered region indicator, so it goes from ~0 at the
    region's border to exactly 1 at `radius` px inside it (linear before the smoothstep along a
    straight edge; rounder near corners). The image border does not
    count as a region border (the blur replicates edge pixels), so a region touching the edge
    (outpainting) is not faded there. Where `painted` lies outside `region` (possible with a
    coverage threshold) the region wins: those pixels get 0 since they were not regenerated.

    Args:
        region: bool [H, W] pixel area that was regenerated (the grown token mask in pixels).
        painted: bool [H, W] the user's mask.
        radius: feather width in pixels; <= 0 gives a hard edge.

    Returns:
        float32 [H, W] in [0, 1].
    """
    inside = _as_bool_2d(region, "region")
    user = _as_bool_2d(painted, "painted")
    if inside.shape != user.shape:
        raise ValueError(f"region {inside.shape} and painted {user.shape} differ in shape")
    alpha = np.zeros(inside.shape, dtype=np.float32)
    box = mask_bbox(inside)
    if box is None:
        return alpha
    reach = max(int(np.ceil(radius)), 0) + 1
    # Work on the region's bounding box plus the blur's reach: identical result, much faster.
    x0, y0 = max(box[0] - reach, 0), max(box[1] - reach, 0)
    x1, y1 = min(box[2] + reach, inside.shape[1]), min(box[3] + reach, inside.shape[0])
    crop = inside[y0:y1, x0:x1]
    alpha[y0:y1, x0:x1] = _ramp(crop, radius)
    alpha[user] = 1.0
    alpha[~inside] = 0.0
    return alpha


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


def threshold_mask(gray: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binarises a non-binary mask image.

    Args:
        gray: [H, W] bool, unsigned integer (scaled by the dtype's maximum, so uint8 128 is
            0.502) or float in [0, 1].
        threshold: fraction of full scale; values >= threshold are selected.

    Returns:
        bool [H, W].
    """
    values = np.asarray(gray)
    if values.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {values.shape}")
    if values.dtype == bool:
        return values.copy()
    if np.issubdtype(values.dtype, np.unsignedinteger):
        # Compare in integers: uint8 >= 127.5 means >= 128, as the usual "> 127" rule.
        limit = threshold * np.iinfo(values.dtype).max
        return values >= np.ceil(limit)
    if np.issubdtype(values.dtype, np.floating):
        return values >= threshold
    raise ValueError(f"unsupported mask dtype {values.dtype}")


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


def _cell_of_pixels(pixels: int, cells: int) -> np.ndarray:
    """Cell index under each pixel centre: int [pixels] in [0, cells)."""
    # Integer form of floor((i + 0.5) * cells / pixels): exact, no float rounding at borders.
    return ((2 * np.arange(pixels, dtype=np.int64) + 1) * cells) // (2 * pixels)


def _ramp(region: np.ndarray, radius: float) -> np.ndarray:
    """Smooth 0..1 ramp inside `region` over `radius` px: bool [h, w] -> float32 [h, w].

    A (2R+1)^2 box sum of the indicator, kept in integers so "fully inside" is exact: along a
    straight edge 2 * mean - 1 = (2d + 1) / (2R + 1) at depth d, i.e. linear, reaching 1 at
    d = R. A smoothstep then removes the kinks at both ends.
    """
    if radius <= 0:
        return region.astype(np.float32)
    half = min(max(round(radius), 1), max(region.shape))
    width = 2 * half + 1
    # Bound of the running sums: row length x the largest value being summed (width).
    bound = (max(region.shape) + width) * width
    dtype = np.int32 if bound < np.iinfo(np.int32).max else np.int64
    counts = _box_sum_rows(region.astype(dtype), half)
    # Row passes only: cumsum along contiguous rows is several times faster than down columns.
    counts = _box_sum_rows(np.ascontiguousarray(counts.T), half).T
    area = width * width
    ramp = np.clip((2.0 * counts - area) / area, 0.0, 1.0).astype(np.float32)
    return ramp * ramp * (3.0 - 2.0 * ramp)


def _box_sum_rows(values: np.ndarray, half: int) -> np.ndarray:
    """Sum over a window of 2*half+1 along each row, edges replicated; O(size) via cumsum."""
    # One extra leading column makes sums[:, j + width] - sums[:, j] the window at j.
    padded = np.pad(values, [(0, 0), (half + 1, half)], mode="edge")
    sums = np.cumsum(padded, axis=1, dtype=values.dtype)
    width = 2 * half + 1
    return sums[:, width:] - sums[:, :-width]


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
