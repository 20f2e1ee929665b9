"""The decoder's adversarial and frequency terms on known cases."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.modeling.adversarial import (
    PatchDiscriminator,
    adaptive_weight,
    frequency_loss,
    high_frequency_kept,
    hinge_d_loss,
    hinge_g_loss,
)

_PATH = Path(__file__).resolve().parents[2] / "bench" / "eval_quality.py"
_spec = importlib.util.spec_from_file_location("eval_quality_adv", _PATH)
assert _spec is not None
assert _spec.loader is not None
eq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eq)


def textured(b=2, size=64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 0.6 + 0.2


def blur(x: torch.Tensor, k: int = 5) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="reflect"), k, 1)


def test_patch_discriminator_gives_one_logit_per_patch():
    d = PatchDiscriminator(ch=16, layers=3)
    out = d(textured(size=64))
    # three stride-2 convs then two stride-1 4x4 convs: 64 -> 8 -> 7 -> 6
    assert out.shape == (2, 1, 6, 6)
    assert d(textured(size=128)).shape == (2, 1, 14, 14)  # any image size
    for layers in (1, 2, 3):
        d = PatchDiscriminator(ch=16, layers=layers)
        n = d.min_size()
        assert d(textured(b=1, size=n)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            d(textured(b=1, size=n - 1))


def test_hinge_losses_known_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # real: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; fake: relu(1-3)=0, relu(1+0)=1 -> 0.5
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    assert hinge_d_loss(torch.ones(3) * 1.5, -torch.ones(3) * 2).item() == 0.0
    assert hinge_g_loss(fake).item() == pytest.approx(1.5)


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    torch.manual_seed(0)
    last = torch.nn.Parameter(torch.randn(4, 4))
    x = torch.randn(8, 4)
    y = x @ last
    rec = y.pow(2).mean()
    g = -(3 * y).mean()
    want = (
        torch.autograd.grad(rec, last, retain_graph=True)[0].norm()
        / (torch.autograd.grad(g, last, retain_graph=True)[0].norm() + 1e-4)
    ).item()
    w = adaptive_weight(rec, g, last)
    assert w.item() == pytest.approx(want, rel=1e-6)
    assert not w.requires_grad
    # scaling the adversarial loss scales the weight inversely: the balance is kept
    assert adaptive_weight(rec, 10 * g, last).item() == pytest.approx(want / 10, rel=1e-3)
    assert adaptive_weight(rec, g, last, max_weight=0.01).item() == pytest.approx(0.01)


def test_frequency_loss_sees_blur_that_l1_barely_does():
    x = textured()
    assert frequency_loss(x, x).item() == 0.0
    blurred, shifted = blur(x), (x + 0.02).clamp(0, 1)
    # measured against a small colour shift, a blur costs far more in the spectrum than in L1
    l1_ratio = (blurred - x).abs().mean() / (shifted - x).abs().mean()
    fft_ratio = frequency_loss(blurred, x) / frequency_loss(shifted, x)
    assert fft_ratio > 2 * l1_ratio


def test_high_frequency_kept_orders_blur_and_agrees_with_the_eval_script():
    x = textured(b=3, size=48, seed=1)
    kept_same = high_frequency_kept(x, x)
    torch.testing.assert_close(kept_same, torch.ones(3))
    kept_blur = high_frequency_kept(blur(x, 3), x)
    kept_more_blur = high_frequency_kept(blur(x, 7), x)
    assert (kept_more_blur < kept_blur).all()
    assert (kept_blur < 0.5).all()
    noisier = (x + 0.2 * (torch.rand_like(x) - 0.5)).clamp(0, 1)
    assert (high_frequency_kept(noisier, x) > 1).all()
    # the bench's numpy measure (uint8 photos, BT.601 luma) is the same quantity
    for i in range(3):
        a = (x[i].permute(1, 2, 0).numpy() * 255).astype(np.float64)
        b = (blur(x, 3)[i].permute(1, 2, 0).numpy() * 255).astype(np.float64)
        assert eq.hf_kept(a, b) == pytest.approx(kept_blur[i].item(), rel=1e-4)
