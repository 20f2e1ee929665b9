"""The texture stage on the PyPatchMatch library: the photo's own patches, nudged by a guide.

PyPatchMatch (MIT, wheels for Linux, macOS and Windows) is the multi-scale PatchMatch
completion that GIMP's Resynthesizer, Photoshop's Content-Aware Fill and IOPaint's classic
mode are built like: sharp, seamless fills that continue lines. Its guided form adds to every
patch distance the distance between two per-pixel "coordinates" of the target and the source
(`inpaint_regularity`). Here those coordinates are the low-passed brightness and red-blue
balance of the guide in the hole and of the photo around it, each in three bands, so among
patches that fit their neighbourhood equally well the search prefers one from the kind of area
(darker or lighter, cooler or warmer) that the model's fill puts there. The guide's hole part
first meets the photo at the hole's edge (texture._meeting), so it brings shapes, not the
model's brightness offset.

The weight is deliberately small, and the bands coarse: a stronger or finer guide narrows the
search and the fill shows as a patch (judged blind on the held-out set, docs/model-quality.md).

The library keeps one random seed for every call, so a lock makes "set the seed, fill" one
step under concurrent jobs: the same seed gives the same pixels. Its call cannot be
interrupted, so `filling` runs it on a worker thread and yields while it waits: a run that is
closed there stops at once and the library's result, when it comes, is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from functools import cache
from types import ModuleType

import numpy as np

log = logging.getLogger(__name__)

# patch radius: 7x7 patches, the library's examples and what the held-out set was judged with
PATCH_RADIUS = 3
# px: box-blur radius of the guide and of the photo before they are compared
GUIDE_BLUR = 6
# levels per guide feature (brightness, red-blue balance)
GUIDE_BANDS = 3
# the library compares its coordinates modulo 1; features stay below 0.5 so none wraps
_FEATURE_SPAN = 0.49

# s: how often `filling` offers its caller a stop while the library works
POLL_SECONDS = 0.05

_lock = threading.Lock()  # round the library's seed and call
_workers_lock = threading.Lock()
_workers: ThreadPoolExecutor | None = None


@cache
def library() -> ModuleType | None:
    """The PyPatchMatch module when it and its native code load here, else None (logged once:
    the texture stage then uses the built-in NumPy synthesis)."""
    try:
        import patchmatch
    except (ImportError, OSError) as exc:
        log.warning("PyPatchMatch is not available (%s); using the built-in texture synthesis", exc)
        return None
    if not getattr(patchmatch, "patchmatch_available", False):
        log.warning("PyPatchMatch's native library did not load; using the built-in synthesis")
        return None
    return patchmatch


def filling(
    photo: np.ndarray, hole: np.ndarray, guide: np.ndarray | None, seed: int, weight: float
) -> Generator[None, None, np.ndarray]:
    """`fill` on a worker thread, yielding every POLL_SECONDS until it is done."""
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = ThreadPoolExecutor(2, thread_name_prefix="patchmatch")
        future = _workers.submit(fill, photo, hole, guide, seed, weight)
    while True:
        try:
            return future.result(timeout=POLL_SECONDS)
        except TimeoutError:
            yield


def fill(
    photo: np.ndarray, hole: np.ndarray, guide: np.ndarray | None, seed: int, weight: float
) -> np.ndarray:
    """`photo` (uint8 [H,W,3]) with `hole` (bool [H,W]) filled by PatchMatch completion,
    guided by `guide` (float32 [H,W,3], 0-255, already meeting the photo) with `weight`, or
    unguided when `guide` is None. Pixels outside the hole keep their exact values."""
    lib = library()
    if lib is None:
        raise RuntimeError("PyPatchMatch is not available")
    mask = hole.astype(np.uint8)
    with _lock:
        lib.set_random_seed(seed)
        if guide is None or weight <= 0:
            out = lib.inpaint(photo, mask, patch_size=PATCH_RADIUS)
        else:
            coords = _coordinates(photo, hole, guide)
            out = lib.inpaint_regularity(
                photo, mask, coords, patch_size=PATCH_RADIUS, guide_weight=weight
            )
    out = np.asarray(out, np.uint8)
    return np.where(hole[..., None], out, photo)


def _coordinates(photo: np.ndarray, hole: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """float32 [H,W,3]: the per-pixel features the guided search compares: brightness and
    red-blue balance of the low-passed guide in the hole and of the low-passed known photo
    elsewhere (the hole's own pixels left out of the average), scaled into [0, 0.49]."""
    known = (~hole).astype(np.float32)
    weights = _box(known[..., None], GUIDE_BLUR)
    around = _box(photo.astype(np.float32) * known[..., None], GUIDE_BLUR) / np.maximum(
        weights, 1e-3
    )
    low = np.where(hole[..., None], _box(guide.astype(np.float32), GUIDE_BLUR), around)
    r, g, b = (low[..., k] / 255.0 for k in range(3))
    brightness = 0.299 * r + 0.587 * g + 0.114 * b
    balance = (r - b) * 0.5 + 0.5
    features = np.stack([brightness, balance], axis=-1)
    # stretched to the crop's own range: the guide separates what this photo tells apart
    low, high = features.min((0, 1)), features.max((0, 1))
    features = (features - low) / np.maximum(high - low, 0.05)
    # in a few bands: the guide picks among the photo's darker, middle and lighter (cooler,
    # warmer) areas and leaves the search free inside a band; a continuous guide sends every
    # target to the few sources of exactly its tone, which a person sees as a mushy patch
    features = np.round(features * (GUIDE_BANDS - 1)) / (GUIDE_BANDS - 1) * _FEATURE_SPAN
    coords = np.concatenate([features, np.zeros_like(features[..., :1])], axis=-1)
    return np.ascontiguousarray(np.clip(coords, 0.0, _FEATURE_SPAN), np.float32)


def _box(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (edges repeated), float32 [H,W,C], via summed areas."""
    h, w = a.shape[:2]
    padded = np.pad(a, ((radius + 1, radius), (radius + 1, radius), (0, 0)), mode="edge")
    padded[0] = 0.0
    padded[:, 0] = 0.0
    sums = padded.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    window = sums[k:, k:] - sums[:-k, k:] - sums[k:, :-k] + sums[:-k, :-k]
    return (window / (k * k)).astype(np.float32)[:h, :w]
