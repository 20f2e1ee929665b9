"""Region decode with a full decode's GroupNorm statistics (optional bundle files)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.runtime import speed as sp
from engine.runtime.bundle import Bundle
from engine.runtime.decode import DecodeStep
from engine.runtime.errors import BundleError
from engine.runtime.manifest import read_manifest, write_manifest
from engine.runtime.runs import Edit, plan_or_raise, run, run_to_end
from engine.runtime.settings import Settings
from engine.runtime.speed import REGION_DECODER_FILE, STATS_DECODER_FILE, Speed


@pytest.fixture(autouse=True)
def _empty_caches(tiny_bundle):
    tiny_bundle.caches.clear()
    yield
    tiny_bundle.caches.clear()


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


def _without_region_files(src, dst):
    shutil.copytree(src, dst)
    manifest = read_manifest(dst)
    for name in (STATS_DECODER_FILE, REGION_DECODER_FILE):
        manifest.files.pop(name)
        (dst / name).unlink()
    write_manifest(dst, manifest)
    return dst


def test_exported_bundles_list_the_region_decoders(tiny_bundle):
    assert tiny_bundle.has_region_decoders
    for name in (STATS_DECODER_FILE, REGION_DECODER_FILE):
        assert name in tiny_bundle.manifest.files


def test_stats_decoder_gives_the_plain_pixels_and_cell_sums_of_every_groupnorm(tiny_bundle):
    m = tiny_bundle.manifest
    tokens = np.random.default_rng(0).integers(0, m.codebook_size, (2, *m.grid))
    image, stats = tiny_bundle.decode_with_stats(tokens)
    assert np.abs(image - tiny_bundle.decode(tokens)).max() < 1e-4
    # the tiny tokenizer: conv_in, mid (2 blocks), 3 levels of 1 block, norm_out: 2*5 + 1
    assert stats.shape == (2, 11, 32, 3, *m.grid)
    count, total, squares = stats[:, :, :, 0], stats[:, :, :, 1], stats[:, :, :, 2]
    assert (count > 0).all()
    assert (squares >= 0).all()
    mean = total.sum((-2, -1)) / count.sum((-2, -1))
    assert (squares.sum((-2, -1)) / count.sum((-2, -1)) >= mean**2 - 1e-3).all()
    # the region decoder fed the whole grid reproduces the plain decoder, whether the crop's
    # own activations or the full decode's sums give the statistics
    whole = np.ones(m.grid, bool)
    for live in (whole, np.zeros(m.grid, bool)):
        cells = np.ones((1, 1, *m.grid), np.float32) * live
        outside = stats[0].astype(np.float64)[..., ~live].sum(-1)
        again = tiny_bundle.decode_with_given_stats(tokens[:1], cells, outside)
        assert np.abs(again[0] - image[0]).max() < 1e-4


def test_region_decode_with_full_statistics_is_much_closer_than_with_crop_statistics(tiny_bundle):
    """The statistics of a full decode of the same tokens: what is left is the crop border,
    where the convolutions miss context (a random decoder reaches ~10 tokens and amplifies
    every change, so a trained one does better)."""
    m = tiny_bundle.manifest
    d = m.downsample
    tokens = np.random.default_rng(1).integers(0, m.codebook_size, (1, m.seq_len))
    full = sp.decode_region(tiny_bundle, tokens, np.ones(m.grid, bool), 0)[0].astype(int)
    _, stats = tiny_bundle.decode_with_stats(tokens.reshape(1, *m.grid))
    for r0, c0, margin in ((0, 0, 6), (0, 8, 6), (8, 8, 6), (10, 2, 6)):
        tm = np.zeros(m.grid, bool)
        tm[r0 : r0 + 6, c0 : c0 + 6] = True
        r0_, r1_, c0_, c1_ = sp.token_crop(tm, margin)
        assert (r1_ - r0_) * (c1_ - c0_) < 0.8 * tm.size  # a real crop, not the whole grid
        inside = np.repeat(np.repeat(tm, d, 0), d, 1)
        crop_stats = sp.decode_region(tiny_bundle, tokens, tm, margin)[0].astype(int)
        with_stats = sp.decode_region(tiny_bundle, tokens, tm, margin, stats=stats[0])
        crop_err = np.abs(crop_stats - full)[inside].mean()
        stats_err = np.abs(with_stats[0].astype(int) - full)[inside].mean()
        assert stats_err < 2.0, (r0, c0, stats_err)  # close to the full decode
        assert stats_err < crop_err / 4, (r0, c0, stats_err, crop_err)


def test_fast_edit_region_decodes_with_cached_statistics(tiny_bundle):
    rgb, mask = _image(), _mask()
    # the decoder's pixels as they reach the image (the texture stage would copy the photo's)
    settings = Settings(seeds=(3, 4), speed=Speed(region_decode=True), texture="model")
    plain = Settings(seeds=(3, 4), texture="model")
    exact = np.stack(_edit(tiny_bundle, rgb, mask, plain).images).astype(int)
    cold = _edit(tiny_bundle, rgb, mask, settings)
    assert tiny_bundle.caches.stats.misses == 1
    assert tiny_bundle.caches.stats.hits == 0
    # the first candidate of a cold edit is decoded whole (the plain decoder's pixels)
    assert np.abs(cold.images[0].astype(int) - exact[0]).max() <= 1
    warm = _edit(tiny_bundle, rgb, mask, settings)
    assert tiny_bundle.caches.stats.hits == 1
    assert tiny_bundle.caches.stats.misses == 1
    assert np.array_equal(warm.tokens, cold.tokens)
    # both region-decode the second candidate with the statistics of the first one's decode
    assert np.array_equal(warm.images[1], cold.images[1])
    assert not np.array_equal(warm.images[0], cold.images[0])  # now region-decoded too
    for images in (cold.images, warm.images):
        diff = np.abs(np.stack(images).astype(int) - exact).max(-1)
        assert diff[:, ~_mask(64, 16, 44)].max() == 0  # only inside the grown token area
    assert all("region" not in n for n in tiny_bundle.notices)


def test_bundle_without_region_decoders_decodes_whole_squares(tiny_bundle_path, tmp_path):
    old = Bundle(_without_region_files(tiny_bundle_path, tmp_path / "old"), device="cpu")
    assert not old.has_region_decoders
    rgb, mask = _image(), _mask()
    exact = _edit(old, rgb, mask, Settings(seeds=(5,)))
    fast = _edit(old, rgb, mask, Settings(seeds=(5,), speed=Speed(region_decode=True)))
    assert np.array_equal(fast.images, exact.images)  # the exact path
    assert sum("no region decoders" in n for n in old.notices) == 1
    _edit(old, rgb, mask, Settings(seeds=(5,), speed=Speed(region_decode=True)))
    assert sum("no region decoders" in n for n in old.notices) == 1  # said once


def test_damaged_region_decoder_is_refused_in_one_line(tiny_bundle_path, tmp_path):
    path = shutil.copytree(tiny_bundle_path, tmp_path / "damaged")
    (path / REGION_DECODER_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(BundleError) as err:
        Bundle(path, device="cpu")
    assert "damaged" in str(err.value)
    assert "\n" not in str(err.value)
    # the same file with a matching hash (a broken export) is refused when first used
    manifest = read_manifest(path, verify_hashes=False)
    write_manifest(path, manifest)
    bundle = Bundle(path, device="cpu")
    tokens = np.zeros((1, bundle.manifest.seq_len), np.int64)
    tm = np.zeros(bundle.manifest.grid, bool)
    tm[4:6, 4:6] = True
    with pytest.raises(BundleError) as err:
        sp.decode_region(bundle, tokens, tm, 1, stats=np.ones((11, 32, 3, 16, 16), np.float32))
    assert REGION_DECODER_FILE in str(err.value)
    assert "\n" not in str(err.value)


def test_region_decoder_of_another_contract_is_refused_in_one_line(tiny_bundle_path, tmp_path):
    path = shutil.copytree(tiny_bundle_path, tmp_path / "swapped")
    # the stats decoder's file where the region decoder belongs: wrong inputs and outputs
    shutil.copyfile(path / STATS_DECODER_FILE, path / REGION_DECODER_FILE)
    write_manifest(path, read_manifest(path, verify_hashes=False))
    bundle = Bundle(path, device="cpu")
    tokens = np.zeros((1, bundle.manifest.seq_len), np.int64)
    tm = np.zeros(bundle.manifest.grid, bool)
    tm[4:6, 4:6] = True
    with pytest.raises(BundleError) as err:
        sp.decode_region(bundle, tokens, tm, 1, stats=np.ones((11, 32, 3, 16, 16), np.float32))
    assert "does not match the contract" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(BundleError) as err:  # statistics of another decoder
        Bundle(tiny_bundle_path, device="cpu").decode_with_given_stats(
            tokens.reshape(1, *bundle.manifest.grid),
            np.ones((1, 1, *bundle.manifest.grid), np.float32),
            np.ones((5, 32, 3), np.float32),
        )
    assert "do not fit" in str(err.value)


@pytest.mark.slow
def test_region_decoders_can_be_added_to_an_old_bundle(tiny_bundle_path, tmp_path):
    from engine.modeling.region_decode import add_to_bundle

    path = _without_region_files(tiny_bundle_path, tmp_path / "old")
    diff = add_to_bundle(path)
    assert diff < 1e-3
    bundle = Bundle(path, device="cpu")
    assert bundle.has_region_decoders
    data = json.loads((path / "manifest.json").read_text())
    assert STATS_DECODER_FILE in data["files"]
    assert REGION_DECODER_FILE in data["files"]


def test_a_run_without_previews_decodes_once(tiny_bundle, monkeypatch):
    calls = []
    original = tiny_bundle._run_all

    def counting(name, feeds):
        calls.append(name)
        return original(name, feeds)

    monkeypatch.setattr(tiny_bundle, "_run_all", counting)
    settings = Settings(seeds=(1,))
    plan = plan_or_raise(tiny_bundle.manifest, _image(), _mask(), settings)
    steps = list(run(tiny_bundle, Edit(_image(), plan), settings, preview_interval=float("inf")))
    assert all(step.preview is None for step in steps[:-1] if hasattr(step, "preview"))
    assert calls.count("tokenizer_decoder") == 1
    assert calls.count("tokenizer_encoder") == 1


def test_previews_decode_the_hole_crop_and_show_only_painted_pixels(tiny_bundle, monkeypatch):
    shapes = []
    original = tiny_bundle.decode

    def spying(tokens):
        shapes.append(tuple(tokens.shape[1:]))
        return original(tokens)

    monkeypatch.setattr(tiny_bundle, "decode", spying)
    rgb, mask = _image(), _mask()
    settings = Settings(seeds=(1,))
    plan = plan_or_raise(tiny_bundle.manifest, rgb, mask, settings)
    # a clock that stands still: every step is due, previews never exceed their share
    steps = list(run(tiny_bundle, Edit(rgb, plan), settings, preview_interval=0.0, clock=float))
    previews = [s.preview for s in steps if s.preview is not None]
    assert len(previews) == sum(s.phase == "decode" for s in steps) - 1  # all but the last
    grid = tuple(tiny_bundle.manifest.grid)
    crops = [shape for shape in shapes if shape != grid]
    assert len(crops) == len(previews)
    assert all(h * w < grid[0] * grid[1] for h, w in crops)
    part = plan.parts[0]
    x0, y0, x1, y1 = part.box
    for patch in previews:  # the raw decode over the painted area, the photo elsewhere
        assert (patch.x0, patch.y0) == (x0, y0)
        assert np.array_equal(patch.rgb[~part.painted], rgb[y0:y1, x0:x1][~part.painted])
        assert not np.array_equal(patch.rgb[part.painted], rgb[y0:y1, x0:x1][part.painted])


def test_previews_take_at_most_their_share_of_the_run():
    from engine.runtime.runs import PREVIEW_SHARE, _Previews

    now = [0.0]
    previews = _Previews(0.0, clock=lambda: now[0])

    def slow(tokens):
        now[0] += 1.0  # a preview takes one second
        return tokens

    shown = []
    for step in range(100):
        now[0] += 1.0  # and so does a decoding step
        if previews.due(DecodeStep(step, 1000, *([np.zeros(1)] * 4))):
            shown.append(previews.make(slow, np.array([step])))
    assert previews.spent <= PREVIEW_SHARE * now[0] + 1.0  # the share, and one preview over
    assert len(shown) >= 4
    assert shown[0] == 0
