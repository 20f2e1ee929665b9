"""Tokenizer training pieces: the straight-through forward, losses, codebook-usage tracking with
dead-code restarts, PSNR.

The tokenizer is trained with L1 + L2 reconstruction, an image-gradient L1 term (a cheap
sharpness proxy that needs no downloaded perceptual network), and the VQ-VAE codebook and
commitment losses in the l2-normalised factorised code space (Yu et al., "Vector-quantized
Image Modeling with Improved VQGAN", 2021).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from engine.modeling.vqgan import VQGAN


def encode_latents(vqgan: VQGAN, images: torch.Tensor, amp) -> torch.Tensor:
    """(B,3,H,W) -> (B,d,h,w) latents in code space. `amp()` opens the autocast context (or a
    null one). The conv trunk may run in bf16; the
    projection and the nearest-code search run in fp32, as the exported fp32 model does, so
    training sees the same token ids inference will."""
    with amp():
        z = vqgan.encoder(images)
    with _fp32(images):
        return vqgan.quantize.project(z.float())


def tokenize(vqgan: VQGAN, images: torch.Tensor, amp) -> torch.Tensor:
    """(B,3,H,W) -> (B,h*w) token ids, raster order (frozen tokenizer for MAGE training)."""
    with torch.no_grad():
        e = encode_latents(vqgan, images, amp)
        with _fp32(images):
            return vqgan.quantize.nearest(e).flatten(1)


def straight_through(vqgan: VQGAN, images: torch.Tensor, amp):
    """VQGAN.forward_train with an fp32 lookup: returns (recon, latents, quantised, ids)."""
    e = encode_latents(vqgan, images, amp)
    with _fp32(images):
        ids = vqgan.quantize.nearest(e.detach())
        q = F.embedding(ids, vqgan.quantize.codebook()).permute(0, 3, 1, 2)
        st = e + (q - e).detach()  # gradients flow to the encoder as if unquantised
        z = vqgan.quantize.proj_out(st) if vqgan.quantize.factorised else st
    with amp():
        recon = vqgan.decoder(z)
    return recon.float(), e, q, ids


def _fp32(t: torch.Tensor):
    return (
        torch.autocast(t.device.type, enabled=False)
        if torch.is_autocast_enabled(t.device.type)
        else contextlib.nullcontext()
    )


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def tokenizer_losses(
    images, recon, e, q, beta: float = 0.25, edge_weight: float = 0.5
) -> dict[str, torch.Tensor]:
    """All terms plus their weighted sum under "loss"."""
    l1 = (recon - images).abs().mean()
    l2 = (recon - images).pow(2).mean()
    gx, gy = image_gradients(recon)
    tx, ty = image_gradients(images)
    edge = (gx - tx).abs().mean() + (gy - ty).abs().mean()
    codebook = (q - e.detach()).pow(2).sum(1).mean()  # moves codes towards encoder outputs
    commit = (e - q.detach()).pow(2).sum(1).mean()  # keeps the encoder near its codes
    loss = l1 + l2 + edge_weight * edge + codebook + beta * commit
    return {"loss": loss, "l1": l1, "l2": l2, "edge": edge, "codebook": codebook, "commit": commit}


def psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of recon clipped to [0,1] (what the bundle's decoder returns)."""
    mse = (recon.clamp(0, 1) - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


class CodeUsage:
    """Counts code assignments over a window of steps; at the window's end, codes nobody used
    are restarted from current encoder outputs (so the codebook stays alive without EMA).

    Counts must be of the *global* batch (all-reduced) and the replacement latents gathered
    in rank order, so every rank (and a single process) makes the same restart."""

    def __init__(self, codebook_size: int, device):
        self.counts = torch.zeros(codebook_size, dtype=torch.long, device=device)
        self.last = self.counts.clone()  # the last complete window, for logging

    def add(self, ids: torch.Tensor) -> None:
        self.counts += torch.bincount(ids.flatten(), minlength=len(self.counts))

    def stats(self) -> dict[str, float]:
        c = self.last if self.last.sum() > 0 else self.counts
        p = c.float() / c.sum().clamp_min(1)
        perplexity = torch.exp(-(p * p.clamp_min(1e-12).log()).sum())
        return {"codes_used": int((c > 0).sum()), "perplexity": float(perplexity)}

    def restart(
        self,
        embedding: torch.Tensor,
        latents: torch.Tensor,
        generator: torch.Generator,
        optimizer=None,
        replace: bool = True,
    ) -> int:
        """Replace unused rows of `embedding` (K,d) by random rows of `latents` (M,d).
        Returns how many codes were restarted; starts a new counting window either way."""
        dead = (self.counts == 0).nonzero().flatten()
        if not replace:
            dead = dead[:0]
        if len(dead):
            pick = torch.randint(len(latents), (len(dead),), generator=generator)
            with torch.no_grad():
                embedding[dead] = latents[pick.to(latents.device)].to(embedding.dtype)
            _reset_moments(optimizer, embedding, dead)
        self.last, self.counts = self.counts, torch.zeros_like(self.counts)
        return len(dead)

    def state_dict(self) -> dict:
        return {"counts": self.counts.cpu(), "last": self.last.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.counts = state["counts"].to(self.counts.device)
        self.last = state["last"].to(self.counts.device)


def _reset_moments(optimizer, param: torch.Tensor, rows: torch.Tensor) -> None:
    """A restarted code starts afresh: forget Adam's moments for its row."""
    if optimizer is None:
        return
    state = optimizer.state.get(param, {})
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state:
            state[key][rows] = 0
