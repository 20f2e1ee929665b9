"""Command line: `python main.py edit|generate|extend|classify|probe|import-mage|import-maskgit|
export|train|download`.

Bad input ends with exit code 2 and one line on stderr saying what and why; inputs are never
written; outputs are written atomically (temp file + rename) as PNG with the settings in text
chunks.

A package: this module holds the parser and `main`; the commands live in one module per group
(images: edit/generate/extend, models: import-mage/export/train, recognition:
classify/probe/fewshot), the shared console helpers in `console`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.cli.console import (
    MAX_NAME_BYTES,
    STALE_TEMP_SECONDS,
    clean_stale_temps,
    float_in,
    int_in,
    safe_text,
)
from engine.cli.images import cmd_edit, cmd_extend, cmd_generate
from engine.cli.models import FORWARDED, cmd_forward, cmd_import_mage, cmd_import_maskgit
from engine.runtime.class_pick import DEFAULT_SAMPLES as DEFAULT_CLASS_SAMPLES
from engine.runtime.class_pick import MAX_SAMPLES as MAX_CLASS_SAMPLES
from engine.runtime.devices import DEVICES
from engine.runtime.errors import MageError
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
__all__ = ["MAX_NAME_BYTES", "STALE_TEMP_SECONDS", "clean_stale_temps", "float_in", "int_in"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with bad flags reported in one line (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {safe_text(message)} (see {self.prog} --help)\n")


# -- shared options ---------------------------------------------------------------------------


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="model bundle folder (default: the bundled model)")
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where to run (auto: CUDA when a GPU works, else CPU)",
    )


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seed",
        type=int_in(0, MAX_SEED),
        help=f"random seed, 0..{MAX_SEED} (default: random); candidate i uses seed+i",
    )
    p.add_argument(
        "-n",
        "--candidates",
        type=int_in(1, MAX_CANDIDATES),
        default=1,
        help=f"number of results, 1..{MAX_CANDIDATES}",
    )
    p.add_argument(
        "--steps",
        type=int_in(1, MAX_STEPS),
        help=f"decoding steps, 1..{MAX_STEPS} (default: the model's)",
    )
    p.add_argument(
        "--temperature",
        type=float_in(0, MAX_TEMPERATURE),
        help="choice temperature: randomness of which tokens are kept each step "
        f"(0..{MAX_TEMPERATURE:g})",
    )
    p.add_argument(
        "--sample-temperature",
        type=float_in(0, MAX_TEMPERATURE, low_open=True),
        help="softmax temperature of token sampling (default: the model's; 1 = "
        f"MaskGIT/MAGE, lower = safer fills; above 0, at most {MAX_TEMPERATURE:g})",
    )
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="CLASS",
        help="class of a class-conditional model: a number (207), a name or synonym "
        "('golden retriever', any case), free text ('lighthouse at night') or a close spelling; "
        "the chosen class is said on stderr",
    )
    p.add_argument(
        "--guidance",
        type=float_in(0, MAX_GUIDANCE),
        default=None,
        help="classifier-free guidance strength with --class (0 = off, at most "
        f"{MAX_GUIDANCE:g}; default: the class fill's, on a model with an unconditional class)",
    )


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="allow replacing an existing output file (never the input)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="main.py",
        description="MAGE Studio: masked generative image editing, offline. "
        "Without a command, opens the editor.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("edit", help="refill the white area of a mask in an image")
    p.add_argument("image", type=Path, help="input image (any size, any format Pillow reads)")
    p.add_argument("--mask", type=Path, required=True, help="mask image: white = refill")
    p.add_argument(
        "--scale-mask",
        action="store_true",
        help="resize a mask of another size to the image instead of refusing",
    )
    p.add_argument(
        "--ring",
        type=int_in(0, MAX_RING),
        default=1,
        help=f"extra token ring around the mask (0..{MAX_RING})",
    )
    p.add_argument(
        "--coverage",
        type=float_in(0, 1),
        default=0.0,
        help="fraction of a token's pixels the mask must cover (0 = any, at most 1)",
    )
    p.add_argument(
        "--feather",
        type=float_in(0, MAX_FEATHER),
        help=f"blend edge width in pixels (0..{MAX_FEATHER:g})",
    )
    p.add_argument(
        "--no-seamless",
        dest="seamless",
        action="store_false",
        help="model-only fills: paste the fill as decoded (feathered) instead of blending it "
        "into the photo in the gradient domain",
    )
    p.add_argument(
        "--texture",
        choices=("photo", "model", "classic"),
        default="photo",
        help="where the fill's pixels come from: photo = the photo's own texture placed where "
        "the model's fill says (default); model = the model's decode; classic = texture "
        "synthesis from the photo without the model",
    )
    p.add_argument(
        "--class-samples",
        type=int_in(1, MAX_CLASS_SAMPLES),
        default=DEFAULT_CLASS_SAMPLES,
        help="with --class: samples drawn per candidate; the one the model's recognition head "
        f"reads most as the class is kept (1 = no pick; default {DEFAULT_CLASS_SAMPLES})",
    )
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
    p.add_argument(
        "--tokens",
        type=int_in(1, MAX_EXTEND_TOKENS),
        default=4,
        help="how many token columns/rows to add (at least 1, fewer than the model's grid)",
    )
    p.add_argument(
        "--texture",
        choices=("photo", "model"),
        default="photo",
        help="photo = the new strip continues the photo's own texture along the model's "
        "layout (default); model = the model's decode",
    )
    _add_model_options(p)
    _add_decode_options(p)
    _add_output(p)

    p = sub.add_parser(
        "import-mage",
        help="convert an official MAGE checkpoint to a bundle (no PyTorch needed)",
    )
    p.add_argument("checkpoint", type=Path, help="official .pth (ViT-B or ViT-L)")
    p.add_argument("--vqgan", type=Path, help="separate vqgan_jax_strongaug.ckpt (optional)")
    p.add_argument("-o", "--output", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--name", help="bundle name (default: the output folder's name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")

    p = sub.add_parser(
        "import-maskgit",
        help="convert the official MaskGIT class-conditional ImageNet checkpoints to a bundle "
        "(no PyTorch needed)",
        description="Convert the official MaskGIT checkpoints (google-research/maskgit, Flax "
        "files without extension) to a class-conditional bundle: 1000 ImageNet classes, "
        "every run needs a class. 256 px (tokenizer_imagenet256_checkpoint + "
        "maskgit_imagenet256_checkpoint) or 512 px (the *_imagenet512_* pair). The code is "
        "Apache-2.0; the authors state no licence for the weights.",
    )
    p.add_argument("tokenizer", type=Path, help="tokenizer_imagenet{256,512}_checkpoint")
    p.add_argument("transformer", type=Path, help="maskgit_imagenet{256,512}_checkpoint")
    p.add_argument("-o", "--output", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--name", help="bundle name (default: the output folder's name)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing bundle (never a folder that is not a bundle or holds an input)",
    )

    for name, text in (
        ("export", "export own checkpoints to a bundle (modeling extra)"),
        ("train", "train own tokenizer / MAGE models (modeling extra)"),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)

    from engine.cli import recognition

    recognition.add_commands(sub, _add_model_options)

    from engine.cli import download

    download.add_command(sub)
    return parser


COMMANDS = {
    "edit": cmd_edit,
    "generate": cmd_generate,
    "extend": cmd_extend,
    "import-mage": cmd_import_mage,
    "import-maskgit": cmd_import_maskgit,
    "export": cmd_forward,
    "train": cmd_forward,
}


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
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
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
        print(
            "error: out of memory: try a smaller image, fewer candidates (-n) or fewer steps",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    except OSError as e:
        where = f": {safe_text(e.filename)}" if e.filename else ""
        print(f"error: {safe_text(e.strerror or e)}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # a bug: say so in one line, never a traceback
        log.info("details:", exc_info=True)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        what = type(e).__name__ + (f": {safe_text(first)}" if first else "")
        print(
            f"error: internal error ({what}); run with -v for details and please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
