"""Speed options (engine/runtime/speed.py): behaviour, not timings."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime import speed as sp
from engine.runtime.runs import (
    Edit,
    Fill,
    Generate,
    decode_images,
    plan_or_raise,
    run,
    run_to_end,
)
from engine.runtime.settings import Settings
from engine.runtime.speed import FAST, Speed


def _image(size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 4 % 256, y * 4 % 256, (x + y) * 2 % 256], -1).astype(np.uint8)


def _mask(size: int = 64, a: int = 22, b: int = 38) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[a:b, a:b] = True
    return m


def _edit(bundle, rgb, mask, settings):
    plan = plan_or_raise(bundle.manifest, rgb, mask, settings)
    return run_to_end(run(bundle, Edit(rgb, plan), settings))


@pytest.fixture(autouse=True)
def _empty_token_cache(tiny_bundle):
    tiny_bundle.caches.tokens.clear()
    yield
    tiny_bundle.caches.tokens.clear()


@pytest.fixture
def int8_in_cache(tiny_bundle):
    from engine.modeling.quantize import quantize_bundle

    path = quantize_bundle(tiny_bundle.path)  # the user cache, isolated by conftest
    assert path == sp.int8_cache_path(tiny_bundle)
    assert sp.find_int8(tiny_bundle) == path
    return path


def test_presets_and_exactness_flags():
    assert Settings().speed == Speed()
    assert Settings().speed.exact
    assert Speed.preset("exact").exact
    assert not FAST.exact
    assert FAST.name == "fast"
    assert Speed(int8=True).name == "custom"
    with pytest.raises(ValueError, match="unknown speed preset 'warp'"):
        Speed.preset("warp")


def test_scaled_steps():
    assert sp.scaled_steps(12, 256, 256) == 12
    assert sp.scaled_steps(12, 49, 256) == 6
    assert sp.scaled_steps(12, 1, 256, min_steps=4) == 4
    assert sp.scaled_steps(3, 10, 256, min_steps=4) == 3  # never more than asked
    counts = [sp.scaled_steps(12, n, 256) for n in range(1, 257)]
    assert counts == sorted(counts)


def test_token_crop_clips_to_grid():
    tm = np.zeros((16, 16), bool)
    tm[1:3, 10:12] = True
    assert sp.token_crop(tm, 2) == (0, 5, 8, 14)
    tm[:] = True
    assert sp.token_crop(tm, 0) == (0, 16, 0, 16)


def test_region_decode_places_the_crop_and_equals_full_decode_when_it_covers_the_grid(tiny_bundle):
    m = tiny_bundle.manifest
    d = m.downsample
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, m.codebook_size, (2, m.seq_len))
    tm = np.zeros(m.grid, bool)
    tm[6:9, 5:10] = True
    region = sp.decode_region(tiny_bundle, tokens, tm, margin=1)
    crop = tiny_bundle.decode(np.ascontiguousarray(tokens.reshape(2, 16, 16)[:, 5:10, 4:11]))
    crop = (np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.array_equal(region[:, 5 * d : 10 * d, 4 * d : 11 * d], crop)
    assert not region[:, : 5 * d].any()  # nothing decoded outside the crop (black background)
    whole = sp.decode_region(tiny_bundle, tokens, tm, margin=16)
    assert np.array_equal(whole, decode_images(tiny_bundle, tokens))


def test_region_decode_error_shrinks_with_the_margin(tiny_bundle):
    """The approximation: more context -> closer to the full decode inside the token mask."""
    m = tiny_bundle.manifest
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, m.codebook_size, (1, m.seq_len))
    tm = np.zeros(m.grid, bool)
    tm[6:10, 6:10] = True
    inside = np.repeat(np.repeat(tm, m.downsample, 0), m.downsample, 1)
    full = decode_images(tiny_bundle, tokens)[0].astype(int)
    errs = [
        np.abs(sp.decode_region(tiny_bundle, tokens, tm, k)[0].astype(int) - full)[inside].mean()
        for k in (1, 6)
    ]
    assert errs[1] < errs[0]
    assert errs[1] == 0  # a margin of 6 reaches the grid border on every side here


def test_fast_edit_keeps_every_pixel_outside_the_grown_mask(tiny_bundle):
    rgb, mask = _image(), _mask()
    settings = Settings(
        seeds=(3, 4), speed=Speed(region_decode=True, reuse_tokens=True, scale_steps=True)
    )
    res = _edit(tiny_bundle, rgb, mask, settings)
    part = res.fill.part
    d = tiny_bundle.manifest.downsample
    outside = ~np.repeat(np.repeat(part.token_mask, d, 0), d, 1)
    for im in res.images:
        assert np.array_equal(im[outside], rgb[outside])
    assert len(res.history) == sp.scaled_steps(8, part.masked_count, 256) == part.steps
    assert Settings(speed=FAST).describe(tiny_bundle.manifest)["mage:speed"] == "fast"
    assert "mage:speed" not in Settings().describe(tiny_bundle.manifest)


def test_default_settings_are_unchanged_by_the_speed_module(tiny_bundle):
    rgb, mask = _image(), _mask()
    a = _edit(tiny_bundle, rgb, mask, Settings(seeds=(5,)))
    b = _edit(tiny_bundle, rgb, mask, Settings(seeds=(5,), speed=Speed.preset("exact")))
    assert np.array_equal(a.tokens, b.tokens)
    assert np.array_equal(a.images[0], b.images[0])


def test_token_reuse_is_exact_for_the_same_hole_and_close_for_another(tiny_bundle):
    rgb = _image()
    reuse = Settings(seeds=(0,), speed=Speed(reuse_tokens=True, crop_encode=True))
    assert Speed(reuse_tokens=True).exact
    assert not reuse.speed.exact

    def tokens_of(mask, settings) -> Fill:
        fill = _edit(tiny_bundle, rgb, mask, settings).fill
        assert fill is not None
        return fill

    def tokens_in(fill: Fill) -> np.ndarray:
        assert fill.tokens is not None  # encoded by the run
        return fill.tokens

    exact1 = tokens_of(_mask(), Settings(seeds=(0,)))
    first = tokens_of(_mask(), reuse)  # miss: full encode
    again = tokens_of(_mask(), reuse)  # same hole: cached
    assert (tiny_bundle.caches.tokens.misses, tiny_bundle.caches.tokens.hits) == (1, 1)
    assert np.array_equal(tokens_in(first), tokens_in(exact1))
    assert np.array_equal(tokens_in(again), tokens_in(exact1))
    other = _mask(a=26, b=42)
    moved = tokens_of(other, reuse)  # other hole: crop re-encoded and spliced
    exact2 = tokens_of(other, Settings(seeds=(0,)))
    assert tiny_bundle.caches.tokens.partial == 1
    known = ~moved.token_mask.reshape(-1)
    assert np.array_equal(moved.token_mask, exact2.token_mask)
    agreement = (tokens_in(moved)[known] == tokens_in(exact2)[known]).mean()
    assert agreement > 0.7, agreement
    # without crop_encode another hole is a full encode: exact
    tiny_bundle.caches.tokens.clear()
    tokens_of(_mask(), Settings(seeds=(0,), speed=Speed(reuse_tokens=True)))
    exact_again = tokens_of(other, Settings(seeds=(0,), speed=Speed(reuse_tokens=True)))
    assert tiny_bundle.caches.tokens.misses == 2
    assert np.array_equal(tokens_in(exact_again), tokens_in(exact2))


def test_int8_falls_back_to_fp32_with_a_notice(tiny_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    # the bundle is shared by the session: its notice must not reach later tests' windows
    monkeypatch.setattr(tiny_bundle, "notices", [])
    assert sp.find_int8(tiny_bundle) is None
    a = run_to_end(run(tiny_bundle, Generate(), Settings(seeds=(1,))))
    b = run_to_end(run(tiny_bundle, Generate(), Settings(seeds=(1,), speed=Speed(int8=True))))
    assert np.array_equal(a.tokens, b.tokens)
    assert any("int8" in n for n in tiny_bundle.notices)


def test_int8_transformer_agrees_with_fp32(tiny_bundle, int8_in_cache):
    m = tiny_bundle.manifest
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, m.codebook_size, (4, m.seq_len))
    tokens[:, rng.permutation(m.seq_len)[:128]] = m.mask_token_id
    classes = np.array([0, 1, 2, 3])
    ref = tiny_bundle.logits(tokens, classes)
    int8 = tiny_bundle.transformer(Speed(int8=True))
    q = tiny_bundle.logits(tokens, classes, model=int8)
    masked = tokens == m.mask_token_id
    top1 = (ref.argmax(-1) == q.argmax(-1))[masked].mean()
    assert top1 > 0.9, top1
    # and a whole generation through the int8 session runs and mostly agrees
    a = run_to_end(run(tiny_bundle, Generate(), Settings(seeds=(2,))))
    b = run_to_end(run(tiny_bundle, Generate(), Settings(seeds=(2,), speed=Speed(int8=True))))
    assert (a.tokens == b.tokens).mean() > 0.5


def test_runtime_speed_module_imports_neither_torch_nor_onnx():
    import subprocess
    import sys

    code = (
        "import sys, engine.runtime.speed, engine.runtime.runs; "
        "bad = [m for m in ('torch', 'onnx') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
