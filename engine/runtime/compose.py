"""Putting decoded squares back into the photo, on crop-local patches.

A decoded square (model size) is colour-matched to the known surroundings. By default it then
guides a texture synthesis from the photo's own pixels (engine/runtime/texture.py): the model
says what goes where, the photo how it looks. Model-only fills are blended in seamlessly
instead (gradient domain, engine/runtime/blending.py). The result is composited through a
feather that lies inside the painted area. Everything works on the square's crop of the
image: a result is a `Patch` (x0, y0, pixels), never a copy of the whole image. Every pixel
outside the painted mask keeps its exact input value.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.runtime.blending import seamless_fill
from engine.runtime.manifest import Manifest
from engine.runtime.masking import composite, dilate_pixels
from engine.runtime.plan import Part
from engine.runtime.settings import Settings
from engine.runtime.texture import finish, synthesis

# px: the fill fades in over this many pixels inside the painted area
DEFAULT_FEATHER = 1.0


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
    """Decoded squares (uint8 [B,S,S,3]) -> one patch per candidate over `part.box`.

    With `settings.texture == "photo"` the colour-matched decode guides a texture synthesis
    from the photo's own pixels (engine/runtime/texture.py); with "model" the decode itself is
    blended in seamlessly. Either way only the painted pixels change. Runs to the end;
    `composition` is the same as a generator that can be stopped between texture rounds.

    Args:
        crop: uint8 [h,w,3] the image over part.box.
        model_pixels: float32 [3,S,S] in [0,1], the context square at model size.
        shape: (height, width) of the image.
    """
    return finish(composition(manifest, part, crop, model_pixels, squares, settings, shape))


def composition(
    manifest: Manifest,
    part: Part,
    crop: np.ndarray,
    model_pixels: np.ndarray,
    squares: np.ndarray,
    settings: Settings,
    shape: tuple[int, int],
) -> Generator[None, None, list[Patch]]:
    """`compose_squares`, yielding between the texture stage's search rounds."""
    if settings.colour_match:
        squares = colour_matched(manifest, part, model_pixels, squares)
    if settings.texture == "photo":
        patches = []
        for square, seed in zip(squares, _seeds(settings, len(squares)), strict=True):
            guide = resize_rgb(square, part.square.side)[_in_square(part)]
            rgb = yield from texture_fill(crop, part.painted, guide, seed, settings)
            patches.append(Patch(part.box[0], part.box[1], rgb))
        return patches
    if settings.seamless:
        squares = seamless_fill(
            squares, model_pixels, part.model_mask, real_pixels(part, manifest.image_size, shape)
        )
    return [feather_in(part, crop, g, settings.feather) for g in squares]


def preview_patch(part: Part, crop: np.ndarray, square: np.ndarray) -> Patch:
    """A cheap look at a decoding step: the raw decode (uint8 [S,S,3]) pasted over the
    painted area, no colour match, blend or texture."""
    return feather_in(part, crop, square, None)


def colour_matched(
    manifest: Manifest, part: Part, model_pixels: np.ndarray, squares: np.ndarray
) -> np.ndarray:
    reference = model_pixels.copy()
    reference[:, part.model_mask] = 0.0
    return match_colours(
        squares, reference, ~pixel_token_mask(part.token_mask, manifest.downsample)
    )


def texture_fill(
    crop: np.ndarray, painted: np.ndarray, guide: np.ndarray | None, seed: int, settings: Settings
) -> Generator[None, None, np.ndarray]:
    """The painted pixels of `crop` synthesised from its other pixels, following `guide`
    (uint8 [h,w,3] the model's fill over the crop; None: classic completion), then feathered
    in inside the painted area. uint8 [h,w,3]."""
    filled = yield from synthesis(crop, painted, guide, seed=seed, options=settings.texture_options)
    alpha = inner_feather(painted, _feather_radius(settings.feather))
    return composite(crop, filled, alpha)


def feather_in(part: Part, crop: np.ndarray, generated: np.ndarray, feather: float | None) -> Patch:
    """Composite one model-size square (uint8 [S,S,3]) over the crop, inside the painted
    area only."""
    big = resize_rgb(generated, part.square.side)[_in_square(part)]
    alpha = inner_feather(part.painted, _feather_radius(feather))
    return Patch(part.box[0], part.box[1], composite(crop, big, alpha))


def inner_feather(painted: np.ndarray, radius: float) -> np.ndarray:
    """float32 [h,w] blend weights: 0 outside the painted area, (d + 1) / (R + 1) at d px
    inside its edge (R = ceil(radius)), 1 deeper in. Pixels outside the user's mask never
    change; the image border is no edge (a hole touching it is filled right up to it)."""
    alpha = painted.astype(np.float32)
    reach = math.ceil(radius)
    for depth in range(reach - 1, -1, -1):  # outermost ring last, so it keeps its own weight
        ring = painted & dilate_pixels(~painted, depth + 1)
        alpha[ring] = (depth + 1) / (reach + 1)
    return alpha


def _feather_radius(feather: float | None) -> float:
    return DEFAULT_FEATHER if feather is None else max(float(feather), 0.0)


def _in_square(part: Part) -> tuple[slice, slice]:
    """The part's box as slices into its context square."""
    x0, y0, x1, y1 = part.box
    sq = part.square
    return slice(y0 - sq.y0, y1 - sq.y0), slice(x0 - sq.x0, x1 - sq.x0)


def _seeds(settings: Settings, count: int) -> tuple[int, ...]:
    seeds = tuple(settings.seeds)
    return seeds[:count] if len(seeds) >= count else seeds + tuple(range(len(seeds), count))


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
