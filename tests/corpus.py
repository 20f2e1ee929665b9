"""A corpus of the files users throw at an editor, generated on the fly (no binary blobs).

Each case names what the loaders must do: load (maybe with a notice) or refuse with a one-line
reason. Used by the CLI and the app loader tests.
"""

from __future__ import annotations

import io
import json
import os
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
    ok: bool  # loads (True) or is refused (False)
    expect: str  # substring of the error or of a notice ("" = no notice needed)


def _photo(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w, 1), y * 255 // max(h, 1), (x + y) % 256], -1).astype(
        np.uint8
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _bomb_png(path: Path) -> None:
    """A valid PNG header claiming 40000x40000 pixels: refused before any decoding."""
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _gray16_png(path: Path) -> None:
    values = (np.mgrid[0:40, 0:60][1] * 1000).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in values)
    header = struct.pack(">IIBBBBB", 60, 40, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


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
    add(
        "truncated.png",
        False,
        "truncated or damaged",
        lambda p: p.write_bytes(png.getvalue()[: len(png.getvalue()) // 2]),
    )
    jpg = io.BytesIO()
    Image.fromarray(_photo(300, 200)).save(jpg, "JPEG", quality=90)
    add(
        "truncated.jpg",
        False,
        "truncated or damaged",
        lambda p: p.write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 3]),
    )
    add("bomb.png", False, "over the safety limit", _bomb_png)
    add(
        "photo.heic",
        False,
        "unsupported image format",
        lambda p: p.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64),
    )
    add("png-named.jpg", True, "holds a PNG image", lambda p: Image.fromarray(rgb).save(p, "PNG"))
    add("one-pixel.png", True, "", lambda p: Image.fromarray(rgb[:1, :1]).save(p))
    add("smaller-than-a-token.png", True, "", lambda p: Image.fromarray(rgb[:5, :7]).save(p))
    add("gray16.png", True, "", _gray16_png)
    add("cmyk.jpg", True, "", lambda p: Image.fromarray(rgb).convert("CMYK").save(p, "JPEG"))
    add("palette-transparent.png", True, "", lambda p: _palette_with_transparency(rgb, p))
    add(
        "gray-alpha.png",
        True,
        "",
        lambda p: Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(p),
    )
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


BUNDLE_DAMAGE = (
    "missing-file",
    "hash-mismatch",
    "truncated-onnx",
    "newer-version",
    "shapes",
    "no-manifest",
    "bad-json",
)

# Hostile manifests: (damage, expected substring of the one-line error). Each is refused before
# any large allocation and without reading files outside the bundle.
HOSTILE_MANIFESTS = {
    "image-size-8192": "outside 8..1024",
    "image-size-16e6": "outside 8..1024",
    "image-size-zero": "outside 8..1024",
    "image-size-negative": "outside 8..1024",
    "image-size-float": "not a whole number",
    "image-size-disagrees": "turns one token into",
    "grid-strings": "field 'grid'",
    "grid-null": "field 'grid'",
    "grid-zero": "field 'grid'",
    "grid-nested": "field 'grid'",
    "grid-not-dividing": "does not divide",
    "codebook-huge": "outside 2..",
    "mask-id-is-code": "is a real code id",
    "mask-id-negative": "outside 0..",
    "mask-id-huge": "outside 0..",
    "null-class-is-class": "null_class_id 0 is a real class id",
    "class-names-ints": "field 'class_names'",
    "class-names-string": "field 'class_names'",
    "decoding-list": "field 'decoding'",
    "decoding-null": "field 'decoding'",
    "decoding-steps-zero": "outside 1..",
    "decoding-steps-huge": "outside 1..",
    "decoding-temperature-nan": "choice_temperature must be a number",
    "decoding-temperature-string": "choice_temperature must be a number",
    "heads-list": "field 'heads'",
    "heads-missing-file": "names a file the bundle does not list",
    "files-absolute": "not a plain name inside the bundle folder",
    "files-dotdot": "not a plain name inside the bundle folder",
    "files-proc": "not a plain name inside the bundle folder",
    "files-symlink-out": "points outside the bundle folder",
    "files-fifo": "not a regular file",
    "files-not-hash": "is not 64 hex digits",
    "name-number": "field 'name'",
    "version-string": "format_version",
    "deep-json": "nested too deeply",
    "manifest-fifo": "not a regular file",
    "features-dim-negative": "outside 1..",
}


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
    elif how in HOSTILE_MANIFESTS:
        if not _hostile(out, manifest, how):
            return out
    else:
        raise ValueError(f"unknown damage {how!r}")
    manifest_path.write_text(json.dumps(manifest))
    return out


def _hostile(out: Path, m: dict, how: str) -> bool:
    """Apply one HOSTILE_MANIFESTS damage to manifest `m` of the bundle copy `out`; False when
    the manifest file was written here already."""
    victim = out.parent / f"secret-{how}.txt"
    edits = {
        "image-size-8192": ("image_size", 8192),
        "image-size-16e6": ("image_size", 16_000_000),
        "image-size-zero": ("image_size", 0),
        "image-size-negative": ("image_size", -64),
        "image-size-float": ("image_size", 64.0),
        "image-size-disagrees": ("image_size", m["image_size"] * 2),
        "grid-strings": ("grid", ["16", "16"]),
        "grid-null": ("grid", None),
        "grid-zero": ("grid", [0, 0]),
        "grid-nested": ("grid", [[16], [16]]),
        "grid-not-dividing": ("grid", [7, 7]),
        "codebook-huge": ("codebook_size", 1 << 40),
        "mask-id-is-code": ("mask_token_id", 5),
        "mask-id-negative": ("mask_token_id", -1),
        "mask-id-huge": ("mask_token_id", 10**30),
        "null-class-is-class": ("null_class_id", 0),
        "class-names-ints": ("class_names", [1, 2, 3]),
        "class-names-string": ("class_names", "cat"),
        "decoding-list": ("decoding", [12, 4.5]),
        "decoding-null": ("decoding", None),
        "decoding-steps-zero": ("decoding", {"steps": 0}),
        "decoding-steps-huge": ("decoding", {"steps": 10**9}),
        "decoding-temperature-nan": ("decoding", {"steps": 8, "choice_temperature": float("nan")}),
        "decoding-temperature-string": ("decoding", {"choice_temperature": "hot"}),
        "heads-list": ("heads", ["a"]),
        "heads-missing-file": ("heads", {"a": "heads/a.npz"}),
        "name-number": ("name", 5),
        "version-string": ("format_version", "1"),
        "features-dim-negative": ("features_dim", -3),
    }
    if how in edits:
        key, value = edits[how]
        m[key] = value
    elif how in ("files-absolute", "files-dotdot", "files-proc", "files-symlink-out", "files-fifo"):
        victim.write_text("private\n")
        digest = sha256_file(victim)
        name = {
            "files-absolute": str(victim),
            "files-dotdot": f"../{victim.name}",
            "files-proc": "/proc/self/mem",
            "files-symlink-out": "link.txt",
            "files-fifo": "pipe.bin",
        }[how]
        if how == "files-symlink-out":
            (out / name).symlink_to(victim)
        elif how == "files-fifo":
            os.mkfifo(out / name)
        m["files"][name] = digest
    elif how == "files-not-hash":
        m["files"]["transformer.onnx"] = "yes"
    elif how == "deep-json":
        (out / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
        return False
    elif how == "manifest-fifo":
        (out / "manifest.json").unlink()
        os.mkfifo(out / "manifest.json")
        return False
    return True
