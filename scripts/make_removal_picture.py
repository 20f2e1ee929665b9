#!/usr/bin/env python3
"""Remake docs/removal.png: the editor removes a bison from a held-out photo.

    python scripts/make_removal_picture.py [--data data/photos] [--out docs/removal.png]
        [--window docs/screenshot.png]

The mask covers the brown (not green) pixels of the animal, grown by a few pixels, the way a
user paints over it; the edit is made by the app itself (`main.py --open --mask --seed --save`)
on the default model, and the picture shows input and result side by side, enlarged.
With --window it also saves the editor window with that mask painted and the cost shown, before
running (`main.py --open --mask --no-run --screenshot`; run it under Xvfb for a headless machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
PHOTO = "animals/gcompris-explore_world_animals-bison.jpg"
OBJECT_BOX = (58, 62, 126, 104)  # x0, y0, x1, y1 around the bison on the left
VIEW_BOX = (0, 0, 240, 168)  # the part of the photo shown, enlarged 2x


def object_mask(rgb: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = OBJECT_BOX
    region = rgb[y0:y1, x0:x1].astype(int)
    brown = region[..., 1] < region[..., 0] + 12  # grass is green-dominant, the animal is not
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = brown * 255
    grown = Image.fromarray(mask).filter(ImageFilter.MaxFilter(9))  # +4 px, a painter's margin
    return np.asarray(grown) > 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "data" / "photos")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "removal.png")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--window", type=Path, help="also save the editor window here")
    args = ap.parse_args()
    rgb = np.asarray(Image.open(args.data / PHOTO).convert("RGB"))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        Image.fromarray(rgb).save(tmp / "bison.png")
        Image.fromarray(object_mask(rgb)).save(tmp / "mask.png")
        opened = [sys.executable, str(REPO / "main.py"), "--device", "cpu"]
        opened += ["--open", str(tmp / "bison.png"), "--mask", str(tmp / "mask.png")]
        edit = ["--seed", str(args.seed), "--save", str(tmp / "after.png")]
        subprocess.run([*opened, *edit, "--screenshot", str(tmp / "window.png")], check=True)
        if args.window is not None:
            # the window with the mask and token grid, before the run
            subprocess.run([*opened, "--no-run", "--screenshot", str(args.window)], check=True)
            print(f"wrote {args.window}")
        after = Image.open(tmp / "after.png").convert("RGB")
        before = Image.fromarray(rgb)
        w, h = VIEW_BOX[2] - VIEW_BOX[0], VIEW_BOX[3] - VIEW_BOX[1]
        gap = 8
        sheet = Image.new("RGB", (4 * w + gap, 2 * h), (255, 255, 255))
        for i, image in enumerate((before, after)):
            view = image.crop(VIEW_BOX).resize((2 * w, 2 * h), Image.Resampling.LANCZOS)
            sheet.paste(view, (i * (2 * w + gap), 0))
        sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
