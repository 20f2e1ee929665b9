"""Masks like users paint, for transformer training (engine/modeling/masks.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engine.modeling.masks import (
    KINDS,
    distance_to,
    masking_noise,
    painted_batch,
    user_mask,
    user_masks,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def parts(mask: torch.Tensor) -> int:
    """Connected parts (8-connectivity) of a 2-D bool mask."""
    return cv2.connectedComponents(mask.numpy().astype(np.uint8), connectivity=8)[0] - 1


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_a_hole_of_about_the_asked_area(kind):
    for seed in range(20):
        for area in (0.05, 0.2, 0.45):
            m = user_mask(gen(seed), 16, area, kind)
            assert m.shape == (16, 16)
            assert m.dtype == torch.bool
            assert m.any()
            cover = m.float().mean().item()
            # a token counts when the shape touches it, so the token cover is a little larger
            assert 0.4 * area <= cover <= 2.2 * area + 0.08, (kind, seed, area, cover)
            if kind != "strokes":  # a few brush strokes may cross or not
                assert parts(m) == 1, (kind, seed, area)
    # strokes are thin: their bounding box is much larger than what they cover
    m = user_mask(gen(3), 16, 0.15, "strokes")
    ys, xs = np.nonzero(m.numpy())
    assert (np.ptp(ys) + 1) * (np.ptp(xs) + 1) > 1.6 * m.sum().item()


def test_masks_depend_only_on_the_generator():
    a, kinds_a = user_masks(gen(7), 8, 16, 0.2)
    b, kinds_b = user_masks(gen(7), 8, 16, 0.2)
    c, _ = user_masks(gen(8), 8, 16, 0.2)
    assert torch.equal(a, b)
    assert kinds_a == kinds_b
    assert not torch.equal(a, c)
    _, kinds = user_masks(gen(0), 64, 16, 0.2)
    assert set(kinds) == set(KINDS)  # every kind is drawn


def test_distance_to_known_values():
    m = torch.zeros(1, 5, 5, dtype=torch.bool)
    m[0, 2, 2] = True
    d = distance_to(m)[0]
    assert d[2, 2] == 0
    assert d[1, 1] == 1
    assert d[2, 3] == 1
    assert d[0, 0] == 2
    assert d[4, 2] == 2


def test_noise_puts_the_painted_hole_first_then_its_ring():
    masks, _ = user_masks(gen(1), 6, 16, 0.15)
    noise = masking_noise(masks, gen(2))
    assert noise.shape == (6, 256)
    assert (noise >= 0).all()
    assert (noise < 1).all()
    rank = noise.argsort(1).argsort(1)
    for b in range(6):
        m = masks[b].flatten()
        k = int(m.sum())
        # the k lowest are exactly the painted tokens
        assert torch.equal(rank[b] < k, m)
        # a few more: taken from the 1-token ring around the hole, so one region still
        ring = (distance_to(masks[b : b + 1])[0] == 1).flatten()
        extra = (rank[b] < k + 5) & ~m
        assert extra.sum() == 5
        assert (extra & ~ring).sum() == 0
        # fewer: a subset of the hole
        assert ((rank[b] < k // 2) & ~m).sum() == 0


def test_painted_batch_ratio_is_the_mean_cover():
    ratio, noise = painted_batch(gen(4), 8, 16)
    assert 0.03 < ratio < 0.9
    assert noise.shape == (8, 256)
    # every image's painted tokens rank first: masking ceil(ratio * n) keeps holes contiguous
    k = int(np.ceil(ratio * 256))
    masked = noise.argsort(1).argsort(1) < k
    contiguous = [parts(masked[b].reshape(16, 16)) for b in range(8)]
    assert np.mean([c == 1 for c in contiguous]) >= 0.6
