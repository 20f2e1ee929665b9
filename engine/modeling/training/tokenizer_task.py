"""What a tokenizer (VQGAN) step trains, how it is evaluated and which checkpoint is best.

A step reconstructs this rank's crops through the straight-through quantiser and trains on
L1 + L2 + image-gradient + codebook/commitment losses (engine/modeling/losses.py), optionally
a log-spectrum term and a PatchGAN hinge term (engine/modeling/adversarial.py); unused codes
are restarted from the encoder's latents. --decoder-only keeps the encoder and codebook fixed.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import torch
from torch import nn

from engine.modeling import data as data_mod
from engine.modeling.adversarial import (
    PatchDiscriminator,
    adaptive_weight,
    frequency_loss,
    high_frequency_kept,
    hinge_d_loss,
    hinge_g_loss,
)
from engine.modeling.config import VqganConfig
from engine.modeling.losses import CodeUsage, psnr, straight_through, tokenizer_losses
from engine.modeling.training.batches import eval_images, train_batch
from engine.modeling.training.distributed import Amp, Dist
from engine.modeling.vqgan import VQGAN

log = logging.getLogger(__name__)


class TokenizerLoss(nn.Module):
    """The unit DDP wraps: images -> (losses, latents, ids, reconstruction)."""

    def __init__(
        self, vqgan: VQGAN, beta: float, edge_weight: float, amp: Amp, fft_weight: float = 0.0
    ):
        super().__init__()
        self.vqgan, self.beta, self.edge_weight, self.amp = vqgan, beta, edge_weight, amp
        self.fft_weight = fft_weight

    def forward(
        self, images: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        # The decoder always sees the whole token grid: its GroupNorms take statistics over
        # the grid, so a decoded part of it is another function (an 8x8 part of the 16x16
        # grid decodes only 22 dB close to the same pixels of the whole decode), and a decoder
        # fine-tuned on parts gets worse on whole images.
        recon, e, q, ids = straight_through(self.vqgan, images, self.amp)
        losses = tokenizer_losses(images, recon, e, q, self.beta, self.edge_weight)
        if self.fft_weight:
            losses["fft"] = frequency_loss(recon, images)
            losses["loss"] = losses["loss"] + self.fft_weight * losses["fft"]
        return losses, e.detach(), ids, recon


class TokenizerTask:
    kind = "tokenizer"
    betas = (0.9, 0.99)

    def __init__(self, args: argparse.Namespace, data: data_mod.Dataset, dist: Dist):
        self.args, self.data, self.dist = args, data, dist
        cfg = VqganConfig(
            image_size=args.image_size,
            ch=args.ch,
            ch_mult=tuple(args.ch_mult),
            num_res_blocks=args.res_blocks,
            z_channels=args.z_channels,
            codebook_size=args.codebook_size,
            codebook_dim=args.codebook_dim,
        )
        self.model = VQGAN(cfg).to(dist.device)
        if args.decoder_only:
            # the encoder and codebook stay fixed: every image keeps its tokens, so a
            # transformer trained on those tokens (for example a bundle's) stays valid
            self.model.encoder.requires_grad_(False)
            self.model.quantize.requires_grad_(False)
        self.loss = TokenizerLoss(
            self.model, args.beta, args.edge_weight, dist.amp, args.fft_weight
        )
        self.disc: PatchDiscriminator | None = None
        if args.adv_weight:
            self.disc = PatchDiscriminator(args.disc_ch, args.disc_layers).to(dist.device)
            self.disc_opt = torch.optim.Adam(
                self.disc.parameters(), lr=args.disc_lr, betas=(0.5, 0.9)
            )
        if self.disc is not None and cfg.image_size < self.disc.min_size():
            raise ValueError(
                f"the discriminator needs images of at least {self.disc.min_size()} px, "
                f"the model makes {cfg.image_size} px: use fewer --disc-layers"
            )
        self.usage = CodeUsage(cfg.codebook_size, dist.device)
        self.class_names = data.class_names
        self.val_images = eval_images(data.val, cfg.image_size, dist.device)
        self.total: int | None = None  # set by the Trainer once the run length is known
        self.last_step = -1  # the step last trained

    def config(self) -> dict[str, Any]:
        return self.model.cfg.to_dict()

    def forward(
        self, step: int, module: nn.Module
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        args = self.args
        self.last_step = step
        images, _ = train_batch(self.data, args, step, self.dist, self.model.cfg.image_size)
        losses, e, ids, recon = module(images)
        if self.disc is not None:
            losses.update(self.adversarial(step, losses["loss"], recon, images))
            losses["loss"] = losses["loss"] + losses.pop("adv_term")
        return losses, (e, ids)

    def adversarial(
        self, step: int, rec_loss: torch.Tensor, recon: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One discriminator step (hinge loss) on this batch, then the generator's term
        scaled by VQGAN's adaptive weight, from step --adv-start on (before it the
        discriminator learns alone, so its first verdicts are not noise)."""
        assert self.disc is not None
        self.disc.requires_grad_(True)
        real, fake = self.disc(target), self.disc(recon.detach())
        d_loss = hinge_d_loss(real, fake)
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        if self.dist.world > 1:
            for p in self.disc.parameters():
                if p.grad is not None:
                    self.dist.mean(p.grad)
        self.disc_opt.step()
        self.disc.requires_grad_(False)
        g_loss = hinge_g_loss(self.disc(recon))
        zero = torch.zeros((), device=recon.device)
        weight = zero
        if step >= self.args.adv_start:
            last = self.model.decoder.conv_out.weight
            weight = adaptive_weight(rec_loss, g_loss, last) * self.args.adv_weight
        return {
            "adv_term": weight * g_loss,
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "adv_weight": weight,
            "d_real": real.detach().mean(),
            "d_fake": fake.detach().mean(),
        }

    def after_step(
        self, step: int, optimizer: torch.optim.Optimizer, aux: tuple[torch.Tensor, ...]
    ) -> None:
        e, ids = aux
        self.usage.counts += self.dist.sum(
            torch.bincount(ids.flatten(), minlength=len(self.usage.counts))
        )
        if self.args.decoder_only:
            return  # a fixed codebook: no restarts
        if step % self.args.restart_every == 0:  # step 0: fill the codebook from the encoder
            latents = self.dist.gather(e).permute(0, 2, 3, 1).reshape(-1, e.shape[1])
            g = data_mod.step_generator(self.args.seed, step, stream=3)
            # no restarts in the last fifth: the decoder needs time to learn the new codes
            late = self.total is not None and step >= 0.8 * self.total
            n = self.usage.restart(
                self.model.quantize.embedding.weight, latents, g, optimizer, replace=not late
            )
            if n and step > 0:
                log.debug("step %d: restarted %d unused codes", step, n)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        scores, kept, ids = [], [], []
        for chunk in self.val_images.split(64):
            recon, _, _, i = straight_through(self.model, chunk, self.dist.amp)
            scores.append(psnr(recon, chunk))
            kept.append(high_frequency_kept(recon, chunk))
            ids.append(i.flatten())
        self.model.train()
        usage = self.usage.stats()
        return {
            "val_psnr": round(float(torch.cat(scores).mean()), 3),
            "val_hf_kept": round(float(torch.cat(kept).median()), 3),
            "train_codes_used": usage["codes_used"],
            "train_perplexity": round(usage["perplexity"], 1),
            "val_codes_used": int(torch.cat(ids).unique().numel()),
        }

    def better(self, new: dict[str, float], best: dict[str, float] | None) -> bool:
        """Higher held-out PSNR; with the adversarial term, a checkpoint trained with it beats
        any from before --adv-start (PSNR alone would keep the blurrier one)."""
        if self.disc is not None and self.args.adv_start:
            on = self.last_step >= self.args.adv_start
            best_on = best is not None and best["step"] > self.args.adv_start
            if on != best_on:
                return on
        return best is None or new["val_psnr"] > best["val_psnr"]

    def state(self) -> dict[str, Any]:
        out = {"usage": self.usage.state_dict()}
        if self.disc is not None:
            out["disc"] = self.disc.state_dict()
            out["disc_opt"] = self.disc_opt.state_dict()
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        self.usage.load_state_dict(state["usage"])
        if self.disc is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_opt"])

    def info(self) -> dict[str, Any]:
        return {}
