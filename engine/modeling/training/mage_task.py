"""What a MAGE transformer step trains, how it is evaluated and which checkpoint is best.

The tokenizer is fixed: a step tokenizes this rank's crops, masks a ratio drawn from MAGE's
truncated Gaussian (or, at --user-masks rate, holes like users paint: engine/modeling/masks.py),
replaces the label by the null class at --class-dropout rate, and trains the masked-token
cross-entropy (engine/modeling/mage.py, forward_train).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from torch import nn

from engine.modeling import data as data_mod
from engine.modeling.config import OwnModelConfig
from engine.modeling.losses import tokenize
from engine.modeling.mage import MAGE
from engine.modeling.masks import painted_batch, user_masks
from engine.modeling.training.batches import eval_images, train_batch
from engine.modeling.training.checkpoints import build_vqgan, load_checkpoint
from engine.modeling.training.distributed import Dist


class MageLoss(nn.Module):
    def __init__(self, mage: MAGE, label_smoothing: float):
        super().__init__()
        self.mage, self.label_smoothing = mage, label_smoothing

    def forward(
        self,
        tokens: torch.Tensor,
        class_ids: torch.Tensor,
        mask_ratio: float,
        noise: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        loss = self.mage.forward_train(
            tokens,
            class_ids,
            mask_ratio=mask_ratio,
            label_smoothing=self.label_smoothing,
            noise=noise,
        )
        return {"loss": loss}


class MageTask:
    kind = "mage"
    betas = (0.9, 0.95)
    EVAL_RATIOS = (0.5, 0.75, 0.9)
    EVAL_PAINTED_AREAS = (0.1, 0.3)

    def __init__(self, args: argparse.Namespace, data: data_mod.Dataset, dist: Dist):
        self.args, self.data, self.dist = args, data, dist
        self.tok_ckpt = load_checkpoint(args.tokenizer, "tokenizer")
        self.vqgan = build_vqgan(self.tok_ckpt).to(dist.device).eval().requires_grad_(False)
        self.class_names = data.class_names
        own = OwnModelConfig(vqgan=self.vqgan.cfg, num_classes=len(self.class_names))
        cfg = own.mage(
            embed_dim=args.dim,
            depth=args.depth,
            num_heads=args.heads,
            decoder_embed_dim=args.decoder_dim,
            decoder_depth=args.decoder_depth,
            decoder_num_heads=args.decoder_heads,
            dropout=args.dropout,
        )
        self.model = MAGE(cfg).to(dist.device)
        self.loss = MageLoss(self.model, args.label_smoothing)
        self.val = self._eval_set(data.val)
        self.train_probe = self._eval_set(data.train, limit=64)
        self.total: int | None = None  # set by the Trainer (this task needs no run length)

    def _eval_set(
        self, images: data_mod.ImageSet, limit: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(len(images), limit or len(images))
        sub = data_mod.ImageSet(
            images.images[:n], images.sizes[:n], images.labels[:n], images.names[:n]
        )
        pixels = eval_images(sub, self.vqgan.cfg.image_size, self.dist.device)
        labels = sub.labels.repeat(len(pixels) // n).to(self.dist.device)
        return tokenize(self.vqgan, pixels, self.dist.amp), labels

    def config(self) -> dict[str, Any]:
        return self.model.cfg.to_dict()

    def null_class(self) -> int:
        return self.model.cfg.num_class_slots - 1

    def forward(
        self, step: int, module: nn.Module
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        args, dist = self.args, self.dist
        lo, hi = dist.slice(args.batch)
        images, labels = train_batch(self.data, args, step, dist, self.vqgan.cfg.image_size)
        tokens = tokenize(self.vqgan, images, dist.amp)  # (b,N)
        g = data_mod.step_generator(args.seed, step, stream=1)
        ratio = self.model.sample_mask_ratio(g)
        noise = torch.rand(args.batch, tokens.shape[1], generator=g)  # global batch
        drop = torch.rand(args.batch, generator=g)[lo:hi] < args.class_dropout
        if args.user_masks:
            gp = data_mod.step_generator(args.seed, step, stream=5)
            if float(torch.rand((), generator=gp)) < args.user_masks:
                # this step masks holes like users paint instead of random positions
                ratio, noise = painted_batch(gp, args.batch, self.model.cfg.grid)
        noise = noise[lo:hi]  # this rank's slice
        if not self.class_names:
            drop[:] = True  # unconditional: always the null class
        # the null class at --class-dropout rate trains unconditional generation (and CFG)
        class_ids = torch.where(drop.to(dist.device), self.null_class(), labels)
        with dist.amp():
            losses = module(tokens, class_ids, ratio, noise.to(dist.device))
        return losses, ()

    def after_step(
        self, step: int, optimizer: torch.optim.Optimizer, aux: tuple[torch.Tensor, ...]
    ) -> None:
        pass

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        out = {}
        for name, (tokens, labels) in (("val", self.val), ("train", self.train_probe)):
            loss, acc = self._masked_scores(tokens, labels)
            out[f"{name}_loss"], out[f"{name}_acc"] = round(loss, 4), round(acc, 4)
        loss, acc = self._masked_scores(*self.val, painted=True)
        out["val_painted_loss"], out["val_painted_acc"] = round(loss, 4), round(acc, 4)
        self.model.train()
        return out

    def _masked_scores(
        self, tokens: torch.Tensor, labels: torch.Tensor, painted: bool = False
    ) -> tuple[float, float]:
        """Cross-entropy (no smoothing) and accuracy on masked tokens, inference path (no
        dropping), averaged over fixed mask ratios and fixed positions; `painted`: over holes
        like users paint (engine/modeling/masks.py) of EVAL_PAINTED_AREAS instead."""
        g = torch.Generator().manual_seed(1234)
        class_ids = labels if self.class_names else None
        losses, accs = [], []
        n = tokens.shape[1]
        for r in self.EVAL_PAINTED_AREAS if painted else self.EVAL_RATIOS:
            if painted:
                masks, _ = user_masks(g, len(tokens), self.model.cfg.grid, r)
                masked = masks.flatten(1).to(tokens.device)
            else:
                noise = torch.rand(tokens.shape, generator=g).to(tokens.device)
                masked = noise.argsort(1).argsort(1) < math.ceil(r * n)
            inp = torch.where(masked, self.model.cfg.mask_token_id, tokens)
            with self.dist.amp():
                logits = self.model(inp, class_ids).float()
            losses.append(nn.functional.cross_entropy(logits[masked], tokens[masked]).item())
            accs.append((logits[masked].argmax(-1) == tokens[masked]).float().mean().item())
        return sum(losses) / len(losses), sum(accs) / len(accs)

    def better(self, new: dict[str, float], best: dict[str, float] | None) -> bool:
        return best is None or new["val_loss"] < best["val_loss"]

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {
            "tokenizer": {
                "path": str(self.args.tokenizer),
                "config": self.tok_ckpt["config"],
                "step": self.tok_ckpt.get("step"),
                "metrics": self.tok_ckpt.get("metrics", {}),
                "train_args": self.tok_ckpt.get("train_args", {}),
            }
        }
