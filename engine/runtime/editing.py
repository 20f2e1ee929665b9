"""Editing, generation and outpainting on images of any size.

An edit works on a *context square* around the mask: the square is cut from the image (edge
pixels repeated where it runs past the border), resized to the model size, the painted pixels are
zeroed, the square is tokenised, every token the mask touches plus a ring is masked (MAGE
authors' recipe), the tokens are refilled by iterative decoding, decoded, resized back and
composited through a feathered mask. Every pixel outside the grown token area keeps its exact
input value; the alpha channel is never touched.

Each run is a generator of `DecodeStep`s (progress, preview, cancel between steps) that returns
an `EditResult`; `run_to_result` drives one to the end.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from engine.runtime.blending import seamless_fill
from engine.runtime.bundle import Bundle
from engine.runtime.decode import DecodeStep, decode, make_rngs
from engine.runtime.errors import ImageError, MaskError
from engine.runtime.manifest import Manifest
from engine.runtime.masking import (
    composite,
    dilate_pixels,
    feather_alpha,
    mask_bbox,
    token_mask_from_pixels,
)
from engine.runtime.schedule import masked_counts
from engine.runtime.speed import (
    EXACT,
    Speed,
    decode_region,
    encode_with_reuse,
    scaled_steps,
    transformer_model,
)


@dataclass(frozen=True)
class Settings:
    """What the user chose; None means the bundle's default."""
    steps: int | None = None
    temperature: float | None = None
    seeds: tuple[int, ...] = (0,)        # one candidate per seed
    ring: int = 1                        # extra token ring around the touched tokens
    coverage: float = 0.0                # fraction of a token's pixels needed to mask it
    feather: float | None = None         # px at image scale; None = 3/4 of a token
    start_step: int = 0
    class_name: str | None = None        # "fill as class X" / class-conditional generation
    guidance: float = 0.0                # classifier-free guidance strength (class models)
    context: float = 2.0                 # context square side / mask bounding-box side
    speed: Speed = EXACT                 # speed options (runtime/speed.py); default exact
    sample_temperature: float | None = None  # softmax temperature of the token sampling
    colour_match: bool = True            # fit the fill's colours to the known surroundings
    seamless: bool = True                # gradient-domain blend: the fill meets the photo

    def for_masked(self, manifest: Manifest, masked: int) -> Settings:
        """Resolved settings with the speed options' step scaling applied for `masked` unknown
        tokens (unchanged unless speed.scale_steps; never with a start_step)."""
        s = self.resolved(manifest)
        if not s.speed.scale_steps or s.start_step:
            return s
        return replace(s, steps=scaled_steps(s.steps, masked, manifest.seq_len,
                                             s.speed.min_steps))

    def resolved(self, manifest: Manifest) -> Settings:
        d = manifest.decoding
        return replace(self, steps=self.steps or int(d.get("steps", 12)),
                       temperature=(self.temperature if self.temperature is not None
                                    else float(d.get("choice_temperature", 4.5))),
                       sample_temperature=(self.sample_temperature
                                           if self.sample_temperature is not None
                                           else float(d.get("sample_temperature", 1.0))))

    def describe(self, manifest: Manifest) -> dict[str, str]:
        """The settings as PNG text-chunk entries."""
        s = self.resolved(manifest)
        return {"mage:model": manifest.name, "mage:seeds": ",".join(map(str, s.seeds)),
                "mage:steps": str(s.steps), "mage:temperature": f"{s.temperature:g}",
                "mage:class": s.class_name or "", "mage:ring": str(s.ring),
                "mage:guidance": f"{s.guidance:g}",
                "mage:sample_temperature": f"{s.sample_temperature:g}",
                "mage:seamless": "yes" if s.seamless else "no",
                **({} if s.speed.exact else {"mage:speed": s.speed.name})}


@dataclass(frozen=True)
class Square:
    """A square in image pixel coordinates; may extend past the image border."""
    x0: int
    y0: int
    side: int

    def clip(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The part inside the image as (x0, y0, x1, y1)."""
        return (max(self.x0, 0), max(self.y0, 0),
                min(self.x0 + self.side, width), min(self.y0 + self.side, height))


@dataclass
class EditJob:
    """Everything prepared before the model runs (the GUI shows cost from here)."""
    manifest: Manifest
    rgb: np.ndarray               # uint8 [H,W,3] full-resolution input
    painted: np.ndarray           # bool [H,W] the user's mask
    square: Square
    model_image: np.ndarray       # float32 [3,S,S] context square at model size, hole zeroed
    token_mask: np.ndarray        # bool [h,w] tokens to regenerate
    tokens: np.ndarray | None = None  # int64 [N] input tokens once encoded (mask ids set)
    model_pixels: np.ndarray | None = None  # float32 [3,S,S] the square before zeroing
    model_mask: np.ndarray | None = None    # bool [S,S] the zeroed model pixels

    @property
    def masked_count(self) -> int:
        return int(self.token_mask.sum())

    def cost(self, steps: int, start_step: int = 0) -> int:
        """Token predictions the run will make: masked tokens entering each step, summed."""
        if not self.masked_count:
            return 0
        return int(sum(masked_counts(self.masked_count, steps, start_step)))


@dataclass
class EditResult:
    images: list[np.ndarray]      # uint8 [H,W,3] per candidate (full-resolution composites)
    seeds: tuple[int, ...]
    tokens: np.ndarray            # int64 [B,N] final tokens
    confidence: np.ndarray        # float32 [B,N]
    history: list[np.ndarray] = field(default_factory=list)  # int64 [B,N] after each step
    square: Square | None = None
    token_mask: np.ndarray | None = None
    settings: Settings | None = None


# -- geometry ---------------------------------------------------------------------------------

def context_square(bbox: tuple[int, int, int, int], width: int, height: int, min_side: int,
                   context: float = 2.0) -> Square:
    """A square around the mask's bounding box with room for context, kept inside the image
    where the image is large enough."""
    x0, y0, x1, y1 = bbox
    want = max(math.ceil(max(x1 - x0, y1 - y0) * context), min_side)
    side = min(want, max(width, height))
    side = max(side, x1 - x0, y1 - y0, 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def place(center: float, extent: int) -> int:
        start = int(round(center - side / 2))
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


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))


def mask_to_model(painted_sq: np.ndarray, size: int) -> np.ndarray:
    """Any-overlap downscale: a model pixel is masked if any image pixel inside it is."""
    if painted_sq.shape[0] == size:
        return painted_sq.copy()
    m = Image.fromarray(painted_sq.astype(np.float32), mode="F")
    return np.asarray(m.resize((size, size), Image.Resampling.BOX)) > 0


def cell_index(side: int, size: int, down: int) -> np.ndarray:
    """For each image pixel along a square side, the token cell it falls in (BOX-consistent)."""
    return (np.arange(side) * size // side) // down


# -- jobs -------------------------------------------------------------------------------------

def _check_inputs(rgb: np.ndarray, mask: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an RGB uint8 image, got {rgb.dtype} {rgb.shape}")
    if mask.shape != rgb.shape[:2]:
        raise MaskError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                        f"{rgb.shape[1]}x{rgb.shape[0]}")


def map_mask(manifest: Manifest, mask: np.ndarray, bbox: tuple[int, int, int, int],
             settings: Settings = Settings()) -> tuple[Square, np.ndarray, np.ndarray]:
    """The context square of a mask, the mask at model size (bool [S,S]) and the tokens to
    regenerate (bool [h,w]): the one mapping the engine and the editor's token grid share."""
    h, w = mask.shape
    size = manifest.image_size
    sq = context_square(bbox, w, h, min_side=min(size, max(w, h)), context=settings.context)
    painted_sq = cut_square(mask[..., None], sq)[..., 0]
    # pixels of the padding past the border never count as painted
    ys, xs = np.arange(sq.y0, sq.y0 + sq.side), np.arange(sq.x0, sq.x0 + sq.side)
    painted_sq &= ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
    model_mask = mask_to_model(painted_sq, size)
    token_mask = token_mask_from_pixels(model_mask, manifest.grid, settings.ring,
                                        settings.coverage)
    return sq, model_mask, token_mask


def prepare_edit(manifest: Manifest, rgb: np.ndarray, mask: np.ndarray,
                 settings: Settings = Settings()) -> EditJob:
    """Cut the context square, map the mask to tokens. Raises MaskError for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    _check_inputs(rgb, mask)
    bbox = mask_bbox(mask)
    if bbox is None:
        raise MaskError("the mask is empty: paint the area to refill")
    sq, model_mask, token_mask = map_mask(manifest, mask, bbox, settings)
    if not token_mask.any():
        raise MaskError(f"the mask covers no token at coverage {settings.coverage:g}: "
                        "paint more or lower the coverage")
    pixels = resize_rgb(cut_square(rgb, sq), manifest.image_size).astype(np.float32) / 255.0
    whole = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    pixels[model_mask] = 0.0  # zero the hole before tokenising, as the MAGE authors do
    return EditJob(manifest, rgb, mask, sq, np.ascontiguousarray(pixels.transpose(2, 0, 1)),
                   token_mask, model_pixels=whole, model_mask=model_mask)


def encode_job(bundle: Bundle, job: EditJob, speed: Speed = EXACT) -> np.ndarray:
    """Tokenise the context square once; masked positions get the mask id. int64 [N].
    With speed.reuse_tokens, squares seen before are (partly) re-used (runtime/speed.py)."""
    if job.tokens is None:
        if speed.reuse_tokens and job.model_pixels is not None and job.model_mask is not None:
            tokens = encode_with_reuse(bundle, job.model_pixels, job.model_mask,
                                       speed.encode_margin, crop=speed.crop_encode).reshape(-1)
        else:
            tokens = bundle.encode(job.model_image[None])[0].reshape(-1)
        tokens[job.token_mask.reshape(-1)] = job.manifest.mask_token_id
        job.tokens = tokens
    return job.tokens


def _decode_batch(bundle: Bundle, tokens: np.ndarray, settings: Settings
                  ) -> Generator[DecodeStep, None, tuple[DecodeStep, list[np.ndarray]]]:
    masked = int((tokens[0] == bundle.manifest.mask_token_id).sum())
    s = settings.for_masked(bundle.manifest, masked)
    class_id = bundle.manifest.class_id(s.class_name) if s.class_name else None
    fn = bundle.tokens_to_logits(class_id, s.guidance, model=transformer_model(bundle, s.speed))
    history, last = [], None
    for step in decode(tokens, fn, mask_token_id=bundle.manifest.mask_token_id, steps=s.steps,
                       choice_temperature=s.temperature, rngs=make_rngs(s.seeds),
                       start_step=s.start_step, sample_temperature=s.sample_temperature):
        history.append(step.tokens.copy())
        last = step
        yield step
    return last, history


def decode_images(bundle: Bundle, tokens: np.ndarray) -> np.ndarray:
    """int64 [B,N] -> uint8 [B,S,S,3]."""
    gh, gw = bundle.manifest.grid
    out = bundle.decode(tokens.reshape(len(tokens), gh, gw))
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def paste_back(job: EditJob, generated: np.ndarray, feather: float | None) -> np.ndarray:
    """Composite one model-size square (uint8 [S,S,3]) into the full image."""
    m, sq = job.manifest, job.square
    h, w = job.rgb.shape[:2]
    x0, y0, x1, y1 = sq.clip(w, h)
    big = resize_rgb(generated, sq.side)[y0 - sq.y0:y1 - sq.y0, x0 - sq.x0:x1 - sq.x0]
    cy = cell_index(sq.side, m.image_size, m.downsample)[y0 - sq.y0:y1 - sq.y0]
    cx = cell_index(sq.side, m.image_size, m.downsample)[x0 - sq.x0:x1 - sq.x0]
    region = job.token_mask[cy[:, None], cx[None, :]]
    cell_px = sq.side / m.grid[0]
    radius = max(2.0, 0.5 * cell_px) if feather is None else feather
    painted = job.painted[y0:y1, x0:x1]
    # The ring tokens are regenerated only so the model never sees the zeroed hole; their
    # original pixels are still good, so the fill covers the painted area and fades out over
    # `radius` px into the ring, and the rest of the ring keeps its input pixels.
    region &= dilate_pixels(painted, math.ceil(radius))
    alpha = feather_alpha(region, painted, radius)
    out = job.rgb.copy()
    out[y0:y1, x0:x1] = composite(job.rgb[y0:y1, x0:x1], big, alpha)
    return out


def run_edit(bundle: Bundle, job: EditJob, settings: Settings = Settings(),
             tokens: np.ndarray | None = None) -> Generator[DecodeStep, None, EditResult]:
    """Refill the job's masked tokens for each seed. `tokens` (int64 [B,N] or [N]) overrides the
    start state, e.g. a previous result with its least confident tokens re-masked."""
    start = encode_job(bundle, job, settings.speed) if tokens is None else tokens
    start = np.broadcast_to(start, (len(settings.seeds), start.shape[-1])).copy()
    last, history = yield from _decode_batch(bundle, start, settings)
    if settings.speed.region_decode:
        background = None
        if job.model_pixels is not None:
            background = (job.model_pixels.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        squares = decode_region(bundle, last.tokens, job.token_mask,
                                settings.speed.decode_margin, background)
    else:
        squares = decode_images(bundle, last.tokens)
    images = finish_fills(job, squares, settings)
    return EditResult(images, tuple(settings.seeds), last.tokens, last.confidence, history,
                      job.square, job.token_mask, settings)


def finish_fills(job: EditJob, squares: np.ndarray, settings: Settings) -> list[np.ndarray]:
    """Decoded squares (uint8 [B,S,S,3]) -> full-resolution composites: colours matched to the
    surroundings, blended in seamlessly, pasted back over the painted area."""
    if settings.colour_match:
        squares = match_colours(squares, job.model_image, ~pixel_token_mask(job))
    if settings.seamless and job.model_pixels is not None and job.model_mask is not None:
        squares = seamless_fill(squares, job.model_pixels, job.model_mask, real_pixels(job))
    return [paste_back(job, g, settings.feather) for g in squares]


def real_pixels(job: EditJob) -> np.ndarray:
    """bool [S,S]: model-size pixels made only of image pixels (not of the edge padding that a
    square running past the border gets) and outside the hole."""
    h, w = job.rgb.shape[:2]
    sq, size = job.square, job.manifest.image_size

    def real(start: int, extent: int) -> np.ndarray:
        """Model pixels along one side that overlap no padding (any-overlap, like the mask)."""
        coords = np.arange(start, start + sq.side)
        padded = np.concatenate([[0], np.cumsum((coords < 0) | (coords >= extent))])
        i = np.arange(size)
        first, end = i * sq.side // size, -((-(i + 1) * sq.side) // size)
        return padded[end] == padded[first]

    return real(sq.y0, h)[:, None] & real(sq.x0, w)[None, :] & ~job.model_mask


def pixel_token_mask(job: EditJob) -> np.ndarray:
    """bool [S,S]: the model-size pixels of the regenerated tokens."""
    down = job.manifest.downsample
    return np.repeat(np.repeat(job.token_mask, down, axis=0), down, axis=1)


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


def run_generate(bundle: Bundle, settings: Settings = Settings()
                 ) -> Generator[DecodeStep, None, EditResult]:
    """Generate whole images (class-conditional when settings.class_name is set)."""
    m = bundle.manifest
    tokens = np.full((len(settings.seeds), m.seq_len), m.mask_token_id, np.int64)
    last, history = yield from _decode_batch(bundle, tokens, settings)
    images = list(decode_images(bundle, last.tokens))
    return EditResult(images, tuple(settings.seeds), last.tokens, last.confidence, history,
                      None, np.ones(m.grid, bool), settings)


def run_to_result(gen: Generator[DecodeStep, None, EditResult],
                  on_step=None) -> EditResult:
    """Drive a run to its end, calling `on_step(step)` after each decoding step."""
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)


def edit_image(bundle: Bundle, rgb: np.ndarray, mask: np.ndarray,
               settings: Settings = Settings(), on_step=None,
               parts: list[np.ndarray] | None = None) -> EditResult:
    """Edit every separate part of the mask in its own context square (so two small objects
    far apart are each refilled at full detail, not inside one huge blurry square), one after
    the other; candidate i of the result combines candidate i of every part."""
    mask = np.asarray(mask, dtype=bool)
    _check_inputs(rgb, mask)
    if parts is None:
        parts = mask_parts(bundle.manifest, mask, settings)
    if len(parts) <= 1:
        job = prepare_edit(bundle.manifest, rgb, mask, settings)
        return run_to_result(run_edit(bundle, job, settings), on_step)
    images = [rgb.copy() for _ in settings.seeds]
    results = []
    for part in parts:
        job = prepare_edit(bundle.manifest, rgb, part, settings)
        result = run_to_result(run_edit(bundle, job, settings), on_step)
        paste_part(images, job, result)
        results.append(result)
    last = results[-1]
    return EditResult(images, last.seeds, last.tokens, last.confidence, last.history,
                      last.square, last.token_mask, settings)


def paste_part(images: list[np.ndarray], job: EditJob, result: EditResult) -> None:
    """Copy one part's context square of every candidate into the combined images (in place).
    mask_parts keeps the squares apart, so a square is copied whole."""
    h, w = images[0].shape[:2]
    x0, y0, x1, y1 = job.square.clip(w, h)
    for out, image in zip(images, result.images, strict=True):
        out[y0:y1, x0:x1] = image[y0:y1, x0:x1]


def mask_parts(manifest: Manifest, mask: np.ndarray, settings: Settings = Settings()
               ) -> list[np.ndarray]:
    """Split a mask into groups of connected parts whose context squares do not overlap.

    Parts are found on a coarse grid (at most 256 cells a side) so huge images stay fast; parts
    whose squares would overlap are merged and edited together, since each edit must see the
    other's surroundings unchanged. The groups come in raster order of their first part.

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
    coarse = cells.any(axis=(1, 3))
    labels = _label(coarse)
    count = int(labels.max())
    if count <= 1:
        return [mask.copy()] if count else []
    boxes = _part_boxes(cells, labels, count, block)
    min_side = min(manifest.image_size, max(w, h))
    groups = _merge_boxes(boxes, lambda box: context_square(box, w, h, min_side,
                                                            settings.context),
                          max(min_side, math.ceil(max(w, h) / 32), 1), max(w, h))
    lut = np.zeros(count + 1, np.int32)
    for number, members in enumerate(groups, start=1):
        lut[np.asarray(members) + 1] = number
    grouped = lut[labels]
    parts = []
    for number, members in enumerate(groups, start=1):
        x0, y0, x1, y1 = _union_box(boxes[m] for m in members)
        # the group's coarse cells over its bounding box only: no full-image work per group
        cx0, cy0, cx1, cy1 = x0 // block, y0 // block, -(-x1 // block), -(-y1 // block)
        own = grouped[cy0:cy1, cx0:cx1] == number
        own = np.repeat(np.repeat(own, block, 0), block, 1)
        oy, ox = cy0 * block, cx0 * block
        part = np.zeros((h, w), bool)
        part[y0:y1, x0:x1] = own[y0 - oy:y1 - oy, x0 - ox:x1 - ox] & mask[y0:y1, x0:x1]
        parts.append(part)
    return parts


def _part_boxes(cells: np.ndarray, labels: np.ndarray, count: int, block: int) -> np.ndarray:
    """int64 [count, 4]: the exact pixel bounding box (x0, y0, x1, y1) of each labelled part,
    from `cells` (the mask as [gh, block, gw, block]) in one pass."""
    gh, _, gw, _ = cells.shape
    rows = cells.any(axis=3).transpose(0, 2, 1)          # [gh, gw, block]: row has a pixel
    cols = cells.any(axis=1)                              # [gh, gw, block]: column has one
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
        return (slice((sq.y0 + extent) // cell, (sq.y0 + sq.side - 1 + extent) // cell + 1),
                slice((sq.x0 + extent) // cell, (sq.x0 + sq.side - 1 + extent) // cell + 1))

    last = -1                                      # the group the previous box went to
    for index in range(len(boxes)):
        box = tuple(int(v) for v in boxes[index])
        if last in live and _union_box((box, box_of[last])) == box_of[last]:
            members[last].append(index)   # inside that group's box: its square stays
            continue
        group = [index]
        while True:
            sq = square(box)
            ids = owners[region(sq)]
            hits = [other for other in np.unique(ids[ids >= 0]).tolist()
                    if _overlap(sq, live[other])]
            inside = [other for other in hits
                      if _union_box((box, box_of[other])) == box_of[other]]
            if inside:
                members[inside[0]] += group    # inside a group's box: its square stays
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
        if not free.any(axis=-1).all():            # a crowded cell: more slots everywhere
            owners = np.concatenate([owners, np.full_like(owners, -1)], axis=-1)
            ids = owners[region(sq)]
            free = ids < 0
        np.put_along_axis(ids, free.argmax(-1)[..., None], index, axis=-1)
    return sorted((sorted(group) for group in members.values()), key=lambda g: g[0])


def _overlap(a: Square, b: Square) -> bool:
    return (a.x0 < b.x0 + b.side and b.x0 < a.x0 + a.side
            and a.y0 < b.y0 + b.side and b.y0 < a.y0 + a.side)


def _label(grid: np.ndarray) -> np.ndarray:
    """8-connected component labels (1..n, 0 = background, numbered in raster order of their
    first pixel) of a small bool grid. Works on horizontal runs joined by union-find, so a
    large blob costs one step per row, not one per pixel, and a row's runs meet the runs above
    in one merge-like walk."""
    grid = np.asarray(grid, bool)
    runs: list[tuple[int, int, int]] = []          # (row, first col, last col)
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
        labels[y, s:e + 1] = numbers.setdefault(root(i), len(numbers) + 1)
    return labels


# -- outpainting ------------------------------------------------------------------------------

SIDES = ("left", "right", "top", "bottom")


def extend_canvas(bundle: Bundle, rgb: np.ndarray, side: str, cells: int,
                  settings: Settings = Settings(), on_step=None) -> EditResult:
    """Grow the canvas on one side by `cells` tokens (at the scale of a square as tall/wide as
    the image's shorter side) and fill the new strip. Long edges are covered by overlapping
    squares, each seeing what the previous one generated."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}")
    if cells < 1:
        raise ValueError("extend by at least one token")
    # rotate so the extension is always on the right, then rotate back
    turns = {"right": 0, "bottom": 1, "left": 2, "top": 3}[side]  # np.rot90 turns counter-clockwise
    img = np.rot90(rgb, turns).copy()
    m = bundle.manifest
    h, w = img.shape[:2]
    side_px = min(h, w)
    strip = max(1, round(cells * m.downsample * side_px / m.image_size))
    if strip >= side_px:
        raise MaskError(f"extend by fewer than {m.grid[1]} tokens")
    canvas = np.concatenate([img, np.repeat(img[:, -1:], strip, axis=1)], axis=1)
    painted = np.zeros(canvas.shape[:2], bool)
    painted[:, w:] = True
    result = None
    for top in _tile_starts(h, side_px):
        sq = Square(w + strip - side_px, top, side_px)
        result = _fill_square(bundle, canvas, painted, sq, settings, on_step)
        canvas = result.images[0]
        painted[top:top + side_px, w:] = False
    result.images = [np.rot90(canvas, -turns).copy()]
    return result


def _tile_starts(extent: int, side: int) -> list[int]:
    n = math.ceil(extent / side)
    if n == 1:
        return [0]
    return [round(i * (extent - side) / (n - 1)) for i in range(n)]


def _fill_square(bundle, canvas, painted, sq, settings, on_step) -> EditResult:
    m = bundle.manifest
    ys, xs = slice(sq.y0, sq.y0 + sq.side), slice(sq.x0, sq.x0 + sq.side)
    model_mask = mask_to_model(painted[ys, xs], m.image_size)
    token_mask = token_mask_from_pixels(model_mask, m.grid, settings.ring, settings.coverage)
    pixels = resize_rgb(canvas[ys, xs], m.image_size).astype(np.float32) / 255.0
    whole = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    pixels[model_mask] = 0.0
    job = EditJob(m, canvas, painted.copy(), sq, np.ascontiguousarray(pixels.transpose(2, 0, 1)),
                  token_mask, model_pixels=whole, model_mask=model_mask)
    one = replace(settings, seeds=settings.seeds[:1])
    return run_to_result(run_edit(bundle, job, one), on_step)


def seeds_from(seed: int | None, count: int, rng: np.random.Generator | None = None
               ) -> tuple[int, ...]:
    """`count` seeds: seed, seed+1, ... or random ones when seed is None."""
    if seed is None:
        rng = rng or np.random.default_rng()
        return tuple(int(s) for s in rng.integers(0, 2**31 - 1, size=count))
    return tuple(seed + i for i in range(count))

