"""A loaded model bundle: manifest + onnxruntime sessions, with NumPy in and out.

Sessions for the tokenizer and the transformer open at load time (so a damaged file is reported
at once); features.onnx, the region decoders and the int8 transformer open on first use. When a
CUDA session fails while running, every session is reopened on the CPU and the call repeated;
the user is told once (see `notices`). Several jobs may share one bundle: opening a session and
the move to the CPU happen under one lock, and the speed caches (runtime/speed.py) belong to the
bundle and lock themselves.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.runtime.errors import BundleError
from engine.runtime.manifest import Manifest, read_manifest
from engine.runtime.sessions import (
    PROBE_MEMORY,
    create_session,
    out_of_memory,
    probe_session,
    provider_name,
)
from engine.runtime.speed import (
    INT8_MODEL,
    REGION_DECODER_FILE,
    STATS_DECODER_FILE,
    ModelCaches,
    Speed,
    find_int8,
)

if TYPE_CHECKING:
    from engine.runtime.model import Model

log = logging.getLogger(__name__)

EAGER = ("tokenizer_encoder", "tokenizer_decoder", "transformer")


class Bundle:
    def __init__(self, path: str | os.PathLike, device: str = "auto", verify: bool = True):
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path, verify_hashes=verify)
        self.requested_device = device
        self.notices: list[str] = []
        self._sessions: dict[str, Any] = {}
        # Opening sessions, the move to the CPU and the notices: jobs share one bundle.
        self._lock = threading.RLock()
        # Extra ONNX files by session name (e.g. the int8 transformer, see runtime/speed.py).
        self.model_files: dict[str, Path] = {}
        self.caches = ModelCaches()  # token and decoder-statistics reuse (runtime/speed.py)
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

    def notice(self, text: str) -> None:
        """Tell the user `text` once (whoever opened the bundle shows `notices`)."""
        with self._lock:
            if text not in self.notices:
                self.notices.append(text)
                log.info(text)

    def _session(self, name: str):
        with self._lock:
            sess = self._sessions.get(name)
            if sess is None:
                file = self.model_files.get(name, self.path / f"{name}.onnx")
                if not file.is_file():
                    raise BundleError(f"model '{self.name}' has no {file.name}")
                sess, notice = create_session(file, self.requested_device)
                if notice:
                    self.notice(notice)
                self._sessions[name] = sess
            return sess

    def _check_signatures(self) -> None:
        m = self.manifest
        tr = self._session("transformer")
        inputs = {i.name: i for i in tr.get_inputs()}
        if "tokens" not in inputs:
            raise BundleError(f"{self.path / 'transformer.onnx'} has no 'tokens' input")
        if m.class_conditional != ("class_ids" in inputs):
            raise BundleError(
                f"{self.path / 'transformer.onnx'} does not match the manifest: "
                "class_ids input and class_names disagree"
            )
        in_shape = list(inputs["tokens"].shape or [])
        outputs = tr.get_outputs()
        out_shape = list(outputs[0].shape or []) if outputs else []
        if len(in_shape) != 2 or len(out_shape) != 3:
            raise BundleError(
                f"{self.path / 'transformer.onnx'} does not match the contract: "
                f"tokens {in_shape} -> logits {out_shape}, expected [B, N] -> "
                "[B, N, codebook_size]"
            )
        for seq in (in_shape[1], out_shape[1]):
            if isinstance(seq, int) and seq != m.seq_len:
                raise BundleError(
                    f"{self.path / 'transformer.onnx'} takes {seq} tokens but the "
                    f"manifest grid {m.grid} has {m.seq_len}"
                )
        k = out_shape[-1]
        if isinstance(k, int) and k != m.codebook_size:
            raise BundleError(
                f"{self.path / 'transformer.onnx'} predicts {k} codes but the "
                f"manifest says codebook_size {m.codebook_size}"
            )
        self._check_tokenizer()

    def _check_tokenizer(self) -> None:
        """The tokenizer's declared shapes must agree with the manifest, and a decoder whose
        grid is not fixed must decode to `downsample` pixels a token (`_probe_decoder`)."""
        m = self.manifest
        enc = self._session("tokenizer_encoder")
        dec = self._session("tokenizer_decoder")
        where = self.path
        checks = (
            (
                enc.get_inputs(),
                "image",
                "tokenizer_encoder.onnx input 'image'",
                [None, 3, m.image_size, m.image_size],
            ),
            (enc.get_outputs(), None, "tokenizer_encoder.onnx output", [None, *m.grid]),
            (dec.get_inputs(), "tokens", "tokenizer_decoder.onnx input 'tokens'", [None, *m.grid]),
            (
                dec.get_outputs(),
                None,
                "tokenizer_decoder.onnx output",
                [None, 3, m.image_size, m.image_size],
            ),
        )
        for args, name, what, expect in checks:
            arg = (
                next((a for a in args if a.name == name), None)
                if name
                else (args[0] if args else None)
            )
            if arg is None:
                raise BundleError(f"{where}: {what} is missing")
            shape = list(arg.shape) if arg.shape is not None else []
            if len(shape) != len(expect):
                raise BundleError(
                    f"{where}: {what} has shape {shape}, expected {len(expect)} dimensions"
                )
            for got, want in zip(shape, expect, strict=True):
                if want is not None and isinstance(got, int) and got != want:
                    raise BundleError(
                        f"{where}: {what} has shape {shape} but the manifest "
                        f"says image_size {m.image_size}, grid {m.grid}"
                    )
        tokens_in, *others = dec.get_inputs()
        if tokens_in.name != "tokens" or others or tokens_in.type != "tensor(int64)":
            got = ", ".join(f"'{a.name}' {a.type}" for a in dec.get_inputs())
            raise BundleError(
                f"{where}: tokenizer_decoder.onnx takes {got}, expected only 'tokens' tensor(int64)"
            )
        if all(not isinstance(d, int) for d in list(tokens_in.shape)[1:]):
            self._probe_decoder()

    def _probe_decoder(self) -> None:
        """Decode one token, and when the decoder cannot (a node needs more than one: an
        unpadded kernel, a fixed reshape), one whole grid, as every run does; the output must
        be `downsample` pixels a token. A decoder that decodes neither, or only to the wrong
        size, is refused in one line. On the CPU the probe runs in a session whose memory is
        capped (PROBE_MEMORY): a decoder that blows tokens up into gigabytes fails its
        allocation instead of taking the machine's memory."""
        m, where = self.manifest, self.path / "tokenizer_decoder.onnx"
        ds, reason = m.downsample, ""
        capped = None
        if provider_name(self._session("tokenizer_decoder")) == "cpu":
            capped = probe_session(self.model_files.get("tokenizer_decoder", where))
        try:
            for grid in ((1, 1), m.grid):
                feeds = {"tokens": np.zeros((1, *grid), np.int64)}
                try:  # a CUDA failure here moves the bundle to the CPU, as in any call
                    if capped is not None:
                        probe = capped.run(None, feeds)[0]
                    else:
                        probe = self._run_all("tokenizer_decoder", feeds)[0]
                except Exception as error:  # noqa: BLE001 - reported in one line below
                    if out_of_memory(error):
                        raise BundleError(
                            f"{where} needs more than {PROBE_MEMORY >> 30} GiB to decode "
                            f"{'one token' if grid == (1, 1) else 'one image'}"
                        ) from None
                    text = str(error).strip()
                    reason = text.splitlines()[0][:200] if text else type(error).__name__
                    continue
                want = (1, 3, grid[0] * ds, grid[1] * ds)
                if tuple(np.shape(probe)) != want:
                    what = "one token" if grid == (1, 1) else f"a {grid[0]}x{grid[1]} token grid"
                    raise BundleError(
                        f"{where} turns {what} into "
                        f"{'x'.join(map(str, np.shape(probe)[1:]))} pixels, but the manifest "
                        f"says {ds}x{ds} a token (image_size {m.image_size}, grid {m.grid})"
                    )
                return
        finally:
            del capped  # its arena memory goes back for the next probe
        raise BundleError(f"{where} cannot decode a {m.grid[0]}x{m.grid[1]} token grid: {reason}")

    def _checked(self, name: str, out, shape: tuple, check_finite: bool = True) -> np.ndarray:
        """One line instead of a traceback when a model returns the wrong shape or NaN."""
        out = np.asarray(out)
        if tuple(out.shape) != tuple(shape):
            raise BundleError(
                f"model '{self.name}' is broken: {name}.onnx returned shape "
                f"{tuple(out.shape)}, expected {tuple(shape)}"
            )
        if check_finite and out.dtype.kind == "f" and not np.isfinite(out).all():
            raise BundleError(
                f"model '{self.name}' is broken: {name}.onnx returned NaN or infinite values"
            )
        return out

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._run_all(name, feeds)[0]

    def _run_all(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every output of one model call (a CUDA failure reopens the sessions on the CPU)."""
        sess = self._session(name)
        try:
            return sess.run(None, feeds)
        except Exception as e:
            if provider_name(sess) != "cuda":
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                raise BundleError(f"model '{self.name}' failed in {name}.onnx: {first}") from None
            with self._lock:
                # Jobs failing together move the bundle once; a job whose session was already
                # replaced by another's move just repeats its call on the CPU.
                if self._sessions.get(name) is sess:
                    text = f"CUDA failed while running ({type(e).__name__}); switched to the CPU"
                    self.notices.append(text)
                    log.warning(text)
                    self.requested_device = "cpu"
                    self._sessions.clear()
            return self._run_all(name, feeds)

    # -- model calls ----------------------------------------------------------------------------

    def encode(self, images: np.ndarray) -> np.ndarray:
        """float32 [B,3,H,W] RGB in [0,1] -> int64 [B,h,w] codebook ids."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        ds = self.manifest.downsample
        b, _, h, w = images.shape
        tokens = self._run("tokenizer_encoder", {"image": images})
        tokens = self._checked("tokenizer_encoder", tokens, (b, h // ds, w // ds))
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.manifest.codebook_size):
            raise BundleError(
                f"model '{self.name}' is broken: tokenizer_encoder.onnx returned "
                f"ids outside 0..{self.manifest.codebook_size - 1}"
            )
        return tokens.astype(np.int64, copy=False)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [B,h,w] -> float32 [B,3,H,W] RGB in [0,1]."""
        tokens = np.ascontiguousarray(tokens, np.int64)
        ds = self.manifest.downsample
        b, h, w = tokens.shape
        out = self._run("tokenizer_decoder", {"tokens": tokens})
        return self._checked("tokenizer_decoder", out, (b, 3, h * ds, w * ds))

    def logits(
        self, tokens: np.ndarray, class_ids: np.ndarray | None = None, model: str = "transformer"
    ) -> np.ndarray:
        """int64 [B,N] (mask_token_id where unknown) -> float32 [B,N,codebook_size].
        `model` names another transformer file of the same signature (e.g. the int8 one)."""
        feeds = {"tokens": np.ascontiguousarray(tokens, np.int64)}
        if self.manifest.class_conditional:
            if class_ids is None:
                null = self.manifest.class_id(None)  # a class-only model refuses here
                class_ids = np.full(len(tokens), null, np.int64)
            feeds["class_ids"] = np.ascontiguousarray(class_ids, np.int64)
        out = self._run(model, feeds)
        return self._checked(
            "transformer", out, (*feeds["tokens"].shape, self.manifest.codebook_size)
        )

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [B,N] -> float32 [B,D] mean encoder output over image tokens."""
        if not (self.path / "features.onnx").is_file():
            raise BundleError(f"model '{self.name}' has no features.onnx (recognition)")
        tokens = np.ascontiguousarray(tokens, np.int64)
        out = self._run("features", {"tokens": tokens})
        dim = self.manifest.features_dim
        if out.ndim == 2 and dim is None:
            dim = out.shape[1]
        return self._checked("features", out, (len(tokens), dim))

    def tokens_to_logits(
        self, class_id: int | None = None, guidance: float = 0.0, model: str = "transformer"
    ) -> Callable[[np.ndarray], np.ndarray]:
        """The callable the decoder drives. With a class and guidance > 0, classifier-free
        guidance mixes conditional and null-class logits: u + (1 + g) * (c - u).
        A class-only model (no null class) refuses a run without a class, and guidance."""
        m = self.manifest
        if class_id is not None and not m.class_conditional:
            raise BundleError(f"model '{self.name}' is unconditional")
        if class_id is None:
            m.class_id(None)  # a class-only model: "needs a class", before any run
        elif guidance > 0 and m.needs_class:
            raise BundleError(
                f"model '{self.name}' has no unconditional class, so guidance cannot be "
                "used: set guidance to 0"
            )

        def fn(tokens: np.ndarray) -> np.ndarray:
            b = len(tokens)
            if class_id is None or class_id == m.null_class_id:
                return self.logits(tokens, model=model)
            cond = np.full(b, class_id, np.int64)
            if guidance <= 0:
                return self.logits(tokens, cond, model=model)
            both = self.logits(
                np.concatenate([tokens, tokens]),
                np.concatenate([cond, np.full(b, m.null_class_id, np.int64)]),
                model=model,
            )
            c, u = both[:b], both[b:]
            return u + (1.0 + guidance) * (c - u)

        return fn

    def transformer(self, speed: Speed) -> str:
        """The transformer session to run under `speed`: the int8 one when asked for and found
        (in the bundle or the user cache), else fp32 and the user is told once."""
        if not speed.int8:
            return "transformer"
        path = find_int8(self)
        if path is None:
            self.notice(
                f"no int8 transformer for model '{self.name}' (make one with "
                "`python -m engine.modeling.quantize BUNDLE`): using fp32"
            )
            return "transformer"
        with self._lock:
            if self.model_files.get(INT8_MODEL) != path:
                self.model_files[INT8_MODEL] = path
                self._sessions.pop(INT8_MODEL, None)
        return INT8_MODEL

    # -- region decode (runtime/speed.py) -------------------------------------------------------

    @property
    def has_region_decoders(self) -> bool:
        """True when the bundle ships both region decoders (its manifest lists them)."""
        files = self.manifest.files
        return STATS_DECODER_FILE in files and REGION_DECODER_FILE in files

    def _region_session(self, file: str):
        """The session of one region decoder, its signature checked when it opens (one line)."""
        name = file.removesuffix(".onnx")
        with self._lock:
            fresh = name not in self._sessions
            sess = self._session(name)
            if not fresh:
                return sess
            ins = {i.name: list(i.shape or []) for i in sess.get_inputs()}
            outs = {o.name: list(o.shape or []) for o in sess.get_outputs()}
            if file == STATS_DECODER_FILE:
                want_in, want_out = {"tokens": 3}, {"image": 4, "stats": 6}
            else:
                want_in, want_out = {"tokens": 3, "live": 4, "outside": 4}, {"image": 4}
            got = ({k: len(v) for k, v in ins.items()}, {k: len(v) for k, v in outs.items()})
            if got != (want_in, want_out):
                self._sessions.pop(name, None)
                raise BundleError(
                    f"model '{self.name}': {file} does not match the contract (inputs "
                    f"{sorted(ins)}, outputs {sorted(outs)}; expected {sorted(want_in)} -> "
                    f"{sorted(want_out)})"
                )
            return sess

    def decode_with_stats(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int64 [B,h,w] -> (float32 [B,3,H,W] in [0,1], float32 [B,L,G,3,h,w]): a full decode
        that also reports, for each decoder GroupNorm, group and token cell, the count, sum and
        sum of squares of the GroupNorm's input."""
        tokens = np.ascontiguousarray(tokens, np.int64)
        b, h, w = tokens.shape
        d = self.manifest.downsample
        self._region_session(STATS_DECODER_FILE)
        image, stats = self._run_all(STATS_DECODER_FILE.removesuffix(".onnx"), {"tokens": tokens})
        image = self._checked("tokenizer_decoder_stats", image, (b, 3, h * d, w * d))
        stats = np.asarray(stats)
        if stats.ndim != 6 or len(stats) != b or stats.shape[3:] != (3, h, w):
            raise BundleError(
                f"model '{self.name}' is broken: {STATS_DECODER_FILE} returned statistics of "
                f"shape {tuple(stats.shape)}, expected [B, L, G, 3, {h}, {w}]"
            )
        return image, self._checked("tokenizer_decoder_stats", stats, stats.shape)

    def decode_with_given_stats(
        self, tokens: np.ndarray, live: np.ndarray, outside: np.ndarray
    ) -> np.ndarray:
        """int64 [B,h',w'] (a crop), float32 [1,1,h',w'] live cells, [L,G,3] sums of the rest
        -> float32 [B,3,h'*d,w'*d] in [0,1] (the region decoder)."""
        tokens = np.ascontiguousarray(tokens, np.int64)
        b, h, w = tokens.shape
        d = self.manifest.downsample
        sess = self._region_session(REGION_DECODER_FILE)
        want = list(next(i for i in sess.get_inputs() if i.name == "outside").shape)
        outside = np.asarray(outside, np.float32)
        if outside.ndim != 3 or any(
            isinstance(n, int) and n != got for n, got in zip(want[1:], outside.shape, strict=True)
        ):
            raise BundleError(
                f"model '{self.name}': statistics of shape {tuple(outside.shape)} do not fit "
                f"{REGION_DECODER_FILE} (outside {want})"
            )
        feeds = {
            "tokens": tokens,
            "live": np.ascontiguousarray(np.broadcast_to(live, (b, 1, h, w)), np.float32),
            "outside": np.ascontiguousarray(np.broadcast_to(outside[None], (b, *outside.shape))),
        }
        out = self._run(REGION_DECODER_FILE.removesuffix(".onnx"), feeds)
        return self._checked("tokenizer_decoder_region", out, (b, 3, h * d, w * d))


if TYPE_CHECKING:

    def _implements_model(bundle: Bundle) -> Model:  # the type checker holds Bundle to Model
        return bundle
