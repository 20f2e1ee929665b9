"""One transformer forward: the plain export against the fused graph (engine/modeling/optimize.py).

    python bench/fused_transformer.py [--bundle /tmp/vitb_bundle] [--runs 7] [--int8]

Copies the bundle's transformer.onnx, fuses the copy (attention, SkipLayerNorm, BiasGelu) and
times one forward of each (1 x N tokens, 20% masked) with the runtime's session settings,
interleaved, after one warm-up each; with --int8 also the int8 transformer of each. Reports
median wall time and median process CPU time per forward: on a machine shared with other work
the CPU time (both threads together) is the steadier figure of the work done.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from engine.modeling.optimize import optimize_transformer
    from engine.modeling.quantize import quantize_transformer
    from engine.runtime.manifest import read_manifest
    from engine.runtime.sessions import create_session

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bundle", default="/tmp/vitb_bundle")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--int8", action="store_true")
    args = ap.parse_args()
    manifest = read_manifest(args.bundle, verify_hashes=False)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, manifest.codebook_size, (1, manifest.seq_len))
    tokens[0, rng.random(manifest.seq_len) < 0.2] = manifest.mask_token_id
    feeds = {"tokens": tokens}
    if manifest.class_conditional:
        feeds["class_ids"] = np.array([manifest.null_class_id or 0])
    with tempfile.TemporaryDirectory() as tmp:
        files = {"plain": Path(tmp) / "plain.onnx", "fused": Path(tmp) / "fused.onnx"}
        shutil.copyfile(Path(args.bundle) / "transformer.onnx", files["plain"])
        shutil.copyfile(files["plain"], files["fused"])
        print("fused:", optimize_transformer(files["fused"]))
        if args.int8:
            for name in ("plain", "fused"):
                files[f"{name} int8"] = quantize_transformer(
                    files[name], Path(tmp) / f"{name}8.onnx"
                )
        sessions = {name: create_session(path, "cpu")[0] for name, path in files.items()}
        outputs = {name: s.run(None, feeds)[0] for name, s in sessions.items()}  # warm-up
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in sessions}
        for _ in range(args.runs):
            for name, sess in sessions.items():
                time.sleep(0.5)
                wall, cpu = time.perf_counter(), time.process_time()
                sess.run(None, feeds)
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"bundle {args.bundle}, 1 x {manifest.seq_len} tokens (20% masked), {args.runs} runs")
    print("| graph | median wall s | median CPU s | max abs logit diff vs plain | top-1 equal |")
    print("|---|---|---|---|---|")
    base = outputs["plain"]
    for name, values in times.items():
        v = np.array(values)
        diff = float(np.abs(outputs[name] - base).max())
        top1 = float((outputs[name].argmax(-1) == base.argmax(-1)).mean())
        print(
            f"| {name} | {np.median(v[:, 0]):.3f} | {np.median(v[:, 1]):.3f} | "
            f"{diff:.1e} | {top1:.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
