#!/usr/bin/env python3
"""Quality evaluation of a bundle on held-out photos: tokenizer reconstruction, object removal
against OpenCV inpainting, class-conditional samples judged by classifiers trained on real
photos, and side-by-side sheets.

    python bench/eval_quality.py [--model DIR] [--out docs/model-quality.md]
                                 [--data data/photos] [--max-images N] [--seeds 0 1 2]
                                 [--samples 16] [--sizes 128 256] [--json FILE]

Only photos marked "val" in data/photos/split.json are used (the training code holds the same
photos out), centre-cropped (short side resized, bicubic) to the bundle's image size. The edit
is also run on 256 px crops, where the pipeline's context square and resize path apply.

Metrics
-------
* PSNR: 10 log10(255^2 / MSE), MSE over all three channels of the pixels considered (the whole
  image for reconstruction; only the masked pixels for removal).
* SSIM: Wang et al. 2004 on luminance (Y = 0.299 R + 0.587 G + 0.114 B, 0..255), Gaussian
  window 11 taps, sigma 1.5, K1 = 0.01, K2 = 0.03, reflect-padded borders so the SSIM map has
  the image's size. Whole image: mean of the map. Inside a mask: mean of the map over the masked
  pixels (windows near the hole's edge also see known pixels, which are identical in every
  method, so the in-mask SSIM of every method is pulled up a little the same way).
Reconstruction metrics reward the conditional mean, i.e. blurry fills; a sharp, plausible but
different fill scores worse than a smooth smear. Read the removal numbers with that in mind and
look at the sheets.

Everything is seeded (masks, decoding seeds, sample seeds, classifier training).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.runtime.blending import harmonic_membrane  # noqa: E402
from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.compose import paste_all  # noqa: E402
from engine.runtime.imageio import load_image  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.manifest import read_manifest  # noqa: E402
from engine.runtime.recognition import preprocess  # noqa: E402
from engine.runtime.runs import (  # noqa: E402
    Edit,
    Generate,
    compose_fill,
    decode_images,
    plan_or_raise,
    run,
    run_to_end,
)
from engine.runtime.settings import Settings  # noqa: E402

MASK_FRACS = (0.05, 0.15, 0.30)
MASK_KINDS = ("box", "blob")

# -- metrics ------------------------------------------------------------------------------------


def luminance(rgb: np.ndarray) -> np.ndarray:
    """[H,W,3] (0..255) -> float64 [H,W] BT.601 luma; a 2-D array is returned as float64."""
    x = np.asarray(rgb, np.float64)
    if x.ndim == 2:
        return x
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def psnr(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 255.0
) -> float:
    """PSNR in dB over all channels of the pixels where `mask` (bool [H,W]) is true."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = (a - b) ** 2
    if mask is not None:
        d = d[np.asarray(mask, bool)]
    if d.size == 0:
        raise ValueError("empty mask")
    mse = float(d.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_filter(x: np.ndarray, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array, reflect-padded, same size out."""
    k = gaussian_kernel(size, sigma)
    r = size // 2
    h, w = x.shape
    p = np.pad(x, r, mode="reflect")
    rows = sum(k[i] * p[i : i + h, :] for i in range(size))
    return sum(k[i] * rows[:, i : i + w] for i in range(size))


def ssim_map(
    a: np.ndarray, b: np.ndarray, data_range: float = 255.0, size: int = 11, sigma: float = 1.5
) -> np.ndarray:
    """float64 [H,W] SSIM map on luminance (RGB inputs are converted; 2-D inputs used as is)."""
    x, y = luminance(a), luminance(b)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = gaussian_filter(x, size, sigma), gaussian_filter(y, size, sigma)
    sxx = gaussian_filter(x * x, size, sigma) - mx * mx
    syy = gaussian_filter(y * y, size, sigma) - my * my
    sxy = gaussian_filter(x * y, size, sigma) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, **kw) -> float:
    """Mean SSIM (luminance) over the image, or over the pixels where `mask` is true."""
    m = ssim_map(a, b, **kw)
    if mask is not None:
        m = m[np.asarray(mask, bool)]
        if m.size == 0:
            raise ValueError("empty mask")
    return float(m.mean())


def laplacian(rgb: np.ndarray) -> np.ndarray:
    """|4-neighbour Laplacian| of the luminance, float64 [H,W] (reflect-padded)."""
    y = np.pad(luminance(rgb), 1, mode="reflect")
    return np.abs(y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1])


def detail_region(mask: np.ndarray) -> np.ndarray:
    """The mask less its 1-px edge, where a 3x3 Laplacian sees only filled pixels (so a seam
    between fill and photo does not count as detail); the mask itself if nothing is left."""
    m = np.asarray(mask, bool)
    inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0) > 0
    return inner if inner.any() else m


def detail(real: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    """Detail kept inside the hole: mean |Laplacian| of `out` over the hole's inside, over the
    real photo's mean |Laplacian| there (1 = as much fine texture as the photo, 0 = a smooth
    fill; above 1 = noisier than the photo). A flat real region counts as 1 level of grey."""
    region = detail_region(mask)
    return float(laplacian(out)[region].mean() / max(laplacian(real)[region].mean(), 1.0))


def hf_energy(rgb: np.ndarray, cutoff: float = 0.25) -> float:
    """Energy of the luminance spectrum above `cutoff` x Nyquist (radial), mean removed."""
    y = luminance(rgb)
    y = y - y.mean()
    amp2 = np.abs(np.fft.rfft2(y, norm="ortho")) ** 2
    fy = np.abs(np.fft.fftfreq(y.shape[0]))[:, None] * 2
    fx = np.fft.rfftfreq(y.shape[1])[None, :] * 2
    return float(amp2[np.sqrt(fy**2 + fx**2) > cutoff].sum())


def hf_kept(real: np.ndarray, rec: np.ndarray, cutoff: float = 0.25) -> float:
    """High-frequency energy of a reconstruction over the real image's (1 = as detailed)."""
    return hf_energy(rec, cutoff) / max(hf_energy(real, cutoff), 1e-9)


# -- masks --------------------------------------------------------------------------------------


def box_mask(size: int, frac: float, rng: np.random.Generator) -> np.ndarray:
    """bool [size,size]: one axis-aligned box covering ~`frac` of the image, aspect ratio
    log-uniform in [1/2, 2], placed uniformly inside the image."""
    area = frac * size * size
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    w = round(min(size, max(1.0, np.sqrt(area * aspect))))
    h = round(min(size, max(1.0, area / w)))
    x0 = int(rng.integers(0, size - w + 1))
    y0 = int(rng.integers(0, size - h + 1))
    m = np.zeros((size, size), bool)
    m[y0 : y0 + h, x0 : x0 + w] = True
    return m


def blob_mask(size: int, frac: float, rng: np.random.Generator, harmonics: int = 5) -> np.ndarray:
    """bool [size,size]: one connected star-shaped blob (radius a random low-frequency
    function of the angle) covering `frac` of the image to within a pixel row. The centre is
    drawn so that most of the blob stays inside the image."""
    amp = rng.uniform(0.0, 0.35, harmonics) / np.arange(1, harmonics + 1) ** 0.5
    phase = rng.uniform(0, 2 * np.pi, harmonics)
    r0 = np.sqrt(frac / np.pi) * size
    margin = min(r0 * 0.8, size / 2)
    cy, cx = rng.uniform(margin, size - margin, 2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    rho = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    shape = 1.0 + sum(amp[k] * np.cos((k + 1) * theta + phase[k]) for k in range(harmonics))
    shape = np.maximum(shape, 0.25)
    ratio = rho / shape  # the blob is {ratio < R}; pick R for the wanted pixel count
    want = round(frac * size * size)
    r = np.sort(ratio.ravel())[max(want - 1, 0)]
    return ratio <= r


def make_mask(kind: str, size: int, frac: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "box":
        return box_mask(size, frac, rng)
    if kind == "blob":
        return blob_mask(size, frac, rng)
    raise ValueError(f"unknown mask kind {kind!r}")


def mask_seed(seed: int, image_index: int, kind: str, frac: float, size: int) -> list[int]:
    return [seed, image_index, MASK_KINDS.index(kind), round(frac * 1000), size]


# -- baselines ----------------------------------------------------------------------------------


def cv2_inpaint(rgb: np.ndarray, mask: np.ndarray, method: str, radius: int = 3) -> np.ndarray:
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    out = cv2.inpaint(bgr, mask.astype(np.uint8) * 255, radius, flag)
    return np.ascontiguousarray(out[..., ::-1])


def flat_fill(rgb: np.ndarray, mask: np.ndarray, ring: int = 3) -> np.ndarray:
    """Fill the hole with the mean colour of a `ring`-px band around it (a floor baseline)."""
    band = cv2.dilate(mask.astype(np.uint8), np.ones((2 * ring + 1,) * 2, np.uint8)) > 0
    band &= ~mask
    out = rgb.copy()
    colour = rgb[band].mean(0) if band.any() else rgb[~mask].mean(0)
    out[mask] = np.round(colour).astype(np.uint8)
    return out


def harmonic_fill(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The smoothest fill that meets the hole's border: Laplace's equation, no model."""
    field = harmonic_membrane(rgb.transpose(2, 0, 1).astype(np.float32), mask, ~mask)
    out = rgb.copy()
    out[mask] = np.clip(field.transpose(1, 2, 0)[mask] + 0.5, 0, 255).astype(np.uint8)
    return out


# -- classifiers (numpy) ------------------------------------------------------------------------


class Standardizer:
    def __init__(self, x: np.ndarray):
        self.mean = x.mean(0)
        self.std = x.std(0) + 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def fit_centroid(x: np.ndarray, y: np.ndarray, num_classes: int):
    """Standardised-feature nearest centroid (Euclidean). Returns predict(x) -> labels."""
    st = Standardizer(x)
    z = st(x)
    cent = np.stack(
        [
            z[y == c].mean(0) if (y == c).any() else np.full(z.shape[1], np.inf)
            for c in range(num_classes)
        ]
    )

    def predict(q: np.ndarray) -> np.ndarray:
        d = ((st(q)[:, None, :] - cent[None]) ** 2).sum(-1)
        return np.argmin(np.nan_to_num(d, nan=np.inf, posinf=np.inf), 1)

    return predict


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    l2: float = 1e-2,
    iters: int = 300,
    lr: float = 0.5,
):
    """Multinomial logistic regression on standardised features (full-batch gradient descent,
    zero init, so deterministic). Returns predict(x) -> labels."""
    st = Standardizer(x)
    z = st(x)
    n, d = z.shape
    w = np.zeros((d, num_classes))
    b = np.zeros(num_classes)
    onehot = np.eye(num_classes)[y]
    scale = 1.0 / np.sqrt(d)  # keeps the step size sane whatever the dimension
    z = z * scale
    for _ in range(iters):
        s = z @ w + b
        s -= s.max(1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(1, keepdims=True)
        g = p - onehot
        w -= lr * (z.T @ g / n + l2 * w)
        b -= lr * g.mean(0)

    def predict(q: np.ndarray) -> np.ndarray:
        return np.argmax(st(q) * scale @ w + b, 1)

    return predict


CLASSIFIERS = {"nearest centroid": fit_centroid, "logistic": fit_logistic}


def loo_accuracy(fit, x: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    """Leave-one-out accuracy of `fit` (fit(x, y, k) -> predict)."""
    hits = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        hits += int(fit(x[keep], y[keep], num_classes)(x[i : i + 1])[0] == y[i])
    return hits / len(y)


def pixel_features(rgbs: list[np.ndarray]) -> np.ndarray:
    """8x8 colour thumbnail (192) + 4x4x4 joint colour histogram (64) per image."""
    out = []
    for rgb in rgbs:
        thumb = (
            np.asarray(
                Image.fromarray(rgb).resize((8, 8), Image.Resampling.BOX), np.float64
            ).ravel()
            / 255
        )
        q = (rgb.reshape(-1, 3) // 64).astype(np.int64)
        hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / len(q)
        out.append(np.concatenate([thumb, hist]))
    return np.stack(out)


def model_features(bundle: Bundle, rgbs: list[np.ndarray], batch: int = 16) -> np.ndarray:
    """bundle.features of the tokens of model-size uint8 images."""
    seq = bundle.manifest.seq_len
    out = []
    for i in range(0, len(rgbs), batch):
        x = np.stack(rgbs[i : i + batch]).astype(np.float32).transpose(0, 3, 1, 2) / 255
        tok = bundle.encode(x).reshape(len(x), seq)
        out.append(np.asarray(bundle.features(tok), np.float64))
    return np.concatenate(out)


# -- data ---------------------------------------------------------------------------------------


def val_photos(data: Path) -> list[tuple[str, str]]:
    """(relative path, class) of every held-out photo, sorted."""
    split = json.loads((data / "split.json").read_text(encoding="utf-8"))
    return [
        (rel, rel.split("/")[0])
        for rel, part in sorted(split.items())
        if str(part).lower() in ("val", "validation", "test")
    ]


def crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 centre crop at `size` (short side resized, bicubic; as recognition does)."""
    return (preprocess(rgb, size).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def spread_pick(classes: list[str], n: int) -> list[int]:
    """Indices of up to n items, one per class first (in order of first appearance)."""
    picked, seen = [], set()
    for i, c in enumerate(classes):
        if c not in seen:
            seen.add(c)
            picked.append(i)
    rest = [i for i in range(len(classes)) if i not in picked]
    return (picked + rest)[:n]


# -- evaluation parts ---------------------------------------------------------------------------


def eval_reconstruction(bundle: Bundle, imgs: list[np.ndarray]) -> dict:
    rows = []
    for i in range(0, len(imgs), 8):
        x = np.stack(imgs[i : i + 8]).astype(np.float32).transpose(0, 3, 1, 2) / 255
        rec = bundle.decode(bundle.encode(x))
        rec = (np.clip(rec, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
        for a, b in zip(imgs[i : i + 8], rec, strict=True):
            rows.append(
                (
                    psnr(a, b),
                    ssim(a, b),
                    float(np.mean([ssim(a[..., c], b[..., c]) for c in range(3)])),
                    hf_kept(a, b),
                )
            )
    r = np.array(rows)
    return {
        "n": len(rows),
        "psnr": r[:, 0].tolist(),
        "ssim_y": r[:, 1].tolist(),
        "ssim_rgb": r[:, 2].tolist(),
        "hf_kept": r[:, 3].tolist(),
    }


METHODS = ("ours", "ours_plain", "telea", "ns", "harmonic", "flat")
METHOD_NAMES = {
    "ours": "ours",
    "ours_plain": "ours, plain paste",
    "telea": "Telea",
    "ns": "NS",
    "harmonic": "harmonic",
    "flat": "flat",
}
PSNR_CAP = 60.0  # a perfect fill (e.g. of a clipped, flat sky) would score infinity


def eval_removal(
    bundle: Bundle,
    imgs: list[np.ndarray],
    size: int,
    seeds: tuple[int, ...],
    seed: int,
    sheet_rows: dict[int, tuple[str, float]],
    log,
    base: Settings | None = None,
) -> tuple[dict, list]:
    """Per (kind, frac, method): list over images of (psnr, ssim, detail) means over decoding
    seeds. `base` holds the decoding choices (temperatures, colour match); the seeds are set
    here. Returns the results and the sheet tiles for the images in `sheet_rows`."""
    res: dict[tuple[str, float, str], list[tuple[float, ...]]] = {}
    per_seed: dict[tuple[str, float], list[list[float]]] = {}
    sheet, outside = [], []
    base = base or Settings()
    settings = replace(base, seeds=seeds)
    plain = replace(base, seeds=seeds, seamless=False)
    t0 = time.perf_counter()

    def score(out: np.ndarray, img: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
        return min(psnr(img, out, mask), PSNR_CAP), ssim(img, out, mask), detail(img, out, mask)

    for i, img in enumerate(imgs):
        for kind in MASK_KINDS:
            for frac in MASK_FRACS:
                mask = make_mask(
                    kind, size, frac, np.random.default_rng(mask_seed(seed, i, kind, frac, size))
                )
                # one connected mask: one context square, exactly what edit_image does
                plan = plan_or_raise(bundle.manifest, img, mask, settings)
                out = run_to_end(run(bundle, Edit(img, plan), settings))
                assert out.fill is not None  # an edit always fills
                # the same tokens, pasted without the gradient-domain blend (ablation)
                out_plain = [
                    paste_all(img, [p])
                    for p in compose_fill(
                        bundle, out.fill, decode_images(bundle, out.tokens), plain
                    )
                ]
                ours = [score(o, img, mask) for o in out.images]
                outside.append(np.mean([min(psnr(img, o, ~mask), 99.0) for o in out.images]))
                res.setdefault((kind, frac, "ours"), []).append(tuple(np.mean(ours, 0)))
                res.setdefault((kind, frac, "ours_plain"), []).append(
                    tuple(np.mean([score(o, img, mask) for o in out_plain], 0))
                )
                per_seed.setdefault((kind, frac), []).append([o[0] for o in ours])
                fills = {m: cv2_inpaint(img, mask, m) for m in ("telea", "ns")}
                fills["harmonic"] = harmonic_fill(img, mask)
                fills["flat"] = flat_fill(img, mask)
                for m, f in fills.items():
                    res.setdefault((kind, frac, m), []).append(score(f, img, mask))
                if sheet_rows.get(i) == (kind, frac):
                    sheet.append(
                        (
                            i,
                            {
                                "input": img,
                                "mask": mask,
                                "telea": fills["telea"],
                                "ns": fills["ns"],
                                "harmonic": fills["harmonic"],
                                "plain": out_plain[0],
                                "ours": list(out.images),
                                "label": f"{kind} {int(frac * 100)}%",
                            },
                        )
                    )
        log(f"  removal {size}px: image {i + 1}/{len(imgs)} ({time.perf_counter() - t0:.0f} s)")
    return {
        "metrics": res,
        "per_seed_psnr": per_seed,
        "outside_psnr": outside,
        "seconds": time.perf_counter() - t0,
    }, sheet


def eval_classes(
    bundle: Bundle,
    val_imgs: list[np.ndarray],
    val_labels: np.ndarray,
    all_imgs: list[np.ndarray],
    all_labels: np.ndarray,
    all_val: np.ndarray,
    names: list[str],
    samples: int,
    seed: int,
    guidance: float,
    log,
    cache: dict | None = None,
) -> dict:
    """Generate `samples` per evaluated class; judge them with classifiers fit on real photos."""
    k = len(names)
    gen_imgs: list[np.ndarray] = []
    gen_classes: list[int] = []
    t0 = time.perf_counter()
    for c, name in enumerate(names):
        seeds = tuple(seed * 100_000 + c * 1000 + j for j in range(samples))
        out = run_to_end(
            run(bundle, Generate(), Settings(seeds=seeds, class_name=name, guidance=guidance))
        )
        gen_imgs += [np.asarray(im) for im in out.images]
        gen_classes += [c] * samples
        log(f"  samples: class {name} done ({time.perf_counter() - t0:.0f} s)")
    gen_seconds = time.perf_counter() - t0
    gen_labels = np.array(gen_classes)
    feats = {}
    cache = {} if cache is None else cache  # real-photo features, shared between guidances
    if "features.onnx" in bundle.manifest.files:
        if "model" not in cache:
            cache["model"] = (model_features(bundle, val_imgs), model_features(bundle, all_imgs))
        feats["model features"] = (*cache["model"], model_features(bundle, gen_imgs))
    if "pixels" not in cache:
        cache["pixels"] = (pixel_features(val_imgs), pixel_features(all_imgs))
    feats["pixels (thumb + colour hist)"] = (*cache["pixels"], pixel_features(gen_imgs))
    rows = []
    for fname, (fv, fa, fg) in feats.items():
        for cname, fit in CLASSIFIERS.items():
            row = {
                "features": fname,
                "classifier": cname,
                "real_val_loo": loo_accuracy(fit, fv, val_labels, k),
            }
            train = ~all_val
            row["real_train_to_val"] = float(
                np.mean(fit(fa[train], all_labels[train], k)(fa[all_val]) == all_labels[all_val])
            )
            pred_v = fit(fv, val_labels, k)(fg)
            pred_a = fit(fa, all_labels, k)(fg)
            row["gen_judge_val"] = float(np.mean(pred_v == gen_labels))
            row["gen_judge_all"] = float(np.mean(pred_a == gen_labels))
            row["gen_per_class_all"] = [
                float(np.mean(pred_a[gen_labels == c] == c)) for c in range(k)
            ]
            rows.append(row)
    return {
        "rows": rows,
        "gen_imgs": gen_imgs,
        "gen_labels": gen_labels,
        "chance": 1 / k,
        "gen_seconds": gen_seconds,
        "guidance": guidance,
    }


# -- sheets -------------------------------------------------------------------------------------


def _label(img: Image.Image, text: str, xy=(4, 2)) -> None:
    d = ImageDraw.Draw(img)
    x, y = xy
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        d.text((x + dx, y + dy), text, fill=(0, 0, 0))
    d.text(xy, text, fill=(255, 255, 255))


def show_mask(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = img.astype(np.float32)
    out[mask] = out[mask] * 0.35 + np.array([255, 0, 255]) * 0.65
    return out.astype(np.uint8)


def removal_sheet(rows: list[dict], tile: int, path: Path, seeds) -> None:
    cols = ["input", "mask", "Telea", "Navier-Stokes", "harmonic", f"plain seed {seeds[0]}"] + [
        f"ours seed {s}" for s in seeds
    ]
    head = 18
    sheet = Image.new("RGB", (tile * len(cols), head + tile * len(rows)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for j, c in enumerate(cols):
        d.text((j * tile + 4, 3), c, fill=(0, 0, 0))
    for i, r in enumerate(rows):
        tiles = [
            r["input"],
            show_mask(r["input"], r["mask"]),
            r["telea"],
            r["ns"],
            r["harmonic"],
            r["plain"],
        ] + r["ours"]
        for j, t in enumerate(tiles):
            im = Image.fromarray(t)
            if im.size != (tile, tile):
                im = im.resize((tile, tile), Image.Resampling.NEAREST)
            if j == 1:
                _label(im, r["label"])
            sheet.paste(im, (j * tile, head + i * tile))
    sheet.save(path, optimize=True)


def class_sheet(
    names, real: dict[int, np.ndarray], gen_imgs, gen_labels, per_row: int, path: Path
) -> None:
    size = gen_imgs[0].shape[0]
    tile = max(size, 96)
    label_w = 90
    sheet = Image.new(
        "RGB", (label_w + tile * (per_row + 1) + 6, tile * len(names)), (255, 255, 255)
    )
    d = ImageDraw.Draw(sheet)
    for c, name in enumerate(names):
        y = c * tile
        d.text((4, y + tile // 2 - 6), name, fill=(0, 0, 0))
        if c in real:
            im = Image.fromarray(real[c]).resize((tile, tile), Image.Resampling.NEAREST)
            _label(im, "real")
            sheet.paste(im, (label_w, y))
        idx = np.flatnonzero(gen_labels == c)[:per_row]
        for j, g in enumerate(idx):
            im = Image.fromarray(gen_imgs[g]).resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(im, (label_w + tile * (j + 1) + 6, y))
    sheet.save(path, optimize=True)


def class_sheet_name(guidance: float, first: float) -> str:
    return "class-samples.png" if guidance == first else f"class-samples-g{guidance:g}.png"


# -- report -------------------------------------------------------------------------------------


def _ms(values) -> str:
    v = np.asarray(values, np.float64)
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
    return f"{v.mean():.2f} ± {se:.2f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores usable, {platform.system()} {platform.release()}"


def removal_table(r: dict, size: int) -> list[str]:
    """Two tables: in-mask PSNR (with win rates) and in-mask SSIM, one row per mask kind/size."""
    m = r["metrics"]
    names = [METHOD_NAMES[x] for x in METHODS]
    psnr_rows = [
        "| mask | "
        + " | ".join(f"{n} PSNR" for n in names)
        + " | ours > Telea | ours > harmonic |",
        "|---|" + "---|" * (len(METHODS) + 2),
    ]
    ssim_rows = [
        "| mask | " + " | ".join(f"{n} SSIM" for n in names) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    detail_rows = [
        "| mask | " + " | ".join(f"{n} detail" for n in names) + " |",
        "|---|" + "---|" * len(METHODS),
    ]

    def wins(cells: dict, other: str) -> str:
        return f"{100 * np.mean(cells['ours'][:, 0] > cells[other][:, 0]):.0f}%"

    for kind in MASK_KINDS:
        for frac in MASK_FRACS:
            cells = {meth: np.array(m[(kind, frac, meth)]) for meth in METHODS}
            label = f"{kind} {int(frac * 100)}%"
            psnr_rows.append(
                f"| {label} | "
                + " | ".join(_ms(cells[x][:, 0]) for x in METHODS)
                + f" | {wins(cells, 'telea')} | {wins(cells, 'harmonic')} |"
            )
            ssim_rows.append(
                f"| {label} | " + " | ".join(f"{cells[x][:, 1].mean():.3f}" for x in METHODS) + " |"
            )
            detail_rows.append(
                f"| {label} | "
                + " | ".join(f"{100 * np.median(cells[x][:, 2]):.0f}%" for x in METHODS)
                + " |"
            )
    allm = {
        meth: np.concatenate([np.array(m[(k, f, meth)]) for k in MASK_KINDS for f in MASK_FRACS])
        for meth in METHODS
    }
    psnr_rows.append(
        "| **all** | "
        + " | ".join(f"**{allm[x][:, 0].mean():.2f}**" for x in METHODS)
        + f" | **{wins(allm, 'telea')}** | **{wins(allm, 'harmonic')}** |"
    )
    ssim_rows.append(
        "| **all** | " + " | ".join(f"**{allm[x][:, 1].mean():.3f}**" for x in METHODS) + " |"
    )
    detail_rows.append(
        "| **all** | "
        + " | ".join(f"**{100 * np.median(allm[x][:, 2]):.0f}%**" for x in METHODS)
        + " |"
    )
    return psnr_rows + [""] + ssim_rows + [""] + detail_rows


def summary(r: dict) -> dict:
    m = r["metrics"]
    out = {}
    for meth in METHODS:
        a = np.concatenate([np.array(m[(k, f, meth)]) for k in MASK_KINDS for f in MASK_FRACS])
        out[meth] = {
            "psnr": float(a[:, 0].mean()),
            "ssim": float(a[:, 1].mean()),
            "detail": float(np.median(a[:, 2])),
        }
    return out


def removal_goal(r: dict) -> tuple[bool, str]:
    """The issue's removal goal at one size: in-mask PSNR >= Telea's and detail >= 50% of the
    real photo's, over all masks. Returns (met, a one-line account)."""
    s = summary(r)
    ours, telea = s["ours"], s["telea"]
    met = ours["psnr"] >= telea["psnr"] and ours["detail"] >= 0.5
    return met, (
        f"ours {ours['psnr']:.2f} dB vs Telea {telea['psnr']:.2f} dB; "
        f"detail {100 * ours['detail']:.0f}% (Telea {100 * telea['detail']:.0f}%, "
        f"harmonic {100 * s['harmonic']['detail']:.0f}%)"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="bundle folder (default: the default bundle)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "model-quality.md")
    ap.add_argument("--data", type=Path, default=REPO / "data" / "photos")
    ap.add_argument("--max-images", type=int, default=0, help="0 = every val photo")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="decoding seeds per edit"
    )
    ap.add_argument("--samples", type=int, default=16, help="generated samples per class")
    ap.add_argument(
        "--guidance",
        type=float,
        nargs="+",
        default=[0.0, 3.0],
        help="classifier-free guidance values for the class samples",
    )
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[0, 256],
        help="removal crop sizes; 0 = the bundle's image size",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sample-temperature",
        type=float,
        help="token sampling temperature for the edits (default: the manifest's)",
    )
    ap.add_argument(
        "--choice-temperature",
        type=float,
        help="choice temperature for the edits (default: the manifest's)",
    )
    ap.add_argument(
        "--no-colour-match",
        action="store_true",
        help="edits without fitting the fill's colours to the surroundings",
    )
    ap.add_argument("--no-classes", action="store_true", help="skip the class-conditional samples")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument(
        "--dry-run-note",
        default="",
        help="a line printed at the top of the report (e.g. for a dev bundle)",
    )
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    bundle = Bundle(args.model or default_bundle_path(), device=args.device)
    man = bundle.manifest
    if "features.onnx" in man.files:
        bundle.features(np.zeros((1, man.seq_len), np.int64))  # open it now, not mid-run
    files_at_start = dict(man.files)
    size = man.image_size
    out_md = args.out
    docs = out_md.parent
    docs.mkdir(parents=True, exist_ok=True)
    seeds = tuple(args.seeds)

    photos = val_photos(args.data)
    if args.max_images:
        keep = spread_pick([c for _, c in photos], args.max_images)
        photos = [photos[i] for i in sorted(keep)]
    raw = [load_image(args.data / rel).rgb for rel, _ in photos]
    classes = [c for _, c in photos]
    imgs = [crop(r, size) for r in raw]
    log(
        f"bundle {man.name}: {size}px, grid {man.grid}, codebook {man.codebook_size}, "
        f"classes {man.class_names}; {len(imgs)} val photos"
    )

    # 1. reconstruction
    rec = eval_reconstruction(bundle, imgs)
    log(
        f"reconstruction: PSNR {np.mean(rec['psnr']):.2f} dB, SSIM-Y "
        f"{np.mean(rec['ssim_y']):.3f}, high frequencies kept {np.median(rec['hf_kept']):.2f}"
    )

    # 2. removal (+ sheets)
    sheet_idx = spread_pick(classes, 6)
    specs = [
        ("blob", 0.15),
        ("box", 0.15),
        ("blob", 0.30),
        ("box", 0.30),
        ("blob", 0.05),
        ("box", 0.05),
    ]
    sheet_rows = {i: specs[n % len(specs)] for n, i in enumerate(sheet_idx)}
    removal, sheets = {}, {}
    sizes = [s or size for s in args.sizes]
    base = Settings(
        temperature=args.choice_temperature,
        sample_temperature=args.sample_temperature,
        colour_match=not args.no_colour_match,
    )
    for s in sizes:
        imgs_s = imgs if s == size else [crop(r, s) for r in raw]
        removal[s], tiles = eval_removal(bundle, imgs_s, s, seeds, args.seed, sheet_rows, log, base)
        by_image = dict(tiles)
        tiles_sorted = [by_image[i] for i in sheet_idx if i in by_image]
        name = "removal-sheet.png" if s == size else f"removal-sheet-{s}.png"
        removal_sheet(
            tiles_sorted if s == size else tiles_sorted[:4], max(256, s), docs / name, seeds
        )
        sheets[s] = name
        log(f"removal at {s}px: {summary(removal[s])}")

    # 3. class-conditional samples
    cls = None
    cls_runs = []
    if man.class_names is not None and not args.no_classes:  # class-conditional
        data_classes = sorted({c for _, c in photos})
        names = [c for c in man.class_names if c in data_classes]
        all_split = json.loads((args.data / "split.json").read_text(encoding="utf-8"))
        all_rel = [rel for rel in sorted(all_split) if rel.split("/")[0] in names]
        if names:
            val_sel = [i for i, c in enumerate(classes) if c in names]
            val_imgs = [imgs[i] for i in val_sel]
            val_labels = np.array([names.index(classes[i]) for i in val_sel])
            all_imgs = [crop(load_image(args.data / rel).rgb, size) for rel in all_rel]
            all_labels = np.array([names.index(rel.split("/")[0]) for rel in all_rel])
            all_val = np.array(
                [str(all_split[rel]).lower() in ("val", "validation", "test") for rel in all_rel]
            )
            cache: dict = {}
            for g in args.guidance:
                cls_runs.append(
                    eval_classes(
                        bundle,
                        val_imgs,
                        val_labels,
                        all_imgs,
                        all_labels,
                        all_val,
                        names,
                        args.samples,
                        args.seed,
                        g,
                        log,
                        cache,
                    )
                )
            cls = {
                "names": names,
                "n_val": len(val_imgs),
                "n_all": len(all_imgs),
                "skipped": [c for c in man.class_names if c not in data_classes],
            }
            real: dict[int, np.ndarray] = {}
            for i in val_sel:
                real.setdefault(names.index(classes[i]), imgs[i])
            for r in cls_runs:
                r["sheet"] = class_sheet_name(r["guidance"], args.guidance[0])
                class_sheet(
                    names,
                    real,
                    r["gen_imgs"],
                    r["gen_labels"],
                    min(8, args.samples),
                    docs / r["sheet"],
                )
            log(
                "class samples: "
                + "; ".join(
                    f"g={r['guidance']:g} "
                    + ", ".join(
                        f"{x['features'][:5]}/{x['classifier'][:5]} {x['gen_judge_all']:.2f}"
                        for x in r["rows"]
                    )
                    for r in cls_runs
                )
            )

    total = time.perf_counter() - t_start
    try:
        now = read_manifest(bundle.path, verify_hashes=False).files
    except Exception:  # noqa: BLE001 - any failure means the folder changed under us
        now = {}
    if now != files_at_start:
        args.dry_run_note = ((args.dry_run_note + " ") if args.dry_run_note else "") + (
            "WARNING: the bundle's files changed on disk during this run; the numbers come from "
            "the files loaded at the start. Re-run."
        )
        log(args.dry_run_note)
    write_report(out_md, args, bundle, photos, rec, removal, sheets, seeds, cls, cls_runs, total)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": man.name,
                    "reconstruction": {
                        k: (float(np.mean(v)) if k != "n" else v) for k, v in rec.items()
                    },
                    "removal": {str(s): summary(r) for s, r in removal.items()},
                    "settings": {
                        "sample_temperature": args.sample_temperature,
                        "choice_temperature": args.choice_temperature,
                        "colour_match": not args.no_colour_match,
                    },
                    "classes": [
                        {"guidance": r["guidance"], "chance": r["chance"], "rows": r["rows"]}
                        for r in cls_runs
                    ],
                },
                indent=2,
            )
        )
    log(f"wrote {out_md} ({total:.0f} s)")
    return 0


def write_report(
    path: Path, args, bundle, photos, rec, removal, sheets, seeds, cls, cls_runs, total
) -> None:
    man = bundle.manifest
    size = man.image_size
    per_class: dict[str, int] = {}
    for _, c in photos:
        per_class[c] = per_class.get(c, 0) + 1
    L = ["# Model quality", ""]
    if args.dry_run_note:
        L += [f"> **{args.dry_run_note}**", ""]
    L += [
        "Produced by `python bench/eval_quality.py"
        + (f" --model {args.model}" if args.model else "")
        + (" --no-classes" if args.no_classes else "")
        + "`; every number below comes "
        "from that run. Re-run it after retraining.",
        "",
        f"* model: **{man.name}** (`{bundle.path}`), {size} px, grid "
        f"{man.grid[0]}x{man.grid[1]}, codebook {man.codebook_size}, "
        + (f"{len(man.class_names)} classes" if man.class_conditional else "unconditional")
        + f", decoding defaults {man.decoding}",
        f'* data: {len(photos)} held-out photos (split.json "val", never used in training) '
        f"from `{args.data.relative_to(REPO) if args.data.is_relative_to(REPO) else args.data}`"
        f": " + ", ".join(f"{c} {n}" for c, n in sorted(per_class.items())),
        f"* date {datetime.date.today().isoformat()}; machine: {machine()}; onnxruntime on "
        f"{bundle.device}; whole run {total / 60:.1f} min",
        f"* seeds: masks seeded by (seed {args.seed}, image, kind, size); decoding seeds "
        f"{list(seeds)}; sample seeds fixed per class",
        "* edits: "
        + ", ".join(
            f"{k} {v}"
            for k, v in (
                ("sample temperature", args.sample_temperature),
                ("choice temperature", args.choice_temperature),
            )
            if v is not None
        )
        + ("" if args.sample_temperature is None and args.choice_temperature is None else "; ")
        + ("no colour match" if args.no_colour_match else "colour match on")
        + " (other decoding settings: the manifest's)",
        "",
    ]

    L += [
        "## 1. Tokenizer reconstruction",
        "",
        f"Encode + decode of the {rec['n']} held-out photos at {size} px (centre crop). "
        "PSNR over RGB; SSIM on luminance (Gaussian 11, sigma 1.5) and, for reference, the "
        "mean of per-channel SSIM; *high frequencies kept*: the energy of the "
        "reconstruction's luminance spectrum above a quarter of the Nyquist frequency over "
        "the real photo's (1 = as detailed, below 1 = blurred). Mean ± standard error over "
        "images; goals ≥ 24 dB and ≥ 70% of the high-frequency energy (median over images).",
        "",
        "| metric | mean ± s.e. | min | median | max |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("psnr", "PSNR (dB)"),
        ("ssim_y", "SSIM (luminance)"),
        ("ssim_rgb", "SSIM (per-channel mean)"),
        ("hf_kept", "high frequencies kept"),
    ):
        v = np.array(rec[key])
        L.append(f"| {label} | {_ms(v)} | {v.min():.2f} | {np.median(v):.2f} | {v.max():.2f} |")
    goal = np.mean(rec["psnr"]) >= 24
    hf = float(np.median(rec["hf_kept"]))
    L += [
        "",
        f"Goal ≥ 24 dB: **{'met' if goal else 'not met'}** ({np.mean(rec['psnr']):.2f} dB). "
        f"Goal ≥ 70% of the high-frequency energy: **{'met' if hf >= 0.7 else 'not met'}** "
        f"({100 * hf:.0f}%).",
        "",
    ]

    n_img = len(photos)
    L += [
        "## 2. Object removal",
        "",
        f"For each held-out photo, {len(MASK_KINDS)} mask kinds × {len(MASK_FRACS)} sizes "
        f"({', '.join(f'{int(f * 100)}%' for f in MASK_FRACS)} of the image area): *box* = one "
        "rectangle, aspect 1:2..2:1, anywhere in the image; *blob* = one connected star-shaped "
        "blob with a wavy outline. The masked pixels are the ground truth to recover.",
        "",
        f"* **ours**: the editor's removal with default settings (ring 1, context 2, the "
        f"manifest's steps/temperature, colour matching and seamless gradient-domain "
        f"blending), seeds {list(seeds)}; the metric is computed per seed and averaged over "
        "seeds.",
        "* **ours, plain paste** (ablation): the same tokens decoded and pasted with only the "
        "feathered edge (`--no-seamless`), i.e. what the model's fill is worth on its own.",
        "* **Telea**, **NS**: `cv2.inpaint` (radius 3) with `INPAINT_TELEA` / `INPAINT_NS`.",
        "* **harmonic** (no model): the hole filled by solving Laplace's equation with the "
        "hole's border as boundary values, the smoothest fill there is; since the seamless "
        "blend adds exactly such a membrane to our fill, ours beats it only where the model's "
        "content is better than smoothness.",
        "* **flat**: the hole filled with the mean colour of a 3 px band around it "
        "(a floor that any method should beat).",
        "",
        "PSNR and SSIM are computed *inside the mask only*: PSNR over the masked pixels; SSIM "
        "is the mean of the luminance SSIM map over the masked pixels. PSNR cells are mean ± "
        f"standard error over the {n_img} images (a perfect fill is capped at "
        f"{PSNR_CAP:.0f} dB); the last columns are the share of images where ours (seed-mean) "
        "has a higher in-mask PSNR than Telea / than the harmonic fill.",
        "",
        "*Detail* is what PSNR does not see: the mean |Laplacian| (4-neighbour, luminance) of "
        "the result inside the hole (its 1-px edge left out, so a seam does not count) over the "
        "real photo's in the same place; 100% = as much fine texture as the photo, 0% = a "
        "smooth fill. Cells are the median over images. PSNR alone rewards blur (the harmonic "
        "fill is the smoothest there is); the goal is ours ≥ Telea in PSNR **and** detail ≥ 50%.",
        "",
    ]
    for s, r in removal.items():
        met, account = removal_goal(r)
        how = (
            "the model's own size: the context square is cut at model resolution"
            if s == size
            else f"{s} px crops: the edit cuts a context square around the mask (2× its bounding "
            f"box, at least {size} px), resizes it to {size} px, and pastes the result back "
            "resized, so large masks go through a down/up-scale"
        )
        L += [
            f"### {s} px, {s / size:g}x the model size ({how})",
            "",
            f"{n_img} images × {len(MASK_KINDS) * len(MASK_FRACS)} masks × {len(seeds)} seeds "
            f"= {n_img * len(MASK_KINDS) * len(MASK_FRACS) * len(seeds)} edits in "
            f"{r['seconds']:.0f} s ({r['seconds'] / (n_img * 6):.2f} s per mask, all seeds in "
            "one batch).",
            "",
        ]
        L += removal_table(r, s)
        L += ["", f"Goal at {s} px: **{'met' if met else 'not met'}** ({account})."]
        best = []
        for kind in MASK_KINDS:
            for frac in MASK_FRACS:
                ps = np.array(r["per_seed_psnr"][(kind, frac)])
                best.append(ps.max(1).mean() - ps.mean(1).mean())
        out_p = np.array(r["outside_psnr"])
        L += [
            "",
            "Outside the mask the OpenCV fills leave every pixel unchanged. Ours "
            "regenerates every token the mask touches plus a one-token ring, but the blend "
            "keeps the input outside the hole and pastes the masked area with a feathered "
            "edge, so outside the mask pixels change only in that edge band, and only by "
            "resampling when the context square is resized to the model size and back (not "
            "scored above): PSNR of ours vs the input over all pixels outside the mask = "
            f"{np.mean(out_p):.1f} dB (min {out_p.min():.1f}; 99 = identical).",
        ]
        L += [
            "",
            f"Best-of-{len(seeds)}-seeds in-mask PSNR is on average "
            f"{np.mean(best):.2f} dB above the seed mean.",
            "",
        ]
    L += [
        "### Sheets",
        "",
        f"`docs/{sheets[size]}` ({size} px, tiles shown 2× with nearest-neighbour "
        "upscaling): rows = held-out photos of different classes, each with one mask "
        "(the label on the mask tile); columns = input, mask (magenta), Telea, "
        f"Navier-Stokes, harmonic, ours without the seamless blend (seed {seeds[0]}), "
        f"ours for seeds {list(seeds)}.",
        "",
        f"![removal sheet]({sheets[size]})",
        "",
    ]
    for s, name in sheets.items():
        if s != size:
            L += [
                f"`docs/{name}`: the first four rows on {s} px crops (own masks).",
                "",
                f"![removal sheet {s}px]({name})",
                "",
            ]
    L += ["<!-- OBSERVATIONS -->", "<!-- /OBSERVATIONS -->", ""]

    L += ["## 3. Class-conditional samples", "", "<!-- CLASSES -->"]
    if args.no_classes:
        L += [
            "Not run this time (`--no-classes`): what follows is kept from the last run that "
            "judged the samples, and holds only while the transformer is the same.",
            "",
        ]
    elif not cls_runs:
        L += ["The model is unconditional or none of its classes is a data class; skipped.", ""]
    else:
        L += [
            f"{args.samples} samples per class for {len(cls['names'])} classes "
            f"({', '.join(cls['names'])}) with `run(bundle, Generate())` "
            "(default steps/temperature)"
            + (
                f"; model classes without real photos, not judged: {', '.join(cls['skipped'])}"
                if cls["skipped"]
                else ""
            )
            + ".",
            "",
            "Judges: standardised features + nearest centroid, or + multinomial logistic "
            "regression (L2 0.01, numpy gradient descent). Two feature sets: *model features* "
            "(the bundle's features.onnx on the tokens of the image; generated samples are "
            "decoded to pixels and re-encoded, the same path as real photos) and *pixels* "
            "(8×8 colour thumbnail + 4×4×4 colour histogram, 256 numbers). Each judge is fit "
            f"(a) on the {cls['n_val']} held-out photos only (its leave-one-out accuracy on them "
            f"is shown), and (b) on all {cls['n_all']} photos of those classes (its accuracy "
            "when fit on the train split and scored on the held-out photos is shown). Note the "
            "model was trained on the train split, so judge (b) has seen the generator's "
            "training photos: it measures 'looks like its class', not novelty.",
            "",
        ]
        for r in cls_runs:
            L += [
                f"Guidance {r['guidance']:g}; chance = 1/{len(cls['names'])} = "
                f"{100 * r['chance']:.1f}%. Generation took {r['gen_seconds']:.0f} s.",
                "",
                "| features | judge | real: LOO on val | real: train→val | **samples "
                "recognised** (judge fit on val) | **samples recognised** (judge fit on all) |",
                "|---|---|---|---|---|---|",
            ]
            for x in r["rows"]:
                L.append(
                    f"| {x['features']} | {x['classifier']} | "
                    f"{100 * x['real_val_loo']:.0f}% | {100 * x['real_train_to_val']:.0f}% "
                    f"| {100 * x['gen_judge_val']:.0f}% | {100 * x['gen_judge_all']:.0f}% |"
                )
            L += [
                "",
                "Per class, samples recognised by the judges fit on all real photos:",
                "",
                "| class | "
                + " | ".join(f"{x['features'].split()[0]} / {x['classifier']}" for x in r["rows"])
                + " |",
                "|---|" + "---|" * len(r["rows"]),
            ]
            for c, name in enumerate(cls["names"]):
                L.append(
                    f"| {name} | "
                    + " | ".join(f"{100 * x['gen_per_class_all'][c]:.0f}%" for x in r["rows"])
                    + " |"
                )
            L.append("")
        for r in cls_runs:
            L += [
                f"`docs/{r['sheet']}` (guidance {r['guidance']:g}): one row per class: a real "
                f"held-out photo (labelled 'real'), then the first {min(8, args.samples)} "
                "samples.",
                "",
                f"![class samples, guidance {r['guidance']:g}]({r['sheet']})",
                "",
            ]
    L += ["<!-- /CLASSES -->", ""]
    # bench/eval_removal.py --doc writes this section (the held-out removal set and the blind
    # judgement); a run of this script keeps it as it is
    L += ["## 4. Removal on photos outside the training pool", "", "<!-- REMOVAL -->"]
    L += ["Not measured yet: run `python bench/eval_removal.py --doc docs/model-quality.md`."]
    L += ["<!-- /REMOVAL -->", ""]
    L += ["## What the numbers say", "", "<!-- SUMMARY -->", "<!-- /SUMMARY -->", ""]
    text = "\n".join(L) + "\n"
    if path.is_file():  # keep the hand-written notes of an earlier run between the markers
        old = path.read_text(encoding="utf-8")
        text = keep_notes(old, text)
        if args.no_classes:
            text = keep_section(old, text, "CLASSES")
    path.write_text(text, encoding="utf-8")


def keep_section(old: str, new: str, name: str) -> str:
    """Append what lies between <!-- NAME --> and <!-- /NAME --> in `old` to the same section
    of `new` (after what `new` says there), leaving `new` as it is when `old` lacks it."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if not (start in old and end in old and end in new):
        return new
    body = old.split(start, 1)[1].split(end, 1)[0].strip("\n")
    if body.startswith("Not run this time"):  # an earlier --no-classes run: keep what it kept
        body = body.split("\n\n", 1)[1] if "\n\n" in body else ""
    head, tail = new.split(end, 1)
    return head.rstrip("\n") + "\n\n" + body + "\n" + end + tail


def keep_notes(old: str, new: str) -> str:
    """Copy what lies between <!-- NAME --> and <!-- /NAME --> in `old` into `new`."""
    for name in ("OBSERVATIONS", "REMOVAL", "SUMMARY"):
        start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        if start in old and end in old and start in new and end in new:
            body = old.split(start, 1)[1].split(end, 1)[0]
            new = new.split(start, 1)[0] + start + body + end + new.split(end, 1)[1]
    return new


if __name__ == "__main__":
    sys.exit(main())
