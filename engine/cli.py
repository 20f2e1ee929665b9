"""Command line: `python main.py edit|generate|extend|classify|probe|import-mage|export|train`.

Bad input ends with exit code 2 and one line on stderr saying what and why; inputs are never
written; outputs are written atomically (temp file + rename) as PNG with the settings in text
chunks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from engine.runtime.console import (
    MAX_NAME_BYTES,
    STALE_TEMP_SECONDS,
    Progress,
    clean_stale_temps,
    float_in,
    int_in,
    open_bundle,
    safe_text,
)
from engine.runtime.errors import MageError, OutputError
from engine.runtime.manifest import MAX_STEPS

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
log = logging.getLogger("mage")

# Upper bounds of the flags (documented in --help): beyond these a run would take hours or
# more memory than a desktop has.
MAX_CANDIDATES = 16
MAX_SEED = 2**31 - 1
MAX_TEMPERATURE = 1000.0
MAX_RING = 64
MAX_FEATHER = 10_000.0
MAX_GUIDANCE = 100.0
MAX_EXTEND_TOKENS = 256
MAX_RESULT_BYTES = 4 << 30     # all candidates of one run, as 8-bit RGBA
__all__ = ["MAX_NAME_BYTES", "STALE_TEMP_SECONDS", "clean_stale_temps", "float_in", "int_in"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with bad flags reported in one line (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {safe_text(message)} (see {self.prog} --help)\n")


# -- shared options ---------------------------------------------------------------------------

def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="model bundle folder (default: the bundled model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to run (auto: CUDA when a GPU works, else CPU)")


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int_in(0, MAX_SEED), help="random seed, 0.."
                   f"{MAX_SEED} (default: random); candidate i uses seed+i")
    p.add_argument("-n", "--candidates", type=int_in(1, MAX_CANDIDATES), default=1,
                   help=f"number of results, 1..{MAX_CANDIDATES}")
    p.add_argument("--steps", type=int_in(1, MAX_STEPS),
                   help=f"decoding steps, 1..{MAX_STEPS} (default: the model's)")
    p.add_argument("--temperature", type=float_in(0, MAX_TEMPERATURE),
                   help="choice temperature: randomness of which tokens are kept each step "
                   f"(0..{MAX_TEMPERATURE:g})")
    p.add_argument("--sample-temperature", type=float_in(0, MAX_TEMPERATURE, low_open=True),
                   help="softmax temperature of token sampling (default: the model's; 1 = "
                   f"MaskGIT/MAGE, lower = safer fills; above 0, at most {MAX_TEMPERATURE:g})")
    p.add_argument("--class", dest="class_name", help="class name (class-conditional models)")
    p.add_argument("--guidance", type=float_in(0, MAX_GUIDANCE), default=0.0,
                   help=f"classifier-free guidance strength with --class (0 = off, at most "
                   f"{MAX_GUIDANCE:g})")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing an existing output file (never the input)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="main.py", description="MAGE Studio: masked generative image editing, offline. "
        "Without a command, opens the editor.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("edit", help="refill the white area of a mask in an image")
    p.add_argument("image", type=Path, help="input image (any size, any format Pillow reads)")
    p.add_argument("--mask", type=Path, required=True, help="mask image: white = refill")
    p.add_argument("--scale-mask", action="store_true",
                   help="resize a mask of another size to the image instead of refusing")
    p.add_argument("--ring", type=int_in(0, MAX_RING), default=1,
                   help=f"extra token ring around the mask (0..{MAX_RING})")
    p.add_argument("--coverage", type=float_in(0, 1), default=0.0,
                   help="fraction of a token's pixels the mask must cover (0 = any, at most 1)")
    p.add_argument("--feather", type=float_in(0, MAX_FEATHER),
                   help=f"blend edge width in pixels (0..{MAX_FEATHER:g})")
    p.add_argument("--no-seamless", dest="seamless", action="store_false",
                   help="paste the fill as decoded (feathered) instead of blending it into the "
                        "photo in the gradient domain")
    _add_model_options(p)
    _add_decode_options(p)
    _add_output(p)

    p = sub.add_parser("generate", help="generate new images")
    _add_model_options(p)
    _add_decode_options(p)
    _add_output(p)

    p = sub.add_parser("extend", help="grow the canvas on one side and fill it (outpainting)")
    p.add_argument("image", type=Path)
    p.add_argument("--side", choices=("left", "right", "top", "bottom"), default="right")
    p.add_argument("--tokens", type=int_in(1, MAX_EXTEND_TOKENS), default=4,
                   help="how many token columns/rows to add (at least 1, fewer than the "
                   "model's grid)")
    _add_model_options(p)
    _add_decode_options(p)
    _add_output(p)

    p = sub.add_parser("import-mage", help="convert an official MAGE checkpoint to a bundle "
                       "(needs the modeling extra)")
    p.add_argument("checkpoint", type=Path, help="official .pth (ViT-B or ViT-L)")
    p.add_argument("--vqgan", type=Path, help="separate vqgan_jax_strongaug.ckpt (optional)")
    p.add_argument("-o", "--output", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--name", help="bundle name (default: the output folder's name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")

    for name, text in (("export", "export own checkpoints to a bundle (modeling extra)"),
                       ("train", "train own tokenizer / MAGE models (modeling extra)")):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)

    from engine.runtime import recognition_cli  # recognition commands live with recognition
    recognition_cli.add_commands(sub, _add_model_options)
    return parser


# -- commands ---------------------------------------------------------------------------------

def _settings(args, **extra):
    from engine.runtime.settings import Settings, seeds_from

    return Settings(steps=args.steps, temperature=args.temperature,
                    sample_temperature=args.sample_temperature,
                    seeds=seeds_from(args.seed, args.candidates), class_name=args.class_name,
                    guidance=args.guidance, **extra)


def _outputs(out: Path, seeds) -> list[Path]:
    if len(seeds) == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{seed}{out.suffix}") for seed in seeds]


def check_outputs(out: Path, seeds, inputs: list[Path], overwrite: bool) -> list[Path]:
    """Every file the run will write (one per candidate), checked before any work: a .png
    name short enough for the file system, in an existing folder, never an input (also
    through a link), never an existing file without `overwrite`. Returns the paths."""
    if out.suffix.lower() != ".png":
        raise OutputError(f"output must be a .png file (settings are stored in PNG text "
                          f"chunks): {safe_text(out)}")
    if not out.parent.is_dir():
        raise OutputError(f"output folder does not exist: {safe_text(out.parent)}")
    paths = _outputs(out, seeds)
    if len(set(paths)) != len(paths):
        raise OutputError("two candidates would get the same file name (give --seed)")
    for path in paths:
        shown = safe_text(path)
        size = len(os.fsencode(path.name))
        if size > MAX_NAME_BYTES:
            raise OutputError(f"output name is too long ({size} bytes, at most "
                              f"{MAX_NAME_BYTES}): {shown}")
        if path.is_dir():
            raise OutputError(f"output {shown} is a folder")
        if not path.exists():
            continue
        for src in inputs:
            if src.exists() and os.path.samefile(path, src):
                raise OutputError(f"output {shown} is the input file {safe_text(src)}: "
                                  "refusing to overwrite it")
        if not overwrite:
            raise OutputError(f"output {shown} exists (use --overwrite to replace it)")
    clean_stale_temps(paths)
    return paths


def _check_memory(count: int, width: int, height: int) -> None:
    need = count * width * height * 4
    if need > MAX_RESULT_BYTES:
        raise MageError(f"{count} results of {width}x{height} would need {need / 2**30:.1f} GB "
                        f"(at most {MAX_RESULT_BYTES / 2**30:.0f} GB): ask for fewer with -n")


def _run_with_progress(bundle, request, settings, label: str, total: int):
    """Run the engine's run generator to its end under a progress bar on stderr."""
    import math

    from engine.runtime.run import run, run_to_end

    bar = Progress(label, total)

    def on_step(step) -> None:
        bar.total = max(bar.total, step.total)
        bar.update(step.step, f"{step.remaining} left")

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
    from engine.runtime.run import Edit, plan_or_raise

    settings = _settings(args, ring=args.ring, coverage=args.coverage, feather=args.feather,
                         seamless=args.seamless)
    paths = check_outputs(args.output, settings.seeds, [args.image, args.mask], args.overwrite)
    image = load_image(args.image)
    _notices(image)
    h, w = image.rgb.shape[:2]
    _check_memory(len(settings.seeds), w, h)
    mask = load_mask(args.mask, size=(w, h), scale=args.scale_mask)
    bundle = open_bundle(args)
    if mask.all():
        print("notice: the whole image is masked: this is generation from scratch",
              file=sys.stderr)
    plan = plan_or_raise(bundle.manifest, image.rgb, mask, settings)  # errors before any work
    parts = len(plan.parts)
    label = "edit" if parts <= 1 else f"edit {parts} parts"
    result = _run_with_progress(bundle, Edit(image.rgb, plan), settings, label, plan.run_steps)
    text = settings.describe(bundle.manifest)
    text.update({"mage:mode": "edit", "mage:source": args.image.name})
    _save_all(result.images, result.seeds, paths, image.alpha, text)
    return 0


def cmd_generate(args) -> int:
    from engine.runtime.run import Generate

    settings = _settings(args)
    paths = check_outputs(args.output, settings.seeds, [], args.overwrite)
    bundle = open_bundle(args)
    if settings.class_name:
        bundle.manifest.class_id(settings.class_name)  # unknown class: clear error, no run
    steps = settings.resolved(bundle.manifest).steps
    result = _run_with_progress(bundle, Generate(), settings, f"generate {len(settings.seeds)}",
                                steps)
    text = settings.describe(bundle.manifest)
    text["mage:mode"] = "generate"
    _save_all(result.images, result.seeds, paths, None, text)
    return 0


def cmd_extend(args) -> int:
    from dataclasses import replace

    from engine.runtime.imageio import load_image
    from engine.runtime.run import Extend

    settings = _settings(args)
    paths = check_outputs(args.output, settings.seeds, [args.image], args.overwrite)
    image = load_image(args.image)
    _notices(image)
    h, w = image.rgb.shape[:2]
    bundle = open_bundle(args)
    grow = args.tokens * bundle.manifest.downsample * min(h, w) / bundle.manifest.image_size
    _check_memory(len(settings.seeds), w + round(grow), h + round(grow))
    if settings.class_name:
        bundle.manifest.class_id(settings.class_name)
    steps = settings.resolved(bundle.manifest).steps
    images = []
    for i, seed in enumerate(settings.seeds):
        label = f"extend {args.side}" + (f" {i + 1}/{len(settings.seeds)}"
                                         if len(settings.seeds) > 1 else "")
        one = _run_with_progress(bundle, Extend(image.rgb, args.side, args.tokens),
                                 replace(settings, seeds=(seed,)), label, steps)
        images.append(one.images[0])
    alpha = None
    if image.alpha is not None:  # the new strip continues the edge's transparency
        alpha = extend_alpha(image.alpha, images[0].shape[:2], args.side)
    text = settings.describe(bundle.manifest)
    text.update({"mage:mode": f"extend-{args.side}", "mage:source": args.image.name})
    _save_all(images, settings.seeds, paths, alpha, text)
    return 0


def extend_alpha(alpha, size: tuple[int, int], side: str):
    """The alpha channel of an extended image of `size` (h, w): the original values where
    the original is, the edge's values repeated across the new strip."""
    import numpy as np

    grow_h, grow_w = size[0] - alpha.shape[0], size[1] - alpha.shape[1]
    pad = {"right": ((0, 0), (0, grow_w)), "left": ((0, 0), (grow_w, 0)),
           "bottom": ((0, grow_h), (0, 0)), "top": ((grow_h, 0), (0, 0))}[side]
    return np.pad(alpha, pad, mode="edge")


def _need_torch(command: str) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise MageError(f"'{command}' needs PyTorch: install the modeling extra "
                        "(pip install -e '.[modeling]')")


def cmd_import_mage(args) -> int:
    _need_torch("import-mage")
    from engine.modeling.importer import import_mage

    import_mage(args.checkpoint, args.output, vqgan=args.vqgan, name=args.name,
                overwrite=args.overwrite, say=lambda line: print(safe_text(line)))
    return 0


FORWARDED = ("export", "train")  # handed whole to engine.modeling.train's own parser


def cmd_forward(args) -> int:
    _need_torch(args.command)
    from engine.modeling import train

    argv = (["export"] if args.command == "export" else []) + list(args.args)
    return train.main(argv)


COMMANDS = {"edit": cmd_edit, "generate": cmd_generate, "extend": cmd_extend,
            "import-mage": cmd_import_mage, "export": cmd_forward, "train": cmd_forward}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv and argv[0] in FORWARDED:
        # argparse's REMAINDER drops a first argument that looks like an option
        # ("export --tokenizer ..."), so these bypass the top-level parser
        args = argparse.Namespace(command=argv[0], args=argv[1:], verbose=False)
    else:
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # bad flags: ArgumentParser.error printed the one line
            if done.code in (0, None):
                raise
            return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    return run_guarded(handler, args)


def run_guarded(handler, args) -> int:
    """Run a command so that nothing escapes as a traceback: bad input is one line and exit
    2, an internal error one line and exit 1 (details with -v)."""
    try:
        return handler(args)
    except MageError as e:
        print(f"error: {safe_text(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory: try a smaller image, fewer candidates (-n) or fewer "
              "steps", file=sys.stderr)
        return EXIT_INTERNAL
    except OSError as e:
        where = f": {safe_text(e.filename)}" if e.filename else ""
        print(f"error: {safe_text(e.strerror or e)}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # a bug: say so in one line, never a traceback
        log.info("details:", exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        what = type(e).__name__ + (f": {safe_text(first)}" if first else "")
        print(f"error: internal error ({what}); run with -v for details and please report it",
              file=sys.stderr)
        return EXIT_INTERNAL
