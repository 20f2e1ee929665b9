"""The texture stage: the photo's own pixels, placed where the model's fill says."""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.runtime import patchmatch_texture
from engine.runtime.runs import Edit, edit_image, plan_or_raise, run
from engine.runtime.settings import CLASS_TEXTURE, Settings
from engine.runtime.texture import DEFAULT_OPTIONS, finish, synthesis


def synthesize(*args, **kwargs) -> np.ndarray:
    """The texture stage run to its result."""
    return finish(synthesis(*args, **kwargs))


def noise_texture(h, w, mean, seed, amp=40.0):
    """A grainy texture around one colour (what grass, gravel or bark look like up close)."""
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, amp, (h, w, 1)) + rng.normal(0, amp / 4, (h, w, 3))
    return np.clip(np.asarray(mean, float) + grain, 0, 255).astype(np.uint8)


def laplacian_energy(rgb, region):
    g = rgb.astype(np.float32).mean(2)
    lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    return float(lap[region[1:-1, 1:-1]].mean())


def test_same_seed_same_pixels_other_seed_other_pixels():
    rgb = noise_texture(64, 72, (90, 140, 60), seed=1)
    hole = np.zeros((64, 72), bool)
    hole[20:44, 25:50] = True
    guide = np.full(rgb.shape, (90, 140, 60), np.uint8)
    a = synthesize(rgb, hole, guide, seed=3)
    b = synthesize(rgb, hole, guide, seed=3)
    c = synthesize(rgb, hole, guide, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(a[~hole], rgb[~hole])
    assert np.array_equal(c[~hole], rgb[~hole])


def test_the_fill_keeps_the_photos_grain_and_colour():
    rgb = noise_texture(96, 96, (120, 100, 70), seed=2)
    hole = np.zeros((96, 96), bool)
    hole[30:66, 28:70] = True
    flat = np.full(rgb.shape, (120, 100, 70), np.uint8)  # a smooth "model fill"
    out = synthesize(rgb, hole, flat, seed=0)
    inner = hole.copy()
    inner[1:-1, 1:-1] &= hole[:-2, 1:-1] & hole[2:, 1:-1] & hole[1:-1, :-2] & hole[1:-1, 2:]
    kept = laplacian_energy(out, inner) / laplacian_energy(rgb, inner)
    assert 0.6 < kept < 1.4  # as grainy as the photo, unlike the smooth guide (0%)
    assert np.abs(out[hole].mean(0) - rgb[~hole].mean(0)).max() < 8


@pytest.mark.parametrize("pattern", ["stripes", "checker"])
def test_a_periodic_texture_continues_its_period_into_the_hole(pattern):
    y, x = np.mgrid[0:80, 0:80]
    # stripes: period 8 px; checker: period 10 px both ways
    on = (x // 4) % 2 == 0 if pattern == "stripes" else ((x // 5) + (y // 5)) % 2 == 0
    rgb = np.where(on[..., None], [200, 180, 40], [30, 60, 150]).astype(np.uint8)
    hole = np.zeros((80, 80), bool)
    hole[28:52, 26:54] = True
    for guide in (None, np.full(rgb.shape, 120, np.uint8)):
        out = synthesize(rgb, hole, guide, seed=0)
        error = np.abs(out[hole].astype(float) - rgb[hole]).mean()
        assert error < 12, (pattern, guide is None, error)  # the period and phase continue


@pytest.mark.parametrize("library", [True, False], ids=["library", "built-in"])
def test_the_guide_decides_what_goes_where(library):
    """Grass all around the hole, and under it a patch of sand (the model's fill says so);
    sand exists elsewhere in the photo. Unguided completion continues the grass; a class fill's
    texture (the library's detail over the guide's colours, or where the library does not
    load the built-in synthesis with a heavy guide) puts sand where the guide is sandy."""
    options = CLASS_TEXTURE if library else replace(CLASS_TEXTURE, native=False)
    h, w = 120, 120
    grass = noise_texture(h, w, (60, 140, 50), seed=3)
    sand = noise_texture(h, w, (210, 190, 130), seed=4)
    y, x = np.mgrid[0:h, 0:w]
    truth_sand = ((y - 50) ** 2 + (x - 50) ** 2 < 14**2) | (y >= 100)
    truth = np.where(truth_sand[..., None], sand, grass)
    hole = (np.abs(y - 50) < 22) & (np.abs(x - 50) < 22)
    guide = np.where(truth_sand[..., None], (210, 190, 130), (60, 140, 50)).astype(np.uint8)
    disc = (y - 50) ** 2 + (x - 50) ** 2 < 9**2
    plain = synthesize(truth, hole, None, seed=0)
    guided = synthesize(truth, hole, guide, seed=0, options=options)

    def sandiness(img):  # 1 = sand's colour, 0 = grass's
        g = img[disc].astype(float).mean(0)
        return float(
            np.dot(g - (60, 140, 50), (150, 50, 80)) / np.dot((150, 50, 80), (150, 50, 80))
        )

    assert sandiness(plain) < 0.3
    assert sandiness(guided) > 0.7
    inner = disc.copy()
    assert laplacian_energy(guided, inner) > 0.5 * laplacian_energy(truth, inner)  # sand's grain


@pytest.mark.parametrize("edge", ["top", "bottom", "left", "right"])
def test_a_hole_touching_the_image_border_is_filled_like_its_surroundings(edge):
    rgb = noise_texture(70, 90, (70, 150, 60), seed=5, amp=10)
    hole = np.zeros((70, 90), bool)
    sl = {
        "top": np.s_[0:20, 30:60],
        "bottom": np.s_[50:70, 30:60],
        "left": np.s_[20:50, 0:25],
        "right": np.s_[20:50, 65:90],
    }[edge]
    hole[sl] = True
    guide = rgb.copy()
    guide[hole] = (150, 110, 60)  # a brownish model fill, as the decoder sometimes gives
    for g in (None, guide):
        out = synthesize(rgb, hole, g, seed=1)
        assert np.array_equal(out[~hole], rgb[~hole])
        # green like the grass around it; the border row gets no special colour
        assert np.abs(out[hole].mean(0) - rgb[~hole].mean(0)).max() < 10
        border = np.zeros_like(hole)
        rows_or_columns: dict[str, Any] = {
            "top": np.s_[0],
            "bottom": np.s_[-1],
            "left": np.s_[:, 0],
            "right": np.s_[:, -1],
        }
        border[rows_or_columns[edge]] = True
        line = out[border & hole]
        assert len(line) >= 25
        assert np.abs(line.mean(0) - rgb[~hole].mean(0)).max() < 8


def test_synthesis_can_be_stopped_between_rounds():
    rgb = noise_texture(96, 96, (100, 100, 100), seed=6)
    hole = np.zeros((96, 96), bool)
    hole[20:76, 20:76] = True
    built_in = replace(DEFAULT_OPTIONS, native=False)
    gen = synthesis(rgb, hole, None, seed=0, options=built_in)
    rounds = 0
    for _ in gen:
        rounds += 1
    assert rounds >= 4  # it yields between rounds: a caller can stop it there
    gen = synthesis(rgb, hole, None, seed=0, options=built_in)
    next(gen)
    gen.close()  # no error, nothing left running


def test_the_library_fill_offers_a_stop_before_its_one_call(monkeypatch):
    rgb = noise_texture(64, 64, (100, 100, 100), seed=6)
    hole = np.zeros((64, 64), bool)
    hole[20:44, 20:44] = True
    calls = []
    real_fill = patchmatch_texture.fill

    def counted_fill(*a, **k):
        calls.append(1)
        return real_fill(*a, **k)

    monkeypatch.setattr(patchmatch_texture, "fill", counted_fill)
    gen = synthesis(rgb, hole, None, seed=0)
    next(gen)
    gen.close()  # stopped before the library's call: it never runs
    assert calls == []
    assert finish(synthesis(rgb, hole, None, seed=0)).shape == rgb.shape
    assert calls == [1]


def test_a_run_closed_while_the_library_works_stops_without_waiting_for_it(monkeypatch):
    """The library's call cannot be interrupted: the synthesis waits for it on a worker thread
    and yields meanwhile, so closing the run there returns at once."""
    rgb = noise_texture(48, 48, (100, 100, 100), seed=6)
    hole = np.zeros((48, 48), bool)
    hole[12:36, 12:36] = True
    release = threading.Event()
    started = threading.Event()

    def slow_fill(photo, *_args):
        started.set()
        release.wait(30)
        return photo

    monkeypatch.setattr(patchmatch_texture, "fill", slow_fill)
    gen = synthesis(rgb, hole, None, seed=0)
    next(gen)  # the stop before the call
    next(gen)  # the call is under way ...
    assert started.wait(10)
    for _ in range(3):
        next(gen)  # ... and the synthesis keeps offering stops while it waits
    gen.close()
    assert not release.is_set()  # closed while the library still worked
    release.set()


def test_without_the_library_the_built_in_synthesis_fills(monkeypatch, caplog):
    """A platform without PyPatchMatch's wheel: one notice, and the fill still works."""
    rgb = noise_texture(64, 64, (90, 120, 60), seed=2)
    hole = np.zeros((64, 64), bool)
    hole[16:40, 20:44] = True
    patchmatch_texture.library.cache_clear()
    monkeypatch.setitem(sys.modules, "patchmatch", None)  # the import fails
    try:
        with caplog.at_level(logging.WARNING, logger=patchmatch_texture.__name__):
            first = synthesize(rgb, hole, None, seed=0)
            second = synthesize(rgb, hole, None, seed=0)
        assert patchmatch_texture.library() is None
    finally:
        patchmatch_texture.library.cache_clear()
    notices = [r for r in caplog.records if "PyPatchMatch" in r.getMessage()]
    assert len(notices) == 1
    built_in = synthesize(rgb, hole, None, seed=0, options=replace(DEFAULT_OPTIONS, native=False))
    assert np.array_equal(first, built_in)
    assert np.array_equal(first, second)
    assert np.array_equal(first[~hole], rgb[~hole])


def test_the_library_fill_is_the_same_for_a_seed_under_concurrent_jobs():
    """The library keeps one seed for every call: concurrent fills must not mix seeds."""
    rgb = noise_texture(80, 80, (120, 100, 80), seed=9)
    hole = np.zeros((80, 80), bool)
    hole[24:56, 24:56] = True
    guide = np.full(rgb.shape, 110, np.uint8)
    alone = [synthesize(rgb, hole, guide, seed=s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: synthesize(rgb, hole, guide, seed=s), range(4)))
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(alone[0], alone[1])


def test_bad_inputs_are_refused():
    rgb = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="hole"):
        synthesize(rgb, np.zeros((9, 10), bool))
    with pytest.raises(ValueError, match="guide"):
        synthesize(rgb, np.ones((10, 10), bool), np.zeros((9, 10, 3)))
    with pytest.raises(ValueError, match="photo"):
        synthesize(rgb[..., 0], np.ones((10, 10), bool))
    assert np.array_equal(synthesize(rgb, np.zeros((10, 10), bool)), rgb)


# -- in the edit pipeline ---------------------------------------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    h=st.integers(24, 300),
    w=st.integers(24, 300),
    data=st.data(),
    texture=st.sampled_from(["photo", "model", "classic"]),
)
def test_pixels_outside_the_painted_mask_never_change(tiny_bundle, h, w, data, texture):
    rng = np.random.default_rng(h * 1000 + w)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    y0 = data.draw(st.integers(0, h - 2))
    x0 = data.draw(st.integers(0, w - 2))
    y1 = data.draw(st.integers(y0 + 1, min(h, y0 + h // 2 + 2)))
    x1 = data.draw(st.integers(x0 + 1, min(w, x0 + w // 2 + 2)))
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    if data.draw(st.booleans()):  # a round blob instead of a box
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx, r = (y0 + y1) / 2, (x0 + x1) / 2, max(y1 - y0, x1 - x0) / 2
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    assume(mask.any())  # a blob round a 1-pixel box can miss every pixel centre
    context = data.draw(st.sampled_from([1.5, 2.0, 3.0]))
    result = edit_image(tiny_bundle, rgb, mask, Settings(texture=texture, context=context))
    for image in result.images:
        assert np.array_equal(image[~mask], rgb[~mask])


def test_texture_modes_give_visibly_different_fills(tiny_bundle):
    rgb = noise_texture(96, 128, (80, 130, 70), seed=7)
    mask = np.zeros((96, 128), bool)
    mask[30:66, 40:90] = True
    out = {
        t: edit_image(tiny_bundle, rgb, mask, Settings(seeds=(2,), texture=t)).images[0]
        for t in ("photo", "model", "classic")
    }
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    grain = {
        t: laplacian_energy(img, inner) / laplacian_energy(rgb, inner) for t, img in out.items()
    }
    assert grain["photo"] > 0.6
    assert grain["classic"] > 0.6
    assert grain["model"] < 0.5 * grain["photo"]  # the tiny model's decode is smooth
    assert np.abs(out["photo"].astype(int) - out["model"]).mean() > 1.0


def test_the_texture_stage_reports_rounds_and_stops_when_closed(tiny_bundle, monkeypatch):
    import engine.runtime.compose as compose

    rounds = []
    real = compose.synthesis

    def counting(*args, **kwargs):
        gen = real(*args, **kwargs)
        while True:
            try:
                next(gen)
            except StopIteration as done:
                return done.value
            rounds.append(1)
            yield

    monkeypatch.setattr(compose, "synthesis", counting)
    rgb = noise_texture(96, 96, (90, 90, 90), seed=8)
    mask = np.zeros((96, 96), bool)
    mask[20:70, 20:70] = True
    settings_ = Settings(seeds=(0,))
    plan = plan_or_raise(tiny_bundle.manifest, rgb, mask, settings_)
    gen = run(tiny_bundle, Edit(rgb, plan), settings_)
    phases = []
    for step in gen:
        phases.append(step.phase)
        if step.phase == "texture":
            break
    gen.close()  # what Cancel does between steps
    assert phases[-1] == "texture"
    assert phases.count("texture") == 1
    assert len(rounds) == 1  # stopped after the first round; nothing ran on


def test_classic_needs_no_model(tiny_bundle, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was used")

    monkeypatch.setattr(tiny_bundle, "encode", refuse)
    monkeypatch.setattr(tiny_bundle, "decode", refuse)
    rgb = noise_texture(64, 64, (90, 90, 160), seed=9)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:44] = True
    result = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(1, 2), texture="classic"))
    a, b = result.images
    assert not np.array_equal(a, b)  # one candidate per seed
    assert np.array_equal(a[~mask], rgb[~mask])


def test_unknown_texture_is_refused():
    with pytest.raises(ValueError, match="texture must be one of"):
        Settings(texture="paint")


def test_extend_continues_the_photos_texture(tiny_bundle):
    from engine.runtime.runs import Extend, run_to_end

    rgb = noise_texture(64, 80, (100, 150, 80), seed=10)
    out = {}
    for texture in ("photo", "model"):
        s = Settings(seeds=(1,), texture=texture)
        result = run_to_end(run(tiny_bundle, Extend(rgb, "right", 2), s))
        out[texture] = result.images[0]
        assert np.array_equal(out[texture][:, :80], rgb)
    strip = np.zeros(out["photo"].shape[:2], bool)
    strip[2:-2, 82:-2] = True
    grain = {t: laplacian_energy(img, strip) for t, img in out.items()}
    assert grain["photo"] > 0.6 * laplacian_energy(rgb, np.ones(rgb.shape[:2], bool))
    assert grain["photo"] > 2 * grain["model"]
