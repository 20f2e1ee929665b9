"""The photo's own texture in a hole, placed where a guide says: guided PatchMatch synthesis.

The model decides *what goes where* and decodes it as a smooth, low-detail picture; the photo
knows *how it looks* up close. This module fills a hole with pixels copied from the known part
of the photo, choosing for every hole pixel a source patch that both continues its
neighbourhood (the usual exemplar-based completion, Wexler et al. 2007, with the randomised
nearest-neighbour search of PatchMatch, Barnes et al. 2009) and resembles the guide there: the
patch distance adds the squared difference between the low-passed guide at the target and the
low-passed guide at the source, so the copy follows the model's layout (Image Analogies,
Hertzmann et al. 2001; Image Melding, Darabi et al. 2012). The guide is the model's decode of
the whole square: in the known area it is the model's rendition of the photo, in the hole its
fill, so "looks like the model's fill here" and "looks like the model's rendition there" are
compared like with like. Without a guide it is plain PatchMatch completion.

The model's fill is often a little darker or lighter than the photo around it; its hole part
is first shifted by the smooth membrane that makes it meet the photo at the hole's edge, so the
guide brings shapes, not a brightness offset. Then coarse to fine over an image pyramid: the
coarsest level starts from the guide (or, unguided, a smooth membrane from the hole's border),
each level alternates the nearest-neighbour search and a vote (every hole pixel averages what
the patches covering it copy), and the matches are carried up to the next level. The last
vote averages only the two best-matching patches per pixel, which keeps the photo's grain
where many equally good matches would average to a blur, and a last membrane removes what seam
is left. Everything is vectorised over the hole's pixels with NumPy; the cost grows with the
hole's area, not the image's.

Settings were chosen on the held-out removal set (bench/eval_removal.py): in-mask PSNR and
detail kept, judged by eye on blind sheets (docs/model-quality.md).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from engine.runtime import patchmatch_texture
from engine.runtime.blending import harmonic_membrane
from engine.runtime.masking import dilate_pixels


@dataclass(frozen=True)
class TextureOptions:
    """How the synthesis searches and how strongly the guide steers it."""

    patch: int = 7  # patch side in pixels (odd)
    guide_weight: float = 4.0  # weight of the guide term against the colour term
    guide_meets_photo: bool = True  # shift the guide's hole part to meet the photo at its edge
    coarse_iterations: int = 6  # search + vote rounds at the coarsest level
    fine_iterations: int = 2  # ... and at every finer level
    guide_decay: float = 1.0  # the guide's weight is multiplied by this on every finer level
    fine_steps: tuple[int, ...] = (1,)  # propagation distances on the finer levels
    guide_blur: int = 6  # box-blur radius (px, at every level) applied to the guide
    coarsest: int = 24  # stop halving once the hole's box is this small (px)
    search_samples: int = 4  # random-search samples per target and round
    source_margin: int = 1  # px around the hole that no source patch may touch
    sharp: bool = True  # finest level: each pixel from its best-matching patches, not all
    vote_best: int = 2  # ... averaging this many of the best
    blend: bool = True  # remove the seam: a smooth correction so the fill meets the photo
    fine_radius: int = 4  # random-search radius (px) on the levels above the coarsest
    # fill with the PyPatchMatch library where it loads (engine/runtime/patchmatch_texture.py);
    # the options above then apply only to the built-in synthesis it falls back to
    native: bool = True
    native_guide_weight: float = 0.05  # the library's guide weight (its own scale)
    # > 0: the library's fill keeps only its detail (what a box blur of this radius, in px,
    # takes away) over the guide's low-passed picture: the guide decides colours and shapes,
    # the photo adds its grain (what a class fill needs for its class to show)
    guide_layout: int = 0


DEFAULT_OPTIONS = TextureOptions()
_T = TypeVar("_T")


def finish(gen: Generator[None, None, _T]) -> _T:
    """The return value of a generator that yields only to offer its caller a place to stop."""
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def synthesis(
    photo: np.ndarray,
    hole: np.ndarray,
    guide: np.ndarray | None = None,
    *,
    seed: int = 0,
    options: TextureOptions = DEFAULT_OPTIONS,
) -> Generator[None, None, np.ndarray]:
    """Fill `hole` in `photo` with the photo's own texture, following `guide` where given: a
    generator that yields after every search round, so that a caller can stop it between
    rounds (closing it); `finish` runs it to its result.

    Args:
        photo: uint8 [H, W, 3]; pixels inside `hole` are ignored.
        hole: bool [H, W] pixels to synthesise.
        guide: uint8 or float [H, W, 3] (0-255) the model's decode of the same area, or None
            for unguided completion.
        seed: the random search's seed: the same seed gives the same pixels.
        options: search settings.

    Returns:
        uint8 [H, W, 3]: `photo` outside the hole (bit-identical), the synthesis inside.
    """
    photo = np.asarray(photo)
    hole = np.asarray(hole, bool)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be uint8 [H, W, 3], got {photo.dtype} {photo.shape}")
    if hole.shape != photo.shape[:2]:
        raise ValueError(f"hole {hole.shape} does not match photo {photo.shape[:2]}")
    if guide is not None and np.asarray(guide).shape != photo.shape:
        raise ValueError(f"guide {np.asarray(guide).shape} does not match photo {photo.shape}")
    if not hole.any():
        return photo.copy()
    if hole.all():
        return photo.copy() if guide is None else _to_uint8(np.asarray(guide, np.float32))

    if options.native and _native_fits(photo, hole):
        yield  # a stop before the library's call
        return (yield from _native(photo, hole, guide, seed, options))
    if guide is not None and options.guide_meets_photo:
        guide = _meeting(photo.astype(np.float32), hole, np.asarray(guide, np.float32))
    rng = np.random.default_rng(seed)
    levels = _pyramid(photo.astype(np.float32), hole, guide, options)
    estimate: np.ndarray | None = None
    nnf: np.ndarray | None = None
    field: _Field | None = None
    for depth, level in enumerate(reversed(levels)):
        if estimate is None:
            estimate = level.start()
        iterations = options.coarse_iterations if depth == 0 else options.fine_iterations
        weight = options.guide_weight * options.guide_decay**depth
        coarser, field = field, _Field(level, options, weight)
        nnf = field.initial(coarser, nnf, rng)
        if depth > 0:  # the carried-up matches give this level's first estimate
            estimate = field.vote(nnf)
        for _ in range(iterations):
            if depth == 0:  # coarsest: search everywhere, propagate far
                search = field.search(nnf, estimate, rng, max(level.hole.shape), (1, 2, 4))
            else:  # finer: the carried-up matches are close; refine them locally
                search = field.search(nnf, estimate, rng, options.fine_radius, options.fine_steps)
            nnf = yield from search
            estimate = field.vote(nnf)
            yield
    assert estimate is not None
    assert field is not None
    assert nnf is not None
    if options.sharp and field.scores is not None:
        estimate = field.vote(nnf, field.scores)
    if options.blend:
        estimate = estimate + field.seam_correction(nnf)
    out = photo.copy()
    out[hole] = _to_uint8(estimate)[hole]
    return out


def _native(
    photo: np.ndarray,
    hole: np.ndarray,
    guide: np.ndarray | None,
    seed: int,
    options: TextureOptions,
) -> Generator[None, None, np.ndarray]:
    """The library's fill of the hole (its guide made to meet the photo first)."""
    local = None if guide is None else np.asarray(guide, np.float32)
    if local is not None and options.guide_meets_photo:
        local = _meeting(photo.astype(np.float32), hole, local)
    weight = options.native_guide_weight
    filled = yield from patchmatch_texture.filling(photo, hole, local, seed, weight)
    if local is not None and options.guide_layout > 0:
        filled = _detail_over(filled, hole, local, options.guide_layout)
    return filled


def _detail_over(
    filled: np.ndarray, hole: np.ndarray, guide: np.ndarray, radius: int
) -> np.ndarray:
    """`filled`'s detail finer than a box blur of `radius` over the guide's coarser picture,
    in the hole (the photo around it counts as the guide's there, so the hole's edge meets)."""
    fine = filled.astype(np.float32)
    layout = np.where(hole[..., None], guide, fine)
    # one blur of the difference: blur(layout) - blur(fine), the box blur being linear
    correction = _blur(layout - fine, radius)
    assert correction is not None  # an array in, an array out
    return np.where(hole[..., None], _to_uint8(fine + correction), filled)


def _native_fits(photo: np.ndarray, hole: np.ndarray) -> bool:
    """Whether the PyPatchMatch library loads and the crop is big enough for its patches."""
    side = 2 * patchmatch_texture.PATCH_RADIUS + 1
    return min(photo.shape[:2]) >= side and patchmatch_texture.library() is not None


# -- the pyramid ------------------------------------------------------------------------------


@dataclass
class _Level:
    photo: np.ndarray  # float32 [h, w, 3]
    hole: np.ndarray  # bool [h, w]
    guide: np.ndarray | None  # float32 [h, w, 3], low-passed

    def start(self) -> np.ndarray:
        """The first estimate at the coarsest level: the guide, or a smooth membrane."""
        est = self.photo.copy()
        if self.guide is not None:
            est[self.hole] = self.guide[self.hole]
            return est
        known = ~self.hole
        membrane = harmonic_membrane(self.photo.transpose(2, 0, 1), self.hole, known)
        est[self.hole] = membrane.transpose(1, 2, 0)[self.hole]
        return est


def _meeting(photo: np.ndarray, hole: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """The guide with its hole part shifted by the smooth membrane that makes it meet the
    photo on the hole's border: the model's fill keeps its shapes, not a brightness that
    differs from the surroundings."""
    ring = dilate_pixels(hole, 1) & ~hole
    boundary = np.where(ring[..., None], photo - guide, 0.0).astype(np.float32)
    membrane = harmonic_membrane(boundary.transpose(2, 0, 1), hole, ring).transpose(1, 2, 0)
    return np.where(hole[..., None], guide + membrane, guide)


def _pyramid(
    photo: np.ndarray, hole: np.ndarray, guide: np.ndarray | None, options: TextureOptions
) -> list[_Level]:
    """Finest first. A coarse pixel is hole if any of its fine pixels is."""
    g = None if guide is None else np.asarray(guide, np.float32)
    levels = [_Level(photo, hole, _blur(g, options.guide_blur))]
    while True:
        ys, xs = np.nonzero(hole)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        if extent <= options.coarsest or min(hole.shape) < 4 * options.patch:
            break
        photo, hole = _half(photo), _half_any(hole)
        g = None if g is None else _half(g)
        if hole.all():
            break
        levels.append(_Level(photo, hole, _blur(g, options.guide_blur)))
    return levels


def _half(a: np.ndarray) -> np.ndarray:
    """2x2 mean, odd edges kept by repeating the last row/column."""
    h, w = a.shape[:2]
    a = np.pad(a, [(0, h % 2), (0, w % 2)] + [(0, 0)] * (a.ndim - 2), mode="edge")
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def _half_any(m: np.ndarray) -> np.ndarray:
    h, w = m.shape
    m = np.pad(m, [(0, h % 2), (0, w % 2)], mode="edge")
    return m[0::2, 0::2] | m[1::2, 0::2] | m[0::2, 1::2] | m[1::2, 1::2]


def _blur(a: np.ndarray | None, radius: int) -> np.ndarray | None:
    """Separable box blur with edges replicated."""
    if a is None or radius <= 0:
        return a
    out = a
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float64)
        n = out.shape[axis]
        width = 2 * radius + 1
        hi = np.arange(n) + width
        out = (c.take(hi, axis=axis) - c.take(hi - width, axis=axis)) / width
    return out.astype(np.float32)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


# -- one level's nearest-neighbour field ------------------------------------------------------


@dataclass
class _Patches:
    """The targets' side of the patch distance, fixed during one search round."""

    values: np.ndarray  # float32 [N, P, 3] the targets' patches, flattened
    weights: np.ndarray  # float32 [N, P] 0 where a patch runs past the image
    guide: np.ndarray | None  # float32 [N, 3] the guide at the targets
    area: np.ndarray  # float32 [N] the patches' weight sums

    def subset(self, keep: np.ndarray) -> _Patches:
        guide = None if self.guide is None else self.guide[keep]
        return _Patches(self.values[keep], self.weights[keep], guide, self.area[keep])


class _Field:
    """Targets (pixels whose patch overlaps the hole), valid sources (patches entirely in the
    known area) and the search and vote over them, on flat indices into padded arrays."""

    def __init__(self, level: _Level, options: TextureOptions, guide_weight: float):
        self.level, self.options = level, options
        h, w = level.hole.shape
        r = options.patch // 2
        # the patch shrinks on tiny levels so that some source patch still fits
        while r > 1 and not _sources(level.hole, r, options.source_margin).any():
            r -= 1
        self.r = r
        self.pw = w + 2 * r
        valid = _sources(level.hole, r, options.source_margin)
        if not valid.any():  # a hole with (almost) no known pixels: nothing to copy from
            valid = ~level.hole
        self.valid = valid
        vy, vx = np.nonzero(valid)
        self.source_list = np.stack([vy, vx], 1)
        near = dilate_pixels(level.hole, r) if r else level.hole
        ty, tx = np.nonzero(near)
        self.targets = np.stack([ty, tx], 1)
        self.target_map = np.full((h + 2 * r, w + 2 * r), -1, np.int64)
        self.target_map[ty + r, tx + r] = np.arange(len(ty))
        self.t_flat = (ty + r) * self.pw + (tx + r)
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        self.offsets = np.stack([dy.ravel(), dx.ravel()], 1)
        self.d_flat = dy.ravel() * self.pw + dx.ravel()
        inside = np.pad(np.ones((h, w), np.float32), r)
        self.weight = inside.ravel()
        self.hy, self.hx = np.nonzero(level.hole)
        self.scores: np.ndarray | None = None  # per-target distance after the last search
        self._hole_cover: np.ndarray | None = None
        self.photo_flat = np.pad(level.photo, [(r, r), (r, r), (0, 0)], mode="edge").reshape(-1, 3)
        self.guide_weight = np.float32(guide_weight)
        self.guide = None
        if level.guide is not None and guide_weight > 0:
            self.guide = np.pad(level.guide, [(r, r), (r, r), (0, 0)], mode="edge").reshape(-1, 3)

    def _features(self, estimate: np.ndarray) -> np.ndarray:
        r = self.r
        return np.pad(estimate, [(r, r), (r, r), (0, 0)], mode="edge").reshape(-1, 3)

    def initial(
        self, coarser: _Field | None, coarse: np.ndarray | None, rng: np.random.Generator
    ) -> np.ndarray:
        """[N, 2] source centres: random valid ones, or the coarser level's matches doubled."""
        n = len(self.targets)
        random = self.source_list[rng.integers(0, len(self.source_list), n)]
        if coarser is None or coarse is None:
            return random
        # each target looks up its parent pixel among the coarser level's targets
        c_map, c_r = coarser.target_map, coarser.r
        py = np.clip(self.targets[:, 0] // 2 + c_r, 0, c_map.shape[0] - 1)
        px = np.clip(self.targets[:, 1] // 2 + c_r, 0, c_map.shape[1] - 1)
        idx = c_map[py, px]
        has = idx >= 0
        up = random.copy()
        up[has] = coarse[idx[has]] * 2 + (self.targets[has] % 2)
        return self._keep_valid(up, random)

    def _keep_valid(self, candidate: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        h, w = self.valid.shape
        y = np.clip(candidate[:, 0], 0, h - 1)
        x = np.clip(candidate[:, 1], 0, w - 1)
        ok = self.valid[y, x]
        out = np.where(ok[:, None], np.stack([y, x], 1), fallback)
        return out

    def distance(self, features: np.ndarray, patches: _Patches, nnf: np.ndarray) -> np.ndarray:
        """Distances between the targets `patches` holds and the sources `nnf`: the weighted
        squared colour difference over the patch, plus the guide term. The guide is low-passed,
        so its difference at the patch centres, counted once per patch pixel, stands for the
        whole patch at a ninth of the cost."""
        s_flat = (nnf[:, 0] + self.r) * self.pw + (nnf[:, 1] + self.r)
        diff = patches.values - features[s_flat[:, None] + self.d_flat[None, :]]
        total = np.einsum("np,npc,npc->n", patches.weights, diff, diff, optimize=False)
        if self.guide is not None and patches.guide is not None:
            g = patches.guide - self.guide[s_flat]
            total += self.guide_weight * patches.area * np.einsum("nc,nc->n", g, g)
        return total

    def target_patches(self, features: np.ndarray) -> _Patches:
        idx = self.t_flat[:, None] + self.d_flat[None, :]
        weights = self.weight[idx]
        guide = None if self.guide is None else self.guide[self.t_flat]
        return _Patches(features[idx], weights, guide, weights.sum(1))

    def search(
        self,
        nnf: np.ndarray,
        estimate: np.ndarray,
        rng: np.random.Generator,
        radius: int,
        steps: tuple[int, ...] = (1,),
    ) -> Generator[None, None, np.ndarray]:
        """One round of propagation from the four neighbours (`steps` px away) and a random
        search around the best match at radii `radius`, `radius`/2, ... 1; yields after every
        batch of candidates (a caller may stop there) and returns the new field."""
        features = self._features(estimate)
        patches = self.target_patches(features)
        best = nnf.copy()
        best_d = self.distance(features, patches, best)

        def consider(candidate: np.ndarray) -> None:
            nonlocal best, best_d
            h, w = self.valid.shape
            y, x = candidate[:, 0], candidate[:, 1]
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
            ok = inside & self.valid[y, x]
            if not ok.any():
                return
            cand = np.stack([y, x], 1)
            d = np.full(len(cand), np.inf, np.float32)
            sub = patches if ok.all() else patches.subset(ok)
            d[ok] = self.distance(features, sub, cand[ok])
            better = d < best_d
            best = np.where(better[:, None], cand, best)
            best_d = np.where(better, d, best_d)

        for step in steps:
            for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0)):
                neighbour = self._neighbour(dy * step, dx * step)
                has = neighbour >= 0
                cand = best.copy()
                cand[has] = best[neighbour[has]] - np.array([dy * step, dx * step])
                consider(cand)
                yield
        while radius >= 1:
            for _ in range(max(1, self.options.search_samples // 2)):
                jump = rng.integers(-radius, radius + 1, size=best.shape)
                consider(best + jump)
                yield
            radius //= 2
        self.scores = best_d / np.maximum(patches.weights.sum(1), 1.0)
        return best

    def _neighbour(self, dy: int, dx: int) -> np.ndarray:
        tm = self.target_map
        y = self.targets[:, 0] + self.r + dy
        x = self.targets[:, 1] + self.r + dx
        inside = (y >= 0) & (y < tm.shape[0]) & (x >= 0) & (x < tm.shape[1])
        out = np.full(len(y), -1, np.int64)
        out[inside] = tm[y[inside], x[inside]]
        return out

    def seam_correction(self, nnf: np.ndarray) -> np.ndarray:
        """float32 [h, w, 3]: the harmonic membrane that takes the synthesis's mismatch with
        the photo on the ring of known pixels around the hole into the hole (seamless
        cloning of the synthesis; the ring's synthesis is the mean vote there). The image
        border imposes nothing."""
        lv = self.level
        ring = dilate_pixels(lv.hole, 1) & ~lv.hole
        ry, rx = np.nonzero(ring)
        synthetic = self._vote_at(nnf, ry, rx, None)
        boundary = np.zeros_like(lv.photo)
        boundary[ry, rx] = lv.photo[ry, rx] - synthetic
        membrane = harmonic_membrane(boundary.transpose(2, 0, 1), lv.hole, ring)
        return membrane.transpose(1, 2, 0)

    def vote(self, nnf: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Every hole pixel from the target patches covering it: their mean, or with `scores`
        (each target's patch distance) the pixel of the best-matching one, which keeps the
        texture's grain where many equally good matches would average to a blur."""
        est = self.level.photo.copy()
        est[self.hy, self.hx] = self._vote_at(nnf, self.hy, self.hx, scores)
        return est

    def _vote_at(
        self, nnf: np.ndarray, ys: np.ndarray, xs: np.ndarray, scores: np.ndarray | None
    ) -> np.ndarray:
        """float32 [K, 3]: the vote at pixels (ys, xs) (each within r of the hole)."""
        cover = self._cover(ys, xs)  # [K, P] the target whose patch has the pixel at offset p
        has = cover >= 0
        s_flat = (nnf[:, 0] + self.r) * self.pw + (nnf[:, 1] + self.r)
        values = self.photo_flat[s_flat[np.maximum(cover, 0)] + self.d_flat[None, :]]
        if scores is None:
            count = has.sum(1, keepdims=True)
            return (values * has[..., None]).sum(1) / np.maximum(count, 1)
        score = np.where(has, scores[np.maximum(cover, 0)], np.inf)
        k = min(self.options.vote_best, score.shape[1])
        if k <= 1:
            return values[np.arange(len(ys)), score.argmin(1)]
        best = np.argpartition(score, k - 1, axis=1)[:, :k]
        ok = np.take_along_axis(has, best, 1)
        picked = np.take_along_axis(values, best[..., None], 1)
        return (picked * ok[..., None]).sum(1) / np.maximum(ok.sum(1, keepdims=True), 1)

    def _cover(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        if ys is self.hy:  # the hole's own pixels: fixed for the level, so kept
            if self._hole_cover is None:
                self._hole_cover = self._cover_of(ys, xs)
            return self._hole_cover
        return self._cover_of(ys, xs)

    def _cover_of(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        at = (ys + self.r) * self.pw + (xs + self.r)  # in the padded target map
        return self.target_map.ravel()[at[:, None] - self.d_flat[None, :]]


def _sources(hole: np.ndarray, r: int, margin: int) -> np.ndarray:
    """bool [h, w]: centres whose (2r+1)^2 patch lies inside the image and `margin` px clear
    of the hole."""
    h, w = hole.shape
    blocked = dilate_pixels(hole, r + margin)
    ok = ~blocked
    if r:
        ok[:r], ok[h - r :], ok[:, :r], ok[:, w - r :] = False, False, False, False
    return ok
