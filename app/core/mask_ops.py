"""Mask painting as pure NumPy: brush segments, polygons, rectangles, grow and shrink.

Every function works on a bool [H, W] mask in image pixels and touches only the bounding box
of what it paints, so a stroke on a 50-megapixel photo costs what the brush covers, not the
whole image. Boxes are (x0, y0, x1, y1) with exclusive ends, like `engine.runtime.masking`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from engine.runtime.masking import dilate_pixels

Box = tuple[int, int, int, int]
Point = tuple[float, float]


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """The part of `box` inside a width x height image, or None when nothing is left."""
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def union_box(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def segment_box(shape: tuple[int, ...], p0: Point, p1: Point, radius: float) -> Box | None:
    """The box `paint_segment` may change on a mask of `shape` (None: it misses the image)."""
    height, width = shape[:2]
    r = max(float(radius), 0.5)
    return clip_box(
        (
            int(np.floor(min(p0[0], p1[0]) - r)),
            int(np.floor(min(p0[1], p1[1]) - r)),
            int(np.ceil(max(p0[0], p1[0]) + r)) + 1,
            int(np.ceil(max(p0[1], p1[1]) + r)) + 1,
        ),
        width,
        height,
    )


def paint_segment(
    mask: np.ndarray, p0: Point, p1: Point, radius: float, value: bool = True
) -> Box | None:
    """Paints a round-capped line of the given radius from p0 to p1 (a dot when equal).

    A pixel is painted when its centre lies within `radius` of the segment, so consecutive
    mouse positions joined this way leave no gaps however fast the pointer moves.

    Returns:
        The changed box, or None when the segment misses the image.
    """
    box = segment_box(mask.shape, p0, p1, radius)
    if box is None:
        return None
    r = max(float(radius), 0.5)
    x0, y0, x1, y1 = box
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    ax, ay = p0
    dx, dy = p1[0] - ax, p1[1] - ay
    length2 = dx * dx + dy * dy
    if length2 == 0:
        t = np.zeros((1, 1), np.float32)
    else:  # projection of each pixel centre onto the segment, clamped to its ends
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0)
    dist2 = (px - (ax + t * dx)) ** 2 + (py - (ay + t * dy)) ** 2
    mask[y0:y1, x0:x1][dist2 <= r * r] = value
    return box


def fill_polygon(mask: np.ndarray, points: Sequence[Point], value: bool = True) -> Box | None:
    """Fills a closed polygon (lasso) given in image pixel coordinates."""
    if len(points) < 3:
        return None
    height, width = mask.shape
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    box = clip_box(
        (
            int(np.floor(min(xs))),
            int(np.floor(min(ys))),
            int(np.ceil(max(xs))) + 1,
            int(np.ceil(max(ys))) + 1,
        ),
        width,
        height,
    )
    if box is None:
        return None
    x0, y0, x1, y1 = box
    # Rasterise only the box; Pillow's scanline fill follows the usual even-odd rule.
    canvas = Image.new("1", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(canvas).polygon([(x - x0, y - y0) for x, y in points], fill=1, outline=1)
    inside = np.asarray(canvas, dtype=bool)
    mask[y0:y1, x0:x1][inside] = value
    return box


def fill_rect(mask: np.ndarray, corner_a: Point, corner_b: Point, value: bool = True) -> Box | None:
    """Fills the pixels whose centres lie inside the rectangle spanned by two corners."""
    height, width = mask.shape
    left, right = sorted((corner_a[0], corner_b[0]))
    top, bottom = sorted((corner_a[1], corner_b[1]))
    box = clip_box(
        (
            int(np.floor(left + 0.5)),
            int(np.floor(top + 0.5)),
            int(np.floor(right + 0.5)),
            int(np.floor(bottom + 0.5)),
        ),
        width,
        height,
    )
    if box is None:
        return None
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = value
    return box


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square dilation by `radius` pixels (the engine's, on the mask's bounding box only)."""
    return dilate_pixels(mask, radius)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square erosion by `radius` pixels; the image border does not eat into the mask."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    return ~_box_any(~mask, radius, border_value=False)


def _box_any(mask: np.ndarray, radius: int, border_value: bool = False) -> np.ndarray:
    """True where any pixel in the (2r+1)^2 window is True; O(size) via cumulative sums."""
    counts = mask.astype(np.int32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        padded = np.pad(counts, pad, constant_values=int(border_value))
        sums = np.cumsum(padded, axis=axis, dtype=np.int32)
        width = 2 * radius + 1
        lead = [slice(None), slice(None)]
        tail = [slice(None), slice(None)]
        lead[axis], tail[axis] = slice(width, None), slice(None, -width)
        counts = sums[tuple(lead)] - sums[tuple(tail)]
    return counts > 0
