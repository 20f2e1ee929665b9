#!/usr/bin/env python3
"""K-shot recognition accuracy of a bundle's features on the real photo pool.

    python bench/recognition_eval.py [--model BUNDLE] [--data data/photos] [--shots 1 5 10]
                                     [--draws 20] [--json out.json]

For each K, `--draws` random draws of K training photos per class (split.json "train") build
the app's few-shot classifier (engine.runtime.recognition.fit_fewshot: cosine nearest centroid,
or logistic regression when K >= 5 and cross-validation prefers it), which is scored on

* val: the held-out photos (split.json "val"; few, so the numbers are coarse), and
* rest: every photo of the pool not drawn for that draw (larger, steadier, but includes photos
  the model may have seen, unlabelled, during self-supervised training).

Only classes with at least max(K) training photos take part. The same classifier on 16x16
colour thumbnails (same resize and crop, 768 numbers) is the raw-pixel baseline; a linear probe
on all training photos and chance are printed beside. Mean +- std over the draws.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.imageio import load_image  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.recognition import (  # noqa: E402
    accuracy,
    fit_fewshot,
    fit_linear_probe,
    image_features,
    preprocess,
)


def load_pool(data: Path, min_train: int):
    split = json.loads((data / "split.json").read_text(encoding="utf-8"))
    by_class: dict[str, list[tuple[str, str]]] = {}
    for rel, part in sorted(split.items()):
        by_class.setdefault(rel.split("/")[0], []).append((rel, part))
    names = [c for c, items in by_class.items() if sum(p == "train" for _, p in items) >= min_train]
    dropped = sorted(set(by_class) - set(names))
    files, labels, parts = [], [], []
    for c, name in enumerate(names):
        for rel, part in by_class[name]:
            files.append(data / rel)
            labels.append(c)
            parts.append(part)
    return names, dropped, files, np.array(labels), np.array(parts)


def thumbnails(rgbs, size: int, thumb: int = 16) -> np.ndarray:
    out = []
    for rgb in rgbs:
        x = preprocess(rgb, size)  # (3, S, S) in [0,1], same crop as the model sees
        img = Image.fromarray((x.transpose(1, 2, 0) * 255).round().astype(np.uint8))
        out.append(
            np.asarray(img.resize((thumb, thumb), Image.Resampling.BOX), np.float32).ravel() / 255
        )
    return np.stack(out)


def draw_support(labels, train_mask, k, rng) -> np.ndarray:
    return np.concatenate(
        [
            rng.choice(np.flatnonzero((labels == c) & train_mask), k, replace=False)
            for c in np.unique(labels)
        ]
    )


def evaluate(feats: dict[str, np.ndarray], labels, parts, names, shots, draws, seed):
    train = parts == "train"
    val = parts == "val"
    rows = []
    for k in shots:
        scores: dict[tuple[str, str], list[float]] = {
            (f, where): [] for f in feats for where in ("val", "rest")
        }
        kinds = []
        for d in range(draws):
            rng = np.random.default_rng([seed, k, d])
            support = draw_support(labels, train, k, rng)
            rest = np.setdiff1d(np.arange(len(labels)), support)
            for f, x in feats.items():
                head = fit_fewshot(x[support], labels[support], names, seed=d)
                kinds.append(head.kind)
                scores[(f, "val")].append(accuracy(head, x[val], labels[val]))
                scores[(f, "rest")].append(accuracy(head, x[rest], labels[rest]))
        for (f, where), s in scores.items():
            rows.append(
                {
                    "shots": k,
                    "features": f,
                    "eval": where,
                    "mean": float(np.mean(s)),
                    "std": float(np.std(s)),
                    "draws": draws,
                }
            )
        rows[-1]["logistic_share"] = kinds.count("linear") / len(kinds)
    probe = {}
    for f, x in feats.items():
        head = fit_linear_probe(x[train], labels[train], names, epochs=200)
        probe[f] = accuracy(head, x[val], labels[val])
    return rows, probe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="bundle folder (default: the default bundle)")
    ap.add_argument("--data", type=Path, default=REPO / "data" / "photos")
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    bundle = Bundle(args.model or default_bundle_path(), device=args.device)
    names, dropped, files, labels, parts = load_pool(args.data, max(args.shots))
    t0 = time.perf_counter()
    rgbs = [load_image(f).rgb for f in files]
    model_feats = image_features(bundle, rgbs, batch_size=16)
    seconds = time.perf_counter() - t0
    feats = {"model": model_feats, "pixels16": thumbnails(rgbs, bundle.manifest.image_size)}
    rows, probe = evaluate(feats, labels, parts, names, args.shots, args.draws, args.seed)

    info = {
        "bundle": bundle.name,
        "bundle_path": str(bundle.path),
        "image_size": bundle.manifest.image_size,
        "feature_dim": int(model_feats.shape[1]),
        "classes": names,
        "left_out_classes": dropped,
        "train_photos": int((parts == "train").sum()),
        "val_photos": int((parts == "val").sum()),
        "chance": 1 / len(names),
        "feature_seconds": round(seconds, 1),
        "device": bundle.device,
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}".replace("  ", " "),
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "results": rows,
        "linear_probe_val": probe,
    }
    print(
        f"bundle {bundle.name} ({info['image_size']} px, D={info['feature_dim']}); "
        f"{len(names)} classes (left out, too few photos: {', '.join(dropped) or 'none'}); "
        f"{info['train_photos']} train / {info['val_photos']} val photos; "
        f"features in {seconds:.1f} s on {info['device']}"
    )
    print(f"chance {100 * info['chance']:.1f}%   {args.draws} draws per K, mean +- std")
    print(f"{'K':>3}  {'eval':<5} {'model features':>16}  {'16x16 pixels':>16}")
    for k in args.shots:
        for where in ("val", "rest"):
            cells = {r["features"]: r for r in rows if r["shots"] == k and r["eval"] == where}
            print(
                f"{k:>3}  {where:<5} "
                + "  ".join(
                    f"{100 * cells[f]['mean']:7.1f} +- {100 * cells[f]['std']:4.1f}"
                    for f in ("model", "pixels16")
                )
            )
    print(
        "linear probe on all train photos, val accuracy: "
        + ", ".join(f"{f} {100 * a:.1f}%" for f, a in probe.items())
    )
    if args.json:
        args.json.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
