"""`mage-studio import-mage CHECKPOINT -o DIR`: an official MAGE `.pth` -> a model bundle,
with NumPy + onnx only.

The checkpoint is read by the restricted reader (engine/importing/torch_zip.py), checked key by
key against the official layout (every key, shape and dtype; finite values), and written into
the graph templates of its variant (engine/importing/templates.py). The transformer feeds the
fixed class id 1100 at sequence position 0 and returns logits sliced to the 1024 codebook
entries; the mask id is 2024 (docs: mage-reference.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.importing.bundle import Steps, model_card, write_bundle
from engine.importing.errors import CheckpointError
from engine.importing.target import check_target
from engine.importing.templates import check_state, load_template
from engine.importing.torch_zip import read_state_dict
from engine.runtime.manifest import Manifest, check_name, sha256_file
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS

WORD_EMBEDDINGS = "token_emb.word_embeddings.weight"
POSITION_IDS = "token_emb.position_ids"
# embedding width -> (official variant name, template)
VARIANTS = {
    768: ("mage_vit_base_patch16", "mage_vit_base"),
    1024: ("mage_vit_large_patch16", "mage_vit_large"),
}
IMAGE_SIZE, GRID, CODEBOOK, MASK_ID = 256, 16, 1024, 2024

CARD = """## Provenance

Converted from the official MAGE checkpoint `{file}` (sha256 `{digest}`), variant
`{variant}`, by MAGE Studio's importer (no PyTorch: a restricted reader of the checkpoint and
graph templates filled with its tensors): every one of its {keys} state_dict keys was checked
for name, shape, dtype and finite values{vq}. The transformer feeds the fixed class id 1100 at
sequence position 0 and returns logits sliced to the 1024 codebook entries; the mask id is 2024.
`transformer.onnx` and `features.onnx` share one copy of the weights (`transformer.weights`);
the tokenizer graphs share `tokenizer.weights`.

Weights: Li et al., "MAGE: MAsked Generative Encoder to Unify Representation Learning and Image
Synthesis" (CVPR 2023), trained on ImageNet-1k; see the official repository for their licence.
"""


def _shape(a: np.ndarray) -> str:
    return "[" + ", ".join(str(s) for s in a.shape) + "]"


def detect_variant(sd: dict[str, np.ndarray]) -> tuple[str, str]:
    """(official variant name, template name) of a MAGE state dict."""
    if WORD_EMBEDDINGS not in sd:
        if "encoder.conv_in.weight" in sd and "quantize.embedding.weight" in sd:
            raise CheckpointError(
                "this is a tokenizer-only file (vqgan_jax_strongaug.ckpt); "
                "pass the MAGE checkpoint and give this one with --vqgan"
            )
        raise CheckpointError(f"not a MAGE checkpoint: key '{WORD_EMBEDDINGS}' is missing")
    width = sd[WORD_EMBEDDINGS].shape[-1]
    if width not in VARIANTS:
        raise CheckpointError(
            f"key '{WORD_EMBEDDINGS}' has shape {_shape(sd[WORD_EMBEDDINGS])}: width {width} "
            "is neither ViT-B (768) nor ViT-L (1024)"
        )
    return VARIANTS[width]


def split_official(
    sd: dict[str, np.ndarray], vqgan_sd: dict[str, np.ndarray] | None = None
) -> tuple[str, str, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(variant, template, tokenizer state dict, MAGE state dict), both checked strictly."""
    variant, template = detect_variant(sd)
    vq = {k[len("vqgan.") :]: v for k, v in sd.items() if k.startswith("vqgan.")}
    mage = {k: v for k, v in sd.items() if not k.startswith("vqgan.")}
    if vqgan_sd is not None:
        vq = vqgan_sd
    elif not vq:
        raise CheckpointError(
            "the checkpoint has no 'vqgan.*' tokenizer weights; "
            "give vqgan_jax_strongaug.ckpt with --vqgan"
        )
    check_state(vq, load_template("vqgan"), "tokenizer")
    check_state(mage, load_template(template), variant)
    # the graphs hold positions 0..256 as constants, as the official model's buffer does
    if not np.array_equal(mage[POSITION_IDS].reshape(-1), np.arange(mage[POSITION_IDS].size)):
        raise CheckpointError(f"{variant}: key '{POSITION_IDS}' is not 0, 1, 2, ...")
    return variant, template, vq, mage


def import_mage(
    checkpoint: str | Path,
    out_dir: str | Path,
    vqgan: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    say=print,
) -> Path:
    """An official MAGE checkpoint (+ an optional standalone tokenizer file) -> a bundle at
    `out_dir`. Refuses (one-line MageError, nothing written) a damaged, hostile or wrong file
    and an output folder that must not be replaced."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    inputs = [checkpoint] + ([Path(vqgan)] if vqgan else [])
    check_target(out_dir, overwrite, inputs)  # before reading a gigabyte
    check_name(name or out_dir.name)  # the manifest's rule, before any reading
    steps = Steps(say, ["read", "write", "check"])
    steps.next(f"reading {checkpoint.name}")
    sd = read_state_dict(checkpoint)
    vq_sd = read_state_dict(vqgan) if vqgan else None
    variant, template, vq, mage = split_official(sd, vq_sd)
    keys = len(sd)
    del sd, vq_sd  # vq and mage hold the only references: the writer frees them as it goes
    digest = sha256_file(checkpoint)
    steps.done(f"{variant}: {keys} keys, all checked")
    manifest = Manifest(
        name=name or out_dir.name,
        image_size=IMAGE_SIZE,
        grid=[GRID, GRID],
        codebook_size=CODEBOOK,
        mask_token_id=MASK_ID,
        decoding={"steps": DEFAULT_STEPS, "choice_temperature": DEFAULT_CHOICE_TEMPERATURE},
        source=f"official MAGE {variant} checkpoint {checkpoint.name} (sha256 {digest[:16]})",
        features_dim=int(mage[WORD_EMBEDDINGS].shape[-1]),
    )
    params = {
        "tokenizer": sum(v.size for v in vq.values()),
        "transformer": sum(v.size for k, v in mage.items() if k != POSITION_IDS),
    }

    def card(report: list[str]) -> str:
        details = CARD.format(
            file=checkpoint.name,
            digest=digest,
            variant=variant,
            keys=keys,
            vq=f" (tokenizer from `{Path(vqgan).name}`)" if vqgan else "",
        )
        return model_card(manifest, params, report, details)

    return write_bundle(
        out_dir,
        overwrite=overwrite,
        inputs=inputs,
        tokenizer=(load_template("vqgan"), vq),
        transformer=(load_template(template), mage),
        manifest=manifest,
        card=card,
        steps=steps,
    )
