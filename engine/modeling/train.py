"""Train our own tokenizer and MAGE transformer; export them as a bundle.

    python main.py train tokenizer --data DIR_OR_PACK --out RUN_DIR [--minutes M | --steps N]
    python main.py train mage --data DIR_OR_PACK --tokenizer RUN_DIR/tokenizer.pt --out RUN_DIR
    python main.py train export --tokenizer T.pt --mage M.pt -o BUNDLE_DIR --name NAME

The MAGE recipe is the official pre-training one (arXiv 2211.09117, implementation details;
github.com/LTH14/mage, main_pretrain.py) scaled down. The same command under
`torchrun --nproc_per_node N` trains with DistributedDataParallel: --batch is the global batch,
and every random choice of a step (images, crops, flips, mask ratio, masked positions, class
dropout) is drawn for the global batch from (seed, step) alone, each rank taking its slice, so N
processes follow one process's loss curve. Only dropout is drawn per rank.

This module is the command line; engine/modeling/training/ holds what it runs, one job a
module (its __init__ lists them).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.modeling.training.commands import run_export, run_training
from engine.modeling.training.mage_task import MageTask
from engine.modeling.training.tokenizer_task import TokenizerTask
from engine.runtime.devices import DEVICES
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS

log = logging.getLogger("engine.modeling.train")  # also when run as __main__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py train", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("tokenizer", help="train the VQGAN tokenizer")
    _common(tok, batch=64, lr=8e-4, wd=0.0, warmup=200)
    tok.add_argument("--ch", type=int, default=64, help="base conv width (multiple of 32)")
    tok.add_argument(
        "--ch-mult",
        type=_ints,
        default=(1, 1, 2, 2),
        help="width multipliers per level, comma separated (len-1 halvings)",
    )
    tok.add_argument("--res-blocks", type=int, default=1, help="ResNet blocks per level")
    tok.add_argument("--z-channels", type=int, default=128)
    tok.add_argument("--codebook-size", type=int, default=1024)
    tok.add_argument("--codebook-dim", type=int, default=16, help="factorised code dimension")
    tok.add_argument("--beta", type=float, default=0.25, help="commitment loss weight")
    tok.add_argument(
        "--edge-weight",
        type=float,
        default=0.5,
        help="weight of the image-gradient L1 (sharpness) loss",
    )
    tok.add_argument(
        "--restart-every", type=int, default=100, help="steps between dead-code restarts"
    )
    tok.add_argument(
        "--decoder-only",
        action="store_true",
        help="train only the decoder (with --init: sharpen a trained tokenizer); "
        "the encoder and codebook stay fixed, so tokens do not change and a "
        "transformer trained on them stays valid",
    )
    tok.add_argument(
        "--fft-weight",
        type=float,
        default=0.0,
        help="weight of the L1 between log amplitude spectra (a blur loses high frequencies)",
    )
    tok.add_argument(
        "--adv-weight",
        type=float,
        default=0.0,
        help="weight of the PatchGAN hinge term, scaled by VQGAN's adaptive weight (0: none)",
    )
    tok.add_argument(
        "--adv-start",
        type=int,
        default=0,
        help="step from which the adversarial term reaches the decoder "
        "(the discriminator trains from step 0)",
    )
    tok.add_argument("--disc-lr", type=float, default=1e-4, help="discriminator learning rate")
    tok.add_argument("--disc-ch", type=int, default=64, help="discriminator base width")
    tok.add_argument("--disc-layers", type=int, default=3, help="discriminator stride-2 layers")
    tok.set_defaults(func=lambda a: run_training(TokenizerTask, a))
    mg = sub.add_parser("mage", help="train the MAGE transformer on a trained tokenizer")
    _common(mg, batch=256, lr=6e-4, wd=0.05, warmup=300)
    mg.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint (.pt)")
    mg.add_argument("--dim", type=int, default=256, help="encoder width")
    mg.add_argument("--depth", type=int, default=5, help="encoder blocks")
    mg.add_argument("--heads", type=int, default=8)
    mg.add_argument("--decoder-dim", type=int, default=256)
    mg.add_argument("--decoder-depth", type=int, default=2)
    mg.add_argument("--decoder-heads", type=int, default=8)
    mg.add_argument("--dropout", type=float, default=0.1)
    mg.add_argument(
        "--class-dropout",
        type=float,
        default=0.1,
        help="rate at which the null class replaces the label (unconditional + CFG)",
    )
    mg.add_argument("--label-smoothing", type=float, default=0.1)
    mg.add_argument(
        "--user-masks",
        type=float,
        default=0.0,
        help="share of steps that mask painted holes (blobs, boxes, brush strokes, "
        "object-sized) with a ring around them instead of random positions",
    )
    mg.set_defaults(func=lambda a: run_training(MageTask, a))
    ex = sub.add_parser(
        "export",
        help="write a model bundle from two checkpoints, or a "
        "bundle's copy with a fine-tuned tokenizer",
    )
    ex.add_argument("--tokenizer", type=Path, required=True)
    source = ex.add_mutually_exclusive_group(required=True)
    source.add_argument("--mage", type=Path, help="transformer checkpoint")
    source.add_argument(
        "--from-bundle",
        type=Path,
        help="keep this bundle's transformer, features, heads and credits and "
        "replace its tokenizer (one fine-tuned with --decoder-only)",
    )
    ex.add_argument("-o", "--output", type=Path, required=True, help="bundle folder")
    ex.add_argument("--name", required=True)
    ex.add_argument("--credits", type=Path, help="CREDITS.md to ship in the bundle")
    ex.add_argument("--notes", type=Path, help="markdown appended to MODEL_CARD.md")
    ex.add_argument("--overwrite", action="store_true")
    ex.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="default decoding steps")
    ex.add_argument(
        "--choice-temperature",
        type=float,
        default=DEFAULT_CHOICE_TEMPERATURE,
        help=f"default choice temperature (MAGE: {DEFAULT_CHOICE_TEMPERATURE:g})",
    )
    ex.add_argument(
        "--sample-temperature",
        type=float,
        default=1.0,
        help="default token sampling temperature (MAGE: 1.0; a small model "
        "fills holes more plausibly below 1)",
    )
    ex.set_defaults(func=run_export)
    return parser


def _common(p: argparse.ArgumentParser, batch: int, lr: float, wd: float, warmup: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="image folder or .npz pack")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--image-size", type=int, default=128)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="train for this long (sets the steps)")
    budget.add_argument("--steps", type=int, help="train this many steps")
    p.add_argument("--batch", type=int, default=batch, help="global batch (all processes)")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=warmup, help="linear warm-up steps")
    p.add_argument("--wd", type=float, default=wd, help="AdamW weight decay")
    p.add_argument("--clip", type=float, default=3.0, help="gradient-norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR's checkpoint")
    p.add_argument(
        "--init",
        type=Path,
        help="start from this checkpoint's weights (a new "
        "optimiser and schedule: fine-tuning or a longer second run); for the "
        "tokenizer also a bundle folder",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--eval-every", type=int, default=0, help="steps (0: 8 times per run)")
    p.add_argument("--ckpt-every", type=int, default=0, help="steps between checkpoints")
    p.add_argument("--ckpt-minutes", type=float, default=10.0)
    p.add_argument("--log-seconds", type=float, default=10.0, help="progress line interval")
    p.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="stop (and checkpoint) after this step, keeping the schedule",
    )


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (`python main.py train ...` forwards here)."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
    # the progress lines are INFO records; `main.py train` has set up a quieter root logger
    logging.getLogger("engine.modeling").setLevel(logging.INFO)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
