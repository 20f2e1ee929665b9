"""Putting decoded squares back into the photo, on crop-local patches.

A decoded square (model size) is colour-matched to the known surroundings, blended in
seamlessly (gradient domain, engine/runtime/blending.py), resized to the context square and
composited through a feathered mask over the part of the square inside the image. Everything
works on the square's crop of the image: a result is a `Patch` (x0, y0, pixels), never a copy
of the whole image. Every pixel outside the grown token area keeps its exact input value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.runtime.blending import seamless_fill
from engine.runtime.manifest import Manifest
from engine.runtime.masking import composite, dilate_pixels, feather_alpha
from engine.runtime.plan import Part, cell_index
from engine.runtime.settings import Settings


@dataclass(frozen=True, eq=False)
class Patch:
    """Pixels at (x0, y0) in image coordinates: uint8 [h, w, 3]."""

    x0: int
    y0: int
    rgb: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.rgb.shape[:2]
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def paste(self, image: np.ndarray) -> None:
        """Writes the patch into `image` (in place)."""
        x0, y0, x1, y1 = self.box
        image[y0:y1, x0:x1] = self.rgb


def paste_all(image: np.ndarray, patches) -> np.ndarray:
    """A copy of `image` with `patches` written in order."""
    out = image.copy()
    for patch in patches:
        patch.paste(out)
    return out


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))


def compose_squares(
    manifest: Manifest,
    part: Part,
    crop: np.ndarray,
    model_pixels: np.ndarray,
    squares: np.ndarray,
    settings: Settings,
    shape: tuple[int, int],
) -> list[Patch]:
    """Decoded squares (uint8 [B,S,S,3]) -> one patch per candidate over `part.box`: colours
    matched to the surroundings, blended in seamlessly, feathered over the painted area.

    Args:
        crop: uint8 [h,w,3] the image over part.box.
        model_pixels: float32 [3,S,S] in [0,1], the context square at model size.
        shape: (height, width) of the image.
    """
    if settings.colour_match:
        reference = model_pixels.copy()
        reference[:, part.model_mask] = 0.0
        squares = match_colours(
            squares, reference, ~pixel_token_mask(part.token_mask, manifest.downsample)
        )
    if settings.seamless:
        squares = seamless_fill(
            squares, model_pixels, part.model_mask, real_pixels(part, manifest.image_size, shape)
        )
    return [feather_in(manifest, part, crop, g, settings.feather) for g in squares]


def feather_in(
    manifest: Manifest, part: Part, crop: np.ndarray, generated: np.ndarray, feather: float | None
) -> Patch:
    """Composite one model-size square (uint8 [S,S,3]) over the crop."""
    m, sq = manifest, part.square
    x0, y0, x1, y1 = part.box
    big = resize_rgb(generated, sq.side)[y0 - sq.y0 : y1 - sq.y0, x0 - sq.x0 : x1 - sq.x0]
    cells = cell_index(sq.side, m.image_size, m.downsample)
    cy, cx = cells[y0 - sq.y0 : y1 - sq.y0], cells[x0 - sq.x0 : x1 - sq.x0]
    region = part.token_mask[cy[:, None], cx[None, :]]
    cell_px = sq.side / m.grid[0]
    radius = max(2.0, 0.5 * cell_px) if feather is None else feather
    # The ring tokens are regenerated only so the model never sees the zeroed hole; their
    # original pixels are still good, so the fill covers the painted area and fades out over
    # `radius` px into the ring, and the rest of the ring keeps its input pixels.
    region &= dilate_pixels(part.painted, math.ceil(radius))
    alpha = feather_alpha(region, part.painted, radius)
    return Patch(x0, y0, composite(crop, big, alpha))


def real_pixels(part: Part, size: int, shape: tuple[int, int]) -> np.ndarray:
    """bool [S,S]: model-size pixels made only of image pixels (not of the edge padding that a
    square running past the border gets) and outside the hole."""
    h, w = shape
    sq = part.square

    def real(start: int, extent: int) -> np.ndarray:
        """Model pixels along one side that overlap no padding (any-overlap, like the mask)."""
        coords = np.arange(start, start + sq.side)
        padded = np.concatenate([[0], np.cumsum((coords < 0) | (coords >= extent))])
        i = np.arange(size)
        first, end = i * sq.side // size, -((-(i + 1) * sq.side) // size)
        return padded[end] == padded[first]

    return real(sq.y0, h)[:, None] & real(sq.x0, w)[None, :] & ~part.model_mask


def pixel_token_mask(token_mask: np.ndarray, down: int) -> np.ndarray:
    """bool [S,S]: the model-size pixels of the regenerated tokens."""
    return np.repeat(np.repeat(token_mask, down, axis=0), down, axis=1)


def match_colours(squares: np.ndarray, reference: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per-channel gain and offset that map each decoded square onto the input where the input
    is known, applied to the whole square.

    The tokenizer's GroupNorm statistics span the whole square, so new tokens in the hole can
    shift the colours of everything it decodes; the known surroundings say by how much.

    Args:
        squares: uint8 [B,S,S,3] decoded candidates.
        reference: float32 [3,S,S] in [0,1], the input square (valid where `known`).
        known: bool [S,S] pixels whose tokens were kept.
    """
    if known.sum() < 64:  # (nearly) everything regenerated: nothing to match against
        return squares
    target = reference.transpose(1, 2, 0)[known] * 255.0  # (K,3)
    out = np.empty_like(squares)
    for i, square in enumerate(squares):
        source = square[known].astype(np.float32)
        gain = target.std(0) / np.maximum(source.std(0), 1.0)
        gain = np.clip(gain, 0.5, 2.0)
        offset = target.mean(0) - gain * source.mean(0)
        out[i] = np.clip(square * gain + offset + 0.5, 0, 255).astype(np.uint8)
    return out
