"""Speed options for editing and generation, each marked exact or approximate.

The default (`Speed()`, preset "exact") changes nothing: the same tokens for the same seed as
the plain path. Every other option trades a measured amount of fidelity for time (figures in
docs/performance.md):

- `region_decode` (approximate): decode only the token crop around the grown mask plus
  `decode_margin` tokens, not the whole grid. The VQGAN has no attention, but its convolutions
  reach far and its GroupNorms take statistics over the whole input. The crop is decoded with
  the GroupNorm statistics of a full decode of the same context square (the first candidate of
  the first fill of that square is decoded whole, and its statistics are kept per square like
  the token cache), so pixels differ only slightly from a full decode; only pixels inside the
  grown token area are ever pasted, so everything outside the mask stays bit-identical to the
  input. Needs the bundle's optional region decoders; without them the whole square is
  decoded (exact) and the user is told once.
- `reuse_tokens` (exact): remember the tokens of each context square; a later edit of the same
  square with the *same* hole (a re-roll, another seed) reuses them instead of encoding again.
- `crop_encode` (approximate, with `reuse_tokens`): with a *different* hole, re-encode only the
  crop around the old and new holes plus `encode_margin` tokens and splice it in. Off in every
  preset: on the trained default model only 72% of the known tokens matched a full re-encode
  (the encoder's GroupNorms see the whole square), for a small saving.
- `int8` (approximate): the transformer with dynamically quantised int8 weights (QUInt8, made
  by `python -m engine.modeling.quantize BUNDLE`, stored in the bundle or the user cache).
  Falls back to fp32 with a notice when no int8 file exists (making one needs the `onnx`
  package, which the runtime does not require).
- `scale_steps` (approximate): fewer decoding steps for small masks:
  max(min_steps, ceil(steps * sqrt(masked / seq_len))), never more than asked for.

This module never imports torch or onnx.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.runtime.masking import grow_token_mask

if TYPE_CHECKING:
    from engine.runtime.model import Model

INT8_FILE = "transformer.int8.onnx"
INT8_MODEL = "transformer_int8"  # session name inside a Bundle
# Optional decoders for region decode with a full decode's GroupNorm statistics
# (engine/modeling/region_decode.py); a bundle without them decodes the whole square.
STATS_DECODER_FILE = "tokenizer_decoder_stats.onnx"
REGION_DECODER_FILE = "tokenizer_decoder_region.onnx"


@dataclass(frozen=True)
class Speed:
    region_decode: bool = False
    decode_margin: int = 2  # tokens of context decoded around the grown mask
    reuse_tokens: bool = False
    crop_encode: bool = False
    encode_margin: int = 3  # tokens of context re-encoded around a changed hole
    int8: bool = False
    scale_steps: bool = False
    min_steps: int = 4

    @property
    def exact(self) -> bool:
        return not (self.region_decode or self.crop_encode or self.int8 or self.scale_steps)

    @property
    def name(self) -> str:
        for key, value in PRESETS.items():
            if value == self:
                return key
        return "custom"

    @classmethod
    def preset(cls, name: str) -> Speed:
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(
                f"unknown speed preset '{name}' (use one of {', '.join(PRESETS)})"
            ) from None


PRESETS: dict[str, Speed] = {
    "exact": Speed(),
    "fast": Speed(region_decode=True, reuse_tokens=True, int8=True, scale_steps=True),
}
EXACT = PRESETS["exact"]
FAST = PRESETS["fast"]


# -- steps --------------------------------------------------------------------------------------


def scaled_steps(steps: int, masked: int, seq_len: int, min_steps: int = 4) -> int:
    """Decoding steps for `masked` unknown tokens: the full schedule for a full grid, fewer
    (by the square root of the masked fraction) for small holes, at least `min_steps`."""
    if masked <= 0:
        return steps
    frac = min(1.0, masked / max(seq_len, 1))
    return int(min(steps, max(min_steps, math.ceil(steps * math.sqrt(frac)))))


# -- token crops --------------------------------------------------------------------------------


def token_crop(token_mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1): bounding box of the True cells grown by `margin`, clipped to the grid."""
    rows = np.flatnonzero(token_mask.any(axis=1))
    cols = np.flatnonzero(token_mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty token mask")
    gh, gw = token_mask.shape
    return (
        max(int(rows[0]) - margin, 0),
        min(int(rows[-1]) + 1 + margin, gh),
        max(int(cols[0]) - margin, 0),
        min(int(cols[-1]) + 1 + margin, gw),
    )


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def decode_region(
    bundle: Model,
    tokens: np.ndarray,
    token_mask: np.ndarray,
    margin: int,
    background: np.ndarray | None = None,
    stats: np.ndarray | None = None,
) -> np.ndarray:
    """int64 [B,N] -> uint8 [B,S,S,3] where only the crop around `token_mask` (+ margin tokens)
    is decoded; the rest is `background` (uint8 [S,S,3], e.g. the input square) or black.
    With `stats` (float32 [L,G,3,h,w], the cell sums of a full decode of this square from
    `Bundle.decode_with_stats`) the crop's GroupNorms see the statistics of the whole grid:
    the crop's own activations over the grown mask, the full decode's sums elsewhere (the
    bundle's region decoder); without, only the crop's own (the plain decoder).
    Callers must only use pixels inside the token mask (paste_back does)."""
    m = bundle.manifest
    gh, gw = m.grid
    d = m.downsample
    r0, r1, c0, c1 = token_crop(token_mask, margin)
    grid = tokens.reshape(len(tokens), gh, gw)
    if len(tokens) == 0:
        return np.zeros((0, m.image_size, m.image_size, 3), np.uint8)
    if (r0, r1, c0, c1) == (0, gh, 0, gw):
        out = bundle.decode(grid)
    else:
        crop_tokens = np.ascontiguousarray(grid[:, r0:r1, c0:c1])
        if stats is None:
            crop = bundle.decode(crop_tokens)
        else:
            a0, a1, b0, b1 = token_crop(token_mask, 0)
            live = np.zeros((1, 1, r1 - r0, c1 - c0), np.float32)
            live[..., a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = 1.0
            sums = np.asarray(stats, np.float64)
            outside = sums.sum((-2, -1)) - sums[..., a0:a1, b0:b1].sum((-2, -1))
            crop = bundle.decode_with_given_stats(crop_tokens, live, outside)
        size = m.image_size
        out = np.zeros((len(tokens), 3, size, size), np.float32)
        if background is not None:
            out[:] = background.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out[:, :, r0 * d : r1 * d, c0 * d : c1 * d] = crop
    return _to_uint8(out)


# -- region decode with a full decode's statistics ----------------------------------------------


class StatsCache:
    """Decoder GroupNorm cell sums of a full decode of recently edited context squares, keyed
    by the model-size pixels (not zeroed) and the decoder. Thread-safe; an entry is about
    2.5 MB for ViT-B's tokenizer, 0.4 MB for the default model's."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(bundle, pixels: np.ndarray) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(str(bundle.path).encode())
        h.update(bundle.manifest.files.get(STATS_DECODER_FILE, "").encode())
        h.update(np.ascontiguousarray(pixels).tobytes())
        return h.hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            stats = self._items.get(key)
            if stats is not None:
                self._items.move_to_end(key)
            return stats

    def put(self, key: str, stats: np.ndarray) -> None:
        with self._lock:
            self._items[key] = stats
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


def decode_square_region(
    bundle: Model,
    tokens: np.ndarray,
    pixels: np.ndarray,
    token_mask: np.ndarray,
    margin: int,
    background: np.ndarray | None = None,
    cache: StatsCache | None = None,
) -> np.ndarray:
    """int64 [B,N] -> uint8 [B,S,S,3]: region decode of the candidates of one context square
    (`pixels`, float32 [3,S,S], the cache key), each crop normalised with the statistics of a
    full decode of this square. The first time a square is seen, the first candidate is decoded
    whole and its statistics are kept for the other candidates and later edits of the square.
    A bundle without the region decoders decodes everything whole (exact) and says so once."""
    cache = bundle.caches.stats if cache is None else cache
    m = bundle.manifest
    gh, gw = m.grid
    if not bundle.has_region_decoders:
        bundle.notice(
            f"model '{bundle.name}' has no region decoders (add them with `python -m "
            "engine.modeling.region_decode BUNDLE`): decoding whole squares"
        )
        return _to_uint8(bundle.decode(tokens.reshape(len(tokens), gh, gw)))
    key = cache.key(bundle, pixels)
    stats = cache.get(key)
    first = None
    if stats is None:
        cache.misses += 1
        image, all_stats = bundle.decode_with_stats(tokens[:1].reshape(1, gh, gw))
        stats = np.ascontiguousarray(all_stats[0])
        cache.put(key, stats)
        first, tokens = _to_uint8(image), tokens[1:]
    else:
        cache.hits += 1
    rest = decode_region(bundle, tokens, token_mask, margin, background, stats=stats)
    return rest if first is None else np.concatenate([first, rest])


# -- token reuse --------------------------------------------------------------------------------


@dataclass
class _Entry:
    tokens: np.ndarray  # int64 [h,w] tokens of the square with `hole` zeroed
    hole: np.ndarray  # bool [S,S] model pixels zeroed when they were made


class TokenCache:
    """Tokens of recently edited context squares, keyed by the model-size pixels (not zeroed)
    and the tokenizer. Thread-safe; small (each entry is a few KB)."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.partial = self.misses = 0

    @staticmethod
    def key(bundle, pixels: np.ndarray) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(str(bundle.path).encode())
        h.update(bundle.manifest.files.get("tokenizer_encoder.onnx", "").encode())
        h.update(np.ascontiguousarray(pixels).tobytes())
        return h.hexdigest()

    def get(self, key: str) -> _Entry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.partial = self.misses = 0


@dataclass
class ModelCaches:
    """What a model remembers between edits for the speed options: the tokens and the
    decoder statistics of recently edited context squares. Each bundle owns one."""

    tokens: TokenCache = field(default_factory=TokenCache)
    stats: StatsCache = field(default_factory=StatsCache)

    def clear(self) -> None:
        self.tokens.clear()
        self.stats.clear()


def encode_with_reuse(
    bundle: Model,
    pixels: np.ndarray,
    hole: np.ndarray,
    margin: int,
    cache: TokenCache | None = None,
    crop: bool = False,
) -> np.ndarray:
    """Tokens (int64 [h,w]) of `pixels` (float32 [3,S,S] in [0,1], *not* zeroed) with `hole`
    (bool [S,S]) zeroed, reusing what the cache knows about this square.

    Miss: full encode (exact). Same hole: cached tokens (exact). Other hole: full encode
    (exact), or with `crop` re-encode the token crop around old + new hole grown by `margin`
    and splice its inner part (approximate: the encoder's receptive field and GroupNorm
    statistics reach beyond the crop)."""
    cache = bundle.caches.tokens if cache is None else cache
    m = bundle.manifest
    gh, gw = m.grid
    d = m.downsample
    key = cache.key(bundle, pixels)
    zeroed = pixels.copy()
    zeroed[:, hole] = 0.0
    entry = cache.get(key)
    if entry is not None and not crop and not np.array_equal(entry.hole, hole):
        entry = None  # exact mode: a different hole means a full encode
    if entry is None:
        cache.misses += 1
        tokens = bundle.encode(zeroed[None])[0]
        cache.put(key, _Entry(tokens.copy(), hole.copy()))
        return tokens
    if np.array_equal(entry.hole, hole):
        cache.hits += 1
        return entry.tokens.copy()
    cache.partial += 1
    changed = (entry.hole | hole).reshape(gh, d, gw, d).any(axis=(1, 3))
    inner = grow_token_mask(changed, 1)  # cells whose tokens must come from the new encode
    r0, r1, c0, c1 = token_crop(inner, margin)
    crop_tokens = bundle.encode(
        np.ascontiguousarray(zeroed[None, :, r0 * d : r1 * d, c0 * d : c1 * d])
    )[0]
    tokens = entry.tokens.copy()
    # keep the crop's tokens except within `margin` of a crop side that is inside the grid
    a0 = r0 + (margin if r0 > 0 else 0)
    a1 = r1 - (margin if r1 < gh else 0)
    b0 = c0 + (margin if c0 > 0 else 0)
    b1 = c1 - (margin if c1 < gw else 0)
    tokens[a0:a1, b0:b1] = crop_tokens[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
    cache.put(key, _Entry(tokens.copy(), hole.copy()))
    return tokens


# -- int8 transformer ---------------------------------------------------------------------------


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if not os.path.isabs(base):  # the XDG spec: a relative one is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mage-studio"


def int8_cache_path(bundle_or_manifest) -> Path:
    """Where the int8 transformer of a bundle is cached (keyed by transformer.onnx's sha256)."""
    manifest = getattr(bundle_or_manifest, "manifest", bundle_or_manifest)
    digest = manifest.files.get("transformer.onnx", "") or manifest.name
    return user_cache_dir() / "int8" / f"{digest[:32]}.onnx"


def find_int8(bundle) -> Path | None:
    """The int8 transformer for `bundle`: inside the bundle, else in the user cache."""
    for path in (Path(bundle.path) / INT8_FILE, int8_cache_path(bundle)):
        if path.is_file():
            return path
    return None


def int8_available(bundle) -> bool:
    return find_int8(bundle) is not None
