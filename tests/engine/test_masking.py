"""Tests for engine.runtime.masking: token masks, feathering, compositing."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.runtime.masking import (
    composite,
    feather_alpha,
    grow_token_mask,
    mask_bbox,
    pixel_mask_from_tokens,
    shrink_token_mask,
    threshold_mask,
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


def test_grow_and_shrink_hand_cases():
    m = block((8, 8), 3, 4, 3, 4)
    assert np.array_equal(grow_token_mask(m, 1), block((8, 8), 2, 5, 2, 5))
    assert np.array_equal(grow_token_mask(m, 0), m)
    assert np.array_equal(shrink_token_mask(block((8, 8), 2, 5, 2, 5), 1), m)
    assert not shrink_token_mask(m, 1).any()
    # The outside counts as selected: a full mask survives shrinking, edges are not eaten.
    assert shrink_token_mask(np.ones((8, 8), bool), 2).all()
    edge = block((8, 8), 0, 7, 0, 3)
    assert np.array_equal(shrink_token_mask(edge, 1), block((8, 8), 0, 7, 0, 2))


def test_pixel_mask_from_tokens():
    tokens = block((16, 16), 3, 12, 3, 12)
    pixels = pixel_mask_from_tokens(tokens, (256, 256))
    assert np.array_equal(pixels, block((256, 256), 48, 207, 48, 207))
    wide = pixel_mask_from_tokens(np.array([[True, False]]), (8, 2))  # size is (width, height)
    assert wide.shape == (2, 8)
    assert wide[:, :4].all()
    assert not wide[:, 4:].any()
    with pytest.raises(ValueError, match="size must be at least 1x1"):
        pixel_mask_from_tokens(tokens, (0, 256))


def test_pixel_mask_from_tokens_at_non_multiple_size():
    tokens = np.array([[True, False, False]])
    # 10 px over 3 cells: centre c -> floor(c * 3 / 10): pixels 0-2 | 3-6 | 7-9.
    out = pixel_mask_from_tokens(tokens, (10, 3))
    assert out.shape == (3, 10)
    assert out[0].tolist() == [True] * 3 + [False] * 7
    tokens = block((16, 16), 3, 12, 3, 12)
    big = pixel_mask_from_tokens(tokens, (1000, 750))
    # Same box as the 256 px case, scaled: 48/256 and 208/256 of each side (edges +-1 px).
    ys, xs = np.nonzero(big)
    assert abs(ys.min() - 48 / 256 * 750) <= 1
    assert abs(ys.max() + 1 - 208 / 256 * 750) <= 1
    assert abs(xs.min() - 48 / 256 * 1000) <= 1
    assert abs(xs.max() + 1 - 208 / 256 * 1000) <= 1


@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 5), st.integers(1, 5))
def test_pixel_mask_generic_path_matches_blocks_on_multiples(gh, gw, ch, cw):
    rng = np.random.default_rng(gh * 100 + gw * 10 + ch)
    tokens = rng.random((gh, gw)) < 0.5
    blocks = pixel_mask_from_tokens(tokens, (gw * cw, gh * ch))
    from engine.runtime.masking import _cell_of_pixels

    generic = tokens[_cell_of_pixels(gh * ch, gh)[:, None], _cell_of_pixels(gw * cw, gw)[None]]
    assert np.array_equal(blocks, generic)


def test_mask_bbox():
    assert mask_bbox(np.zeros((5, 5), bool)) is None
    assert mask_bbox(block((10, 20), 2, 4, 5, 9)) == (5, 2, 10, 5)


def test_threshold_mask():
    gray = np.array([[0, 127, 128, 255]], np.uint8)
    assert threshold_mask(gray).tolist() == [[False, False, True, True]]
    assert threshold_mask(np.array([[0.2, 0.5, 0.9]])).tolist() == [[False, True, True]]
    assert threshold_mask(np.array([[0, 32767, 32768]], np.uint16)).tolist() == [
        [False, False, True]
    ]
    assert threshold_mask(gray, 0.9).tolist() == [[False, False, False, True]]
    assert threshold_mask(np.array([[True, False]])).tolist() == [[True, False]]


# --- feathering ------------------------------------------------------------------------------


def test_feather_basic_profile():
    region = block((128, 128), 32, 95, 32, 95)
    painted = block((128, 128), 56, 71, 56, 71)
    alpha = feather_alpha(region, painted, 16)
    assert alpha.dtype == np.float32
    assert (alpha[~region] == 0).all()
    assert (alpha[painted] == 1).all()
    row = alpha[64, 32:64]
    assert 0 < row[0] < 0.1  # rises from ~0 at the border
    assert np.all(np.diff(row) >= -1e-6)  # monotone inward
    assert row[16] == 1.0  # full at radius px inside
    assert 0.4 < row[8] < 0.6


def test_feather_hard_edge_with_zero_radius():
    region = block((32, 32), 8, 23, 8, 23)
    alpha = feather_alpha(region, np.zeros_like(region), 0)
    assert np.array_equal(alpha, region.astype(np.float32))


def test_feather_region_touching_image_border_is_not_faded_there():
    region = block((64, 64), 0, 63, 0, 31)  # left half, touches top, bottom and left edges
    alpha = feather_alpha(region, np.zeros_like(region), 8)
    assert (alpha[:, :20] == 1.0).all()
    assert alpha[32, 31] < 0.1


def test_feather_painted_outside_region_gets_zero():
    region = block((32, 32), 0, 15, 0, 15)
    painted = block((32, 32), 10, 20, 10, 20)
    alpha = feather_alpha(region, painted, 4)
    assert (alpha[~region] == 0).all()
    assert (alpha[painted & region] == 1).all()


def test_feather_empty_region():
    alpha = feather_alpha(np.zeros((16, 16), bool), np.zeros((16, 16), bool), 4)
    assert not alpha.any()


def test_feather_cost_does_not_grow_with_radius():
    """The ramp is a box filter of running sums: a 64 px feather costs about what a 2 px one does
    on a 2048 px image (a per-pixel window would be ~1000x dearer). Compared within one run,
    interleaved, so a loaded machine slows both sides alike."""
    region = block((2048, 2048), 200, 1800, 100, 1900)
    painted = block((2048, 2048), 400, 1600, 400, 1600)
    costs: dict[int, list[float]] = {2: [], 64: []}
    for _ in range(3):
        for radius in costs:
            start = time.process_time()
            feather_alpha(region, painted, radius)
            costs[radius].append(time.process_time() - start)
    assert min(costs[64]) < 4 * min(costs[2]) + 0.05


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


@given(masks_on_grid(), st.integers(0, 3))
def test_token_mask_covers_every_painted_pixel(case, ring):
    mask, grid = case
    tokens = token_mask_from_pixels(mask, grid, ring=ring)
    pixels = pixel_mask_from_tokens(tokens, (mask.shape[1], mask.shape[0]))
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
    # Opening is contained in the original; closing contains it.
    assert not (grow_token_mask(shrink_token_mask(mask, a), a) & ~mask).any()
    assert not (mask & ~shrink_token_mask(grow_token_mask(mask, a), a)).any()


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(masks_on_grid(), st.integers(0, 2), st.floats(0, 12), st.integers(0, 2**32 - 1))
def test_feather_and_composite_properties(case, ring, radius, seed):
    painted, grid = case
    tokens = token_mask_from_pixels(painted, grid, ring=ring)
    region = pixel_mask_from_tokens(tokens, (painted.shape[1], painted.shape[0]))
    alpha = feather_alpha(region, painted, radius)
    assert alpha.shape == painted.shape
    assert alpha.min() >= 0.0
    assert alpha.max() <= 1.0
    assert (alpha[~region] == 0).all()
    assert (alpha[painted] == 1).all()
    rng = np.random.default_rng(seed)
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
