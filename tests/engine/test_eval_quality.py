"""The metric, mask and classifier helpers of bench/eval_quality.py on known cases."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "eval_quality.py"
_spec = importlib.util.spec_from_file_location("eval_quality", _PATH)
assert _spec is not None
assert _spec.loader is not None
eq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eq)


def smooth_image(size=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([x * 200 + 20, y * 150 + 50, (x * y) * 180 + 30], -1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def ssim_bruteforce(a, b, size=11, sigma=1.5):
    """Direct per-pixel SSIM (explicit weighted window sums), same padding as the script."""
    x, y = eq.luminance(a), eq.luminance(b)
    k = eq.gaussian_kernel(size, sigma)
    w2 = np.outer(k, k)
    r = size // 2
    xp, yp = np.pad(x, r, mode="reflect"), np.pad(y, r, mode="reflect")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            px, py = xp[i : i + size, j : j + size], yp[i : i + size, j : j + size]
            mx, my = (w2 * px).sum(), (w2 * py).sum()
            vx = (w2 * (px - mx) ** 2).sum()
            vy = (w2 * (py - my) ** 2).sum()
            cxy = (w2 * (px - mx) * (py - my)).sum()
            out[i, j] = ((2 * mx * my + c1) * (2 * cxy + c2)) / (
                (mx**2 + my**2 + c1) * (vx + vy + c2)
            )
    return out


def test_psnr_known_values():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert eq.psnr(a, a) == float("inf")
    b = a + 10  # MSE 100
    assert eq.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))
    # only the masked pixels count
    c = a.copy()
    c[:4] = 200
    mask = np.zeros((8, 8), bool)
    mask[4:] = True
    assert eq.psnr(a, c, mask) == float("inf")
    assert eq.psnr(a, c, ~mask) == pytest.approx(10 * np.log10(255**2 / 100**2))
    with pytest.raises(ValueError, match="empty mask"):
        eq.psnr(a, c, np.zeros((8, 8), bool))


def test_ssim_identical_is_one_and_matches_bruteforce():
    a = smooth_image()
    assert eq.ssim(a, a) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    b = np.clip(a.astype(int) + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    ref = ssim_bruteforce(a, b)
    np.testing.assert_allclose(eq.ssim_map(a, b), ref, rtol=1e-9, atol=1e-9)
    mask = np.zeros(a.shape[:2], bool)
    mask[10:30, 5:25] = True
    assert eq.ssim(a, b, mask) == pytest.approx(ref[mask].mean())
    assert 0.0 < eq.ssim(a, b) < 1.0


def test_ssim_orders_degradations_and_ignores_channels_via_luma():
    a = smooth_image(seed=2)
    rng = np.random.default_rng(3)
    light = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    unrelated = rng.integers(0, 256, a.shape).astype(np.uint8)
    s_light, s_heavy, s_unrel = eq.ssim(a, light), eq.ssim(a, heavy), eq.ssim(a, unrelated)
    assert s_light > s_heavy > s_unrel
    assert abs(s_unrel) < 0.15
    # a luminance shift lowers only the luminance term: still high but below 1
    shifted = np.clip(a.astype(int) + 30, 0, 255).astype(np.uint8)
    assert 0.8 < eq.ssim(a, shifted) < 1.0
    # a 2-D input is used as is
    g = eq.luminance(a)
    assert eq.ssim(g, g) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["box", "blob"])
@pytest.mark.parametrize("frac", [0.05, 0.15, 0.30])
@pytest.mark.parametrize("size", [64, 128, 256])
def test_masks_have_the_asked_area_and_are_seeded(kind, frac, size):
    for s in range(5):
        m = eq.make_mask(kind, size, frac, np.random.default_rng(s))
        assert m.shape == (size, size)
        assert m.dtype == bool
        assert m.mean() == pytest.approx(frac, rel=0.12, abs=2 / size)
        again = eq.make_mask(kind, size, frac, np.random.default_rng(s))
        np.testing.assert_array_equal(m, again)
        assert eq.cv2.connectedComponents(m.astype(np.uint8))[0] == 2  # background + one piece
    a = eq.make_mask(kind, size, frac, np.random.default_rng(0))
    b = eq.make_mask(kind, size, frac, np.random.default_rng(1))
    assert not np.array_equal(a, b)


def test_box_mask_is_a_box_and_blob_is_not():
    m = eq.box_mask(128, 0.15, np.random.default_rng(0))
    ys, xs = np.nonzero(m)
    assert m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    blob = eq.blob_mask(128, 0.15, np.random.default_rng(0))
    ys, xs = np.nonzero(blob)
    assert not blob[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    with pytest.raises(ValueError, match="unknown mask kind 'star'"):
        eq.make_mask("star", 64, 0.1, np.random.default_rng(0))


def test_inpainting_baselines_touch_only_the_mask():
    a = smooth_image(64)
    mask = eq.box_mask(64, 0.1, np.random.default_rng(0))
    for method in ("telea", "ns"):
        out = eq.cv2_inpaint(a, mask, method)
        np.testing.assert_array_equal(out[~mask], a[~mask])
        # a smooth image is filled well: far better than a flat grey hole
        grey = a.copy()
        grey[mask] = 128
        assert eq.psnr(a, out, mask) > eq.psnr(a, grey, mask) + 5
    flat = eq.flat_fill(a, mask)
    np.testing.assert_array_equal(flat[~mask], a[~mask])
    assert len(np.unique(flat[mask].reshape(-1, 3), axis=0)) == 1
    harmonic = eq.harmonic_fill(a, mask)
    np.testing.assert_array_equal(harmonic[~mask], a[~mask])
    assert eq.psnr(a, harmonic, mask) > eq.psnr(a, flat, mask) + 3  # follows the gradients


def test_removal_tables_list_every_method():
    rng = np.random.default_rng(0)
    metrics = {
        (k, f, m): [tuple(rng.uniform(10, 20, 2)) + (rng.uniform(0, 1),) for _ in range(3)]
        for k in eq.MASK_KINDS
        for f in eq.MASK_FRACS
        for m in eq.METHODS
    }
    lines = eq.removal_table({"metrics": metrics}, 128)
    blanks = [i for i, x in enumerate(lines) if x == ""]
    assert len(blanks) == 2
    psnr_head, ssim_head, detail_head = lines[0], lines[blanks[0] + 1], lines[blanks[1] + 1]
    for name in eq.METHOD_NAMES.values():
        assert f"| {name} PSNR |" in psnr_head
        assert f"| {name} SSIM" in ssim_head
        assert f"| {name} detail" in detail_head
    rows = [
        x
        for x in lines
        if x.startswith("| ")
        and "---" not in x
        and "PSNR" not in x
        and "SSIM" not in x
        and "detail" not in x
    ]
    assert len(rows) == 3 * (len(eq.MASK_KINDS) * len(eq.MASK_FRACS) + 1)
    assert all(x.count("|") == psnr_head.count("|") for x in lines[1 : blanks[0]])
    assert all(x.count("|") == ssim_head.count("|") for x in lines[blanks[0] + 1 : blanks[1]])
    assert all(x.count("|") == detail_head.count("|") for x in lines[blanks[1] + 1 :])
    # the detail cells are medians over images, in percent
    cells = np.array(metrics[("box", 0.05, "telea")])
    row = next(x for x in lines[blanks[1] :] if x.startswith("| box 5% |"))
    telea = row.split("|")[2 + eq.METHODS.index("telea")].strip()
    assert telea == f"{100 * np.median(cells[:, 2]):.0f}%"


def textured_image(size=64, seed=0):
    """Grass-like texture: fine noise over a smooth gradient."""
    rng = np.random.default_rng(seed)
    base = smooth_image(size, seed).astype(np.float64)
    return np.clip(base + rng.normal(0, 30, (size, size, 1)), 0, 255).astype(np.uint8)


def test_detail_counts_texture_inside_the_hole_not_the_seam():
    a = textured_image()
    mask = np.zeros(a.shape[:2], bool)
    mask[16:48, 20:44] = True
    assert eq.detail(a, a, mask) == pytest.approx(1.0)
    # smooth fills keep almost none of the texture, though harmonic wins PSNR over noise
    harmonic, flat = eq.harmonic_fill(a, mask), eq.flat_fill(a, mask)
    assert eq.detail(a, harmonic, mask) < 0.15
    assert eq.detail(a, flat, mask) < 0.05
    # another texture of the same strength counts as detail, though its PSNR is worse
    other = a.copy()
    other[mask] = textured_image(seed=5)[mask]
    assert eq.detail(a, other, mask) > 0.7
    assert eq.psnr(a, other, mask) < eq.psnr(a, harmonic, mask)
    # a flat fill of a very different colour has a hard seam: the seam is not detail
    seam = a.copy()
    seam[mask] = (a[mask].mean(0) + 120) % 256
    assert eq.detail(a, seam, mask) < 0.05
    # a flat real region counts as one grey level, so a flat fill there is not divided by 0
    grey = np.full_like(a, 128)
    assert eq.detail(grey, grey, mask) == 0.0
    # a 1-px-wide hole has no inside: the whole mask is used
    thin = np.zeros_like(mask)
    thin[10, 5:30] = True
    assert eq.detail_region(thin).sum() == thin.sum()
    assert eq.detail_region(mask).sum() == 30 * 22


def test_high_frequencies_kept_by_a_reconstruction():
    a = textured_image(seed=3)
    assert eq.hf_kept(a, a) == pytest.approx(1.0)
    blurred = cv2.GaussianBlur(a, (0, 0), 1.5)
    very = cv2.GaussianBlur(a, (0, 0), 3.0)
    assert eq.hf_kept(a, very) < eq.hf_kept(a, blurred) < 0.4
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 20, a.shape), 0, 255)
    assert eq.hf_kept(a, noisy) > 1.0


def test_removal_goal_needs_psnr_and_detail():
    def result(ours_psnr, ours_detail):
        metrics = {}
        for k in eq.MASK_KINDS:
            for f in eq.MASK_FRACS:
                for m in eq.METHODS:
                    cell = (ours_psnr, 0.5, ours_detail) if m == "ours" else (18.0, 0.5, 0.3)
                    metrics[(k, f, m)] = [cell] * 4
        return {"metrics": metrics}

    assert eq.removal_goal(result(18.5, 0.6))[0]
    assert not eq.removal_goal(result(18.5, 0.4))[0]  # sharp enough PSNR, but a blur
    assert not eq.removal_goal(result(17.5, 0.9))[0]  # detailed, but worse than Telea
    _met, account = eq.removal_goal(result(18.5, 0.6))
    assert "18.50 dB vs Telea 18.00 dB" in account
    assert "detail 60%" in account


@pytest.mark.parametrize("fit", list(eq.CLASSIFIERS.values()))
def test_classifiers_separate_clusters_and_loo(fit):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (3, 10))
    y = np.repeat(np.arange(3), 8)
    x = centres[y] + rng.normal(0, 0.5, (len(y), 10))
    predict = fit(x, y, 3)
    assert (predict(x) == y).all()
    assert eq.loo_accuracy(fit, x, y, 3) == 1.0
    # pure noise labels: LOO is near chance, not perfect
    noise = rng.normal(0, 1, (30, 10))
    assert eq.loo_accuracy(fit, noise, np.arange(30) % 3, 3) < 0.7


def test_pixel_features_and_spread_pick():
    imgs = [smooth_image(32, s) for s in range(3)]
    f = eq.pixel_features(imgs)
    assert f.shape == (3, 256)
    np.testing.assert_allclose(f[:, 192:].sum(1), 1.0)
    assert eq.spread_pick(["a", "a", "b", "c", "c"], 4) == [0, 2, 3, 1]


def test_rerun_keeps_hand_written_notes():
    old = "a\n<!-- SUMMARY -->\nmy notes\n<!-- /SUMMARY -->\nold tail\n"
    new = "b\n<!-- SUMMARY -->\n<!-- /SUMMARY -->\nnew tail\n"
    assert eq.keep_notes(old, new) == "b\n<!-- SUMMARY -->\nmy notes\n<!-- /SUMMARY -->\nnew tail\n"
    assert eq.keep_notes("no markers", new) == new


def test_a_run_without_class_samples_keeps_the_last_judged_section():
    judged = "# Q\n<!-- CLASSES -->\n| fish | 40% |\n\n![sheet](s.png)\n<!-- /CLASSES -->\nend\n"
    skipped = (
        "# Q2\n<!-- CLASSES -->\nNot run this time (`--no-classes`): kept.\n\n<!-- /CLASSES -->\n"
    )
    once = eq.keep_section(judged, skipped, "CLASSES")
    assert once.startswith("# Q2\n")
    assert "Not run this time" in once
    assert "| fish | 40% |\n\n![sheet](s.png)\n<!-- /CLASSES -->" in once
    # a second skipped run keeps the judged table once, not the first note twice
    twice = eq.keep_section(once, skipped, "CLASSES")
    assert twice == once
    assert twice.count("Not run this time") == 1
    assert twice.count("| fish | 40% |") == 1
    # nothing to keep: unchanged
    assert eq.keep_section("# old without markers\n", skipped, "CLASSES") == skipped
