"""What `python -m engine.modeling.train` does once its flags are parsed: one training run
(`tokenizer`, `mage`) or one export of trained checkpoints to a bundle (`export`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from engine.modeling import data as data_mod
from engine.modeling.training.checkpoints import build_mage, build_vqgan, load_checkpoint
from engine.modeling.training.distributed import Dist, device_name
from engine.modeling.training.model_card import card_details, training_section
from engine.modeling.training.trainer import Task, Trainer

log = logging.getLogger(__name__)

# TokenizerTask or MageTask: a task built from the flags, the data and the process
TaskFactory = Callable[[argparse.Namespace, data_mod.Dataset, Dist], Task]


def run_training(task_cls: TaskFactory, args: argparse.Namespace) -> int:
    """`train tokenizer` / `train mage`: one run into --out, resumable, under torchrun too."""
    if not args.minutes and not args.steps:
        raise ValueError("give a budget: --minutes M or --steps N")
    dist = Dist(args.device)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    dataset = data_mod.load_data(args.data, args.image_size)
    dataset.train = dataset.train.to(dist.device)
    log.info(
        "data: %d train / %d held-out images, %s",
        len(dataset.train),
        len(dataset.val),
        f"{len(dataset.class_names)} classes" if dataset.class_names else "unconditional",
    )
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)  # the initial weights, identical in every process
    task = task_cls(args, dataset, dist)
    n_params = sum(p.numel() for p in task.model.parameters())
    log.info(
        "%s: %.2f M parameters on %s, %d process(es), global batch %d (setup %.1f s)",
        task.kind,
        n_params / 1e6,
        device_name(dist.device),
        dist.world,
        args.batch,
        time.monotonic() - t0,
    )
    metrics = Trainer(task, args, dist).train()
    log.info("%s done: %s -> %s", task.kind, metrics, Path(args.out) / f"{task.kind}.pt")
    dist.finish()
    return 0


def run_export(args: argparse.Namespace) -> int:
    """`train export`: a bundle from two checkpoints, or a bundle's copy with a fine-tuned
    tokenizer (--from-bundle)."""
    from engine.modeling.export import export_bundle, replace_tokenizer

    tok = load_checkpoint(args.tokenizer, "tokenizer")
    if args.from_bundle:
        details = "\n".join(training_section("Tokenizer fine-tuning", tok))
        if args.notes:
            details += "\n\n" + args.notes.read_text().strip()
        agree, diff = replace_tokenizer(
            build_vqgan(tok),
            args.from_bundle,
            args.output,
            name=args.name,
            details=details,
            overwrite=args.overwrite,
        )
        log.info("parity: tokens agree on %.2f%%, decoder max |d| = %.2e", 100 * agree, diff)
        log.info("bundle written to %s", args.output)
        return 0
    if args.mage is None:
        raise ValueError("give the transformer: --mage CHECKPOINT or --from-bundle BUNDLE")
    mage_ckpt = load_checkpoint(args.mage, "mage")
    vqgan, mage = build_vqgan(tok), build_mage(mage_ckpt)
    if (vqgan.cfg.grid, vqgan.cfg.codebook_size) != (mage.cfg.grid, mage.cfg.codebook_size):
        raise ValueError(
            "the tokenizer and the transformer do not belong together "
            "(grid or codebook size differ)"
        )
    extra = {"CREDITS.md": args.credits} if args.credits else None
    names = mage_ckpt.get("class_names") or None
    report = export_bundle(
        vqgan,
        mage,
        args.output,
        name=args.name,
        overwrite=args.overwrite,
        source=f"trained with MAGE Studio (engine/modeling/train.py) on "
        f"{mage_ckpt.get('data', {}).get('source', 'unknown data')}",
        class_names=names,
        details=card_details(tok, mage_ckpt, args.credits, args.notes),
        extra_files=extra,
        decoding={
            "steps": args.steps,
            "choice_temperature": args.choice_temperature,
            "sample_temperature": args.sample_temperature,
        },
    )
    for line in report.lines():
        log.info("parity: %s", line)
    log.info("bundle written to %s", args.output)
    return 0
