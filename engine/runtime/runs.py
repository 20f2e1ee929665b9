"""One run generator for every mode: edit (any number of parts, with or without a class),
re-roll, generate and extend.

`run(bundle, request, settings)` yields a `Step` after every decoding step (progress and, at
most every `preview_interval` seconds, a crop-local preview of the first candidate) and returns
a `RunResult` whose candidates hold crop-local `Patch`es. Cancelling is closing the generator
between steps; `run_to_end` drives one to its end (the CLI), a worker thread drives it in the
app. Every mode is a sequence of *fills*: a context square prepared for the model (`Fill`), its
tokens refilled by iterative decoding (engine/runtime/decode.py), decoded and composed
(engine/runtime/compose.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from engine.runtime.class_pick import ClassPick, class_pick, sample_seeds
from engine.runtime.compose import (
    Patch,
    compose_squares,
    composition,
    paste_all,
    preview_patch,
    resize_rgb,
    texture_fill,
)
from engine.runtime.decode import (
    DecodeStep,
    iterative_decode,
    make_rngs,
    reroll_least_confident,
)
from engine.runtime.errors import MaskError
from engine.runtime.model import Model
from engine.runtime.plan import (
    EditPlan,
    Part,
    Square,
    check_inputs,
    cut_square,
    plan_edit,
    plan_key,
    plan_square,
)
from engine.runtime.settings import Settings
from engine.runtime.speed import (
    decode_region,
    decode_square_region,
    encode_with_reuse,
)

SIDES = ("left", "right", "top", "bottom")
_T = TypeVar("_T")
PREVIEW_SHARE = 0.05  # of a run's time, at most, spent on previews


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Edit:
    """Refill the plan's parts of `rgb` (uint8 [H,W,3]); a class fill when the settings name
    a class. The plan is the one the editor drew (`plan.plan_edit`)."""

    rgb: np.ndarray
    plan: EditPlan


@dataclass(frozen=True, eq=False)
class Reroll:
    """Re-mask the `count` least confident tokens of one candidate of a finished one-square
    edit and decode them again."""

    previous: RunResult
    candidate: int
    count: int


@dataclass(frozen=True)
class Generate:
    """Whole new images (of a class when the settings name one)."""


@dataclass(frozen=True, eq=False)
class Extend:
    """Grow the canvas on one side by `cells` tokens (at the scale of a square as tall/wide
    as the image's shorter side) and fill the new strip."""

    rgb: np.ndarray
    side: str
    cells: int
    alpha: np.ndarray | None = None  # uint8 [H, W]: the image's alpha, when it has one


Request = Edit | Reroll | Generate | Extend


# -- what a run yields and returns ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Step:
    step: int  # 1-based steps done in the whole run
    total: int
    remaining: int  # tokens still unknown in the first candidate (all parts)
    preview: Patch | None = None  # the first candidate so far, crop-local
    phase: str = "decode"  # "decode": a decoding step; "texture": the texture stage's rounds


@dataclass(frozen=True, eq=False)
class Candidate:
    seed: int
    patch: Patch  # crop-local (parts: their union box); canvas runs: whole image


@dataclass
class Fill:
    """A context square prepared for the model."""

    part: Part
    crop: np.ndarray  # uint8 [h,w,3] the image over part.box
    model_pixels: np.ndarray  # float32 [3,S,S] the square at model size
    shape: tuple[int, int]  # (height, width) of the image
    tokens: np.ndarray | None = None  # int64 [N] input tokens once encoded (mask ids set)

    @property
    def square(self) -> Square:
        return self.part.square

    @property
    def token_mask(self) -> np.ndarray:
        return self.part.token_mask

    @property
    def model_image(self) -> np.ndarray:
        """float32 [3,S,S]: the square with the hole zeroed, as the tokenizer sees it."""
        zeroed = self.model_pixels.copy()
        zeroed[:, self.part.model_mask] = 0.0
        return zeroed


@dataclass(eq=False)
class RunResult:
    kind: str  # "edit", "reroll", "generate", "extend"
    candidates: list[Candidate]
    settings: Settings
    tokens: np.ndarray  # int64 [B,N] final tokens (of the last square)
    confidence: np.ndarray  # float32 [B,N]
    history: list[np.ndarray] = field(default_factory=list)  # int64 [B,N] after each step
    fill: Fill | None = None  # one-square edits: what re-rolls and the step scrubber use
    plan: EditPlan | None = None
    base: np.ndarray | None = None  # the image the patches go over (edits)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    alpha: np.ndarray | None = None  # extend of an image with alpha: the grown canvas's alpha

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(c.seed for c in self.candidates)

    @property
    def resizes_canvas(self) -> bool:
        """Generate and extend replace the whole image."""
        return self.kind in ("generate", "extend")

    @property
    def images(self) -> list[np.ndarray]:
        """Full images, one per candidate (built on demand; the CLI saves these)."""
        if self.base is None:
            return [c.patch.rgb for c in self.candidates]
        return [paste_all(self.base, [c.patch]) for c in self.candidates]


RunGen = Generator[Step, None, RunResult]


def run(
    bundle: Model,
    request: Request,
    settings: Settings = Settings(),
    *,
    preview_interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
) -> RunGen:
    """The one run generator (see the module docstring). Raises MaskError/ValueError for a
    request it cannot run, before any model work."""
    started = clock()
    previews = _Previews(preview_interval, clock)
    if isinstance(request, Edit):
        result = yield from _edit(bundle, request, settings, previews)
    elif isinstance(request, Reroll):
        result = yield from _reroll(bundle, request, settings, previews)
    elif isinstance(request, Generate):
        result = yield from _generate(bundle, settings, previews)
    elif isinstance(request, Extend):
        result = yield from _extend(bundle, request, settings)
    else:
        raise TypeError(f"not a run request: {request!r}")
    result.seconds = clock() - started
    return result


def run_to_end(gen: RunGen, on_step: Callable[[Step], None] | None = None) -> RunResult:
    """Drive a run to its end, calling `on_step(step)` after each decoding step."""
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(step)


def edit_image(
    bundle: Model,
    rgb: np.ndarray,
    mask: np.ndarray,
    settings: Settings = Settings(),
    on_step: Callable[[Step], None] | None = None,
) -> RunResult:
    """Plan and run an edit of `mask` (bool [H,W]) in one call."""
    return run_to_end(
        run(
            bundle,
            Edit(rgb, plan_or_raise(bundle.manifest, rgb, mask, settings)),
            settings,
            preview_interval=math.inf,
        ),
        on_step,
    )


def plan_or_raise(manifest, rgb: np.ndarray, mask: np.ndarray, settings: Settings) -> EditPlan:
    """The plan of an edit, or MaskError/ImageError with a one-line reason."""
    mask = np.asarray(mask, dtype=bool)
    check_inputs(rgb, mask)
    plan = plan_edit(manifest, mask, settings)
    if plan is None:
        raise MaskError("the mask is empty: paint the area to refill")
    plan.check()
    return replace(plan, checked=True)


def step_image(bundle: Model, result: RunResult, candidate: int, step: int) -> Patch:
    """The image as decided after `step` (0-based): tokens not yet decided show the final
    ones (the editor covers those cells), since a mask id cannot be decoded."""
    tokens = result.history[step][candidate].copy()
    undecided = tokens == bundle.manifest.mask_token_id
    tokens[undecided] = result.tokens[candidate][undecided]
    if result.fill is not None and step == len(result.history) - 1:
        return result.candidates[candidate].patch  # the finished fill, texture stage included
    square = decode_images(bundle, tokens[None])
    if result.fill is None:
        return Patch(0, 0, square[0])
    return preview_patch(result.fill.part, result.fill.crop, square[0])


def decode_images(bundle: Model, tokens: np.ndarray) -> np.ndarray:
    """int64 [B,N] -> uint8 [B,S,S,3]: the tokenizer's decoder."""
    gh, gw = bundle.manifest.grid
    out = bundle.decode(tokens.reshape(len(tokens), gh, gw))
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


# -- modes ----------------------------------------------------------------------------------


def _edit(bundle: Model, request: Edit, settings: Settings, previews: _Previews) -> RunGen:
    rgb, plan = request.rgb, request.plan
    # A plan from plan_or_raise was validated with an image of this size: checked once.
    if not plan.checked or rgb.dtype != np.uint8 or rgb.shape != (plan.height, plan.width, 3):
        check_inputs(rgb)
        if (plan.height, plan.width) != rgb.shape[:2]:
            raise MaskError(
                f"the plan is for a {plan.width}x{plan.height} image but the image is "
                f"{rgb.shape[1]}x{rgb.shape[0]}"
            )
    if plan.settings != settings and plan.settings_key != plan_key(settings):
        plan = plan_or_raise(bundle.manifest, rgb, plan.mask, settings)  # options changed
    elif not plan.checked:
        plan.check()
    # The plan resolved these settings already (steps, temperatures, guidance); resolving
    # does not look at the seeds, so a run with other seeds (the editor plans with seed 0)
    # takes the plan's resolution with its own seeds.
    planned, resolved = plan.settings, plan.resolved
    if (
        planned is not None
        and resolved is not None
        and replace(planned, seeds=settings.seeds) == settings
    ):
        resolved = replace(resolved, seeds=settings.seeds)
    else:
        resolved = settings.resolved(bundle.manifest)
    if settings.texture == "classic":
        return (yield from _classic(bundle, rgb, plan, settings))
    fills = [prepare_fill(bundle.manifest, rgb, part) for part in plan.parts]
    pick = class_pick(bundle, resolved.class_name, resolved.class_samples)
    total = plan.run_steps
    per_part: list[list[Patch]] = []
    done = 0
    last: DecodeStep | None = None
    history: list[np.ndarray] = []
    for k, fill in enumerate(fills):
        later = sum(f.part.masked_count for f in fills[k + 1 :])
        last, history, patches = yield from _run_fill(
            bundle,
            fill,
            encode_fill(bundle, fill, settings),
            resolved,
            previews,
            _Progress(done, total, later),
            part_steps=True,
            pick=pick,
        )
        done += fill.part.run_steps
        per_part.append(patches)
    assert last is not None  # a plan has at least one part
    candidates = [
        Candidate(seed, _merge(rgb, [p[i] for p in per_part]))
        for i, seed in enumerate(settings.seeds)
    ]
    one = len(fills) == 1
    return RunResult(
        "edit",
        candidates,
        settings,
        last.tokens,
        last.confidence,
        history if one else [],
        fills[0] if one else None,
        plan,
        rgb,
        extra={} if one else {"parts": len(fills)},
    )


def _classic(bundle: Model, rgb: np.ndarray, plan: EditPlan, settings: Settings) -> RunGen:
    """Classic completion: every part filled from the photo's own texture, no model."""
    m = bundle.manifest
    step = Step(1, 1, 0, phase="texture")
    per_part = []
    for part in plan.parts:
        x0, y0, x1, y1 = part.box
        crop = rgb[y0:y1, x0:x1]
        patches = []
        for seed in settings.seeds:
            filling = texture_fill(crop, part.painted, None, seed, settings)
            filled = yield from _reporting(filling, step)
            patches.append(Patch(x0, y0, filled))
        per_part.append(patches)
    candidates = [
        Candidate(seed, _merge(rgb, [p[i] for p in per_part]))
        for i, seed in enumerate(settings.seeds)
    ]
    # no tokens were predicted: all "unknown", all equally sure
    tokens = np.full((len(settings.seeds), m.seq_len), m.mask_token_id, np.int64)
    confidence = np.ones(tokens.shape, np.float32)
    extra = {} if len(plan.parts) == 1 else {"parts": len(plan.parts)}
    return RunResult(
        "edit", candidates, settings, tokens, confidence, [], None, plan, rgb, extra=extra
    )


def _reroll(bundle: Model, request: Reroll, settings: Settings, previews: _Previews) -> RunGen:
    prev, c = request.previous, request.candidate
    if prev.fill is None:
        raise MaskError("re-roll needs a finished one-square refill to work on")
    fill = prev.fill
    start = reroll_least_confident(
        prev.tokens[c : c + 1],
        prev.confidence[c : c + 1],
        request.count,
        bundle.manifest.mask_token_id,
        region=fill.part.token_mask.reshape(-1),
    )
    masked = int((start == bundle.manifest.mask_token_id).sum())
    last, history, patches = yield from _run_fill(
        bundle,
        fill,
        start,
        settings,
        previews,
        _Progress(0, _run_steps(bundle.manifest, settings, masked), 0),
    )
    candidates = [
        Candidate(seed, patch) for seed, patch in zip(settings.seeds, patches, strict=True)
    ]
    return RunResult(
        "reroll",
        candidates,
        settings,
        last.tokens,
        last.confidence,
        history,
        fill,
        prev.plan,
        prev.base,
    )


def _generate(bundle: Model, settings: Settings, previews: _Previews) -> RunGen:
    m = bundle.manifest
    tokens = np.full((len(settings.seeds), m.seq_len), m.mask_token_id, np.int64)
    progress = _Progress(0, _run_steps(m, settings, m.seq_len), 0)
    last, history = yield from _decode_steps(
        bundle,
        tokens,
        settings,
        previews,
        progress,
        lambda first: Patch(0, 0, decode_images(bundle, first)[0]),
    )
    images = decode_images(bundle, last.tokens)
    candidates = [
        Candidate(seed, Patch(0, 0, image))
        for seed, image in zip(settings.seeds, images, strict=True)
    ]
    return RunResult("generate", candidates, settings, last.tokens, last.confidence, history)


def _extend(bundle: Model, request: Extend, settings: Settings) -> RunGen:
    """Long edges are covered by overlapping squares, each seeing what the previous one
    generated; each seed extends the image on its own."""
    side, cells = request.side, request.cells
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}")
    if cells < 1:
        raise ValueError("extend by at least one token")
    check_inputs(request.rgb)
    if request.alpha is not None and request.alpha.shape != request.rgb.shape[:2]:
        raise ValueError(
            f"the alpha is {request.alpha.shape[1]}x{request.alpha.shape[0]}, "
            f"the image {request.rgb.shape[1]}x{request.rgb.shape[0]}"
        )
    m = bundle.manifest
    # rotate so the extension is always on the right, then rotate back
    turns = {"right": 0, "bottom": 1, "left": 2, "top": 3}[side]  # np.rot90 turns counter-clockwise
    img = np.rot90(request.rgb, turns)
    h, w = img.shape[:2]
    side_px = min(h, w)
    strip = max(1, round(cells * m.downsample * side_px / m.image_size))
    if strip >= side_px:
        raise MaskError(f"extend by fewer than {m.grid[1]} tokens")
    tops = _tile_starts(h, side_px)
    steps = _run_steps(m, settings, m.seq_len)  # the most one tile takes
    progress = _Progress(0, steps * len(tops) * len(settings.seeds), 0)
    candidates: list[Candidate] = []
    last: DecodeStep | None = None
    history: list[np.ndarray] = []
    for seed in settings.seeds:
        one = replace(settings, seeds=(seed,))
        canvas = np.concatenate([img, np.repeat(img[:, -1:], strip, axis=1)], axis=1)
        painted = np.zeros(canvas.shape[:2], bool)
        painted[:, w:] = True
        for top in tops:
            part = plan_square(m, painted, Square(w + strip - side_px, top, side_px), one)
            fill = prepare_fill(m, canvas, part)
            last, history, patches = yield from _run_fill(
                bundle, fill, encode_fill(bundle, fill, one), one, _Previews(math.inf), progress
            )
            progress.done += part.run_steps
            patches[0].paste(canvas)
            painted[top : top + side_px, w:] = False
        candidates.append(Candidate(seed, Patch(0, 0, np.rot90(canvas, -turns).copy())))
    assert last is not None
    return RunResult(
        "extend",
        candidates,
        settings,
        last.tokens,
        last.confidence,
        history,
        extra={"side": side, "cells": cells},
        alpha=None if request.alpha is None else extend_alpha(request.alpha, side, strip),
    )


def extend_alpha(alpha: np.ndarray, side: str, strip: int) -> np.ndarray:
    """The alpha of an image grown by `strip` pixels on `side`: the original values where the
    original is, the edge's values repeated across the new strip (a cut-out stays cut out)."""
    pad = {
        "right": ((0, 0), (0, strip)),
        "left": ((0, 0), (strip, 0)),
        "bottom": ((0, strip), (0, 0)),
        "top": ((strip, 0), (0, 0)),
    }[side]
    return np.pad(alpha, pad, mode="edge")


def _merge(rgb: np.ndarray, patches: list[Patch]) -> Patch:
    """One patch over the union box of `patches` (the parts' squares never overlap)."""
    if len(patches) == 1:
        return patches[0]
    boxes = [p.box for p in patches]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    out = rgb[y0:y1, x0:x1].copy()
    for p in patches:
        Patch(p.x0 - x0, p.y0 - y0, p.rgb).paste(out)
    return Patch(x0, y0, out)


def _tile_starts(extent: int, side: int) -> list[int]:
    n = math.ceil(extent / side)
    if n == 1:
        return [0]
    return [round(i * (extent - side) / (n - 1)) for i in range(n)]


# -- one fill -------------------------------------------------------------------------------


def prepare_fill(manifest, rgb: np.ndarray, part: Part) -> Fill:
    """Cut the part's context square (edge pixels repeated past the border) at model size."""
    x0, y0, x1, y1 = part.box
    pixels = resize_rgb(cut_square(rgb, part.square), manifest.image_size)
    model_pixels = np.ascontiguousarray(pixels.astype(np.float32).transpose(2, 0, 1) / 255.0)
    return Fill(part, rgb[y0:y1, x0:x1].copy(), model_pixels, rgb.shape[:2])


def encode_fill(bundle: Model, fill: Fill, settings: Settings) -> np.ndarray:
    """Tokenise the context square once, the hole zeroed first as the MAGE authors do; masked
    positions get the mask id. int64 [N]. With speed.reuse_tokens, squares seen before are
    (partly) re-used (runtime/speed.py)."""
    if fill.tokens is None:
        speed, part = settings.speed, fill.part
        if speed.reuse_tokens:
            tokens = encode_with_reuse(
                bundle,
                fill.model_pixels,
                part.model_mask,
                speed.encode_margin,
                crop=speed.crop_encode,
            ).reshape(-1)
        else:
            tokens = bundle.encode(fill.model_image[None])[0].reshape(-1)
        tokens[part.token_mask.reshape(-1)] = bundle.manifest.mask_token_id
        fill.tokens = tokens
    return fill.tokens


def _run_fill(
    bundle: Model,
    fill: Fill,
    start: np.ndarray,
    settings: Settings,
    previews: _Previews,
    progress: _Progress,
    part_steps: bool = False,
    pick: ClassPick | None = None,
) -> Generator[Step, None, tuple[DecodeStep, list[np.ndarray], list[Patch]]]:
    """Decode and compose one fill. With `part_steps` the part's own steps (its plan decided
    them) and `settings` already resolved; else the steps for what `start` leaves masked.
    With a class `pick`, every candidate decodes its samples and keeps the best one."""
    drawn = (
        settings
        if pick is None
        else replace(settings, seeds=sample_seeds(settings.seeds, pick.samples))
    )
    start = np.broadcast_to(start, (len(drawn.seeds), start.shape[-1])).copy()
    last, history = yield from _decode_steps(
        bundle,
        start,
        drawn,
        previews,
        progress,
        lambda tokens: _preview(bundle, fill, tokens, settings),
        fill.part if part_steps else None,
    )
    if settings.speed.region_decode:
        background = (fill.model_pixels.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        squares = decode_square_region(
            bundle,
            last.tokens,
            fill.model_pixels,
            fill.part.token_mask,
            settings.speed.decode_margin,
            background,
        )
    else:
        squares = decode_images(bundle, last.tokens)
    # compose_fill, yielding between the texture stage's rounds (closing the run stops it there)
    done = replace(progress.step(last, None), phase="texture")
    part, m = fill.part, bundle.manifest
    composing = composition(m, part, fill.crop, fill.model_pixels, squares, drawn, fill.shape)
    patches = yield from _reporting(composing, done)
    if pick is not None:
        # every sample is finished like a candidate; the head reads each finished fill of the
        # context square, as it reads a photo, and the best one per candidate is kept
        rows = pick.best_rows([patch.rgb for patch in patches], len(settings.seeds))
        patches = [patches[row] for row in rows]
        last = replace(
            last,
            tokens=last.tokens[rows],
            candidates=last.candidates[rows],
            confidence=last.confidence[rows],
            remaining=last.remaining[rows],
        )
        history = [h[rows] for h in history]
    return last, history, patches


def _reporting(gen: Generator[None, None, _T], step: Step) -> Generator[Step, None, _T]:
    """`gen`'s result, yielding `step` wherever `gen` yields (where the run may be stopped)."""
    while True:
        try:
            next(gen)
        except StopIteration as finished:
            return finished.value
        yield step


def _preview(bundle: Model, fill: Fill, tokens: np.ndarray, settings: Settings) -> Patch:
    """The first candidate's tokens (int64 [1,N]) decoded around the hole only (its token crop
    and `decode_margin` tokens, the plain decoder) and pasted raw over the painted area: a
    preview costs part of a decode and no composition. Only the painted pixels are shown, all
    inside the crop; they differ slightly from a whole decode (the final result is exact)."""
    square = decode_region(bundle, tokens, fill.part.token_mask, settings.speed.decode_margin)
    return preview_patch(fill.part, fill.crop, square[0])


def _decode_steps(
    bundle: Model,
    start: np.ndarray,
    settings: Settings,
    previews: _Previews,
    progress: _Progress,
    preview_of: Callable[[np.ndarray], Patch],
    part: Part | None = None,
) -> Generator[Step, None, tuple[DecodeStep, list[np.ndarray]]]:
    """The decoding loop of one square: a `Step` per decoding step, with a preview of the
    first candidate (`preview_of` its tokens, int64 [1,N]) when one is due.
    Returns the last step and the tokens after every step."""
    last: DecodeStep | None = None
    history: list[np.ndarray] = []
    for step in _decode(bundle, start, settings, part):
        history.append(step.tokens.copy())
        last = step
        preview = None
        if previews.due(step):
            preview = previews.make(preview_of, step.candidates[:1])
        yield progress.step(step, preview)
    assert last is not None  # a run has at least one step
    return last, history


def compose_fill(bundle: Model, fill: Fill, squares: np.ndarray, settings: Settings) -> list[Patch]:
    """Decoded squares (uint8 [B,S,S,3]) of a fill -> one crop-local patch each."""
    return compose_squares(
        bundle.manifest, fill.part, fill.crop, fill.model_pixels, squares, settings, fill.shape
    )


def _decode(
    bundle: Model, tokens: np.ndarray, settings: Settings, part: Part | None = None
) -> Iterator[DecodeStep]:
    """The decoding loop over `tokens`: with a `part`, its steps and `settings` resolved (an
    edit's plan decided both); without, the settings resolved for what `tokens` leave masked."""
    if part is None:
        masked = int((tokens[0] == bundle.manifest.mask_token_id).sum())
        s = settings.for_masked(bundle.manifest, masked)
        assert s.steps is not None
        steps, start_step = s.steps, s.start_step
    else:
        s, steps, start_step = settings, part.steps, part.start_step
    assert s.temperature is not None
    assert s.sample_temperature is not None
    assert s.guidance is not None  # resolved: the class run's default or 0
    class_id = bundle.manifest.class_id(s.class_name) if s.class_name else None
    model = bundle.transformer(s.speed)
    fn = bundle.tokens_to_logits(class_id, s.guidance, model=model)
    return iterative_decode(
        tokens,
        fn,
        mask_token_id=bundle.manifest.mask_token_id,
        steps=steps,
        choice_temperature=s.temperature,
        rngs=make_rngs(s.seeds),
        start_step=start_step,
        sample_temperature=s.sample_temperature,
    )


def _run_steps(manifest, settings: Settings, masked: int) -> int:
    """Decoding steps a run over `masked` unknown tokens makes."""
    s = settings.for_masked(manifest, masked)
    assert s.steps is not None
    return s.steps - s.start_step


class _Previews:
    """At most one preview every `interval` seconds, never on the last step, none with an
    infinite interval, and previews take at most `share` of the run's time so far (a crop
    decode costs a fraction of a transformer step, but a slow machine would otherwise spend
    more of its time on them: measured in bench/preview_cost.py)."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        share: float = PREVIEW_SHARE,
    ):
        self.interval, self.clock, self.last = interval, clock, -math.inf
        self.share, self.spent, self.start = share, 0.0, clock()

    def due(self, step: DecodeStep) -> bool:
        if step.done or math.isinf(self.interval):
            return False
        now = self.clock()
        if now - self.last < self.interval or self.spent > self.share * (now - self.start):
            return False
        self.last = now
        return True

    def make(self, preview_of: Callable[[np.ndarray], Patch], tokens: np.ndarray) -> Patch:
        """The preview of `tokens`, its time counted against the share."""
        start = self.clock()
        try:
            return preview_of(tokens)
        finally:
            self.spent += self.clock() - start


@dataclass
class _Progress:
    done: int  # steps of earlier squares
    total: int
    later: int  # tokens of later squares, still unknown

    def step(self, step: DecodeStep, preview: Patch | None) -> Step:
        n = self.done + step.step + 1
        return Step(n, max(self.total, n), int(step.remaining[0]) + self.later, preview)


__all__: Sequence[str] = (
    "SIDES",
    "Candidate",
    "Edit",
    "Extend",
    "Fill",
    "Generate",
    "Reroll",
    "RunResult",
    "Step",
    "decode_images",
    "edit_image",
    "run",
    "run_to_end",
    "step_image",
)
