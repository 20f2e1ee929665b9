"""A corpus of the files users throw at an editor, generated on the fly (no binary blobs).

Each case names what the loaders must do: load (maybe with a notice) or refuse with a one-line
reason. Used by the CLI and the app loader tests.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.runtime.manifest import sha256_file


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    ok: bool                 # loads (True) or is refused (False)
    expect: str              # substring of the error or of a notice ("" = no notice needed)


def _photo(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w, 1), y * 255 // max(h, 1), (x + y) % 256], -1).astype(
        np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _bomb_png(path: Path) -> None:
    """A valid PNG header claiming 40000x40000 pixels: refused before any decoding."""
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def _gray16_png(path: Path) -> None:
    values = (np.mgrid[0:40, 0:60][1] * 1000).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in values)
    header = struct.pack(">IIBBBBB", 60, 40, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def make_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _photo(96, 64)
    cases: list[Case] = []

    def add(name, ok, expect, writer):
        path = folder / name
        writer(path)
        cases.append(Case(name, path, ok, expect))

    add("empty.png", False, "the file is empty", lambda p: p.write_bytes(b""))
    add("notes.jpg", False, "not an image file", lambda p: p.write_text("just some text\n"))
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    add("truncated.png", False, "truncated or damaged",
        lambda p: p.write_bytes(png.getvalue()[: len(png.getvalue()) // 2]))
    jpg = io.BytesIO()
    Image.fromarray(_photo(300, 200)).save(jpg, "JPEG", quality=90)
    add("truncated.jpg", False, "truncated or damaged",
        lambda p: p.write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 3]))
    add("bomb.png", False, "over the safety limit", _bomb_png)
    add("photo.heic", False, "unsupported image format",
        lambda p: p.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64))
    add("png-named.jpg", True, "holds a PNG image",
        lambda p: Image.fromarray(rgb).save(p, "PNG"))
    add("one-pixel.png", True, "", lambda p: Image.fromarray(rgb[:1, :1]).save(p))
    add("smaller-than-a-token.png", True, "", lambda p: Image.fromarray(rgb[:5, :7]).save(p))
    add("gray16.png", True, "", _gray16_png)
    add("cmyk.jpg", True, "", lambda p: Image.fromarray(rgb).convert("CMYK").save(p, "JPEG"))
    add("palette-transparent.png", True, "", lambda p: _palette_with_transparency(rgb, p))
    add("gray-alpha.png", True, "",
        lambda p: Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(p))
    add("exif-rotated.jpg", True, "", lambda p: _exif_rotated(rgb, p))
    add("animated.gif", True, "using the first of 3 frames", lambda p: _animated(p, "GIF"))
    add("animated.webp", True, "using the first of 3 frames", lambda p: _animated(p, "WEBP"))
    return cases


def _palette_with_transparency(rgb: np.ndarray, path: Path) -> None:
    im = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    im.save(path, transparency=0)


def _exif_rotated(rgb: np.ndarray, path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(path, "JPEG", exif=exif.tobytes())


def _animated(path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (40, 30), c) for c in [(200, 0, 0), (0, 200, 0), (0, 0, 200)]]
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


BUNDLE_DAMAGE = ("missing-file", "hash-mismatch", "truncated-onnx", "newer-version", "shapes",
                 "no-manifest", "bad-json")


def damaged_bundle(src: Path, folder: Path, how: str) -> Path:
    """A copy of the bundle `src` broken in one of the BUNDLE_DAMAGE ways."""
    out = folder / f"bundle-{how}"
    shutil.copytree(src, out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    model = out / "transformer.onnx"
    if how == "missing-file":
        model.unlink()
    elif how == "hash-mismatch":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    elif how == "truncated-onnx":  # hash updated, so the damage shows when onnxruntime loads it
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
        manifest["files"]["transformer.onnx"] = sha256_file(model)
    elif how == "newer-version":
        manifest["format_version"] = 99
    elif how == "shapes":
        manifest["codebook_size"] *= 2
        manifest["mask_token_id"] = manifest["codebook_size"]
    elif how == "no-manifest":
        manifest_path.unlink()
        return out
    elif how == "bad-json":
        manifest_path.write_text("{ not json")
        return out
    else:
        raise ValueError(f"unknown damage {how!r}")
    manifest_path.write_text(json.dumps(manifest))
    return out
