"""Image commands: edit, generate, extend. Each plans (edits), runs the engine's run generator
(engine/runtime/runs.py) under a progress bar on stderr and writes one PNG per candidate with
the settings in its text chunks; the written paths go to stdout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.cli.console import (
    MAX_NAME_BYTES,
    Progress,
    clean_stale_temps,
    open_bundle,
    safe_text,
)
from engine.runtime.errors import MageError, OutputError

MAX_RESULT_BYTES = 4 << 30  # all candidates of one run, as 8-bit RGBA


def _settings(args, **extra):
    from engine.runtime.settings import Settings, seeds_from

    return Settings(
        steps=args.steps,
        temperature=args.temperature,
        sample_temperature=args.sample_temperature,
        seeds=seeds_from(args.seed, args.candidates),
        class_name=args.class_name,
        guidance=args.guidance,
        **extra,
    )


def resolve_class(settings, manifest):
    """`--class` as the user typed it (a class number, a name, a synonym, free text or a close
    spelling) resolved to the model's canonical class name, said on stderr ("class: 207 golden
    retriever (matched synonym 'golden retriever')"); a class-only model without --class, an
    unconditional model with one, or a class nobody can pick: one line, before any work."""
    from dataclasses import replace

    from engine.runtime.classes import find_class

    if not settings.class_name or not manifest.class_conditional:
        manifest.class_id(settings.class_name)  # needs a class / has no classes: refused here
        return settings
    match = find_class(settings.class_name, manifest.class_names, manifest.class_synonyms)
    print(f"class: {safe_text(match.describe())}", file=sys.stderr)
    return replace(settings, class_name=match.name)


def _outputs(out: Path, seeds) -> list[Path]:
    if len(seeds) == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{seed}{out.suffix}") for seed in seeds]


def check_outputs(out: Path, seeds, inputs: list[Path], overwrite: bool) -> list[Path]:
    """Every file the run will write (one per candidate), checked before any work: a .png
    name short enough for the file system, in an existing folder, never an input (also
    through a link), never an existing file without `overwrite`. Returns the paths."""
    if out.suffix.lower() != ".png":
        raise OutputError(
            f"output must be a .png file (settings are stored in PNG text chunks): {safe_text(out)}"
        )
    if not out.parent.is_dir():
        raise OutputError(f"output folder does not exist: {safe_text(out.parent)}")
    paths = _outputs(out, seeds)
    if len(set(paths)) != len(paths):
        raise OutputError("two candidates would get the same file name (give --seed)")
    for path in paths:
        shown = safe_text(path)
        size = len(os.fsencode(path.name))
        if size > MAX_NAME_BYTES:
            raise OutputError(
                f"output name is too long ({size} bytes, at most {MAX_NAME_BYTES}): {shown}"
            )
        if path.is_dir():
            raise OutputError(f"output {shown} is a folder")
        if not path.exists():
            continue
        for src in inputs:
            if src.exists() and os.path.samefile(path, src):
                raise OutputError(
                    f"output {shown} is the input file {safe_text(src)}: refusing to overwrite it"
                )
        if not overwrite:
            raise OutputError(f"output {shown} exists (use --overwrite to replace it)")
    clean_stale_temps(paths)
    return paths


def _check_memory(count: int, width: int, height: int) -> None:
    need = count * width * height * 4
    if need > MAX_RESULT_BYTES:
        raise MageError(
            f"{count} results of {width}x{height} would need {need / 2**30:.1f} GB "
            f"(at most {MAX_RESULT_BYTES / 2**30:.0f} GB): ask for fewer with -n"
        )


def _run_with_progress(bundle, request, settings, label: str, total: int):
    """Run the engine's run generator to its end under a progress bar on stderr."""
    import math

    from engine.runtime.runs import run, run_to_end

    bar = Progress(label, total)

    def on_step(step) -> None:
        bar.total = max(bar.total, step.total)
        texture = step.phase == "texture"
        bar.update(step.step, "adding the photo's texture" if texture else f"{step.remaining} left")

    try:
        return run_to_end(run(bundle, request, settings, preview_interval=math.inf), on_step)
    finally:
        bar.close()


def _save_all(images, seeds, paths: list[Path], alpha, text: dict) -> None:
    from engine.runtime.imageio import save_png

    text = {key: safe_text(value) for key, value in text.items()}
    for path, image, seed in zip(paths, images, seeds, strict=True):
        save_png(path, image, alpha=alpha, text={**text, "mage:seed": str(seed)})
        print(safe_text(path))


def _notices(image) -> None:
    for notice in image.notices:
        print(f"notice: {safe_text(notice)}", file=sys.stderr)


def cmd_edit(args) -> int:
    from engine.runtime.imageio import load_image, load_mask
    from engine.runtime.runs import Edit, plan_or_raise

    settings = _settings(
        args,
        ring=args.ring,
        coverage=args.coverage,
        feather=args.feather,
        seamless=args.seamless,
        texture=args.texture,
        class_samples=args.class_samples,
    )
    paths = check_outputs(args.output, settings.seeds, [args.image, args.mask], args.overwrite)
    image = load_image(args.image)
    _notices(image)
    h, w = image.rgb.shape[:2]
    _check_memory(len(settings.seeds), w, h)
    mask = load_mask(args.mask, size=(w, h), scale=args.scale_mask)
    bundle = open_bundle(args)
    settings = resolve_class(settings, bundle.manifest)
    if mask.all():
        print("notice: the whole image is masked: this is generation from scratch", file=sys.stderr)
    plan = plan_or_raise(bundle.manifest, image.rgb, mask, settings)  # errors before any work
    parts = len(plan.parts)
    label = "edit" if parts <= 1 else f"edit {parts} parts"
    steps = 1 if settings.texture == "classic" else plan.run_steps  # classic: no model steps
    result = _run_with_progress(bundle, Edit(image.rgb, plan), settings, label, steps)
    text = (plan.resolved or settings).describe(bundle.manifest)  # the plan resolved them
    text.update({"mage:mode": "edit", "mage:source": args.image.name})
    _save_all(result.images, result.seeds, paths, image.alpha, text)
    return 0


def cmd_generate(args) -> int:
    from engine.runtime.runs import Generate

    settings = _settings(args)
    paths = check_outputs(args.output, settings.seeds, [], args.overwrite)
    bundle = open_bundle(args)
    settings = resolve_class(settings, bundle.manifest)
    resolved = settings.resolved(bundle.manifest)
    result = _run_with_progress(
        bundle, Generate(), settings, f"generate {len(settings.seeds)}", resolved.steps
    )
    text = resolved.describe(bundle.manifest)
    text["mage:mode"] = "generate"
    _save_all(result.images, result.seeds, paths, None, text)
    return 0


def cmd_extend(args) -> int:
    from engine.runtime.imageio import load_image
    from engine.runtime.runs import Extend

    settings = _settings(args, texture=args.texture)
    paths = check_outputs(args.output, settings.seeds, [args.image], args.overwrite)
    image = load_image(args.image)
    _notices(image)
    h, w = image.rgb.shape[:2]
    bundle = open_bundle(args)
    grow = args.tokens * bundle.manifest.downsample * min(h, w) / bundle.manifest.image_size
    _check_memory(len(settings.seeds), w + round(grow), h + round(grow))
    settings = resolve_class(settings, bundle.manifest)
    seeds = len(settings.seeds)
    label = f"extend {args.side}" + (f" {seeds}" if seeds > 1 else "")
    request = Extend(image.rgb, args.side, args.tokens, image.alpha)
    resolved = settings.resolved(bundle.manifest)
    steps = resolved.steps * seeds  # the engine's total replaces it
    result = _run_with_progress(bundle, request, settings, label, steps)
    text = resolved.describe(bundle.manifest)
    text.update({"mage:mode": f"extend-{args.side}", "mage:source": args.image.name})
    _save_all(result.images, result.seeds, paths, result.alpha, text)
    return 0
