#!/usr/bin/env python3
"""What the texture stage costs per context square, and how soon it can be cancelled.

    nice python bench/texture_speed.py [--data bench/data/removal] [--size 256] [--repeats 3]

For every case of the held-out removal set, the photo is resized to a `--size` px square (the
context square the stage works on) with its mask, and the model's guide is taken from the
default bundle's own fill of that square (one edit with `texture="model"`, cached). Then, per
repeat and interleaved case by case: the guided synthesis (what `texture="photo"` adds after
decoding), the unguided one (classic), fill as class's texture, the built-in NumPy synthesis
that fills where the PyPatchMatch library does not load (with fill as class's guide), and, for
scale, one decode of the square's tokens by the bundle's tokenizer. Reported: median wall and
process CPU seconds of each, and the longest gap between two of the synthesis's yields (a run
is cancelled at a yield, so that gap bounds how long Cancel waits while the stage runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.removal_set import DEFAULT_DIR, load_cases  # noqa: E402
from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.runs import decode_images, edit_image  # noqa: E402
from engine.runtime.settings import CLASS_TEXTURE, Settings  # noqa: E402
from engine.runtime.texture import DEFAULT_OPTIONS, synthesis  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_synthesis(photo, hole, guide, options=DEFAULT_OPTIONS):
    """Runs the generator to its end; returns the longest gap between yields (s)."""
    gen = synthesis(photo, hole, guide, seed=0, options=options)
    last, longest = time.perf_counter(), 0.0
    while True:
        try:
            next(gen)
        except StopIteration:
            return max(longest, time.perf_counter() - last)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    bundle = Bundle(default_bundle_path(), device="cpu")
    cases = load_cases(args.data)[: args.limit]
    prepared = []
    for case in cases:
        size = (args.size, args.size)
        photo = np.asarray(Image.fromarray(case.input).resize(size, Image.Resampling.LANCZOS))
        hole = np.asarray(Image.fromarray(case.mask).resize(size, Image.Resampling.NEAREST))
        model = edit_image(bundle, photo, hole, Settings(texture="model")).images[0]
        side = bundle.manifest.image_size
        small = np.asarray(Image.fromarray(photo).resize((side, side), Image.Resampling.LANCZOS))
        tokens = bundle.encode(small.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
        prepared.append((photo, hole, model, tokens.reshape(1, -1)))
    rows: dict[str, list[tuple[float, float]]] = {
        "guided": [],
        "classic": [],
        "fill as class (the library's detail over the model's colours)": [],
        "built-in guided (where the library does not load)": [],
        "decode": [],
    }
    built_in = replace(CLASS_TEXTURE, native=False)
    gaps: dict[str, list[float]] = {name: [] for name in rows if name != "decode"}
    for _ in range(args.repeats):
        for photo, hole, guide, tokens in prepared:
            for name, g, options in (
                ("guided", guide, DEFAULT_OPTIONS),
                ("classic", None, DEFAULT_OPTIONS),
                (
                    "fill as class (the library's detail over the model's colours)",
                    guide,
                    CLASS_TEXTURE,
                ),
                ("built-in guided (where the library does not load)", guide, built_in),
            ):
                gap, wall, cpu = timed(
                    lambda p=photo, h=hole, g=g, o=options: run_synthesis(p, h, g, o)
                )
                rows[name].append((wall, cpu))
                gaps[name].append(gap)
            _, wall, cpu = timed(lambda t=tokens: decode_images(bundle, t))
            rows["decode"].append((wall, cpu))
    print(f"{len(prepared)} cases at {args.size} px, {args.repeats} repeats, interleaved")
    print("| what | wall (median) | CPU (median) |")
    print("|---|---|---|")
    for name, values in rows.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"| {name} | {wall:.3f} s | {cpu:.3f} s |")
    for name, waits in gaps.items():
        print(
            f"{name}: longest gap between yields (Cancel's wait) {max(waits):.3f} s, "
            f"median {statistics.median(waits):.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
