#!/usr/bin/env python3
"""Train the default bundle's tokenizer and transformer end to end, on one GPU, on a time budget.

    PYTHONUNBUFFERED=1 python3 scripts/train_default.py --data data/photos_pack.npz \
        --out "$OUT" [--tokenizer-minutes 5.0] [--mage-minutes 4.5]
    python scripts/train_default.py --smoke --out /tmp/smoke     # 20-second CPU rehearsal

Runs `train tokenizer`, then `train mage` on the best tokenizer, in a scratch run folder, and
leaves in --out only what export needs, in files of at most 15 MiB (the device machine returns
at most 8 files of 16 MiB): the tokenizer checkpoint, the transformer checkpoints (best held-out
loss and final) cut into parts, and logs.tar.gz (per-step logs + summary.json). Rejoin the parts
with `cat mage_best.pt.part* > mage_best.pt`, then run `python -m engine.modeling.train export`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("train_default")
PART_BYTES = 15 * 2**20

# The default bundle's sizes: measured with onnxruntime on a 2-core CPU to keep an edit and a
# guided generation under 1 s, and the four fp32 ONNX files under 60 MB (see MODEL_CARD.md).
TOKENIZER = [
    "--image-size",
    "128",
    "--ch",
    "64",
    "--ch-mult",
    "1,1,2,2",
    "--res-blocks",
    "1",
    "--z-channels",
    "128",
    "--codebook-size",
    "1024",
    "--codebook-dim",
    "16",
    "--batch",
    "64",
    "--lr",
    "8e-4",
    "--warmup",
    "200",
    "--restart-every",
    "100",
    # sharper reconstructions: a spectral L1 and a PatchGAN (hinge loss, VQGAN's adaptive
    # weight) that reaches the decoder once the codebook has settled (about the middle of a
    # 5-minute H200 run, which makes 7,000-8,000 steps)
    "--fft-weight",
    "1.0",
    "--adv-weight",
    "0.5",
    "--adv-start",
    "3500",
]
MAGE = [
    "--image-size",
    "128",
    "--dim",
    "256",
    "--depth",
    "5",
    "--heads",
    "8",
    "--decoder-dim",
    "256",
    "--decoder-depth",
    "2",
    "--decoder-heads",
    "8",
    "--batch",
    "256",
    "--lr",
    "6e-4",
    "--warmup",
    "300",
    "--class-dropout",
    "0.1",
    # half the steps mask holes like users paint (blobs, boxes, strokes, objects) with a
    # ring around them, the other half MAGE's random positions
    "--user-masks",
    "0.5",
]
SMOKE_TOKENIZER = [
    "--image-size",
    "32",
    "--ch",
    "32",
    "--ch-mult",
    "1,1,2",
    "--z-channels",
    "32",
    "--codebook-size",
    "64",
    "--codebook-dim",
    "8",
    "--batch",
    "8",
    "--warmup",
    "5",
    "--restart-every",
    "10",
    "--fft-weight",
    "1.0",
    "--adv-weight",
    "0.5",
    "--adv-start",
    "5",
    "--disc-ch",
    "16",
]
SMOKE_MAGE = [
    "--image-size",
    "32",
    "--dim",
    "32",
    "--depth",
    "2",
    "--heads",
    "2",
    "--decoder-dim",
    "32",
    "--decoder-depth",
    "1",
    "--decoder-heads",
    "2",
    "--batch",
    "8",
    "--warmup",
    "5",
    "--user-masks",
    "0.5",
]


def split_file(src: Path, dst_dir: Path) -> list[str]:
    """Copy src into dst_dir as name.part0, name.part1, ... of at most PART_BYTES each."""
    names, data = [], src.read_bytes()
    for i in range(0, max(1, len(data)), PART_BYTES):
        name = f"{src.name}.part{i // PART_BYTES}"
        (dst_dir / name).write_bytes(data[i : i + PART_BYTES])
        names.append(name)
    return names


def slim(src: Path, dst: Path) -> None:
    """A checkpoint without the optimiser state: all that export needs, a third of the size."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("optimizer", "task_state", "rng"):
        ckpt.pop(key, None)
    torch.save(ckpt, dst)


def summary(run: Path) -> dict:
    import torch

    out = {}
    for name in ("tokenizer_best", "mage_best", "mage"):
        path = run / f"{name}.pt"
        if path.exists():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            out[name] = {k: ckpt.get(k) for k in ("step", "metrics", "elapsed_s", "device")}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "photos_pack.npz"))
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "runs" / "default")))
    ap.add_argument("--tokenizer-minutes", type=float, default=5.0)
    ap.add_argument("--mage-minutes", type=float, default=4.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 20 s on a CPU")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    from engine.modeling import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix="train_default."))
    tok_flags, mage_flags = (SMOKE_TOKENIZER, SMOKE_MAGE) if args.smoke else (TOKENIZER, MAGE)
    tok_min, mage_min = (0.12, 0.12) if args.smoke else (args.tokenizer_minutes, args.mage_minutes)
    common = [
        "--data",
        args.data,
        "--out",
        str(run),
        "--seed",
        str(args.seed),
        "--log-seconds",
        "2" if args.smoke else "15",
    ]
    t0 = time.monotonic()
    rc = train.main(["tokenizer", *common, "--minutes", str(tok_min), *tok_flags])
    if rc:
        return rc
    # the tokenizer the transformer learns on is the one that ships: hand it back at once
    (out / "tokenizer_best.pt").write_bytes((run / "tokenizer_best.pt").read_bytes())
    rc = train.main(
        [
            "mage",
            *common,
            "--minutes",
            str(mage_min),
            "--tokenizer",
            str(run / "tokenizer_best.pt"),
            *mage_flags,
        ]
    )
    if rc:
        return rc
    slim(run / "mage.pt", run / "mage_final.pt")
    parts = split_file(run / "mage_best.pt", out) + split_file(run / "mage_final.pt", out)
    info = {"total_s": round(time.monotonic() - t0, 1), **summary(run), "parts": parts}
    (run / "summary.json").write_text(json.dumps(info, indent=1))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for name in ("log_tokenizer.jsonl", "log_mage.jsonl", "summary.json"):
            tar.add(run / name, arcname=name)
    log.info("summary: %s", json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
