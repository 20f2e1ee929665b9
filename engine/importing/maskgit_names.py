"""Names and layouts of the official MaskGIT checkpoints (google-research/maskgit, Flax msgpack
files): the Flax path of every tensor of the tokenizer (the VQGAN under its PyTorch state-dict
names) and of the transformer, the expected trees, and a hint for a swapped file. Pure Python;
the PyTorch importer (engine/modeling/maskgit_checkpoint.py) and the import layer share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.importing.flax_msgpack import Shape

PATCH = 16  # pixels per token side of the official tokenizers
GRIDS = {16: 256, 32: 512}  # token grid -> image size of the released models
NUM_CLASSES = 1000
TOKENIZER = "tokenizer"
TRANSFORMER = "MaskGIT transformer"
_TOKENIZER_TOP = {"encoder", "decoder", "quantizer"}
_TRANSFORMER_TOP = {"Embed_0", "MlmLayer_0"}


# -- tokenizer: torch name <-> Flax path -------------------------------------------------------

_RES = {"norm1": "GroupNorm_0", "conv1": "Conv_0", "norm2": "GroupNorm_1", "conv2": "Conv_1"}
_RES["nin_shortcut"] = "Conv_2"
_LEAF = {"weight": "scale", "bias": "bias"}  # norms; convs: weight -> kernel


def _block(index: int, rest: str) -> str:
    part, leaf = rest.split(".")
    flax = _RES[part]
    name = "kernel" if flax.startswith("Conv") else _LEAF[leaf]
    return f"ResBlock_{index}/{flax}/{name}"


def _tokenizer_path(key: str, levels: int) -> str:
    """A VQGAN state_dict key -> its Flax path below `params/`."""
    if key == "quantize.embedding.weight":
        return "quantizer/codebook"
    side, rest = key.split(".", 1)
    conv_leaf = "kernel" if rest.endswith("weight") else "bias"
    if m := re.fullmatch(r"down\.(\d+)\.block\.(\d+)\.(.+)", rest):
        return f"{side}/" + _block(2 * int(m[1]) + int(m[2]), m[3])
    if m := re.fullmatch(r"mid\.block_(\d)\.(.+)", rest):
        first = 2 * levels if side == "encoder" else 0
        return f"{side}/" + _block(first + int(m[1]) - 1, m[2])
    if m := re.fullmatch(r"up\.(\d+)\.block\.(\d+)\.(.+)", rest):
        return f"{side}/" + _block(2 + 2 * (levels - 1 - int(m[1])) + int(m[2]), m[3])
    if m := re.fullmatch(r"up\.(\d+)\.upsample\.conv\.(weight|bias)", rest):
        return f"{side}/Conv_{levels - int(m[1])}/{conv_leaf}"
    if m := re.fullmatch(r"norm_out\.(weight|bias)", rest):
        return f"{side}/GroupNorm_0/{_LEAF[m[1]]}"
    if m := re.fullmatch(r"conv_in\.(weight|bias)", rest):
        return f"{side}/Conv_0/{conv_leaf}"
    if m := re.fullmatch(r"conv_out\.(weight|bias)", rest):
        last = 1 if side == "encoder" else levels
        return f"{side}/Conv_{last}/{conv_leaf}"
    raise ValueError(f"no Flax name for {key}")


def _flax_shape_of(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A PyTorch tensor shape -> the Flax one (conv kernels OIHW -> HWIO)."""
    if len(shape) == 4:
        o, i, h, w = shape
        return (h, w, i, o)
    return tuple(shape)


@dataclass(frozen=True)
class TransformerShape:
    """The official transformer's widths (maskgit/configs: 24 layers of 768, 16 heads)."""

    hidden: int = 768
    layers: int = 24
    heads: int = 16
    mlp: int = 3072


# -- transformer: torch name <-> Flax path -----------------------------------------------------


def transformer_spec(cfg: TransformerShape) -> dict[str, Shape]:
    """Expected Flax tree of the official transformer (vocabulary and positions left open)."""
    c, h, d, m = cfg.hidden, cfg.heads, cfg.hidden // cfg.heads, cfg.mlp
    spec: dict[str, Shape] = {
        "Embed_0/word_embeddings/embedding": (None, c),
        "Embed_0/position_embeddings/embedding": (None, c),
        "Embed_0/embeddings_ln/scale": (c,),
        "Embed_0/embeddings_ln/bias": (c,),
        "MlmLayer_0/mlm_dense/kernel": (c, c),
        "MlmLayer_0/mlm_dense/bias": (c,),
        "MlmLayer_0/mlm_ln/scale": (c,),
        "MlmLayer_0/mlm_ln/bias": (c,),
        "MlmLayer_0/mlm_bias/bias": (None,),
    }
    for i in range(cfg.layers):
        at = f"TransformerLayer_{i}/Attention_0"
        for part in ("query", "key", "value"):
            spec[f"{at}/self_attention/{part}/kernel"] = (c, h, d)
            spec[f"{at}/self_attention/{part}/bias"] = (h, d)
        spec[f"{at}/self_attention/out/kernel"] = (h, d, c)
        spec[f"{at}/self_attention/out/bias"] = (c,)
        spec[f"{at}/attention_output_ln/scale"] = (c,)
        spec[f"{at}/attention_output_ln/bias"] = (c,)
        mlp = f"TransformerLayer_{i}/Mlp_0"
        spec[f"{mlp}/intermediate_output/kernel"] = (c, m)
        spec[f"{mlp}/intermediate_output/bias"] = (m,)
        spec[f"{mlp}/layer_output/kernel"] = (m, c)
        spec[f"{mlp}/layer_output/bias"] = (c,)
        spec[f"{mlp}/layer_output_ln/scale"] = (c,)
        spec[f"{mlp}/layer_output_ln/bias"] = (c,)
    return {"params/" + k: v for k, v in spec.items()}


def _swapped(expected: str):
    """A hint for a file of the other kind given in this one's place."""

    def hint(path: str) -> str | None:
        top = path.split("/")[1] if path.startswith("params/") else ""
        if expected == TOKENIZER and (top in _TRANSFORMER_TOP or top.startswith("Transformer")):
            return (
                "this is a MaskGIT transformer checkpoint, not a tokenizer: give the tokenizer "
                "first (import-maskgit TOKENIZER TRANSFORMER)"
            )
        if expected == TRANSFORMER and top in _TOKENIZER_TOP:
            return (
                "this is a tokenizer checkpoint, not a MaskGIT transformer: give the "
                "transformer second (import-maskgit TOKENIZER TRANSFORMER)"
            )
        return None

    return hint
