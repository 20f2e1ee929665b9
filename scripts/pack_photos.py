#!/usr/bin/env python3
"""Pack the photo pool (scripts/fetch_photos.py output) into one small .npz.

    python scripts/pack_photos.py data/photos -o data/photos_pack.npz [--short-side 192]

The pack is what travels to an offline GPU machine, so it must be one file,
well under 40 MB, and loadable with numpy + Pillow alone. Images are
downscaled (LANCZOS) so the short side is --short-side (never upscaled; the
aspect ratio is kept) and stored as JPEG q92 bytes.

Pack layout (np.savez, no pickled objects, so np.load(allow_pickle=False) works):
    jpeg         uint8[total]   all JPEG files concatenated
    offsets      int64[n + 1]   image i is jpeg[offsets[i]:offsets[i + 1]]
    labels       int16[n]       class index into class_names
    is_val       bool[n]        True for the validation split (split.json)
    class_names  uint8[...]     UTF-8 JSON list of class names
    paths        uint8[...]     UTF-8 JSON list of the pool-relative paths
    version      int64 0-d      pack format version (1)

load_pack() below depends only on numpy and Pillow, so a training script can
import this file by path:

    spec = importlib.util.spec_from_file_location("pack_photos", "scripts/pack_photos.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    samples, class_names = mod.load_pack("data/photos_pack.npz")
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PACK_VERSION = 1
JPEG_QUALITY = 92
MAX_PACK_BYTES = 40 * 1024 * 1024


def _json_bytes(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def _json_value(arr: np.ndarray):
    return json.loads(arr.tobytes().decode("utf-8"))


def load_pack(path) -> tuple[list[tuple[Image.Image, int, bool]], list[str]]:
    """Read a pack written by pack_photos.py.

    Returns (samples, class_names): samples is a list of
    (PIL.Image in RGB mode, class index, is_val), in pack order;
    class_names[class index] is the class's name.
    """
    with np.load(path, allow_pickle=False) as z:
        version = int(z["version"])
        if version != PACK_VERSION:
            raise ValueError(f"{path}: pack version {version}, expected {PACK_VERSION}")
        jpeg, offsets = z["jpeg"], z["offsets"]
        labels, is_val = z["labels"], z["is_val"]
        class_names = _json_value(z["class_names"])
    samples = []
    for i in range(len(labels)):
        im = Image.open(io.BytesIO(jpeg[offsets[i] : offsets[i + 1]].tobytes()))
        samples.append((im.convert("RGB"), int(labels[i]), bool(is_val[i])))
    return samples, class_names


def resize_short_side(im: Image.Image, short: int) -> Image.Image:
    scale = short / min(im.size)
    if scale >= 1:  # never upscale: it adds no information
        return im
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS)


def encode(path: Path, short: int) -> bytes:
    with Image.open(path) as im:
        small = resize_short_side(im.convert("RGB"), short)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def list_pool(pool: Path) -> tuple[list[str], list[str], dict]:
    """Class names (sorted sub-folders), relative image paths, split map."""
    classes = sorted(d.name for d in pool.iterdir() if d.is_dir() and any(d.glob("*.jpg")))
    paths = [f"{c}/{f.name}" for c in classes for f in sorted((pool / c).glob("*.jpg"))]
    split_file = pool / "split.json"
    split = json.loads(split_file.read_text()) if split_file.exists() else {}
    missing = [p for p in paths if p not in split]
    if missing:
        print(f"warning: {len(missing)} images not in split.json, packed as train", file=sys.stderr)
    return classes, paths, split


def pack(pool: Path, out: Path, short: int) -> dict:
    classes, paths, split = list_pool(pool)
    blobs = [encode(pool / p, short) for p in paths]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # a file object stops savez from appending ".npz"
        np.savez(
            f,
            jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8),
            offsets=offsets,
            labels=np.array([classes.index(p.split("/")[0]) for p in paths], dtype=np.int16),
            is_val=np.array([split.get(p) == "val" for p in paths], dtype=bool),
            class_names=_json_bytes(classes),
            paths=_json_bytes(paths),
            version=np.array(PACK_VERSION, dtype=np.int64),
        )
    return {"classes": classes, "paths": paths, "split": split, "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pool", type=Path, help="folder written by fetch_photos.py")
    ap.add_argument("-o", "--out", type=Path, default=Path("data/photos_pack.npz"))
    ap.add_argument("--short-side", type=int, default=192)
    args = ap.parse_args(argv)
    info = pack(args.pool, args.out, args.short_side)
    n_val = sum(info["split"].get(p) == "val" for p in info["paths"])
    print(
        f"{len(info['paths'])} images ({n_val} val), {len(info['classes'])} classes: "
        f"{', '.join(info['classes'])}"
    )
    print(f"wrote {args.out}: {info['bytes'] / 2**20:.1f} MiB")
    if info["bytes"] > MAX_PACK_BYTES:
        print(
            f"error: pack exceeds {MAX_PACK_BYTES / 2**20:.0f} MiB; lower --short-side",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
