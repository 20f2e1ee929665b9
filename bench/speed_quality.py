"""Quality cost of the approximate speed options, on held-out photos.

    python bench/speed_quality.py [--model DIR] [--data data/photos] [--seeds 1 2 3]

For each option (int8 transformer, fewer steps for small holes, region decode, and the "fast"
preset that combines them) the same removals as bench/eval_quality.py (box and blob masks of 5%
and 15% of the image) are run exactly and approximately, and PSNR / SSIM inside the mask
against the original photo are compared, averaged over images and seeds. A speed option is
acceptable when its quality figure stays within seed-to-seed noise of the exact path.

Region decode takes its GroupNorm statistics from a full decode of the same square: a first
("cold") edit of an image decodes its first candidate whole and region-decodes the others; the
"warm" rows find the statistics already cached (from a full decode of the image's own tokens,
as a later edit or re-roll of the image does), so every candidate is region-decoded.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from eval_quality import crop, make_mask, mask_seed, psnr, ssim, val_photos  # noqa: E402

from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.runs import edit_image, plan_or_raise, prepare_fill  # noqa: E402
from engine.runtime.settings import Settings  # noqa: E402
from engine.runtime.speed import (  # noqa: E402
    EXACT,
    FAST,
)

OPTIONS = {
    "exact": EXACT,
    "int8": replace(EXACT, int8=True),
    "fewer steps": replace(EXACT, scale_steps=True),
    "region decode": replace(EXACT, region_decode=True),
    "region decode (warm)": replace(EXACT, region_decode=True),
    "fast (all)": FAST,
    "fast (all, warm)": FAST,
}


def prime_stats(bundle, rgb: np.ndarray, mask: np.ndarray, settings: Settings) -> None:
    """The statistics cache as a later edit of this image finds it: filled from a full decode
    of the image's own tokens (the square encoded without a hole), so every candidate of the
    edit is region-decoded (a cold edit decodes its first candidate whole)."""
    for part in plan_or_raise(bundle.manifest, rgb, mask, settings).parts:
        fill = prepare_fill(bundle.manifest, rgb, part)
        own = bundle.encode(fill.model_pixels[None])
        _, stats = bundle.decode_with_stats(own)
        bundle.caches.stats.put(bundle.caches.stats.key(bundle, fill.model_pixels), stats[0])


CASES = [("box", 0.05), ("blob", 0.05), ("box", 0.15), ("blob", 0.15)]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path)
    ap.add_argument("--data", type=Path, default=REPO / "data" / "photos")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--max-images", type=int, default=0)
    args = ap.parse_args()
    bundle = Bundle(args.model or default_bundle_path(), device="cpu")
    size = bundle.manifest.image_size
    photos = val_photos(args.data)[: args.max_images or None]
    images = [
        crop(np.asarray(Image.open(args.data / rel).convert("RGB")), size) for rel, _ in photos
    ]
    scores: dict[str, list[tuple[float, float, float]]] = {name: [] for name in OPTIONS}
    for i, rgb in enumerate(images):
        for kind, frac in CASES:
            mask = make_mask(
                kind, size, frac, np.random.default_rng(mask_seed(0, i, kind, frac, size))
            )
            for name, speed in OPTIONS.items():
                settings = Settings(seeds=tuple(args.seeds), speed=speed)
                bundle.caches.clear()
                if name.endswith("warm)") and bundle.has_region_decoders:
                    prime_stats(bundle, rgb, mask, settings)
                result = edit_image(bundle, rgb, mask, settings)
                if name == "exact":
                    exact_images = result.images
                for out, ref in zip(result.images, exact_images, strict=True):
                    scores[name].append(
                        (psnr(out, rgb, mask), ssim(out, rgb, mask), psnr(out, ref, mask))
                    )
    print(
        f"model {bundle.name}, {len(images)} held-out photos x {len(CASES)} masks "
        f"(box/blob, 5%/15%) x {len(args.seeds)} seeds"
    )
    print(
        "| option | PSNR in mask (dB) | SSIM in mask | vs exact (dB) | "
        "PSNR in mask vs the exact output (dB) |"
    )
    print("|---|---|---|---|---|")
    base = np.mean([v[0] for v in scores["exact"]])
    for name, values in scores.items():
        p = np.array([v[0] for v in values])
        s = np.array([v[1] for v in values])
        same = np.array([v[2] for v in values])
        median = float(np.median(same))  # identical outputs count as +inf
        same_text = "identical" if np.isinf(median) else f"{median:.1f} (median)"
        print(
            f"| {name} | {p.mean():.2f} ± {p.std() / np.sqrt(len(p)):.2f} | {s.mean():.3f} | "
            f"{p.mean() - base:+.2f} | {same_text} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
