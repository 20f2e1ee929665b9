"""VQGAN tokenizer of MAGE / MaskGIT (github.com/google-research/maskgit,
maskgit/nets/vqgan_tokenizer.py; MAGE's PyTorch port: github.com/LTH14/mage,
taming/models/vqgan.py).

Quirks of the released weights that this module reproduces (a stock taming VQGAN does not):
no attention blocks, no quant_conv / post_quant_conv, bias-free ResBlock convs and encoder
conv_in, the 1x1 shortcut applied to the *branch output* (MaskGIT's Flax ResBlock), 2x2 average
pooling down, nearest x2 + 3x3 conv up, pixels in [0, 1] in and (unclamped) out.
Parameter names follow the official state_dict so import is an identity map.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from engine.modeling.config import VqganConfig


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        # The official shortcut maps the branch output (out -> out), not the input.
        self.nin_shortcut = nn.Conv2d(out_ch, out_ch, 1, bias=False) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            return h + self.nin_shortcut(h)
        return x + h


class Level(nn.Module):
    """One resolution level: `num_res_blocks` ResnetBlocks (+ an upsample conv in the decoder)."""

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int, upsample: bool = False):
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_ch if i == 0 else out_ch, out_ch) for i in range(num_blocks)
        )
        if upsample:
            self.upsample = Upsample(out_ch)


class Upsample(nn.Module):
    """The conv after nearest-neighbour doubling (run by the Decoder: `upsample.conv`)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)


class Mid(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block_1 = ResnetBlock(ch, ch)
        self.block_2 = ResnetBlock(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.block_1(x))


class Encoder(nn.Module):
    def __init__(self, cfg: VqganConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1, bias=False)
        ins = [cfg.ch, *widths[:-1]]
        self.down = nn.ModuleList(
            Level(i, o, cfg.num_res_blocks) for i, o in zip(ins, widths, strict=True)
        )
        self.mid = Mid(widths[-1])
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], cfg.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) in [0,1] -> (B,z,h,w)
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for block in cast(Level, level).block:
                h = block(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VqganConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.z_channels, widths[-1], 3, padding=1)
        self.mid = Mid(widths[-1])
        # Stored as up.0 (full resolution) ... up.L-1 (coarsest), run coarsest first.
        ins = [*widths[1:], widths[-1]]
        self.up = nn.ModuleList(
            Level(ins[level], widths[level], cfg.num_res_blocks, upsample=level > 0)
            for level in range(len(widths))
        )
        self.norm_out = group_norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B,z,h,w) -> (B,3,H,W), unclamped
        h = self.mid(self.conv_in(z))
        for index in reversed(range(len(self.up))):
            level = cast(Level, self.up[index])
            for block in level.block:
                h = block(h)
            if index > 0:
                h = level.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class Quantizer(nn.Module):
    """Nearest-code lookup. Official: Euclidean at z_channels. Own: l2-normalised, factorised."""

    def __init__(self, cfg: VqganConfig):
        super().__init__()
        self.factorised = cfg.codebook_dim is not None
        dim = cfg.codebook_dim or cfg.z_channels
        self.embedding = nn.Embedding(cfg.codebook_size, dim)
        if self.factorised:
            self.proj_in = nn.Conv2d(cfg.z_channels, dim, 1)
            self.proj_out = nn.Conv2d(dim, cfg.z_channels, 1)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder output -> the space codes live in. (B,z,h,w) -> (B,d,h,w)"""
        if self.factorised:
            return F.normalize(self.proj_in(z), dim=1)
        return z

    def codebook(self) -> torch.Tensor:  # (K, d)
        w = self.embedding.weight
        return F.normalize(w, dim=1) if self.factorised else w

    def nearest(self, e: torch.Tensor) -> torch.Tensor:
        """(B,d,h,w) projected latents -> (B,h,w) int64 ids of the nearest code."""
        b, d, h, w = e.shape
        flat = e.permute(0, 2, 3, 1).reshape(-1, d)
        code = self.codebook()
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ code.t() + code.pow(2).sum(1)[None, :]
        return dist.argmin(1).reshape(b, h, w)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,h,w) ids -> (B,z,h,w) decoder input."""
        e = F.embedding(ids, self.codebook()).permute(0, 3, 1, 2)
        return self.proj_out(e) if self.factorised else e


class VQGAN(nn.Module):
    def __init__(self, cfg: VqganConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Quantizer(cfg)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) RGB in [0,1] -> (B,h,w) int64 codebook ids."""
        return self.quantize.nearest(self.quantize.project(self.encoder(images)))

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,h,w) ids -> (B,3,H,W) RGB, nominally in [0,1] (not clamped)."""
        return self.decoder(self.quantize.lookup(ids))

    def forward_train(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Straight-through reconstruction for training: (recon, latents, quantized, ids)."""
        e = self.quantize.project(self.encoder(images))
        ids = self.quantize.nearest(e.detach())
        q = F.embedding(ids, self.quantize.codebook()).permute(0, 3, 1, 2)
        st = e + (q - e).detach()
        z = self.quantize.proj_out(st) if self.quantize.factorised else st
        return self.decoder(z), e, q, ids


class TokenizerEncoder(nn.Module):
    """Export wrapper: image [B,3,H,W] -> tokens [B,h,w]."""

    def __init__(self, vqgan: VQGAN):
        super().__init__()
        self.vqgan = vqgan

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vqgan.encode(image)


class TokenizerDecoder(nn.Module):
    """Export wrapper: tokens [B,h,w] -> image [B,3,H,W] clipped to [0,1] (bundle contract)."""

    def __init__(self, vqgan: VQGAN):
        super().__init__()
        self.vqgan = vqgan

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.vqgan.decode(tokens).clamp(0.0, 1.0)
