"""Offline tests for scripts/fetch_photos.py and scripts/pack_photos.py.

No network or Debian tools: the rcc reader is fed a hand-built resource file,
and the pack round trip uses a tiny synthetic pool.
"""

import importlib.util
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


fetch = _load("fetch_photos")
packer = _load("pack_photos")


def _rcc(files: dict[str, bytes]) -> bytes:
    """A version-2 rcc with one directory 'img' holding zlib-compressed files."""
    names = b""

    def add_name(text):
        nonlocal names
        off = len(names)
        names += struct.pack(">HI", len(text), 0) + text.encode("utf-16-be")
        return off

    data = b""
    nodes = [
        struct.pack(">IHII", 0, 2, 1, 1) + b"\0" * 8,  # root
        struct.pack(">IHII", add_name("img"), 2, len(files), 2) + b"\0" * 8,
    ]  # img/
    for fname, content in files.items():
        packed = struct.pack(">I", len(content)) + zlib.compress(content)
        nodes.append(struct.pack(">IHHHI", add_name(fname), 1, 0, 0, len(data)) + b"\0" * 8)
        data += struct.pack(">I", len(packed)) + packed
    tree = b"".join(nodes)
    header = 20
    return (
        b"qres"
        + struct.pack(">IIII", 2, header, header + len(tree), header + len(tree) + len(data))
        + tree
        + data
        + names
    )


def test_rcc_reader_roundtrip():
    files = {"a.webp": b"hello", "b.png": bytes(range(256)) * 3}
    got = dict(fetch.iter_rcc(_rcc(files)))
    assert got == {f"img/{k}": v for k, v in files.items()}


def test_rcc_reader_rejects_other_files():
    with pytest.raises(ValueError, match="not a Qt rcc file"):
        list(fetch.iter_rcc(b"PK\3\4" + b"\0" * 40))


def test_dep5_last_matching_stanza_wins_and_matches_webp():
    text = (
        "Format: x\n\nFiles: *\nCopyright: someone\nLicense: GPL-3+\n\n"
        "Files: src/activities/erase/resource/fish1.jpg\nCopyright: Ann\n"
        "License: CC0-1.0\nComment: https://example.org/fish\n"
    )
    stanzas = fetch.parse_dep5(text)
    hit = fetch.licence_from_dep5(stanzas, "gcompris/src/activities/erase/resource/fish1.webp")
    assert hit == {
        "licence": "CC0-1.0",
        "from": "debian/copyright per-file",
        "author": "Ann",
        "url": "https://example.org/fish",
    }
    other = fetch.licence_from_dep5(stanzas, "gcompris/src/activities/erase/resource/cat.webp")
    assert other["licence"] == "GPL-3+"
    assert "author" not in other


def test_split_key_is_fixed_by_content():
    sha = "0" * 64
    assert fetch.split_key(sha) == 0.0
    assert 0 <= fetch.split_key("f" * 64) < 1


def test_pack_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    split = {}
    for cls, n in (("cats", 3), ("dogs", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            arr = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.jpg")
            split[f"{cls}/{i}.jpg"] = "val" if i == 0 else "train"
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = tmp_path / "pack.npz"
    assert packer.main([str(tmp_path), "-o", str(out), "--short-side", "64"]) == 0
    samples, names = packer.load_pack(out)
    assert names == ["cats", "dogs"]
    assert [(c, v) for _, c, v in samples] == [
        (0, True),
        (0, False),
        (0, False),
        (1, True),
        (1, False),
    ]
    assert all(im.mode == "RGB" and min(im.size) == 64 for im, _, _ in samples)
    assert samples[0][0].size == (85, 64)  # aspect kept
