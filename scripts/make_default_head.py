#!/usr/bin/env python3
"""Give the default bundle its classifier head and record its held-out accuracy.

    python scripts/make_default_head.py [--data data/photos] [--model BUNDLE] [--name photos]

The photo pool of `scripts/fetch_photos.py` is split by its `split.json`: the "train" photos are
the ones the bundle was trained on, the "val" photos were held out. This script

1. links the train photos into `<data>-train/<class>/` and the held-out ones into
   `<data>-val/<class>/` (labelled folders: one sub-folder per class);
2. runs `main.py probe --data <data>-train --val 0 --into-bundle NAME` (a linear probe on all
   training photos, stored in the bundle as heads/NAME.npz, so `classify` and the Recognition
   tab use it by default);
3. runs `main.py classify --json` on the held-out photos and scores the answers;
4. writes the result into the bundle's MODEL_CARD.md ("Classifier head" section, replaced on a
   re-run) and re-hashes the manifest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runtime.manifest import read_manifest, write_manifest  # noqa: E402
from engine.runtime.recognition import load_head  # noqa: E402

SECTION = "## Classifier head"


def link_split(data: Path, part: str) -> Path:
    """Labelled folder `<data>-<part>` of symbolic links to the pool's `part` photos."""
    split = json.loads((data / "split.json").read_text(encoding="utf-8"))
    out = data.parent / f"{data.name}-{part}"
    for rel, where in sorted(split.items()):
        if where != part:
            continue
        link = out / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((data / rel).resolve())
    return out


def run(*args: str) -> str:
    cmd = [sys.executable, str(REPO / "main.py"), *args]
    print("$ main.py " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def score(lines: str, val: Path) -> tuple[int, int, int, Counter, Counter]:
    """(top-1 right, top-5 right, total, right per class, total per class)."""
    top1 = top5 = total = 0
    right: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for line in lines.splitlines():
        row = json.loads(line)
        truth = Path(row["image"]).absolute().relative_to(val.absolute()).parts[0]
        names = [t["class"] for t in row["top"]]
        total += 1
        count[truth] += 1
        if names[0] == truth:
            top1 += 1
            right[truth] += 1
        top5 += truth in names[:5]
    return top1, top5, total, right, count


def card_section(
    name: str,
    info: dict,
    top1: int,
    top5: int,
    total: int,
    right: Counter,
    count: Counter,
    n_classes: int,
) -> str:
    train, train_acc = info["train_size"], f"{100 * info['train_accuracy']:.1f}%"
    per_class = ", ".join(f"{c} {right[c]}/{count[c]}" for c in sorted(count))
    return (
        f"{SECTION}\n\n"
        f"`heads/{name}.npz` is a linear probe on the frozen features (`features.onnx`) for the "
        f"{n_classes} classes, so `classify` and the Recognition tab name what is in a photo "
        "out of the box. Made with `python scripts/make_default_head.py`, which runs\n"
        f"`python main.py probe --data data/photos-train --val 0 --into-bundle {name}` on the "
        f"{train} training photos of the pool (the photos this bundle was trained on; "
        f"{info['epochs']} epochs, seed {info['seed']}).\n\n"
        f"- train accuracy: {train_acc}\n"
        f"- held-out accuracy (the {total} photos never trained on, `main.py classify`): "
        f"top-1 {100 * top1 / total:.1f}% ({top1} of {total}), top-5 "
        f"{100 * top5 / total:.1f}% ({top5} of {total}); "
        f"chance: top-1 {100 / n_classes:.0f}%, top-5 "
        f"{100 * min(5, n_classes) / n_classes:.0f}%\n"
        f"- held-out top-1 by class: {per_class}\n\n"
        f"{total} test photos are few (one photo moves top-1 by {100 / total:.1f} points); the "
        "classes are coarse and mixed, so read the top-5 as hints, not labels. A better head "
        "for your own classes: `python main.py probe --data DIR --into-bundle NAME` or the "
        "few-shot section of the Recognition tab.\n"
    )


def update_card(bundle: Path, section: str) -> None:
    manifest = read_manifest(bundle, verify_hashes=True)  # never re-bless a damaged file
    card = bundle / "MODEL_CARD.md"
    text = card.read_text(encoding="utf-8")
    if SECTION in text:  # replace the old section (up to the next "## " heading)
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if end < 0 else text[end:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    card.write_text(text, encoding="utf-8")
    write_manifest(bundle, manifest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "data" / "photos")
    ap.add_argument("--model", type=Path, default=REPO / "exported_models" / "mage-photos-128")
    ap.add_argument("--name", default="photos", help="head name in the bundle")
    ap.add_argument(
        "--no-probe",
        action="store_true",
        help="keep the bundle's head NAME: only score it and update the card",
    )
    args = ap.parse_args()
    data = args.data.resolve()
    train, val = link_split(data, "train"), link_split(data, "val")
    model = str(args.model)
    if not args.no_probe:
        print(
            run(
                "probe",
                "--data",
                str(train.relative_to(REPO) if train.is_relative_to(REPO) else train),
                "--val",
                "0",
                "--into-bundle",
                args.name,
                "--model",
                model,
                "--device",
                "cpu",
                "--overwrite",
            )
        )
    info = load_head(args.model / "heads" / f"{args.name}.npz").info
    answers = run("classify", str(val), "--json", "--model", model, "--device", "cpu")
    top1, top5, total, right, count = score(answers, val)
    n_classes = len(read_manifest(args.model, verify_hashes=False).class_names or count)
    section = card_section(args.name, info, top1, top5, total, right, count, n_classes)
    print(section)
    update_card(args.model, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
