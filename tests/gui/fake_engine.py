"""A scripted stand-in for engine.runtime.bundle.Bundle (krita's MockClient idea).

It implements `engine.runtime.model.Model` (the type checker holds it to that interface, as it
holds `Bundle`), runs in microseconds, and can be told to sleep per transformer call, to
block until released, or to fail at a given call, so job lifecycles can be tested exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.runtime.errors import BundleError
from engine.runtime.manifest import Manifest
from engine.runtime.speed import ModelCaches, Speed

if TYPE_CHECKING:
    from engine.runtime.model import Model


def fake_manifest(class_names=("cat", "dog", "boat"), steps: int = 6) -> Manifest:
    return Manifest(
        name="fake",
        image_size=64,
        grid=[16, 16],
        codebook_size=32,
        mask_token_id=40,
        class_names=list(class_names) if class_names else None,
        null_class_id=len(class_names) if class_names else None,
        decoding={"steps": steps, "choice_temperature": 4.5},
    )


class FakeBundle:
    def __init__(
        self,
        manifest: Manifest | None = None,
        delay: float = 0.0,
        fail_at_call: int | None = None,
        error: Exception | None = None,
    ):
        self.manifest = manifest or fake_manifest()
        self.delay = delay
        self.fail_at_call = fail_at_call
        self.error = error or BundleError("model 'fake' failed in transformer.onnx: scripted")
        self.calls = 0
        self.gate = threading.Event()  # cleared by block(): logits wait until release()
        self.gate.set()
        self.device = self.requested_device = "cpu"
        self.notices: list[str] = []
        self.name = self.manifest.name
        self.path = Path("fake")
        self.caches = ModelCaches()
        self.has_region_decoders = False  # region decode falls back to whole squares

    def block(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def transformer(self, speed: Speed) -> str:
        if speed.int8:  # no int8 file, as a bundle that was never quantised
            self.notice(f"no int8 transformer for model '{self.name}': using fp32")
        return "transformer"

    def _missing(self, file: str) -> BundleError:
        return BundleError(f"model '{self.name}' has no {file}")

    def features(self, tokens: np.ndarray) -> np.ndarray:
        raise self._missing("features.onnx")

    def decode_with_stats(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise self._missing("tokenizer_decoder_stats.onnx")

    def decode_with_given_stats(
        self, tokens: np.ndarray, live: np.ndarray, outside: np.ndarray
    ) -> np.ndarray:
        raise self._missing("tokenizer_decoder_region.onnx")

    def encode(self, images: np.ndarray) -> np.ndarray:
        gh, gw = self.manifest.grid
        # token = quantised mean brightness of each cell: encoding depends on the image
        b, _, s, _ = images.shape
        cells = images.mean(axis=1).reshape(b, gh, s // gh, gw, s // gw).mean(axis=(2, 4))
        return np.minimum(
            (cells * self.manifest.codebook_size).astype(np.int64), self.manifest.codebook_size - 1
        )

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        s = self.manifest.image_size
        gh, gw = self.manifest.grid
        value = tokens.astype(np.float32) / (self.manifest.codebook_size - 1)
        big = np.repeat(np.repeat(value, s // gh, axis=1), s // gw, axis=2)
        return np.stack([big, 1.0 - big, np.full_like(big, 0.5)], axis=1)

    def logits(self, tokens: np.ndarray, class_ids=None) -> np.ndarray:
        self.calls += 1
        self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            raise self.error
        b, n = tokens.shape
        k = self.manifest.codebook_size
        # each position prefers one code, with a class-dependent shift
        shift = 0 if class_ids is None else int(np.asarray(class_ids).reshape(-1)[0]) * 3
        prefer = (np.arange(n) + shift) % k
        logits = np.zeros((b, n, k), np.float32)
        logits[:, np.arange(n), prefer] = 4.0
        return logits

    def tokens_to_logits(
        self, class_id: int | None = None, guidance: float = 0.0, model: str = "transformer"
    ) -> Callable[[np.ndarray], np.ndarray]:
        def fn(tokens: np.ndarray) -> np.ndarray:
            if class_id is None:
                return self.logits(tokens)
            return self.logits(tokens, np.full(len(tokens), class_id, np.int64))

        return fn


if TYPE_CHECKING:

    def _implements_model(fake: FakeBundle) -> Model:  # drift from Model fails the type check
        return fake
