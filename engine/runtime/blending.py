"""Gradient-domain ("Poisson") blending of a generated fill into the photo around it.

A decoded fill is rarely the right brightness and colour right up to the hole's edge: the
tokenizer is lossy and a small model's fill drifts. Seamless cloning (Perez et al., "Poisson
Image Editing", 2003) keeps the fill's gradients, its texture and shapes, and replaces its
low frequencies by those that meet the surrounding photo exactly: add to the fill the smooth
(harmonic) membrane whose value on the hole's border is `original - fill`. The membrane solves
Laplace's equation inside the hole; it is found by conjugate gradients on the 4-neighbour
Laplacian, matrix-free, for every candidate and channel at once.
"""

from __future__ import annotations

import numpy as np

# A vanishing pull of the membrane towards 0: it keeps the system positive definite for hole
# parts that touch no known pixel (their right-hand side is 0, so they stay uncorrected).
_ANCHOR = 1e-7


def harmonic_membrane(
    boundary: np.ndarray,
    hole: np.ndarray,
    known: np.ndarray,
    tol: float = 1e-4,
    max_iter: int = 2000,
) -> np.ndarray:
    """The smooth field inside `hole` that takes the values of `boundary` on the known pixels
    next to the hole.

    Neighbours that are neither hole nor known (for example padding past the image border)
    impose nothing (a free, zero-gradient edge).

    Args:
        boundary: float [C, H, W]; read only on known pixels that touch the hole.
        hole: bool [H, W] pixels to solve for.
        known: bool [H, W] pixels whose values are fixed (must not overlap `hole`).
        tol: relative residual at which the solve stops.
        max_iter: iteration cap (the residual after it is small enough for display).

    Returns:
        float32 [C, H, W]: the membrane inside `hole`, 0 elsewhere.
    """
    hole = np.asarray(hole, bool)
    known = np.asarray(known, bool) & ~hole
    out = np.zeros(boundary.shape, np.float32)
    if not hole.any():
        return out
    # work on the hole's bounding box plus a one-pixel frame of neighbours
    ys, xs = np.nonzero(hole)
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, hole.shape[0])
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, hole.shape[1])
    h, k = hole[y0:y1, x0:x1], known[y0:y1, x0:x1]
    g = np.where(k, boundary[:, y0:y1, x0:x1], 0.0).astype(np.float32)

    def neighbours(a: np.ndarray) -> np.ndarray:
        """Sum of the 4 neighbours of every pixel (0 past the edge)."""
        s = np.zeros_like(a)
        s[..., 1:, :] += a[..., :-1, :]
        s[..., :-1, :] += a[..., 1:, :]
        s[..., :, 1:] += a[..., :, :-1]
        s[..., :, :-1] += a[..., :, 1:]
        return s

    degree = neighbours((h | k).astype(np.float32)) + np.float32(_ANCHOR)  # free edges do not count
    rhs = np.where(h, neighbours(g), 0.0)

    def apply(m: np.ndarray) -> np.ndarray:
        return np.where(h, degree * m - neighbours(m), 0.0)

    # conjugate gradients, one independent system per channel; a channel stops updating once
    # it has converged, so its result does not depend on what else is in the batch
    x = np.zeros_like(rhs)
    r = rhs.copy()
    p = r.copy()
    rs = (r * r).sum(axis=(-2, -1), keepdims=True)
    stop = (tol**2) * np.maximum(rs, 1e-12)
    for _ in range(max_iter):
        active = rs > stop
        if not active.any():
            break
        ap = apply(p)
        alpha = rs / np.maximum((p * ap).sum(axis=(-2, -1), keepdims=True), 1e-30)
        alpha = np.where(active, alpha, 0.0).astype(np.float32)
        x += alpha * p
        r -= alpha * ap
        rs_new = (r * r).sum(axis=(-2, -1), keepdims=True)
        p = r + (rs_new / np.maximum(rs, 1e-30)) * p
        rs = rs_new
    out[:, y0:y1, x0:x1] = np.where(h, x, 0.0)
    return out


def seamless_fill(
    fills: np.ndarray, original: np.ndarray, hole: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """Blend decoded fills into the original so that they meet it without a seam.

    Args:
        fills: uint8 [B, S, S, 3] decoded candidates.
        original: float [3, S, S] in [0, 1], the input square (valid where `known`).
        hole: bool [S, S] pixels to take from the fill.
        known: bool [S, S] pixels of the real photo around the hole (not padding).

    Returns:
        uint8 [B, S, S, 3]: the original outside the hole, fill + membrane inside it.
    """
    orig = original.transpose(1, 2, 0).astype(np.float32) * 255.0  # [S,S,3]
    fills_f = fills.astype(np.float32)
    diff = (orig[None] - fills_f).transpose(0, 3, 1, 2).reshape(-1, *hole.shape)  # [B*3,S,S]
    membrane = harmonic_membrane(diff, hole, known)
    membrane = membrane.reshape(len(fills), 3, *hole.shape).transpose(0, 2, 3, 1)
    out = np.where(hole[None, :, :, None], fills_f + membrane, orig[None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
