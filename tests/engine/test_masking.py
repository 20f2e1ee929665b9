"""Tests for engine.runtime.masking: token masks, compositing."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.runtime.masking import (
    composite,
    grow_token_mask,
    mask_bbox,
    token_mask_from_pixels,
)


def block(shape, r0, r1, c0, c1):
    """bool array with rows r0..r1 and cols c0..c1 (inclusive) set."""
    out = np.zeros(shape, bool)
    out[r0 : r1 + 1, c0 : c1 + 1] = True
    return out


# --- reference and hand-computed cases -------------------------------------------------------


def test_reference_square_64_191():
    mask = block((256, 256), 64, 191, 64, 191)
    touched = token_mask_from_pixels(mask, 16, ring=0)
    assert np.array_equal(touched, block((16, 16), 4, 11, 4, 11))
    grown = token_mask_from_pixels(mask, 16, ring=1)
    assert np.array_equal(grown, block((16, 16), 3, 12, 3, 12))
    assert grown.sum() == 100


def test_grid_as_sequence():
    mask = block((256, 256), 64, 191, 64, 191)
    assert np.array_equal(token_mask_from_pixels(mask, [16, 16]), token_mask_from_pixels(mask, 16))
    rect = token_mask_from_pixels(np.ones((32, 64), bool), (2, 4), ring=0)
    assert rect.shape == (2, 4)
    assert rect.all()


def test_single_pixel_at_cell_corner():
    mask = np.zeros((256, 256), bool)
    mask[32, 32] = True  # top-left pixel of cell (2, 2)
    assert np.array_equal(token_mask_from_pixels(mask, 16, ring=0), block((16, 16), 2, 2, 2, 2))
    assert np.array_equal(token_mask_from_pixels(mask, 16, ring=1), block((16, 16), 1, 3, 1, 3))
    mask[:] = False
    mask[31, 31] = True  # bottom-right pixel of cell (1, 1)
    assert np.array_equal(token_mask_from_pixels(mask, 16, ring=0), block((16, 16), 1, 1, 1, 1))


def test_coverage_threshold_half_covered_cell():
    mask = np.zeros((32, 32), bool)
    mask[0:8, 0:16] = True  # exactly half of cell (0, 0)
    mask[16:32, 16:25] = True  # 9/16 of cell (1, 1)
    at_half = token_mask_from_pixels(mask, 2, ring=0, coverage=0.5)
    assert at_half.tolist() == [[False, False], [False, True]]  # > 0.5, not >=
    below = token_mask_from_pixels(mask, 2, ring=0, coverage=0.49)
    assert below.tolist() == [[True, False], [False, True]]
    anyo = token_mask_from_pixels(mask, 2, ring=0)
    assert anyo.tolist() == [[True, False], [False, True]]


def test_ring_clipped_at_border():
    mask = np.zeros((64, 64), bool)
    mask[0, 0] = True
    out = token_mask_from_pixels(mask, 4, ring=1)
    assert np.array_equal(out, block((4, 4), 0, 1, 0, 1))
    out2 = token_mask_from_pixels(mask, 4, ring=2)
    assert np.array_equal(out2, block((4, 4), 0, 2, 0, 2))
    big = token_mask_from_pixels(mask, 4, ring=10)
    assert big.all()


def test_empty_mask_gives_empty_tokens():
    assert not token_mask_from_pixels(np.zeros((64, 64), bool), 4).any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        token_mask_from_pixels(np.zeros((30, 32), bool), 4)
    with pytest.raises(ValueError, match="coverage"):
        token_mask_from_pixels(np.zeros((32, 32), bool), 4, coverage=1.0)
    with pytest.raises(ValueError, match="cells"):
        grow_token_mask(np.zeros((4, 4), bool), -1)
    with pytest.raises(ValueError, match="grid"):
        token_mask_from_pixels(np.zeros((32, 32), bool), 0)
    with pytest.raises(ValueError, match="2-D"):
        token_mask_from_pixels(np.zeros((32, 32, 1), bool), 4)


def test_grow_hand_cases():
    m = block((8, 8), 3, 4, 3, 4)
    assert np.array_equal(grow_token_mask(m, 1), block((8, 8), 2, 5, 2, 5))
    assert np.array_equal(grow_token_mask(m, 0), m)


def test_mask_bbox():
    assert mask_bbox(np.zeros((5, 5), bool)) is None
    assert mask_bbox(block((10, 20), 2, 4, 5, 9)) == (5, 2, 10, 5)


# --- compositing -----------------------------------------------------------------------------


def test_composite_hand_values():
    orig = np.full((1, 3, 3), 100, np.uint8)
    gen = np.full((1, 3, 3), 201, np.uint8)
    alpha = np.array([[0.0, 0.5, 1.0]], np.float32)
    out = composite(orig, gen, alpha)
    assert out[0, :, 0].tolist() == [100, 150, 201]  # 150.5 -> round half to even = 150
    assert out.dtype == np.uint8


def test_composite_rgba_and_large_chunked():
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 256, (600, 40, 4), dtype=np.uint8)
    gen = rng.integers(0, 256, (600, 40, 4), dtype=np.uint8)
    alpha = np.zeros((600, 40), np.float32)
    alpha[100:550, 10:30] = rng.random((450, 20)).astype(np.float32)
    alpha[300:310] = 1.0
    out = composite(orig, gen, alpha)
    expected = np.rint(orig + (gen.astype(np.float32) - orig) * alpha[..., None])
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.array_equal(out[alpha == 0], orig[alpha == 0])
    assert np.array_equal(out[300:310], gen[300:310])


def test_composite_validation():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="images must be uint8"):
        composite(img, img.astype(np.float32), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="alpha shape"):
        composite(img, img, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="of equal shape"):
        composite(img[..., :2], img[..., :2], np.zeros((4, 4)))
    with pytest.raises(ValueError, match="alpha contains NaN"):
        composite(img, img, np.full((4, 4), np.nan))


# --- properties ------------------------------------------------------------------------------

grids = st.tuples(st.integers(1, 6), st.integers(1, 6))
cells = st.tuples(st.integers(1, 5), st.integers(1, 5))


@st.composite
def masks_on_grid(draw):
    (gh, gw), (ch, cw) = draw(grids), draw(cells)
    bits = draw(st.lists(st.booleans(), min_size=gh * ch * gw * cw, max_size=gh * ch * gw * cw))
    return np.array(bits, bool).reshape(gh * ch, gw * cw), (gh, gw)


def cells_in_pixels(tokens: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each token cell as its block of pixels (`shape` a multiple of the grid)."""
    (h, w), (gh, gw) = shape, tokens.shape
    return np.repeat(np.repeat(tokens, h // gh, axis=0), w // gw, axis=1)


@given(masks_on_grid(), st.integers(0, 3))
def test_token_mask_covers_every_painted_pixel(case, ring):
    mask, grid = case
    tokens = token_mask_from_pixels(mask, grid, ring=ring)
    pixels = cells_in_pixels(tokens, mask.shape)
    assert not (mask & ~pixels).any()
    if not mask.any():
        assert not tokens.any()


@given(masks_on_grid(), st.floats(0.0, 0.99))
def test_coverage_selects_subset_of_any_overlap(case, coverage):
    mask, grid = case
    strict = token_mask_from_pixels(mask, grid, ring=0, coverage=coverage)
    loose = token_mask_from_pixels(mask, grid, ring=0)
    assert not (strict & ~loose).any()


@given(masks_on_grid(), st.integers(0, 3), st.integers(0, 3))
def test_grow_is_monotone_and_extensive(case, a, b):
    mask, _ = case
    small, large = sorted((a, b))
    grown_small, grown_large = grow_token_mask(mask, small), grow_token_mask(mask, large)
    assert not (mask & ~grown_small).any()
    assert not (grown_small & ~grown_large).any()
    sub = mask & np.roll(mask, 1, axis=0)
    assert not (grow_token_mask(sub, a) & ~grow_token_mask(mask, a)).any()


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(masks_on_grid(), st.integers(0, 2), st.integers(0, 2**32 - 1))
def test_composite_properties(case, ring, seed):
    painted, grid = case
    tokens = token_mask_from_pixels(painted, grid, ring=ring)
    region = cells_in_pixels(tokens, painted.shape)
    rng = np.random.default_rng(seed)
    # a weight of 0 outside the regenerated cells, 1 on the painted pixels, anything between
    alpha = np.where(painted, 1.0, np.where(region, rng.random(painted.shape), 0.0))
    shape = painted.shape + (3,)
    orig = rng.integers(0, 256, shape, dtype=np.uint8)
    gen = rng.integers(0, 256, shape, dtype=np.uint8)
    out = composite(orig, gen, alpha)
    assert np.array_equal(out[~region], orig[~region])
    assert np.array_equal(out[alpha == 1], gen[alpha == 1])
    lo, hi = np.minimum(orig, gen), np.maximum(orig, gen)
    assert ((out >= lo) & (out <= hi)).all()


def test_dilate_pixels_matches_a_brute_force_square_dilation():
    from engine.runtime.masking import dilate_pixels

    rng = np.random.default_rng(4)
    mask = rng.random((23, 31)) > 0.97
    for radius in (0, 1, 3):
        expected = np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask), strict=True):
            expected[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = (
                True
            )
        assert np.array_equal(dilate_pixels(mask, radius), expected)
