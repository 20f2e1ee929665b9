"""AdamW parameter groups and the learning-rate schedule of the MAGE pre-training recipe
(github.com/LTH14/mage, main_pretrain.py: timm's weight-decay groups, per-iteration schedule).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """timm's add_weight_decay: no decay on biases, norms, embeddings and position tables."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or name.endswith("bias") or "embed" in name or "embedding" in name
        (no_decay if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warm-up, then half-cycle cosine to zero (the reference's per-iteration schedule)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * 0.5 * (1 + math.cos(math.pi * progress))
