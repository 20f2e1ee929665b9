"""Adversarial and frequency terms for sharpening the tokenizer's decoder.

A PatchGAN discriminator (Isola et al., "Image-to-Image Translation with Conditional
Adversarial Networks", 2017) judges overlapping patches as real or reconstructed; it is
trained with the hinge loss and its generator term is scaled by VQGAN's adaptive weight
(Esser et al., "Taming Transformers for High-Resolution Image Synthesis", 2021, eq. 7): the
ratio of the reconstruction loss's gradient norm to the adversarial loss's gradient norm at the
decoder's last layer, so neither term swamps the other whatever their scales. Nothing here is
pretrained. The discriminator uses GroupNorm instead of BatchNorm, so it behaves the same in one
process and under DistributedDataParallel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """(B,3,H,W) images in [0,1] -> (B,1,h,w) real-vs-fake logits, one per overlapping patch.

    `layers` stride-2 4x4 convolutions (receptive field 70 px for 3 layers at the default
    sizes), then one stride-1 layer and a 1-channel output."""

    def __init__(self, ch: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = ch
        for i in range(1, layers + 1):
            out = ch * min(2**i, 8)
            stride = 2 if i < layers else 1
            mods += [
                nn.Conv2d(width, out, 4, stride, 1, bias=False),
                nn.GroupNorm(min(32, out // 4), out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        mods.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def min_size(self) -> int:
        """The smallest image side that leaves at least one patch logit."""
        side = 1
        for m in reversed(self.net):
            if isinstance(m, nn.Conv2d):  # out = floor((in + 2 - 4) / stride) + 1
                side = (side - 1) * m.stride[0] + 2
        return side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)  # [-1, 1] inputs, as in taming's discriminator


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: 0 once real patches score >= 1 and fakes <= -1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator term: raise the discriminator's score of reconstructions."""
    return -fake_logits.mean()


def adaptive_weight(
    rec_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer: torch.Tensor,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """VQGAN's balance: |grad rec_loss| / |grad g_loss| at `last_layer`, clamped to
    [0, max_weight] and detached (a scale, not a path for gradients)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (g_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def spectrum(x: torch.Tensor) -> torch.Tensor:
    """log(1 + |FFT|) of each channel, orthonormal 2-D real FFT."""
    return torch.log1p(torch.fft.rfft2(x.float(), norm="ortho").abs())


def frequency_loss(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """L1 between log amplitude spectra: a blur loses high frequencies, which this counts as
    much as the low ones (a pixel loss hardly notices them)."""
    return (spectrum(recon) - spectrum(images)).abs().mean()


def high_frequency_energy(x: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Per-image energy of the spectrum above `cutoff` x the Nyquist frequency (radially), of
    the luminance (BT.601) with its mean removed. (B,3,H,W) -> (B,)"""
    luma = torch.tensor([0.299, 0.587, 0.114], device=x.device)
    grey = (x.float() * luma[:, None, None]).sum(1)
    grey = grey - grey.mean((-2, -1), keepdim=True)
    amp2 = torch.fft.rfft2(grey, norm="ortho").abs().pow(2)
    h, w = grey.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device).abs()[:, None] * 2  # 1 = Nyquist
    fx = torch.fft.rfftfreq(w, device=x.device)[None, :] * 2
    high = (fy**2 + fx**2).sqrt() > cutoff
    return (amp2 * high).flatten(1).sum(1)


def high_frequency_kept(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-image ratio of the reconstruction's high-frequency energy to the real image's
    (1 = as detailed as the photo, below 1 = blurred). (B,3,H,W) x2 -> (B,)"""
    return high_frequency_energy(recon.clamp(0, 1)) / high_frequency_energy(images).clamp_min(1e-8)
