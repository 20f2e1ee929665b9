#!/usr/bin/env python3
"""Remake the checked-in files of `assets/`: icon PNGs and the sample photos with their masks.

    python scripts/make_assets.py icons
    python scripts/make_assets.py samples --skimage WHEEL [--pool data/photos]

icons: renders assets/icons/mage-studio.svg (drawn by hand) to mage-studio-<N>.png for each size
in SIZES with Qt's QSvgRenderer (transparent background, antialiased).

samples: copies sample photos out of a scikit-image wheel (`pip download --no-deps
scikit-image`; licences in the docstrings of skimage/data/_fetchers.py: CC0 or public domain),
re-encoded as JPEG where that keeps them small, draws each one's mask (white = remove: a
polygon around the object, grown by a few pixels as a user paints with a margin) and writes
assets/samples.json. With --pool (the training photos of scripts/fetch_photos.py) it first
checks that no sample is, or nearly is, one of the training photos (64-bit difference hash).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
SIZES = (16, 24, 32, 48, 64, 128, 256)

# file in skimage/data -> (output name, title, mask polygons, mask ellipses, grow px, source)
SAMPLES = {
    "coffee.png": (
        "coffee.jpg",
        "Try: remove the spoon",
        [
            [
                (398, 72),
                (410, 66),
                (423, 72),
                (418, 98),
                (392, 190),
                (384, 238),
                (372, 240),
                (378, 190),
            ]
        ],
        [(324, 238, 408, 327)],
        5,
        "scikit-image sample data (skimage.data.coffee): coffee cup, courtesy of Pikolo "
        "Espresso Bar, photo by Rachel Michetti",
    ),
    "astronaut.png": (
        "astronaut.jpg",
        "Try: remove the space shuttle model",
        [
            [
                (398, 0),
                (440, 0),
                (447, 38),
                (456, 50),
                (460, 200),
                (462, 232),
                (468, 262),
                (470, 292),
                (362, 292),
                (356, 232),
                (370, 200),
                (378, 96),
                (384, 46),
                (394, 32),
            ]
        ],
        [],
        5,
        "scikit-image sample data (skimage.data.astronaut): Eileen Collins, NASA Great Images "
        "database",
    ),
    "rocket.jpg": (
        "rocket.jpg",
        "Try: remove the rocket",
        [[(310, 150), (316, 130), (322, 126), (328, 130), (334, 150), (338, 400), (305, 400)]],
        [],
        4,
        "scikit-image sample data (skimage.data.rocket): launch of DSCOVR on Falcon 9, "
        "photo by SpaceX",
    ),
}
LICENCES = {  # as skimage/data/_fetchers.py states them (quoted in assets/CREDITS.md)
    "coffee.png": "CC0-1.0",
    "astronaut.png": "public domain",
    "rocket.jpg": "public domain",
}


def make_icons() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    svg = ASSETS / "icons" / "mage-studio.svg"
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        sys.exit(f"cannot read {svg}")
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = ASSETS / "icons" / f"mage-studio-{size}.png"
        if not image.save(str(out)):
            sys.exit(f"cannot write {out}")
        print(out.relative_to(REPO))


def dhash(image: Image.Image) -> int:
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), int)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def check_not_in_pool(images: dict[str, Image.Image], pool: Path) -> None:
    hashes = {}
    for path in sorted(pool.rglob("*.jpg")):
        with Image.open(path) as im:
            hashes[path] = dhash(im)
    for name, image in images.items():
        h = dhash(image)
        near = [p for p, g in hashes.items() if bin(h ^ g).count("1") <= 10]
        if near:
            sys.exit(f"{name} looks like training photo(s): {', '.join(map(str, near))}")
    print(f"no sample is near any of the {len(hashes)} photos in {pool}")


def mask_of(size, polygons, ellipses, grow: int) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for polygon in polygons:
        draw.polygon(polygon, fill=255)
    for box in ellipses:
        draw.ellipse(box, fill=255)
    if grow:
        mask = mask.filter(ImageFilter.MaxFilter(2 * grow + 1))
    return mask.point(lambda v: 255 if v > 127 else 0).convert("1")


def make_samples(wheel: Path, pool: Path | None) -> None:
    with zipfile.ZipFile(wheel) as z:
        raw = {name: z.read(f"skimage/data/{name}") for name in SAMPLES}
    images = {name: Image.open(io.BytesIO(data)).convert("RGB") for name, data in raw.items()}
    if pool is not None:
        check_not_in_pool(images, pool)
    folder = ASSETS / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (out, title, polygons, ellipses, grow, source) in SAMPLES.items():
        image = images[name]
        assert max(image.size) <= 640, (name, image.size)
        if name.endswith(".jpg"):
            (folder / out).write_bytes(raw[name])  # already a JPEG: no second generation loss
        else:
            image.save(folder / out, quality=90, optimize=True)
        mask_name = Path(out).stem + "-mask.png"
        mask_of(image.size, polygons, ellipses, grow).save(folder / mask_name, optimize=True)
        entries.append(
            {
                "file": f"samples/{out}",
                "mask": f"samples/{mask_name}",
                "title": title,
                "source": source,
                "licence": LICENCES[name],
            }
        )
        print(folder / out, image.size)
    text = json.dumps({"samples": entries}, indent=2, ensure_ascii=False) + "\n"
    (ASSETS / "samples.json").write_text(text, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("icons")
    p = sub.add_parser("samples")
    p.add_argument("--skimage", type=Path, required=True, help="scikit-image wheel")
    p.add_argument("--pool", type=Path, help="training photo pool to check against")
    args = ap.parse_args()
    if args.what == "icons":
        make_icons()
    else:
        make_samples(args.skimage, args.pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
