"""Import official MAGE checkpoints (LTH14/mage `.pth`, tokenizer `vqgan_jax_strongaug.ckpt`).

Checks are strict and pure dict -> dict where possible (nanoGPT / timm style): every key of the
official layout must be present with its exact shape, and nothing unknown may be left over.
Problems surface as one-line `CheckpointError`s that name the key and the shapes.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from engine.importing.errors import CheckpointError
from engine.modeling.config import MAGE_VIT_BASE, MAGE_VIT_LARGE, VQGAN_OFFICIAL, MageConfig
from engine.modeling.mage import MAGE
from engine.modeling.vqgan import VQGAN

VARIANTS = {
    768: ("mage_vit_base_patch16", MAGE_VIT_BASE),
    1024: ("mage_vit_large_patch16", MAGE_VIT_LARGE),
}


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file as a flat state_dict ({'model': sd} and {'state_dict': sd} unwrap)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch checkpoint "
            f"(truncated or damaged?): {first[:160]}"
        ) from None
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path.name} holds no state_dict of tensors")
    return obj


def _shape(t) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def check_strict(expected: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], what: str) -> None:
    """`sd` against a module's state_dict `expected`: one-line errors naming the first offending
    key and its shapes."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{what}: key '{missing[0]}' is missing{more}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{what}: unexpected key '{unexpected[0]}'{more}")
    for k, v in expected.items():
        if sd[k].shape != v.shape:
            raise CheckpointError(
                f"{what}: key '{k}' has shape {_shape(sd[k])}, expected {_shape(v)}"
            )
        if sd[k].dtype != v.dtype:
            raise CheckpointError(f"{what}: key '{k}' has dtype {sd[k].dtype}, expected {v.dtype}")
        if sd[k].is_floating_point() and not torch.isfinite(sd[k]).all():
            raise CheckpointError(f"{what}: key '{k}' contains NaN or infinite values")


def detect_variant(sd: dict[str, torch.Tensor]) -> tuple[str, MageConfig]:
    key = "token_emb.word_embeddings.weight"
    if key not in sd:
        if "encoder.conv_in.weight" in sd and "quantize.embedding.weight" in sd:
            raise CheckpointError(
                "this is a tokenizer-only file (vqgan_jax_strongaug.ckpt); "
                "pass the MAGE checkpoint and give this one with --vqgan"
            )
        raise CheckpointError(f"not a MAGE checkpoint: key '{key}' is missing")
    width = sd[key].shape[-1]
    if width not in VARIANTS:
        raise CheckpointError(
            f"key '{key}' has shape {_shape(sd[key])}: width {width} is "
            "neither ViT-B (768) nor ViT-L (1024)"
        )
    return VARIANTS[width]


def build_official(
    mage_sd: dict[str, torch.Tensor], vqgan_sd: dict[str, torch.Tensor] | None = None
) -> tuple[str, VQGAN, MAGE]:
    """Official checkpoint (+ optional standalone tokenizer state_dict) -> eval-mode modules."""
    variant, cfg = detect_variant(mage_sd)
    vq_part = {k[len("vqgan.") :]: v for k, v in mage_sd.items() if k.startswith("vqgan.")}
    mage_part = {k: v for k, v in mage_sd.items() if not k.startswith("vqgan.")}
    if vqgan_sd is not None:
        vq_part = vqgan_sd
    elif not vq_part:
        raise CheckpointError(
            "the checkpoint has no 'vqgan.*' tokenizer weights; "
            "give vqgan_jax_strongaug.ckpt with --vqgan"
        )
    # checked first against modules on the meta device (shapes and dtypes, no memory, no random
    # initialisation): a wrong file is refused before 200-460 million weights are made
    with torch.device("meta"):
        vqgan_layout, mage_layout = VQGAN(VQGAN_OFFICIAL).state_dict(), MAGE(cfg).state_dict()
    check_strict(vqgan_layout, vq_part, "tokenizer")
    check_strict(mage_layout, mage_part, variant)
    vqgan, mage = VQGAN(VQGAN_OFFICIAL), MAGE(cfg)
    vqgan.load_state_dict(vq_part, strict=True)
    mage.load_state_dict(mage_part, strict=True)
    return variant, vqgan.eval(), mage.eval()
