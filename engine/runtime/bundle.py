"""A loaded model bundle: manifest + onnxruntime sessions, with NumPy in and out.

Sessions for the tokenizer and the transformer open at load time (so a damaged file is reported
at once); features.onnx opens on first use. When a CUDA session fails while running, every
session is reopened on the CPU and the call repeated; the user is told once (see `notices`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.runtime.errors import BundleError
from engine.runtime.manifest import Manifest, read_manifest
from engine.runtime.sessions import create_session, provider_name

log = logging.getLogger(__name__)

EAGER = ("tokenizer_encoder", "tokenizer_decoder", "transformer")


class Bundle:
    def __init__(self, path: str | os.PathLike, device: str = "auto", verify: bool = True):
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path, verify_hashes=verify)
        self.requested_device = device
        self.notices: list[str] = []
        self._sessions: dict[str, object] = {}
        # Extra ONNX files by session name (e.g. the int8 transformer, see runtime/speed.py).
        self.model_files: dict[str, Path] = {}
        for name in EAGER:
            self._session(name)
        self._check_signatures()

    # -- sessions -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where the transformer actually runs."""
        return provider_name(self._session("transformer"))

    def _session(self, name: str):
        if name not in self._sessions:
            file = self.model_files.get(name, self.path / f"{name}.onnx")
            if not file.is_file():
                raise BundleError(f"model '{self.name}' has no {file.name}")
            sess, notice = create_session(file, self.requested_device)
            if notice and notice not in self.notices:
                self.notices.append(notice)
                log.warning(notice)
            self._sessions[name] = sess
        return self._sessions[name]

    def _check_signatures(self) -> None:
        m = self.manifest
        tr = self._session("transformer")
        inputs = {i.name: i for i in tr.get_inputs()}
        if "tokens" not in inputs:
            raise BundleError(f"{self.path / 'transformer.onnx'} has no 'tokens' input")
        if m.class_conditional != ("class_ids" in inputs):
            raise BundleError(f"{self.path / 'transformer.onnx'} does not match the manifest: "
                              "class_ids input and class_names disagree")
        seq = inputs["tokens"].shape[1]
        if isinstance(seq, int) and seq != m.seq_len:
            raise BundleError(f"{self.path / 'transformer.onnx'} takes {seq} tokens but the "
                              f"manifest grid {m.grid} has {m.seq_len}")
        k = tr.get_outputs()[0].shape[-1]
        if isinstance(k, int) and k != m.codebook_size:
            raise BundleError(f"{self.path / 'transformer.onnx'} predicts {k} codes but the "
                              f"manifest says codebook_size {m.codebook_size}")

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        sess = self._session(name)
        try:
            return sess.run(None, feeds)[0]
        except Exception as e:
            if provider_name(sess) != "cuda":
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                raise BundleError(f"model '{self.name}' failed in {name}.onnx: {first}") from None
            self.notices.append(f"CUDA failed while running ({type(e).__name__}); "
                                "switched to the CPU")
            log.warning(self.notices[-1])
            self.requested_device = "cpu"
            self._sessions.clear()
            return self._run(name, feeds)

    # -- model calls ----------------------------------------------------------------------------

    def encode(self, images: np.ndarray) -> np.ndarray:
        """float32 [B,3,H,W] RGB in [0,1] -> int64 [B,h,w] codebook ids."""
        tokens = self._run("tokenizer_encoder",
                           {"image": np.ascontiguousarray(images, dtype=np.float32)})
        return tokens.astype(np.int64, copy=False)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [B,h,w] -> float32 [B,3,H,W] RGB in [0,1]."""
        return self._run("tokenizer_decoder", {"tokens": np.ascontiguousarray(tokens, np.int64)})

    def logits(self, tokens: np.ndarray, class_ids: np.ndarray | None = None,
               model: str = "transformer") -> np.ndarray:
        """int64 [B,N] (mask_token_id where unknown) -> float32 [B,N,codebook_size].
        `model` names another transformer file of the same signature (e.g. the int8 one)."""
        feeds = {"tokens": np.ascontiguousarray(tokens, np.int64)}
        if self.manifest.class_conditional:
            if class_ids is None:
                class_ids = np.full(len(tokens), self.manifest.null_class_id, np.int64)
            feeds["class_ids"] = np.ascontiguousarray(class_ids, np.int64)
        return self._run(model, feeds)

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [B,N] -> float32 [B,D] mean encoder output over image tokens."""
        if not (self.path / "features.onnx").is_file():
            raise BundleError(f"model '{self.name}' has no features.onnx (recognition)")
        return self._run("features", {"tokens": np.ascontiguousarray(tokens, np.int64)})

    def tokens_to_logits(self, class_id: int | None = None, guidance: float = 0.0,
                         model: str = "transformer") -> Callable[[np.ndarray], np.ndarray]:
        """The callable the decoder drives. With a class and guidance > 0, classifier-free
        guidance mixes conditional and null-class logits: u + (1 + g) * (c - u)."""
        m = self.manifest
        if class_id is not None and not m.class_conditional:
            raise BundleError(f"model '{self.name}' is unconditional")

        def fn(tokens: np.ndarray) -> np.ndarray:
            b = len(tokens)
            if class_id is None or class_id == m.null_class_id:
                return self.logits(tokens, model=model)
            cond = np.full(b, class_id, np.int64)
            if guidance <= 0:
                return self.logits(tokens, cond, model=model)
            both = self.logits(np.concatenate([tokens, tokens]),
                               np.concatenate([cond, np.full(b, m.null_class_id, np.int64)]),
                               model=model)
            c, u = both[:b], both[b:]
            return u + (1.0 + guidance) * (c - u)

        return fn
