#!/usr/bin/env python3
"""Rebuild assets/imagenet_classes.json: the 1000 ImageNet-1k classes with their WordNet synonyms.

    python scripts/make_imagenet_classes.py [--wheel timm-1.0.31-py3-none-any.whl] [--check]

The class list and the synonyms come from the timm wheel, which ships the WordNet synset ids of
ImageNet-1k (`timm/data/_info/imagenet_synsets.txt`, already in class-index order: the sorted
synset ids) and each synset's WordNet lemmas (`timm/data/_info/imagenet_synset_to_lemma.txt`).
Without `--wheel` the pinned version is fetched with `pip download timm==VERSION --no-deps`.
The wheel is read as a zip file: nothing of it is imported or run.

Each class gets its synset id, a display name and its lemma list. The display name is the first
lemma, except where two classes would share one (case-insensitively): those get the readable
names in DISAMBIGUATED. `--check` compares the rebuilt list with the committed file instead of
writing it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "assets" / "imagenet_classes.json"

PACKAGE = "timm"
VERSION = "1.0.31"
LICENCE = "Apache-2.0"
SYNSETS_FILE = "timm/data/_info/imagenet_synsets.txt"
LEMMAS_FILE = "timm/data/_info/imagenet_synset_to_lemma.txt"

# Classes whose first lemma another class also has: synset id -> display name.
DISAMBIGUATED = {
    "n02012849": "crane (bird)",  # large long-necked wading bird
    "n03126707": "crane (machine)",  # lifts and moves heavy objects
    "n03710637": "maillot (tights)",  # tights for dancers or gymnasts
    "n03710721": "maillot (swimsuit)",  # a woman's one-piece bathing suit, tank suit
    "n02113186": "Cardigan Welsh corgi",  # the dog breed; n02963159 is the knitted jacket
}


def fetch_wheel(folder: Path) -> Path:
    """The pinned timm wheel, downloaded into `folder` by pip (no dependencies)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps"]
        + ["--only-binary", ":all:", "-d", str(folder)],
        check=True,
    )
    wheels = sorted(folder.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip gave no {PACKAGE} {VERSION} wheel in {folder}")
    return wheels[0]


def build(wheel: Path) -> dict:
    name = wheel.name
    if not name.startswith(f"{PACKAGE}-{VERSION}-"):
        raise SystemExit(f"{name}: expected a {PACKAGE} {VERSION} wheel")
    with zipfile.ZipFile(wheel) as z:
        synsets = z.read(SYNSETS_FILE).decode("utf-8").split()
        lemma_lines = z.read(LEMMAS_FILE).decode("utf-8").splitlines()
    lemmas = {}
    for line in lemma_lines:
        wnid, _, listed = line.partition("\t")
        lemmas[wnid] = [w.strip() for w in listed.split(",") if w.strip()]
    if len(synsets) != 1000 or synsets != sorted(synsets) or len(set(synsets)) != 1000:
        raise SystemExit(f"{SYNSETS_FILE}: expected 1000 distinct synset ids in sorted order")
    classes: list[dict[str, Any]] = []  # JSON rows
    for index, wnid in enumerate(synsets):
        words = lemmas.get(wnid)
        if not words:
            raise SystemExit(f"{LEMMAS_FILE}: no lemmas for {wnid}")
        display = DISAMBIGUATED.get(wnid, words[0])
        classes.append({"index": index, "wnid": wnid, "name": display, "synonyms": words})
    seen: dict[str, str] = {}
    for c in classes:
        key = c["name"].casefold()
        if key in seen:
            raise SystemExit(f"display name '{c['name']}' of {c['wnid']} repeats {seen[key]}")
        seen[key] = c["wnid"]
    return {
        "description": (
            "The 1000 ImageNet-1k (ILSVRC 2012) classes in class-index order (sorted WordNet "
            "synset ids): synset id, display name and WordNet lemmas (synonyms)."
        ),
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "files": [SYNSETS_FILE, LEMMAS_FILE],
            "licence": f"{LICENCE} (the timm package)",
            "lemmas": "WordNet 3.0, Princeton University: WordNet 3.0 licence (BSD-style)",
            "script": "scripts/make_imagenet_classes.py",
        },
        "classes": classes,
    }


def render(data: dict) -> str:
    """JSON with one class per line (readable diffs, a small file)."""
    head = {k: v for k, v in data.items() if k != "classes"}
    lines = json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "classes": [\n'
    rows = [" " + json.dumps(c, ensure_ascii=False) for c in data["classes"]]
    return lines + ",\n".join(rows) + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {PACKAGE}-{VERSION} wheel")
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = build(args.wheel or fetch_wheel(Path(tmp)))
    text = render(data)
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(REPO)}: {'up to date' if same else 'DIFFERS from the rebuild'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}: {len(data['classes'])} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
