"""`python main.py import-mage CHECKPOINT -o DIR`: official MAGE weights -> model bundle."""

from __future__ import annotations

import time
from pathlib import Path

from engine.modeling.export import check_target, export_bundle
from engine.modeling.mage_checkpoint import build_official, read_checkpoint
from engine.runtime.manifest import sha256_file
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS

CARD = """## Provenance

Converted from the official MAGE checkpoint `{file}` (sha256 `{digest}`), variant
`{variant}`, by MAGE Studio's importer: every one of its {keys} state_dict keys was loaded
strictly{vq}. The transformer feeds the fixed class id 1100 at sequence position 0 and returns
logits sliced to the 1024 codebook entries; the mask id is 2024.

Weights: Li et al., "MAGE: MAsked Generative Encoder to Unify Representation Learning and Image
Synthesis" (CVPR 2023), trained on ImageNet-1k; see the official repository for their licence.
"""


def import_mage(
    checkpoint: str | Path,
    out_dir: str | Path,
    vqgan: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    say=print,
) -> Path:
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    check_target(out_dir, overwrite, [checkpoint, vqgan])  # before minutes of reading
    t0 = time.monotonic()
    say(f"reading {checkpoint} ...")
    sd = read_checkpoint(checkpoint)
    vq_sd = read_checkpoint(vqgan) if vqgan else None
    variant, vq_model, mage = build_official(sd, vq_sd)
    say(f"loaded {variant}: {len(sd)} keys, strict ({time.monotonic() - t0:.0f}s)")
    digest = sha256_file(checkpoint)
    details = CARD.format(
        file=checkpoint.name,
        digest=digest,
        variant=variant,
        keys=len(sd),
        vq=f" (tokenizer from `{Path(vqgan).name}`)" if vqgan else "",
    )
    say("exporting ONNX and checking PyTorch against onnxruntime ...")
    report = export_bundle(
        vq_model,
        mage,
        out_dir,
        name=name or out_dir.name,
        source=f"official MAGE {variant} checkpoint {checkpoint.name} (sha256 {digest[:16]})",
        decoding={"steps": DEFAULT_STEPS, "choice_temperature": DEFAULT_CHOICE_TEMPERATURE},
        details=details,
        overwrite=overwrite,
        inputs=[checkpoint, vqgan],
    )
    for line in report.lines():
        say("  " + line)
    say(f"wrote {out_dir} in {time.monotonic() - t0:.0f}s")
    return out_dir
