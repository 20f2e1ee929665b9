"""Editing on a tiny real bundle: only the grown mask changes, at any image size."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.errors import MaskError
from engine.runtime.plan import context_square
from engine.runtime.runs import (
    Edit,
    Extend,
    Generate,
    edit_image,
    plan_or_raise,
    prepare_fill,
    run,
    run_to_end,
)
from engine.runtime.settings import Settings


def photo(h, w, seed=0):
    """A smooth synthetic 'photo' (gradients + a disc), not noise."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    img = np.stack([x * 200 + 30, y * 180 + 40, (x + y) * 90 + 20], -1)
    disc = (x - 0.5) ** 2 + (y - 0.45) ** 2 < 0.02
    img[disc] = [220, 40, 40]
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def prepare(manifest, rgb, mask, settings=Settings()):
    """The plan of an edit and its (only) part."""
    plan = plan_or_raise(manifest, rgb, mask, settings)
    return plan, plan.parts[0]


def grown_region(m, part, shape):
    """The pixels the edit may change: the token mask mapped back through the square."""
    sq = part.square
    idx_y = (np.arange(sq.side) * m.image_size // sq.side) // m.downsample
    region_sq = part.token_mask[idx_y[:, None], idx_y[None, :]]
    region = np.zeros(shape, bool)
    ys = np.arange(sq.y0, sq.y0 + sq.side)
    xs = np.arange(sq.x0, sq.x0 + sq.side)
    iy = (ys >= 0) & (ys < shape[0])
    ix = (xs >= 0) & (xs < shape[1])
    region[np.ix_(ys[iy], xs[ix])] = region_sq[np.ix_(iy, ix)]
    return region


@pytest.mark.parametrize(
    ("h", "w", "box"),
    [
        (64, 64, (20, 20, 40, 44)),  # model size
        (300, 451, (120, 200, 160, 260)),  # odd size, crop path
        (40, 30, (5, 5, 15, 12)),  # smaller than the model: upscaled square, padded
        (1200, 900, (0, 850, 100, 900)),  # mask at the right border
    ],
)
def test_only_grown_mask_changes(tiny_bundle, h, w, box):
    rgb = photo(h, w)
    mask = np.zeros((h, w), bool)
    y0, x0, y1, x1 = box
    mask[y0:y1, x0:x1] = True
    settings = Settings(seeds=(3,))
    plan, part = prepare(tiny_bundle.manifest, rgb, mask, settings)
    result = run_to_end(run(tiny_bundle, Edit(rgb, plan), settings))
    out = result.images[0]
    assert out.shape == rgb.shape
    assert out.dtype == np.uint8
    region = grown_region(tiny_bundle.manifest, part, (h, w))
    assert region[mask].all()  # the grown area covers every painted pixel
    assert np.array_equal(out[~region], rgb[~region])  # bit-identical outside
    # inside the ring, only a feather of half a token next to the painted area changes
    from engine.runtime.masking import dilate_pixels

    near = dilate_pixels(mask, int(np.ceil(max(2.0, 0.5 * part.square.side / 16))) + 1)
    assert not (out != rgb).any(-1)[~near].any()
    assert (out[mask] != rgb[mask]).any(axis=-1).mean() > 0.5  # the painted area was refilled


def test_reference_mask_to_tokens(tiny_bundle):
    """At model resolution, a hole from 1/4 to 3/4 of the side masks tokens 3..12 (ring 1)."""
    rgb = photo(64, 64)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    _, part = prepare(tiny_bundle.manifest, rgb, mask, Settings(context=1.0))
    assert part.square.side == 64
    rows, cols = np.nonzero(part.token_mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 12, 3, 12)
    assert part.masked_count == 100


def test_same_seed_same_result_and_batch_independence(tiny_bundle):
    rgb = photo(64, 64)
    mask = np.zeros((64, 64), bool)
    mask[10:30, 30:50] = True
    a = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(7,)))
    b = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(5, 7, 9)))
    c = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(8,)))
    assert np.array_equal(a.tokens[0], b.tokens[1])
    assert np.array_equal(a.images[0], b.images[1])
    assert not np.array_equal(a.tokens[0], c.tokens[0])
    assert len(b.history) == 8
    assert b.history[-1].shape == (3, 256)


def test_known_tokens_kept_and_history_monotone(tiny_bundle):
    rgb = photo(64, 64)
    mask = np.zeros((64, 64), bool)
    mask[30:40, 5:20] = True
    plan, part = prepare(tiny_bundle.manifest, rgb, mask, Settings())
    result = run_to_end(run(tiny_bundle, Edit(rgb, plan), Settings(seeds=(1,))))
    known = ~part.token_mask.reshape(-1)
    assert result.fill is not None
    assert result.fill.tokens is not None
    assert np.array_equal(result.tokens[0][known], result.fill.tokens[known])
    mask_id = tiny_bundle.manifest.mask_token_id
    remaining = [int((h[0] == mask_id).sum()) for h in result.history]
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == 0
    assert remaining[0] < part.masked_count


def test_class_fill_and_guidance(tiny_bundle):
    rgb = photo(64, 64)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    plain = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(2,)))
    as_dog = edit_image(
        tiny_bundle, rgb, mask, Settings(seeds=(2,), class_name="Dog", guidance=2.0)
    )
    assert not np.array_equal(plain.tokens, as_dog.tokens)
    with pytest.raises(Exception, match="unknown class 'zebra'"):
        edit_image(tiny_bundle, rgb, mask, Settings(class_name="zebra"))


def test_empty_and_tiny_masks(tiny_bundle):
    rgb = photo(64, 64)
    with pytest.raises(MaskError, match="empty"):
        prepare(tiny_bundle.manifest, rgb, np.zeros((64, 64), bool))
    one = np.zeros((64, 64), bool)
    one[0, 0] = True
    _, part = prepare(tiny_bundle.manifest, rgb, one, Settings())
    assert part.masked_count == 4  # the corner cell + its ring, clipped at the border
    with pytest.raises(MaskError, match=r"covers no token at coverage 0\.5"):
        prepare(tiny_bundle.manifest, rgb, one, Settings(coverage=0.5, ring=0))
    with pytest.raises(MaskError, match="mask is 10x10"):
        prepare(tiny_bundle.manifest, rgb, np.ones((10, 10), bool))


def test_everything_masked_is_generation(tiny_bundle):
    rgb = photo(64, 64)
    result = edit_image(tiny_bundle, rgb, np.ones((64, 64), bool), Settings(seeds=(4,)))
    assert result.fill is not None
    assert result.fill.token_mask.all()
    assert (result.images[0] != rgb).any(-1).mean() > 0.9


def test_generate_candidates(tiny_bundle):
    result = run_to_end(run(tiny_bundle, Generate(), Settings(seeds=(1, 2), class_name="cat")))
    assert len(result.images) == 2
    assert result.images[0].shape == (64, 64, 3)
    assert not np.array_equal(result.images[0], result.images[1])
    assert (tiny_bundle.manifest.mask_token_id != result.tokens).all()


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_extend_keeps_original_pixels(tiny_bundle, side):
    rgb = photo(50, 120)
    result = run_to_end(run(tiny_bundle, Extend(rgb, side, 2), Settings(seeds=(1,))))
    out = result.images[0]
    # 2 tokens at the scale of a 64 px model square spanning the 50 px short side
    strip = round(2 * 4 * 50 / 64)
    if side in ("left", "right"):
        assert out.shape == (50, 120 + strip, 3)
    else:
        assert out.shape == (50 + strip, 120, 3)
    # the original pixels away from the new edge are unchanged
    margin = 16
    keep = {
        "right": (slice(None), slice(0, 120 - margin)),
        "left": (slice(None), slice(strip + margin, None)),
        "bottom": (slice(0, 50 - margin), slice(None)),
        "top": (slice(strip + margin, None), slice(None)),
    }[side]
    orig = {
        "right": rgb[:, : 120 - margin],
        "left": rgb[:, margin:],
        "bottom": rgb[: 50 - margin],
        "top": rgb[margin:],
    }[side]
    assert np.array_equal(out[keep], orig)


def test_context_square_stays_inside_large_images():
    sq = context_square((900, 10, 1000, 60), 1000, 800, min_side=256)
    assert sq.side == 256
    assert sq.x0 + sq.side <= 1000
    assert sq.y0 == 0
    sq = context_square((0, 0, 30, 20), 40, 30, min_side=256)
    assert sq.side == 60 or sq.side >= 40  # larger than the image: padded, centred


def test_colour_match_undoes_a_global_shift():
    from engine.runtime.compose import match_colours

    rng = np.random.default_rng(0)
    reference = rng.random((3, 32, 32)).astype(np.float32)
    shifted = np.clip(reference.transpose(1, 2, 0) * 255 * 0.8 + 30, 0, 255).astype(np.uint8)
    known = np.ones((32, 32), bool)
    known[8:24, 8:24] = False
    fixed = match_colours(shifted[None], reference, known)[0].astype(np.float32)
    error_before = np.abs(shifted.astype(np.float32) - reference.transpose(1, 2, 0) * 255).mean()
    error_after = np.abs(fixed - reference.transpose(1, 2, 0) * 255).mean()
    assert error_after < 1.5 < error_before


def test_low_sample_temperature_takes_the_most_likely_tokens():
    from engine.runtime.decode import iterative_decode, last_step, make_rngs

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1, (1, 64, 32)).astype(np.float32)
    tokens = np.full((1, 64), 32, np.int64)
    last = last_step(
        iterative_decode(
            tokens,
            lambda t: logits,
            mask_token_id=32,
            steps=6,
            rngs=make_rngs([3]),
            sample_temperature=1e-3,
        )
    )
    assert np.array_equal(last.tokens[0], logits[0].argmax(-1))
    warm = last_step(
        iterative_decode(
            tokens,
            lambda t: logits,
            mask_token_id=32,
            steps=6,
            rngs=make_rngs([3]),
            sample_temperature=1.0,
        )
    )
    assert not np.array_equal(warm.tokens[0], logits[0].argmax(-1))


def test_separate_mask_parts_get_their_own_squares(tiny_bundle):
    from engine.runtime.plan import mask_parts

    rgb = photo(400, 600)
    mask = np.zeros((400, 600), bool)
    mask[20:40, 20:40] = True  # top left
    mask[350:380, 550:580] = True  # bottom right, far away
    mask[30:45, 50:60] = True  # near the first: edited together with it
    parts = mask_parts(tiny_bundle.manifest, mask)
    assert len(parts) == 2
    assert np.array_equal(parts[0] | parts[1], mask)
    assert not (parts[0] & parts[1]).any()
    result = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(1, 2)))
    for image in result.images:
        changed = (image != rgb).any(-1)
        assert changed[20:40, 20:40].mean() > 0.5
        assert changed[350:380, 550:580].mean() > 0.5
        assert not changed[150:250, 200:400].any()  # between the parts: untouched


def test_seamless_fill_meets_the_photo_at_the_hole_edge(tiny_bundle, monkeypatch):
    # a decoder whose fill is the right picture in the wrong colours: seamless blending must
    # remove the offset, while the plain feathered paste keeps it
    import engine.runtime.runs as runs
    from engine.runtime.compose import resize_rgb

    rgb = photo(96, 96)
    mask = np.zeros((96, 96), bool)
    mask[30:62, 28:66] = True
    m = tiny_bundle.manifest
    _, part = prepare(m, rgb, mask)
    fill = prepare_fill(m, rgb, part)
    truth = (fill.model_pixels.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    monkeypatch.setattr(
        runs,
        "decode_images",
        lambda bundle, tokens: np.stack(
            [np.clip(truth.astype(int) + [15, -25, 30], 0, 255).astype(np.uint8)] * len(tokens)
        ),
    )
    errors = {}
    for seamless in (False, True):
        settings = Settings(seeds=(0, 1), seamless=seamless, colour_match=False, texture="model")
        out = edit_image(tiny_bundle, rgb, mask, settings)
        errors[seamless] = max(np.abs(o[mask].astype(float) - rgb[mask]).mean() for o in out.images)
        for o in out.images:
            assert np.array_equal(
                o[~grown_region(m, part, mask.shape)], rgb[~grown_region(m, part, mask.shape)]
            )
    # what is left is the loss of resampling to the model size and back
    sq = part.square
    floor = np.abs(
        resize_rgb(truth, sq.side)[30 - sq.y0 : 62 - sq.y0, 28 - sq.x0 : 66 - sq.x0].astype(float)
        - rgb[mask].reshape(32, 38, 3)
    ).mean()
    assert errors[False] > 15
    assert errors[True] < floor + 1.0


def test_padding_past_the_border_is_not_used_as_boundary(tiny_bundle):
    from engine.runtime.compose import real_pixels

    rgb = photo(40, 30)  # smaller than the model: the square is padded on both sides
    mask = np.zeros((40, 30), bool)
    mask[10:20, 0:8] = True  # touches the left border
    _, part = prepare(tiny_bundle.manifest, rgb, mask)
    size = tiny_bundle.manifest.image_size
    real = real_pixels(part, size, mask.shape)
    assert not (real & part.model_mask).any()
    # the square is 40 px wide for a 30 px image: 5 px of padding a side, 8 model px at 64
    cols = np.any(real, axis=0)
    side = part.square.side
    pad_left = -part.square.x0
    assert pad_left > 0
    assert not cols[: pad_left * size // side].any()
    assert cols[-(-(pad_left + 1) * size // side) : (pad_left + 30) * size // side].all()


def _flood_labels(grid):
    """Reference 8-connected labelling by flood fill, numbered in raster order."""
    labels = np.zeros(grid.shape, np.int32)
    count = 0
    for start in zip(*np.nonzero(grid), strict=True):
        if labels[start]:
            continue
        count += 1
        labels[start] = count
        stack = [start]
        while stack:
            y, x = stack.pop()
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    if (
                        0 <= ny < grid.shape[0]
                        and 0 <= nx < grid.shape[1]
                        and grid[ny, nx]
                        and not labels[ny, nx]
                    ):
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.7])
def test_component_labels_match_a_flood_fill(density):
    from engine.runtime.plan import _label

    rng = np.random.default_rng(int(density * 100))
    for shape in [(1, 1), (1, 9), (9, 1), (17, 23), (40, 40)]:
        grid = rng.random(shape) < density
        np.testing.assert_array_equal(_label(grid), _flood_labels(grid))
    spiral = np.zeros((21, 21), bool)  # one long winding part that runs join late
    spiral[1, 1:20] = spiral[1:20, 19] = spiral[19, 1:20] = spiral[3:20, 1] = True
    spiral[3, 1:17] = spiral[3:17, 17] = spiral[17, 3:18] = spiral[5:18, 3] = True
    np.testing.assert_array_equal(_label(spiral), _flood_labels(spiral))


def _check_parts(manifest, mask, parts, settings=None):
    """The invariants edit_image relies on: the parts split the mask exactly, and no two
    parts' context squares overlap (each edit sees the others' surroundings unchanged)."""
    from engine.runtime.masking import mask_bbox
    from engine.runtime.plan import _overlap

    settings = settings or Settings()
    h, w = mask.shape
    if not mask.any():
        assert parts == []
        return
    total = np.zeros_like(mask)
    for part in parts:
        assert part.shape == mask.shape
        assert part.dtype == bool
        assert part.any()
        assert not (total & part).any()
        total |= part
    assert np.array_equal(total, mask)
    side = min(manifest.image_size, max(w, h))
    squares = []
    for p in parts:
        box = mask_bbox(p)
        assert box is not None  # every part paints something (checked above)
        squares.append(context_square(box, w, h, side, settings.context))
    for i, a in enumerate(squares):
        for b in squares[i + 1 :]:
            assert not _overlap(a, b)
    firsts = [np.flatnonzero(p.ravel())[0] for p in parts]
    assert firsts == sorted(firsts)  # raster order of their first pixel


def test_mask_parts_keep_their_invariants_on_random_masks():
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    from engine.runtime.manifest import Manifest
    from engine.runtime.plan import mask_parts

    manifest = Manifest(name="m", image_size=64, grid=[16, 16], codebook_size=32, mask_token_id=40)

    @settings(max_examples=40, deadline=None)
    @example(180, 257, [(0.1875, 0.0, 1, 1), (0.1796875, 1.0, 1, 1)], 1.0)  # one coarse cell row
    @given(
        st.integers(8, 500),
        st.integers(8, 500),
        st.lists(
            st.tuples(st.floats(0, 1), st.floats(0, 1), st.integers(1, 60), st.integers(1, 60)),
            max_size=40,
        ),
        st.sampled_from([1.0, 2.0, 3.0]),
    )
    def check(h, w, rects, context):
        mask = np.zeros((h, w), bool)
        for fy, fx, rh, rw in rects:
            y, x = int(fy * (h - 1)), int(fx * (w - 1))
            mask[y : y + rh, x : x + rw] = True
        settings_ = Settings(context=context)
        _check_parts(manifest, mask, mask_parts(manifest, mask, settings_), settings_)

    check()


@pytest.mark.parametrize("case", ["300 dots", "2400 dots", "0.2% speckle", "20% speckle"])
def test_mask_parts_of_dust_spots_take_well_under_a_second(case):
    """Dust-spot masks used to cost a full-image pass per merge (300 dots on 1200x900: about
    a minute, 0.2 % speckle: never finished); the split is now near-linear in the parts."""
    import time

    from engine.runtime.manifest import Manifest
    from engine.runtime.plan import mask_parts

    rng = np.random.default_rng(0)
    if "speckle" in case:
        mask = rng.random((900, 1200)) < float(case.split("%")[0]) / 100
    else:
        mask = np.zeros((900, 1200), bool)
        for y, x in zip(
            rng.integers(0, 897, int(case.split()[0])),
            rng.integers(0, 1197, int(case.split()[0])),
            strict=True,
        ):
            mask[y : y + 3, x : x + 3] = True
    for size in (64, 128):
        manifest = Manifest(
            name="m", image_size=size, grid=[16, 16], codebook_size=32, mask_token_id=40
        )
        start = time.perf_counter()
        parts = mask_parts(manifest, mask)
        elapsed = time.perf_counter() - start
        _check_parts(manifest, mask, parts)
        assert elapsed < 3.0, f"{case} at model size {size}: {elapsed:.1f} s"


def test_mask_parts_of_scattered_far_spots_stay_apart():
    """Spots far apart on a large image each get their own square, in raster order."""
    from engine.runtime.manifest import Manifest
    from engine.runtime.plan import mask_parts

    manifest = Manifest(name="m", image_size=64, grid=[16, 16], codebook_size=32, mask_token_id=40)
    mask = np.zeros((2000, 3000), bool)
    centres = [(y, x) for y in range(100, 2000, 400) for x in range(100, 3000, 400)]
    for y, x in centres:
        mask[y : y + 5, x : x + 5] = True
    parts = mask_parts(manifest, mask)
    assert len(parts) == len(centres)
    for part, (y, x) in zip(parts, centres, strict=True):
        assert part[y : y + 5, x : x + 5].all()
        assert part.sum() == 25
    _check_parts(manifest, mask, parts)
