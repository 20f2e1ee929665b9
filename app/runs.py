"""The app's side of a run: the engine's one run generator (engine/runtime/runs.py) with the
GUI's defaults, and the candidates' thumbnails the results panel shows.

Each run yields the engine's `Step` once per decoding step and returns the engine's
`RunResult` (for extend, its `alpha` is the grown canvas's alpha, as the CLI saves it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import replace

import numpy as np
from PIL import Image

from engine.runtime.compose import Patch as Patch  # what a preview shows
from engine.runtime.plan import EditPlan
from engine.runtime.runs import SIDES as SIDES  # the widgets' choice of side
from engine.runtime.runs import (
    Edit,
    Extend,
    Generate,
    Reroll,
    RunResult,
    Step,
    plan_or_raise,
    run,
)
from engine.runtime.runs import step_image as step_image  # the step scrubber's image
from engine.runtime.settings import Settings

THUMB_SIZE = 160

EditGen = Generator[Step, None, RunResult]


def edit_run(
    bundle,
    rgb: np.ndarray,
    mask: np.ndarray | EditPlan,
    settings: Settings,
    preview_interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    plan: EditPlan | None = None,
) -> EditGen:
    """Refill the mask (with a class when settings.class_name is set). `plan` is the one the
    token grid shows, made for this very mask (the editor passes it only while the mask is
    unchanged since the plan was asked for); without one the mask is planned here. `mask` may
    also be the plan itself."""
    if isinstance(mask, EditPlan):
        plan, mask = mask, mask.mask
    if plan is None or plan.mask.shape != mask.shape:
        plan = plan_or_raise(bundle.manifest, rgb, mask, settings)
    request = Edit(rgb, plan)
    return (
        yield from run(bundle, request, settings, preview_interval=preview_interval, clock=clock)
    )


def reroll_run(
    bundle,
    previous: RunResult,
    candidate: int,
    count: int,
    settings: Settings,
    preview_interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
) -> EditGen:
    """Re-mask the `count` least confident tokens of one candidate and decode them again."""
    return (
        yield from run(
            bundle,
            Reroll(previous, candidate, count),
            settings,
            preview_interval=preview_interval,
            clock=clock,
        )
    )


def generate_run(
    bundle,
    settings: Settings,
    preview_interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
) -> EditGen:
    """Whole new images, of a class when settings.class_name is set."""
    return (
        yield from run(bundle, Generate(), settings, preview_interval=preview_interval, clock=clock)
    )


def extend_run(
    bundle,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    side: str,
    cells: int,
    settings: Settings,
    clock: Callable[[], float] = time.monotonic,
) -> EditGen:
    """Grow the canvas on one side and fill the strip (one candidate); the result's alpha is
    the grown `alpha` when the image has one."""
    settings = replace(settings, seeds=settings.seeds[:1])
    request = Extend(rgb, side, cells, alpha)
    return (yield from run(bundle, request, settings, clock=clock))


def thumbnail(rgb: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    image = Image.fromarray(rgb)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def edited_thumbnail(patch, plan, size: int = THUMB_SIZE) -> np.ndarray:
    """The candidate where it changed: a run of several parts spans the photo between them,
    so its thumbnail puts the parts' squares side by side (as large as the row allows) instead
    of shrinking the whole photo, where candidates would look alike."""
    parts = plan.parts if plan is not None else ()
    if len(parts) < 2:
        return thumbnail(patch.rgb, size)
    px0, py0, px1, py1 = patch.box
    crops = []
    for part in parts:
        x0, y0, x1, y1 = part.box
        x0, y0, x1, y1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
        if x1 > x0 and y1 > y0:
            crops.append(patch.rgb[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0])
    if len(crops) < 2:
        return thumbnail(patch.rgb, size)
    gap = max(2, size // 40)
    scaled = []
    for crop in crops:
        image = Image.fromarray(np.ascontiguousarray(crop))
        width = max(1, round(image.width * size / image.height))
        scaled.append(np.asarray(image.resize((width, size), Image.Resampling.BILINEAR)))
    divider = np.full((size, gap, 3), 32, np.uint8)  # a dark line between the parts
    row = [scaled[0]]
    for picture in scaled[1:]:
        row += [divider, picture]
    return thumbnail(np.concatenate(row, axis=1), size)
