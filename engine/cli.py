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

from engine.runtime.console import Progress, open_bundle
from engine.runtime.errors import MageError, OutputError

EXIT_BAD_INPUT = 2
log = logging.getLogger("mage")


# -- shared options ---------------------------------------------------------------------------

def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="model bundle folder (default: the bundled model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to run (auto: CUDA when a GPU works, else CPU)")


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, help="random seed (default: random); candidate i uses "
                   "seed+i")
    p.add_argument("-n", "--candidates", type=int, default=1, help="number of results")
    p.add_argument("--steps", type=int, help="decoding steps (default: the model's)")
    p.add_argument("--temperature", type=float,
                   help="choice temperature: randomness of which tokens are kept each step")
    p.add_argument("--sample-temperature", type=float,
                   help="softmax temperature of token sampling (default: the model's; 1 = "
                   "MaskGIT/MAGE, lower = safer fills)")
    p.add_argument("--class", dest="class_name", help="class name (class-conditional models)")
    p.add_argument("--guidance", type=float, default=0.0,
                   help="classifier-free guidance strength with --class (0 = off)")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing an existing output file (never the input)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="MAGE Studio: masked generative image editing, offline. "
        "Without a command, opens the editor.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("edit", help="refill the white area of a mask in an image")
    p.add_argument("image", type=Path, help="input image (any size, any format Pillow reads)")
    p.add_argument("--mask", type=Path, required=True, help="mask image: white = refill")
    p.add_argument("--scale-mask", action="store_true",
                   help="resize a mask of another size to the image instead of refusing")
    p.add_argument("--ring", type=int, default=1, help="extra token ring around the mask")
    p.add_argument("--coverage", type=float, default=0.0,
                   help="fraction of a token's pixels the mask must cover (0 = any)")
    p.add_argument("--feather", type=float, help="blend edge width in pixels")
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
    p.add_argument("--tokens", type=int, default=4, help="how many token columns/rows to add")
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
    from engine.runtime.editing import Settings, seeds_from

    if args.candidates < 1:
        raise MageError("--candidates must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise MageError("--steps must be at least 1")
    if args.sample_temperature is not None and not args.sample_temperature > 0:
        raise MageError("--sample-temperature must be above 0")
    return Settings(steps=args.steps, temperature=args.temperature,
                    sample_temperature=args.sample_temperature,
                    seeds=seeds_from(args.seed, args.candidates), class_name=args.class_name,
                    guidance=args.guidance, **extra)


def _check_output(out: Path, inputs: list[Path], overwrite: bool) -> None:
    if out.suffix.lower() != ".png":
        raise OutputError(f"output must be a .png file (settings are stored in PNG text "
                          f"chunks): {out}")
    for src in inputs:
        if out.exists() and src.exists() and os.path.samefile(out, src):
            raise OutputError(f"output {out} is the input file: refusing to overwrite it")
    if out.exists() and not overwrite:
        raise OutputError(f"output {out} exists (use --overwrite to replace it)")
    if not out.parent.exists():
        raise OutputError(f"output folder does not exist: {out.parent}")


def _outputs(out: Path, seeds) -> list[Path]:
    if len(seeds) == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{seed}{out.suffix}") for seed in seeds]


def _run_with_progress(gen, label: str, total: int):
    from engine.runtime.editing import run_to_result

    bar = Progress(label, total)
    try:
        return run_to_result(gen, lambda st: bar.update(st.step + 1,
                                                        f"{int(st.remaining.max())} left"))
    finally:
        bar.close()


def _save_all(result, out: Path, alpha, text: dict, overwrite: bool) -> None:
    from engine.runtime.imageio import save_png

    paths = _outputs(out, result.seeds)
    for path in paths:
        if path.exists() and not overwrite:
            raise OutputError(f"output {path} exists (use --overwrite to replace it)")
    for path, image, seed in zip(paths, result.images, result.seeds, strict=True):
        save_png(path, image, alpha=alpha, text={**text, "mage:seed": str(seed)})
        print(path)


def cmd_edit(args) -> int:
    from engine.runtime.editing import edit_image, mask_parts, prepare_edit
    from engine.runtime.imageio import load_image, load_mask

    _check_output(args.output, [args.image, args.mask], args.overwrite)
    image = load_image(args.image)
    for notice in image.notices:
        print(f"notice: {notice}", file=sys.stderr)
    h, w = image.rgb.shape[:2]
    mask = load_mask(args.mask, size=(w, h), scale=args.scale_mask)
    bundle = open_bundle(args)
    settings = _settings(args, ring=args.ring, coverage=args.coverage, feather=args.feather,
                         seamless=args.seamless)
    if mask.all():
        print("notice: the whole image is masked: this is generation from scratch",
              file=sys.stderr)
    prepare_edit(bundle.manifest, image.rgb, mask, settings)  # clear errors before any work
    parts = mask_parts(bundle.manifest, mask, settings)
    steps = settings.resolved(bundle.manifest).steps
    label = "edit" if len(parts) <= 1 else f"edit {len(parts)} parts"
    bar = Progress(label, steps * max(1, len(parts)))
    done = {"steps": 0}

    def on_step(step):
        done["steps"] += 1
        bar.update(done["steps"], f"{int(step.remaining.max())} left")

    try:
        result = edit_image(bundle, image.rgb, mask, settings, on_step, parts)
    finally:
        bar.close()
    text = settings.describe(bundle.manifest)
    text.update({"mage:mode": "edit", "mage:source": str(args.image.name)})
    _save_all(result, args.output, image.alpha, text, args.overwrite)
    return 0


def cmd_generate(args) -> int:
    from engine.runtime.editing import run_generate

    _check_output(args.output, [], args.overwrite)
    bundle = open_bundle(args)
    settings = _settings(args)
    if settings.class_name:
        bundle.manifest.class_id(settings.class_name)  # unknown class: clear error, no run
    steps = settings.resolved(bundle.manifest).steps
    result = _run_with_progress(run_generate(bundle, settings),
                                f"generate {len(settings.seeds)}", steps)
    text = settings.describe(bundle.manifest)
    text["mage:mode"] = "generate"
    _save_all(result, args.output, None, text, args.overwrite)
    return 0


def cmd_extend(args) -> int:
    from engine.runtime.editing import extend_canvas
    from engine.runtime.imageio import load_image

    _check_output(args.output, [args.image], args.overwrite)
    image = load_image(args.image)
    for notice in image.notices:
        print(f"notice: {notice}", file=sys.stderr)
    bundle = open_bundle(args)
    settings = _settings(args)
    steps = settings.resolved(bundle.manifest).steps
    bar = Progress(f"extend {args.side}", steps)  # per tile: long edges take several squares
    try:
        result = extend_canvas(bundle, image.rgb, args.side, args.tokens, settings,
                               lambda st: bar.update(st.step + 1))
    finally:
        bar.close()
    result.seeds = settings.seeds[:1]
    text = settings.describe(bundle.manifest)
    text.update({"mage:mode": f"extend-{args.side}", "mage:source": str(args.image.name)})
    _save_all(result, args.output, None, text, args.overwrite)
    return 0


def _need_torch(command: str) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise MageError(f"'{command}' needs PyTorch: install the modeling extra "
                        "(pip install -e '.[modeling]')")


def cmd_import_mage(args) -> int:
    _need_torch("import-mage")
    from engine.modeling.importer import import_mage

    import_mage(args.checkpoint, args.output, vqgan=args.vqgan, name=args.name,
                overwrite=args.overwrite)
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
        args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
    except MageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
