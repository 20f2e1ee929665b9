"""Soak: many consecutive edits in one process, resident memory sampled.

    python bench/soak.py [--model DIR] [--edits 300] [--size 640x480]

Prints RSS after warm-up and at the end, the growth, and a sample every 50 edits. Goal: growth
under 100 MB over 300 edits (docs/performance.md records the figure).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.runtime.bundle import Bundle
from engine.runtime.locations import default_bundle_path
from engine.runtime.runs import edit_image
from engine.runtime.settings import Settings


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path)
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--size", default="640x480")
    args = ap.parse_args()
    if args.edits < 10:
        ap.error("--edits must be at least 10 (memory is first read after the 10th)")
    w, h = (int(v) for v in args.size.split("x"))
    bundle = Bundle(args.model or default_bundle_path(), device="cpu")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    warm, start = None, time.monotonic()
    for i in range(args.edits):
        mask = np.zeros((h, w), bool)
        side = int(rng.integers(16, min(h, w) // 2))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        mask[y : y + side, x : x + side] = True
        result = edit_image(bundle, rgb, mask, Settings(seeds=(i,)))
        rgb = result.images[0]  # edit the previous result, as a user would
        if i == 9:
            warm = rss_mb()
        if (i + 1) % 50 == 0:
            print(
                f"edit {i + 1:4d}: rss {rss_mb():7.1f} MB  "
                f"{(time.monotonic() - start) / (i + 1):.3f} s/edit",
                flush=True,
            )
    end = rss_mb()
    assert warm is not None  # read after the 10th edit
    print(
        f"model {bundle.name}, {args.edits} edits on {w}x{h}: rss after 10 edits "
        f"{warm:.1f} MB, at the end {end:.1f} MB, growth {end - warm:+.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
