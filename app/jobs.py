"""The work a run does off the GUI thread, as plain generators over the engine (no Qt).

Each job yields `StepProgress` once per decoding step and returns a `RunOutcome`. A step may
carry a `PreviewPatch`: the step's candidates decoded and blended in (engine.decode_images +
finish_fills), made at most every `preview_interval` seconds because a decode costs about as much
as a transformer step. Results are cropped to the rectangle they change and thumbnails are
made here too, so the GUI thread only wraps small arrays in QImages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from engine.runtime.decode import DecodeStep, reroll_least_confident
from engine.runtime.editing import (
    EditJob,
    EditResult,
    Settings,
    decode_images,
    extend_canvas,
    finish_fills,
    mask_parts,
    paste_part,
    prepare_edit,
    run_edit,
    run_generate,
)

THUMB_SIZE = 160


@dataclass
class PreviewPatch:
    """Pixels to show over the image at (x0, y0), in image coordinates."""
    x0: int
    y0: int
    rgb: np.ndarray   # uint8 [h, w, 3]


@dataclass
class StepProgress:
    step: int            # 1-based steps done
    total: int
    remaining: int       # tokens still unknown in the first candidate
    preview: PreviewPatch | None = None


@dataclass
class Candidate:
    seed: int
    patch: PreviewPatch            # the changed rectangle (edit) or the whole new image
    thumbnail: np.ndarray          # uint8 [h, w, 3], long side THUMB_SIZE


@dataclass
class RunOutcome:
    kind: str                      # "edit", "generate", "extend", "reroll"
    candidates: list[Candidate]
    result: EditResult
    job: EditJob | None = None     # edits keep their job for re-rolls and the step scrubber
    resizes_canvas: bool = False   # generate/extend replace the whole image
    alpha: np.ndarray | None = None
    settings: Settings | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


EditGen = Generator[StepProgress, None, RunOutcome]


def edit_job(bundle, rgb: np.ndarray, mask: np.ndarray, settings: Settings,
             preview_interval: float = 0.25, clock: Callable[[], float] = time.monotonic
             ) -> EditGen:
    """Refill the masked tokens (with a class when settings.class_name is set).

    A mask whose parts lie far apart is refilled one context square per part, as the engine's
    edit_image does, so each part keeps full detail; such a run has no single token grid, so
    it has no step scrubber, heatmap or re-roll."""
    started = clock()
    parts = mask_parts(bundle.manifest, mask, settings)
    if len(parts) > 1:
        return (yield from _parts_edit(bundle, rgb, parts, settings, preview_interval, clock,
                                       started))
    job = prepare_edit(bundle.manifest, rgb, mask, settings)
    result = yield from _drive(run_edit(bundle, job, settings), bundle, job, settings,
                               preview_interval, clock)
    return _edit_outcome("edit", job, result, settings, clock() - started)


def _parts_edit(bundle, rgb: np.ndarray, parts: list[np.ndarray], settings: Settings,
                preview_interval: float, clock, started: float) -> EditGen:
    jobs = [prepare_edit(bundle.manifest, rgb, part, settings) for part in parts]
    steps = [settings.for_masked(bundle.manifest, job.masked_count).steps for job in jobs]
    images = [rgb.copy() for _ in settings.seeds]
    done, result = 0, None
    for k, job in enumerate(jobs):
        later = sum(j.masked_count for j in jobs[k + 1:])
        inner = _drive(run_edit(bundle, job, settings), bundle, job, settings, preview_interval,
                       clock)
        while True:
            try:
                progress = next(inner)
            except StopIteration as stop:
                result = stop.value
                break
            yield replace(progress, step=done + progress.step, total=sum(steps),
                          remaining=progress.remaining + later)
        done += steps[k]
        paste_part(images, job, result)
    boxes = [job.square.clip(rgb.shape[1], rgb.shape[0]) for job in jobs]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    candidates = []
    for seed, image in zip(settings.seeds, images, strict=True):
        patch = PreviewPatch(x0, y0, image[y0:y1, x0:x1].copy())
        candidates.append(Candidate(seed, patch, thumbnail(patch.rgb)))
    combined = EditResult(images, result.seeds, result.tokens, result.confidence, [], None, None,
                          settings)
    return RunOutcome("edit", candidates, combined, None, False, None, settings,
                      clock() - started, {"parts": len(jobs)})


def reroll_job(bundle, job: EditJob, previous: EditResult, candidate: int, count: int,
               settings: Settings, preview_interval: float = 0.25,
               clock: Callable[[], float] = time.monotonic) -> EditGen:
    """Re-mask the `count` least confident tokens of one candidate and decode them again."""
    started = clock()
    start = reroll_least_confident(previous.tokens[candidate:candidate + 1],
                                   previous.confidence[candidate:candidate + 1], count,
                                   bundle.manifest.mask_token_id,
                                   region=job.token_mask.reshape(-1))
    result = yield from _drive(run_edit(bundle, job, settings, tokens=start), bundle, job,
                               settings, preview_interval, clock)
    return _edit_outcome("reroll", job, result, settings, clock() - started)


def generate_job(bundle, settings: Settings, preview_interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> EditGen:
    """Whole new images, of a class when settings.class_name is set."""
    started = clock()
    result = yield from _drive(run_generate(bundle, settings), bundle, None, settings,
                               preview_interval, clock)
    candidates = [Candidate(seed, PreviewPatch(0, 0, image), thumbnail(image))
                  for seed, image in zip(result.seeds, result.images, strict=True)]
    return RunOutcome("generate", candidates, result, None, True, None, settings,
                      clock() - started)


def extend_job(bundle, rgb: np.ndarray, alpha: np.ndarray | None, side: str, cells: int,
               settings: Settings, report: Callable[[StepProgress], None],
               clock: Callable[[], float] = time.monotonic) -> RunOutcome:
    """Grow the canvas on one side and fill the strip. The engine runs this as one call with
    a per-step callback, so progress (and cancelling) goes through `report`."""
    started = clock()
    done = [0]

    def on_step(step: DecodeStep) -> None:
        done[0] += 1
        report(StepProgress(done[0], max(done[0], step.total_steps), int(step.remaining[0])))

    settings = replace(settings, seeds=settings.seeds[:1])
    result = extend_canvas(bundle, rgb, side, cells, settings, on_step=on_step)
    image = result.images[0]
    new_alpha = None if alpha is None else _extend_alpha(alpha, image.shape[:2], side)
    candidate = Candidate(settings.seeds[0], PreviewPatch(0, 0, image), thumbnail(image))
    return RunOutcome("extend", [candidate], result, None, True, new_alpha, settings,
                      clock() - started, {"side": side, "cells": cells})


def history_preview(bundle, job: EditJob | None, result: EditResult, candidate: int,
                    step: int) -> PreviewPatch:
    """The image as decided after `step` (0-based): tokens not yet decided show the final
    ones (the GUI covers those cells), since a mask id cannot be decoded."""
    tokens = result.history[step][candidate].copy()
    undecided = tokens == bundle.manifest.mask_token_id
    tokens[undecided] = result.tokens[candidate][undecided]
    square = decode_images(bundle, tokens[None])[0]
    if job is None:
        return PreviewPatch(0, 0, square)
    settings = result.settings or Settings()
    return _crop_to_square(job, finish_fills(job, square[None], settings)[0])


def thumbnail(rgb: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    image = Image.fromarray(rgb)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


# -- helpers ------------------------------------------------------------------------------


def _drive(gen, bundle, job: EditJob | None, settings: Settings, preview_interval: float,
           clock) -> Generator[StepProgress, None, EditResult]:
    """Steps through an engine run, yielding progress with an occasional preview."""
    last_preview = -float("inf")
    done = 0
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        done += 1
        preview = None
        if not step.done and clock() - last_preview >= preview_interval:
            preview = _step_preview(bundle, job, step, settings)
            last_preview = clock()
        yield StepProgress(done, step.total_steps, int(step.remaining[0]), preview)


def _step_preview(bundle, job: EditJob | None, step: DecodeStep, settings: Settings
                  ) -> PreviewPatch:
    square = decode_images(bundle, step.candidates[:1])[0]
    if job is None:
        return PreviewPatch(0, 0, square)
    return _crop_to_square(job, finish_fills(job, square[None], settings)[0])


def _crop_to_square(job: EditJob, full: np.ndarray) -> PreviewPatch:
    h, w = full.shape[:2]
    x0, y0, x1, y1 = job.square.clip(w, h)
    return PreviewPatch(x0, y0, full[y0:y1, x0:x1].copy())


def _edit_outcome(kind: str, job: EditJob, result: EditResult, settings: Settings,
                  seconds: float) -> RunOutcome:
    candidates = []
    for seed, image in zip(result.seeds, result.images, strict=True):
        patch = _crop_to_square(job, image)  # the context square: where the change shows
        candidates.append(Candidate(seed, patch, thumbnail(patch.rgb)))
    return RunOutcome(kind, candidates, result, job, False, None, settings, seconds)


def _extend_alpha(alpha: np.ndarray, shape: tuple[int, int], side: str) -> np.ndarray:
    """Opaque alpha for the new strip, the old alpha where the old image now sits."""
    out = np.full(shape, 255, dtype=np.uint8)
    h, w = alpha.shape
    y0 = shape[0] - h if side == "top" else 0
    x0 = shape[1] - w if side == "left" else 0
    out[y0:y0 + h, x0:x0 + w] = alpha
    return out
