#!/usr/bin/env python3
"""How far a classifier head's confidence can be trusted on held-out photos, and the temperature
and "not sure" threshold that make it honest.

    python bench/recognition_calibration.py --data data/photos-val [--model BUNDLE]
                                            [--head NAME] [--target 0.7] [--write]

`--data` is a labelled folder of photos the head never trained on (one sub-folder per class,
named as the head's classes; `scripts/make_default_head.py` links the pool's held-out photos
into `data/photos-val`). For each photo the temperature is fitted on all the *other* photos
(leave-one-out), so the calibrated figures are measured on photos the fit did not see:

* accuracy, mean top probability, ECE (expected calibration error) and NLL, raw and calibrated;
* the "not sure" threshold: the lowest top probability at which the answers given reach
  `--target` accuracy, with the share of photos answered (coverage) and their accuracy.

`--write` stores the temperature (fitted on all the photos) and the threshold in the head's
info ("temperature", "not_sure_below", "calibration") and re-hashes the bundle's manifest; the
Recognition tab then says "not sure" below the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.imageio import load_image  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.manifest import read_manifest, write_manifest  # noqa: E402
from engine.runtime.recognition import (  # noqa: E402
    bundle_head,
    calibration,
    fit_temperature,
    image_features,
    labelled_folder,
    softmax,
)


def leave_one_out(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Calibrated probabilities of each photo with the temperature fitted on the others."""
    probs, temps = np.zeros_like(logits), []
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        t = fit_temperature(logits[others], labels[others])
        temps.append(t)
        probs[i] = softmax(logits[i : i + 1] / t)[0]
    return probs, temps


def threshold_for(probs: np.ndarray, labels: np.ndarray, target: float) -> dict:
    """The lowest top probability from which the answers reach `target` accuracy."""
    top, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    for t in np.unique(np.round(top, 3)):
        answered = top >= t
        if answered.any() and right[answered].mean() >= target:
            return {
                "not_sure_below": float(t),
                "coverage": float(answered.mean()),
                "accuracy_when_sure": float(right[answered].mean()),
            }
    return {"not_sure_below": 1.0, "coverage": 0.0, "accuracy_when_sure": float("nan")}


def _read_rgb(path: Path) -> np.ndarray:
    return load_image(path).rgb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="held-out photos, one folder per class")
    parser.add_argument("--model", default=None, help="bundle folder (default: the default)")
    parser.add_argument("--head", default=None, help="head name in the bundle (default: first)")
    parser.add_argument("--target", type=float, default=0.7, help="accuracy when sure")
    parser.add_argument("--write", action="store_true", help="store the result in the head")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    path = Path(args.model) if args.model else default_bundle_path()
    bundle = Bundle(path, device="cpu")
    head = bundle_head(bundle, args.head)
    names, files = labelled_folder(args.data)
    unknown = sorted(set(names) - set(head.class_names))
    if unknown:
        print(f"classes the head does not know: {', '.join(unknown)}", file=sys.stderr)
        return 2
    paths = [p for group in files for p in group]
    labels = np.array(
        [head.class_names.index(n) for n, group in zip(names, files, strict=True) for _ in group]
    )
    feats = image_features(bundle, [partial(_read_rgb, p) for p in paths])  # read as needed
    logits = head.logits(feats).astype(np.float64)
    raw = calibration(softmax(logits), labels)
    loo, temps = leave_one_out(logits, labels)
    calibrated = calibration(loo, labels)
    chosen = threshold_for(loo, labels, args.target)
    t_all = fit_temperature(logits, labels)
    result = {
        "photos": len(labels),
        "raw": raw,
        "calibrated_leave_one_out": calibrated,
        "temperature": t_all,
        "temperature_leave_one_out": [float(min(temps)), float(max(temps))],
        "target_accuracy": args.target,
        **chosen,
    }
    print(f"{bundle.name} head on {len(labels)} held-out photos of {len(names)} classes")
    for label, c in (("raw", raw), ("calibrated (LOO)", calibrated)):
        print(
            f"  {label:17s} accuracy {100 * c['accuracy']:5.1f}%  mean top probability "
            f"{100 * c['mean_confidence']:5.1f}%  ECE {c['ece']:.3f}  NLL {c['nll']:.3f}"
        )
    print(f"  temperature {t_all:.2f} (leave-one-out {min(temps):.2f}..{max(temps):.2f})")
    print(
        f"  not sure below {100 * chosen['not_sure_below']:.1f}%: answers "
        f"{100 * chosen['coverage']:.0f}% of the photos, "
        f"{100 * chosen['accuracy_when_sure']:.0f}% of them right (target {100 * args.target:.0f}%)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.write:
        info = {
            **head.info,
            "temperature": t_all,
            "not_sure_below": chosen["not_sure_below"],
            "calibration": {k: v for k, v in result.items() if k != "temperature"},
        }
        name = args.head or next(iter(bundle.manifest.heads))
        target = bundle.path / bundle.manifest.heads[name]
        replace(head, info=info).save(target)
        write_manifest(bundle.path, read_manifest(bundle.path, verify_hashes=False))
        print(f"  stored in {target} (manifest re-hashed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
