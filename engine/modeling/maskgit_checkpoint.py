"""Import the official MaskGIT checkpoints (google-research/maskgit, Flax msgpack files
`tokenizer_imagenet{256,512}_checkpoint` and `maskgit_imagenet{256,512}_checkpoint`).

The tokenizer is the same VQGAN architecture as MAGE's (engine/modeling/vqgan.py) under Flax
names and layouts; the transformer is engine/modeling/maskgit.py. Both files are read against
their full expected tree (every tensor, its shape, float32), renamed and transposed
(dense kernels [in, out] -> Linear [out, in]; conv kernels HWIO -> OIHW) and loaded strictly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.importing.errors import CheckpointError
from engine.importing.flax_msgpack import Shape, read_flax_checkpoint
from engine.importing.maskgit_names import (
    GRIDS,
    NUM_CLASSES,
    PATCH,
    TOKENIZER,
    TRANSFORMER,
    TransformerShape,
    _swapped,
    _tokenizer_path,
    transformer_spec,
)
from engine.modeling.config import VqganConfig
from engine.modeling.maskgit import MaskGitConfig, MaskGitTransformer
from engine.modeling.vqgan import VQGAN

TOKENIZER_CHECK_SIZE = 256  # px of the tokenizer's export and parity inputs (any size works)


def _flax_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    if tensor.ndim == 4:  # OIHW -> HWIO
        o, i, h, w = tensor.shape
        return (h, w, i, o)
    return tuple(tensor.shape)


def tokenizer_names(vqgan: VQGAN) -> dict[str, str]:
    """{state_dict key: Flax path below params/} for every tensor of the tokenizer."""
    levels = len(vqgan.cfg.ch_mult)
    return {key: _tokenizer_path(key, levels) for key in vqgan.state_dict()}


def tokenizer_spec(vqgan: VQGAN) -> dict[str, Shape]:
    """Expected Flax tree of the official tokenizer (the codebook size left open)."""
    sd = vqgan.state_dict()
    spec: dict[str, Shape] = {}
    for key, path in tokenizer_names(vqgan).items():
        shape: Shape = _flax_shape(sd[key])
        if path == "quantizer/codebook":
            shape = (None, shape[1])
        spec["params/" + path] = shape
    return spec


def _dense(kernel: np.ndarray, width: int) -> torch.Tensor:
    """A Flax dense kernel [in..., out...] flattened to [in, out] -> Linear weight [out, in]."""
    return torch.from_numpy(np.ascontiguousarray(kernel.reshape(-1, width).T))


def _vector(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.reshape(-1).copy())


def transformer_state(flax: dict[str, np.ndarray], cfg: MaskGitConfig) -> dict[str, torch.Tensor]:
    """Flax tensors (keys below params/) -> MaskGitTransformer state_dict. Tensors are taken out
    of `flax` as they are converted, so the file's copy is freed as the model's grows."""
    c = cfg.hidden
    sd: dict[str, torch.Tensor] = {}

    def take(path: str) -> np.ndarray:
        return flax.pop("params/" + path)

    def ln(target: str, path: str) -> None:
        sd[f"{target}.weight"] = _vector(take(f"{path}/scale"))
        sd[f"{target}.bias"] = _vector(take(f"{path}/bias"))

    def linear(target: str, path: str, out_width: int) -> None:
        # q/k/v [in, heads, dim] and out [heads, dim, out] flatten head-major in C order
        sd[f"{target}.weight"] = _dense(take(f"{path}/kernel"), out_width)
        sd[f"{target}.bias"] = _vector(take(f"{path}/bias"))

    for table in ("word", "position"):
        sd[f"{table}_embeddings.weight"] = torch.from_numpy(
            take(f"Embed_0/{table}_embeddings/embedding").copy()
        )
    ln("embeddings_ln", "Embed_0/embeddings_ln")
    for i in range(cfg.layers):
        t = f"layers.{i}"
        at, mlp = f"TransformerLayer_{i}/Attention_0", f"TransformerLayer_{i}/Mlp_0"
        for part in ("query", "key", "value"):
            linear(f"{t}.attention.{part}", f"{at}/self_attention/{part}", c)
        linear(f"{t}.attention.out", f"{at}/self_attention/out", c)
        ln(f"{t}.attention_ln", f"{at}/attention_output_ln")
        linear(f"{t}.intermediate", f"{mlp}/intermediate_output", cfg.mlp)
        linear(f"{t}.output", f"{mlp}/layer_output", c)
        ln(f"{t}.output_ln", f"{mlp}/layer_output_ln")
    linear("mlm_dense", "MlmLayer_0/mlm_dense", c)
    ln("mlm_ln", "MlmLayer_0/mlm_ln")
    sd["mlm_bias"] = _vector(take("MlmLayer_0/mlm_bias/bias"))
    return sd


# -- reading both files ------------------------------------------------------------------------


def _load(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Strict load of converted tensors (already checked for shape, dtype and finite values
    by the reader) into a module built on the meta device: the tensors become its parameters."""
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in sd or sd[key].shape != value.shape:
            got = "missing" if key not in sd else f"of shape {list(sd[key].shape)}"
            raise CheckpointError(f"{what}: tensor for '{key}' is {got}")
    module.load_state_dict(sd, strict=True, assign=True)


def read_tokenizer_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """The official tokenizer file's tensors, checked against its full tree."""
    spec = tokenizer_spec(VQGAN(VqganConfig()))
    return read_flax_checkpoint(path, spec, TOKENIZER, _swapped(TOKENIZER))


def tokenizer_from(flax: dict[str, np.ndarray], image_size: int, what: str) -> VQGAN:
    """Checked tokenizer tensors -> an eval-mode VQGAN for `image_size` px (tensors are taken
    out of `flax` as they are converted)."""
    codes = flax["params/quantizer/codebook"].shape[0]
    with torch.device("meta"):  # no random init: every tensor comes from the file
        vqgan = VQGAN(VqganConfig(image_size=image_size, codebook_size=codes))
    sd = {}
    for key, name in tokenizer_names(vqgan).items():
        a = flax.pop("params/" + name)
        if a.ndim == 4:
            a = a.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        sd[key] = torch.from_numpy(np.ascontiguousarray(a).copy())
    _load(vqgan, sd, what)
    return vqgan.eval()


def read_transformer(path: str | Path, codebook_size: int) -> MaskGitTransformer:
    """The official class-conditional transformer file -> an eval-mode module, refused unless
    its vocabulary is `codebook_size` codes + 1000 classes + the mask."""
    path = Path(path)
    base = MaskGitConfig()
    shape = TransformerShape(base.hidden, base.layers, base.heads, base.mlp)
    flax = read_flax_checkpoint(path, transformer_spec(shape), TRANSFORMER, _swapped(TRANSFORMER))
    vocab = flax["params/Embed_0/word_embeddings/embedding"].shape[0]
    bias = flax["params/MlmLayer_0/mlm_bias/bias"].shape[0]
    if bias != vocab:
        raise CheckpointError(
            f"{path.name} ({TRANSFORMER}): tensor 'params/MlmLayer_0/mlm_bias/bias' has "
            f"{bias} entries but the vocabulary has {vocab}"
        )
    if vocab != codebook_size + NUM_CLASSES + 1:
        raise CheckpointError(
            f"{path.name} ({TRANSFORMER}) has a vocabulary of {vocab}, but a transformer for "
            f"the tokenizer's {codebook_size} codes has {codebook_size + NUM_CLASSES + 1} "
            f"({codebook_size} codes + {NUM_CLASSES} classes + mask): they do not belong together"
        )
    positions = flax["params/Embed_0/position_embeddings/embedding"].shape[0]
    grid = round((positions - 1) ** 0.5)
    if grid * grid + 1 != positions or grid not in GRIDS:
        sizes = " or ".join(f"{g * g + 1} ({GRIDS[g]} px)" for g in GRIDS)
        raise CheckpointError(
            f"{path.name} ({TRANSFORMER}): tensor 'params/Embed_0/position_embeddings/"
            f"embedding' has {positions} positions, expected {sizes}"
        )
    cfg = MaskGitConfig(grid=grid, codebook_size=codebook_size, num_classes=NUM_CLASSES)
    with torch.device("meta"):
        model = MaskGitTransformer(cfg)
    _load(model, transformer_state(flax, cfg), f"{path.name} ({TRANSFORMER})")
    return model.eval()


def build_maskgit(
    tokenizer: str | Path, transformer: str | Path
) -> tuple[VQGAN, MaskGitTransformer]:
    """Both official files -> (tokenizer, transformer), eval mode, checked to belong together
    (the transformer's vocabulary fits the tokenizer's codebook; its position table says the
    image size, 256 or 512 px)."""
    tokenizer, transformer = Path(tokenizer), Path(transformer)
    for file in (tokenizer, transformer):
        if not file.is_file():
            raise CheckpointError(f"checkpoint not found: {file}")
    flax = read_tokenizer_tensors(tokenizer)
    model = read_transformer(transformer, int(flax["params/quantizer/codebook"].shape[0]))
    # The tokenizer is fully convolutional (its ONNX files take any multiple of 16 px): its
    # config size only sizes the inputs of export and parity checks, so 256 px serves both
    # model sizes and keeps the 512 px import affordable. The bundle's image size comes from
    # the transformer's grid (image_size() below).
    vqgan = tokenizer_from(flax, TOKENIZER_CHECK_SIZE, f"{tokenizer.name} ({TOKENIZER})")
    return vqgan, model


def image_size(model: MaskGitTransformer) -> int:
    """The model's image size in pixels (256 or 512), from its token grid."""
    return model.cfg.grid * PATCH
