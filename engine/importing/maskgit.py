"""`mage-studio import-maskgit TOKENIZER TRANSFORMER -o DIR`: the official MaskGIT
class-conditional ImageNet checkpoints (google-research/maskgit, Flax msgpack) -> a model bundle,
with NumPy + onnx only.

Both files are read as data against their full expected trees (engine/importing/flax_msgpack.py),
renamed and laid out as the PyTorch modules name them (dense kernels [in, out] -> [out, in]; conv
kernels HWIO -> OIHW; views, no copies) and written into the graph templates of the tokenizer and
of the 256 or 512 px transformer (engine/importing/templates.py).

The bundle's transformer.onnx takes `tokens` [B,N] (unknown = the manifest's mask_token_id, the
mask embedding row) and `class_ids` [B] (ImageNet class index; the model feeds class token
label + codebook_size at sequence position 0) and returns logits over the codebook at the N image
positions. The manifest lists the 1000 ImageNet classes with their synonyms, has no null class
(MaskGIT has no unconditional mode) and MaskGIT's decoding defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.importing.bundle import Steps, model_card, write_bundle
from engine.importing.errors import CheckpointError, ExportError
from engine.importing.flax_msgpack import Shape, read_flax_checkpoint
from engine.importing.maskgit_names import (
    GRIDS,
    NUM_CLASSES,
    PATCH,
    TOKENIZER,
    TRANSFORMER,
    TransformerShape,
    _flax_shape_of,
    _swapped,
    _tokenizer_path,
    transformer_spec,
)
from engine.importing.target import check_target
from engine.importing.templates import check_state, load_template
from engine.runtime.classes import imagenet_classes
from engine.runtime.manifest import Manifest, check_name, sha256_file

# MaskGIT's own decoding defaults (its inference code: 16 iterations, choice temperature 4.5,
# cosine schedule, sampling at temperature 1).
MASKGIT_STEPS = 16
MASKGIT_CHOICE_TEMPERATURE = 4.5
LEVELS = 5  # resolution levels of the official tokenizer (ch_mult 1, 1, 2, 2, 4)

CARD = """## Provenance

Converted from the official MaskGIT checkpoints by MAGE Studio's importer (no PyTorch, JAX or
Flax: the Flax files are read as data and the graphs are templates filled with their tensors):

- tokenizer `{tokenizer}` (sha256 `{tok_digest}`)
- transformer `{transformer}` (sha256 `{tr_digest}`)

Every tensor of both Flax files was read and checked against the official parameter tree
(shape, float32, finite values). The transformer takes an ImageNet class index
(`class_ids`, 0..999; the class token is label + {codebook} at sequence position 0), uses mask
id {mask} (the mask embedding row; the official code feeds -1, which wraps to it) and returns
logits sliced to the {codebook} codebook entries at the {tokens} image positions. There is no
unconditional mode: every run needs a class, and classifier-free guidance is not available.
`features.onnx` averages the last layer's states over the image positions with the class
position set to the mask embedding ("class unknown"); it shares `transformer.weights` with
`transformer.onnx`. The decoder's output is clipped to [0, 1] as the bundle contract asks; the
official decoder does not clip.

Decoding defaults are MaskGIT's: {steps} steps, choice temperature {temperature}.

## Licence

Model: Chang et al., "MaskGIT: Masked Generative Image Transformer" (CVPR 2022),
github.com/google-research/maskgit, trained on ImageNet-1k (ILSVRC 2012).

- The code of that repository is Apache-2.0.
- The authors state **no licence for the weights**: the README gives none, and the question
  (google-research/maskgit issue #2, "License of pretrained models") is open without an answer
  from the maintainers. Treat the terms of use of these weights as unstated, not as Apache-2.0.
- Class names and synonyms: WordNet lemmas of the ImageNet-1k synsets (see assets/CREDITS.md).
"""


def tokenizer_state(path: Path) -> dict[str, np.ndarray]:
    """The official tokenizer file -> the VQGAN state dict (PyTorch names and layouts, views
    of the file's arrays); its codebook size is left to check_tokenizer."""
    template = load_template("vqgan")
    names = {key: _tokenizer_path(key, LEVELS) for key in template.state}
    spec: dict[str, Shape] = {
        "params/" + names[k]: _flax_shape_of(s) for k, (_dt, s) in template.state.items()
    }
    spec["params/quantizer/codebook"] = (None, spec["params/quantizer/codebook"][1])
    flax = read_flax_checkpoint(path, spec, TOKENIZER, _swapped(TOKENIZER))
    sd = {}
    for key, name in names.items():
        a = flax.pop("params/" + name)
        sd[key] = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a  # HWIO -> OIHW
    return sd


def check_tokenizer(sd: dict[str, np.ndarray], path: Path) -> None:
    """The tokenizer's codebook is the official size its graphs are made for; every tensor
    fits the template."""
    template = load_template("vqgan")
    codes = sd["quantize.embedding.weight"].shape[0]
    if codes != template.state["quantize.embedding.weight"][1][0]:
        raise CheckpointError(
            f"{path.name} ({TOKENIZER}) has {codes} codes; the official tokenizers have "
            f"{template.state['quantize.embedding.weight'][1][0]}"
        )
    check_state(sd, template, f"{path.name} ({TOKENIZER})", finite=False)


def transformer_state(path: Path, codebook_size: int) -> tuple[int, dict[str, np.ndarray]]:
    """The official class-conditional transformer file -> (token grid, MaskGitTransformer state
    dict as views), refused unless its vocabulary is `codebook_size` codes + 1000 classes + the
    mask and its positions are those of a 256 or 512 px model."""
    shape = TransformerShape()
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
    c = shape.hidden
    sd: dict[str, np.ndarray] = {}

    def take(name: str) -> np.ndarray:
        return flax.pop("params/" + name)

    def ln(target: str, name: str) -> None:
        sd[f"{target}.weight"] = take(f"{name}/scale")
        sd[f"{target}.bias"] = take(f"{name}/bias")

    def linear(target: str, name: str, out_width: int) -> None:
        # q/k/v [in, heads, dim] and out [heads, dim, out] flatten head-major in C order
        sd[f"{target}.weight"] = take(f"{name}/kernel").reshape(-1, out_width).T
        sd[f"{target}.bias"] = take(f"{name}/bias").reshape(-1)

    for table in ("word", "position"):
        sd[f"{table}_embeddings.weight"] = take(f"Embed_0/{table}_embeddings/embedding")
    ln("embeddings_ln", "Embed_0/embeddings_ln")
    for i in range(shape.layers):
        t = f"layers.{i}"
        at, mlp = f"TransformerLayer_{i}/Attention_0", f"TransformerLayer_{i}/Mlp_0"
        for part in ("query", "key", "value"):
            linear(f"{t}.attention.{part}", f"{at}/self_attention/{part}", c)
        linear(f"{t}.attention.out", f"{at}/self_attention/out", c)
        ln(f"{t}.attention_ln", f"{at}/attention_output_ln")
        linear(f"{t}.intermediate", f"{mlp}/intermediate_output", shape.mlp)
        linear(f"{t}.output", f"{mlp}/layer_output", c)
        ln(f"{t}.output_ln", f"{mlp}/layer_output_ln")
    linear("mlm_dense", "MlmLayer_0/mlm_dense", c)
    ln("mlm_ln", "MlmLayer_0/mlm_ln")
    sd["mlm_bias"] = take("MlmLayer_0/mlm_bias/bias")
    check_state(sd, load_template(f"maskgit_{GRIDS[grid]}"), f"{path.name} ({TRANSFORMER})", False)
    return grid, sd


def import_maskgit(
    tokenizer: str | Path,
    transformer: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    overwrite: bool = False,
    say=print,
) -> Path:
    """Official MaskGIT tokenizer + class-conditional transformer -> a bundle at `out_dir`.
    Refuses (one-line MageError, nothing written) a damaged, truncated or wrong file, a pair
    that does not belong together, and an output folder that must not be replaced."""
    tokenizer, transformer, out_dir = Path(tokenizer), Path(transformer), Path(out_dir)
    inputs = [tokenizer, transformer]
    check_target(out_dir, overwrite, inputs)  # before a minute of reading
    check_name(name or out_dir.name)  # the manifest's rule, before any reading
    for file in inputs:
        if not file.is_file():
            raise CheckpointError(f"checkpoint not found: {file}")
    steps = Steps(say, ["read", "write", "check"])
    steps.next(f"reading {tokenizer.name} and {transformer.name}")
    vq = tokenizer_state(tokenizer)
    codebook = int(vq["quantize.embedding.weight"].shape[0])
    grid, sd = transformer_state(transformer, codebook)  # refuses a pair that does not fit
    check_tokenizer(vq, tokenizer)
    size = grid * PATCH
    names, synonyms = imagenet_classes()
    if len(names) != NUM_CLASSES:
        raise ExportError(f"{len(names)} class names for a model with {NUM_CLASSES} classes")
    digests = {file: sha256_file(file) for file in inputs}
    steps.done(
        f"MaskGIT ImageNet {size}: {grid}x{grid} tokens, {codebook} codes, {NUM_CLASSES} classes"
    )
    mask_row = codebook + NUM_CLASSES
    manifest = Manifest(
        name=name or out_dir.name,
        image_size=size,
        grid=[grid, grid],
        codebook_size=codebook,
        mask_token_id=mask_row,
        class_names=list(names),
        null_class_id=None,
        class_synonyms=[list(s) for s in synonyms],
        decoding={"steps": MASKGIT_STEPS, "choice_temperature": MASKGIT_CHOICE_TEMPERATURE},
        source=(
            f"official MaskGIT ImageNet {size} checkpoints {tokenizer.name} "
            f"(sha256 {digests[tokenizer][:16]}) and {transformer.name} "
            f"(sha256 {digests[transformer][:16]})"
        ),
        features_dim=TransformerShape().hidden,
    )
    params = {
        "tokenizer": sum(v.size for v in vq.values()),
        "transformer": sum(v.size for v in sd.values()),
    }

    def card(report: list[str]) -> str:
        details = CARD.format(
            tokenizer=tokenizer.name,
            tok_digest=digests[tokenizer],
            transformer=transformer.name,
            tr_digest=digests[transformer],
            codebook=codebook,
            mask=mask_row,
            tokens=grid * grid,
            steps=MASKGIT_STEPS,
            temperature=MASKGIT_CHOICE_TEMPERATURE,
        )
        return model_card(manifest, params, report, details)

    return write_bundle(
        out_dir,
        overwrite=overwrite,
        inputs=inputs,
        tokenizer=(load_template("vqgan"), vq),
        transformer=(load_template(f"maskgit_{size}"), sd),
        manifest=manifest,
        card=card,
        steps=steps,
    )
