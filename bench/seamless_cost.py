"""What the seamless (gradient-domain) blend costs per edit on the default model.

    .venv/bin/python bench/seamless_cost.py [--runs 7] [--model DIR]

Edits of a held-out photo (or a smooth pattern when data/photos is missing) at 128 px and 1024 px
with box masks of several sizes, seamless on and off interleaved in one process, one candidate
and three; figures are medians and the on/off ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.imageio import load_image  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.runs import edit_image  # noqa: E402
from engine.runtime.settings import Settings  # noqa: E402


def photo(size: int) -> np.ndarray:
    from PIL import Image

    path = REPO / "data" / "photos" / "animals" / "gcompris-explore_world_animals-bison.jpg"
    if path.is_file():
        rgb = load_image(path).rgb
        side = min(rgb.shape[:2])
        rgb = rgb[:side, :side]
    else:
        y, x = np.mgrid[0:256, 0:256] / 256
        rgb = (np.stack([x, y, (x + y) / 2], -1) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS))


def box(size: int, frac: float) -> np.ndarray:
    side = round(size * frac**0.5)
    mask = np.zeros((size, size), bool)
    start = (size - side) // 2
    mask[start : start + side, start : start + side] = True
    return mask


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", type=Path)
    args = ap.parse_args()
    bundle = Bundle(args.model or default_bundle_path(), device="cpu")
    print(f"model {bundle.manifest.name}; {args.runs} interleaved runs; medians in seconds")
    print("| image | mask | candidates | plain paste | seamless | ratio |")
    print("|---|---|---|---|---|---|")
    for size in (128, 1024):
        rgb = photo(size)
        for frac in (0.05, 0.30, 0.80):
            mask = box(size, frac)
            for n in (1, 3):
                base = Settings(seeds=tuple(range(n)))
                times: dict[bool, list[float]] = {True: [], False: []}
                edit_image(bundle, rgb, mask, base)  # warm-up
                for _ in range(args.runs):
                    for seamless in (False, True):
                        t0 = time.perf_counter()
                        edit_image(bundle, rgb, mask, replace(base, seamless=seamless))
                        times[seamless].append(time.perf_counter() - t0)
                off, on = np.median(times[False]), np.median(times[True])
                print(
                    f"| {size} px | box {int(frac * 100)}% | {n} | {off:.3f} | {on:.3f} | "
                    f"{on / off:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
