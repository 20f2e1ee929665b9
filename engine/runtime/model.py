"""What the runtime asks of a model: the interface `Bundle` implements.

The editing pipeline (runtime/runs.py), the speed options (runtime/speed.py) and recognition
take a `Model`, never a `Bundle`'s private members, so a stand-in (the tests' scripted fake) is
held to the same interface by the type checker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.runtime.manifest import Manifest
from engine.runtime.speed import ModelCaches, Speed


class Model(Protocol):
    @property
    def manifest(self) -> Manifest: ...

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where the transformer runs."""
        ...

    @property
    def notices(self) -> list[str]:
        """What the user should be told once (a CPU fallback, a missing optional file)."""
        ...

    @property
    def caches(self) -> ModelCaches:
        """Tokens and decoder statistics of recently edited squares (speed options)."""
        ...

    @property
    def has_region_decoders(self) -> bool: ...

    def notice(self, text: str) -> None:
        """Add `text` to `notices` unless it is there already."""
        ...

    def encode(self, images: np.ndarray) -> np.ndarray:
        """float32 [B,3,H,W] RGB in [0,1] -> int64 [B,h,w] codebook ids."""
        ...

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [B,h,w] -> float32 [B,3,H,W] RGB in [0,1]."""
        ...

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [B,N] -> float32 [B,D] (recognition)."""
        ...

    def tokens_to_logits(
        self, class_id: int | None = None, guidance: float = 0.0, model: str = "transformer"
    ) -> Callable[[np.ndarray], np.ndarray]:
        """The callable the decoder drives: int64 [B,N] -> float32 [B,N,codebook_size]."""
        ...

    def transformer(self, speed: Speed) -> str:
        """The transformer to name in `tokens_to_logits` under `speed` (int8 or fp32)."""
        ...

    def decode_with_stats(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A full decode and its decoder GroupNorm statistics (the region decoders)."""
        ...

    def decode_with_given_stats(
        self, tokens: np.ndarray, live: np.ndarray, outside: np.ndarray
    ) -> np.ndarray:
        """A crop decoded with the statistics of the rest of its square."""
        ...
