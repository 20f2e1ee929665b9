"""Gradient-domain blending: the membrane is harmonic, meets the boundary, ignores free edges."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.blending import harmonic_membrane, seamless_fill


def disc(size: int, cy: float, cx: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return (y - cy) ** 2 + (x - cx) ** 2 < r**2


def test_a_plane_is_recovered_inside_any_hole():
    # linear functions are harmonic: given a plane on the boundary, the membrane is that plane
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    plane = np.stack([2.0 * x - y + 5, 0.5 * y + 100, np.full_like(x, -7.0)])
    hole = disc(64, 30, 34, 18) | disc(64, 12, 12, 6)
    got = harmonic_membrane(plane, hole, ~hole)
    assert np.abs(got[:, hole] - plane[:, hole]).max() < 0.05
    assert not got[:, ~hole].any()


def test_membrane_is_smooth_and_bounded_by_its_boundary():
    rng = np.random.default_rng(0)
    hole = disc(48, 24, 24, 15)
    boundary = rng.uniform(-40, 60, (2, 48, 48)).astype(np.float32)
    got = harmonic_membrane(boundary, hole, ~hole)
    ring = ~hole & np.pad(hole, 1)[2:, 1:-1] | ~hole & np.pad(hole, 1)[:-2, 1:-1]
    for c in range(2):
        inside = got[c, hole]
        # maximum principle: a harmonic field stays within its boundary values
        assert boundary[c, ring].min() - 1e-3 <= inside.min()
        assert inside.max() <= boundary[c, ring].max() + 1e-3
    # discrete Laplacian ~0 at interior hole pixels
    interior = (
        hole
        & np.roll(hole, 1, 0)
        & np.roll(hole, -1, 0)
        & np.roll(hole, 1, 1)
        & np.roll(hole, -1, 1)
    )
    lap = (
        4 * got
        - np.roll(got, 1, 1)
        - np.roll(got, -1, 1)
        - np.roll(got, 1, 2)
        - np.roll(got, -1, 2)
    )
    assert np.abs(lap[:, interior]).max() < 0.05


def test_free_edges_impose_nothing():
    # a hole whose left side touches padding (neither hole nor known): the membrane takes the
    # value of the only known side, instead of being pulled to 0 by the padding
    hole = np.zeros((32, 32), bool)
    hole[8:24, 0:20] = True
    known = np.zeros_like(hole)
    known[:, 20:] = True
    boundary = np.full((1, 32, 32), 50.0, np.float32)
    got = harmonic_membrane(boundary, hole, known)
    assert np.abs(got[0, hole] - 50.0).max() < 0.5


def test_hole_part_without_known_neighbours_stays_uncorrected():
    hole = np.zeros((32, 32), bool)
    hole[4:10, 4:10] = True
    known = np.zeros_like(hole)  # nothing known at all
    got = harmonic_membrane(np.full((3, 32, 32), 80.0, np.float32), hole, known)
    assert np.isfinite(got).all()
    assert np.abs(got).max() < 1e-3


def test_empty_hole_is_a_no_op():
    hole = np.zeros((16, 16), bool)
    assert not harmonic_membrane(np.ones((3, 16, 16), np.float32), hole, ~hole).any()


@pytest.mark.parametrize("offset", [-60, 35])
def test_seamless_fill_removes_a_colour_offset_and_keeps_texture(offset):
    rng = np.random.default_rng(1)
    original = rng.integers(60, 190, (64, 64, 3)).astype(np.uint8)
    hole = disc(64, 32, 32, 14)
    texture = rng.normal(0, 10, (64, 64, 3))
    fill = np.clip(original.astype(float) + offset + texture, 0, 255).astype(np.uint8)[None]
    out = seamless_fill(fill, original.transpose(2, 0, 1) / 255.0, hole, ~hole)[0]
    assert out.dtype == np.uint8
    assert out.shape == (64, 64, 3)
    assert np.array_equal(out[~hole], original[~hole])  # outside: the original, exactly
    before = np.abs(fill[0][hole].astype(float) - original[hole]).mean()
    after = np.abs(out[hole].astype(float) - original[hole]).mean()
    assert after < 0.4 * before  # the offset is gone
    # the fill's gradients survive: difference to the fill is smooth, not the fill replaced
    corr = out[hole].astype(float) - fill[0][hole]
    assert np.std(corr - corr.mean(0)) < np.std(texture)
