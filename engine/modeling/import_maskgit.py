"""`python main.py import-maskgit TOKENIZER TRANSFORMER -o DIR`: the official MaskGIT
class-conditional ImageNet checkpoints (google-research/maskgit) -> a model bundle.

The bundle's transformer.onnx takes `tokens` [B,N] (unknown = the manifest's mask_token_id,
the mask embedding row) and `class_ids` [B] (ImageNet class index; the model feeds class token
label + codebook_size at sequence position 0) and returns logits over the codebook at the N
image positions. The manifest lists the 1000 ImageNet classes with their synonyms, has no null
class (MaskGIT has no unconditional mode: every run needs a class) and MaskGIT's decoding
defaults.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from engine.modeling.export import (
    ExportError,
    ParityReport,
    _export,
    check_target,
    export_tokenizer_onnx,
    model_card,
    refuse_disagreement,
    swap_into_place,
)
from engine.modeling.maskgit import MaskGitExport, MaskGitFeatures, MaskGitTransformer
from engine.modeling.maskgit_checkpoint import build_maskgit, image_size
from engine.modeling.region_decode import check_region_decoders
from engine.modeling.vqgan import VQGAN
from engine.runtime.classes import imagenet_classes
from engine.runtime.manifest import Manifest, sha256_file, write_manifest
from engine.runtime.sessions import create_session

# MaskGIT's own decoding defaults (its inference code: 16 iterations, choice temperature 4.5,
# cosine schedule, sampling at temperature 1).
MASKGIT_STEPS = 16
MASKGIT_CHOICE_TEMPERATURE = 4.5

CARD = """## Provenance

Converted from the official MaskGIT checkpoints by MAGE Studio's importer:

- tokenizer `{tokenizer}` (sha256 `{tok_digest}`)
- transformer `{transformer}` (sha256 `{tr_digest}`)

Every tensor of both Flax files was read and checked against the official parameter tree
(shape, float32) and loaded strictly. The transformer takes an ImageNet class index
(`class_ids`, 0..999; the class token is label + {codebook} at sequence position 0), uses mask
id {mask} (the mask embedding row; the official code feeds -1, which wraps to it) and returns
logits sliced to the {codebook} codebook entries at the {tokens} image positions. There is no
unconditional mode: every run needs a class, and classifier-free guidance is not available.
`features.onnx` averages the last layer's states over the image positions with the class
position set to the mask embedding ("class unknown"). The decoder's output is clipped to [0, 1]
as the bundle contract asks; the official decoder does not clip.

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


def export_maskgit_onnx(vqgan: VQGAN, model: MaskGitTransformer, folder: Path) -> None:
    """Write the four ONNX files of a MaskGIT bundle (dynamic batch)."""
    export_tokenizer_onnx(vqgan, folder)
    model.eval()
    n = model.cfg.grid**2
    tokens = torch.randint(0, model.cfg.codebook_size, (2, n))
    class_ids = torch.tensor([0, model.cfg.num_classes - 1])
    with torch.no_grad():
        _export(
            MaskGitExport(model),
            (tokens, class_ids),
            folder / "transformer.onnx",
            ["tokens", "class_ids"],
            ["logits"],
            {"tokens": {0: "B"}, "class_ids": {0: "B"}, "logits": {0: "B"}},
        )
        _export(
            MaskGitFeatures(model),
            (tokens,),
            folder / "features.onnx",
            ["tokens"],
            ["features"],
            {"tokens": {0: "B"}, "features": {0: "B"}},
        )


def check_maskgit_parity(
    vqgan: VQGAN, model: MaskGitTransformer, folder: Path, seed: int = 0
) -> ParityReport:
    """PyTorch vs onnxruntime (CPU) on the same random inputs: a half-masked and a fully
    masked sequence with the first and the last class; the tokenizer at its check size."""
    g = torch.Generator().manual_seed(seed)
    cfg, size, grid = model.cfg, vqgan.cfg.image_size, vqgan.cfg.grid
    n = cfg.grid**2
    images = torch.rand(2, 3, size, size, generator=g)
    ids = torch.randint(0, cfg.codebook_size, (2, n), generator=g)
    grid_ids = torch.randint(0, cfg.codebook_size, (2, grid, grid), generator=g)
    seq = ids.clone()
    seq[0, torch.randperm(n, generator=g)[: n // 2]] = cfg.mask_row
    seq[1] = cfg.mask_row
    class_ids = torch.tensor([0, cfg.num_classes - 1])
    sess = {
        name: create_session(folder / f"{name}.onnx", "cpu")[0]
        for name in ("tokenizer_encoder", "tokenizer_decoder", "transformer", "features")
    }
    with torch.no_grad():
        t_tokens = vqgan.encode(images).numpy()
        t_pixels = vqgan.decode(grid_ids).clamp(0, 1).numpy()
        t_logits = MaskGitExport(model)(seq, class_ids).numpy()
        t_feat = MaskGitFeatures(model)(ids).numpy()
    o_tokens = sess["tokenizer_encoder"].run(None, {"image": images.numpy()})[0]
    o_pixels = sess["tokenizer_decoder"].run(None, {"tokens": grid_ids.numpy()})[0]
    o_logits = sess["transformer"].run(
        None, {"tokens": seq.numpy(), "class_ids": class_ids.numpy()}
    )[0]
    o_feat = sess["features"].run(None, {"tokens": ids.numpy()})[0]
    d_logits = np.abs(o_logits - t_logits)
    return ParityReport(
        encoder_token_agreement=float((o_tokens == t_tokens).mean()),
        decoder_max_abs=float(np.abs(o_pixels - t_pixels).max()),
        logits_max_abs=float(d_logits.max()),
        logits_mean_abs=float(d_logits.mean()),
        features_max_abs=float(np.abs(o_feat - t_feat).max()),
    )


def import_maskgit(
    tokenizer: str | Path,
    transformer: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    overwrite: bool = False,
    say=print,
) -> Path:
    """Official MaskGIT tokenizer + class-conditional transformer (Flax msgpack files) -> a
    bundle at `out_dir`. Refuses (one-line MageError, nothing written) a damaged, truncated or
    wrong file, a pair that does not belong together, and an output folder that must not be
    replaced (see export.check_target)."""
    tokenizer, transformer, out_dir = Path(tokenizer), Path(transformer), Path(out_dir)
    inputs = [tokenizer, transformer]
    check_target(out_dir, overwrite, inputs)  # before a minute of reading
    t0 = time.monotonic()
    say(f"reading {tokenizer.name} and {transformer.name} ...")
    vqgan, model = build_maskgit(tokenizer, transformer)
    cfg = model.cfg
    size = image_size(model)
    say(
        f"loaded MaskGIT ImageNet {size}: {cfg.grid}x{cfg.grid} tokens, "
        f"{cfg.codebook_size} codes, {cfg.num_classes} classes "
        f"({time.monotonic() - t0:.0f}s)"
    )
    names, synonyms = imagenet_classes()
    if len(names) != cfg.num_classes:
        raise ExportError(f"{len(names)} class names for a model with {cfg.num_classes} classes")
    digests = {file: sha256_file(file) for file in inputs}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        say("exporting ONNX and checking PyTorch against onnxruntime ...")
        export_maskgit_onnx(vqgan, model, tmp)
        report = check_maskgit_parity(vqgan, model, tmp)
        for line in report.lines():
            say("  " + line)
        refuse_disagreement(report)
        check_region_decoders(tmp, vqgan.cfg.grid, vqgan.cfg.codebook_size)
        manifest = Manifest(
            name=name or out_dir.name,
            image_size=size,
            grid=[cfg.grid, cfg.grid],
            codebook_size=cfg.codebook_size,
            mask_token_id=cfg.mask_row,
            class_names=list(names),
            null_class_id=None,
            class_synonyms=[list(s) for s in synonyms],
            decoding={"steps": MASKGIT_STEPS, "choice_temperature": MASKGIT_CHOICE_TEMPERATURE},
            source=(
                f"official MaskGIT ImageNet {size} checkpoints {tokenizer.name} "
                f"(sha256 {digests[tokenizer][:16]}) and {transformer.name} "
                f"(sha256 {digests[transformer][:16]})"
            ),
            features_dim=cfg.hidden,
        )
        details = CARD.format(
            tokenizer=tokenizer.name,
            tok_digest=digests[tokenizer],
            transformer=transformer.name,
            tr_digest=digests[transformer],
            codebook=cfg.codebook_size,
            mask=cfg.mask_row,
            tokens=cfg.grid**2,
            steps=MASKGIT_STEPS,
            temperature=MASKGIT_CHOICE_TEMPERATURE,
        )
        params = {
            "tokenizer": sum(p.numel() for p in vqgan.parameters()),
            "transformer": sum(p.numel() for p in model.parameters()),
        }
        (tmp / "MODEL_CARD.md").write_text(model_card(manifest, report, params, details))
        manifest.files = {f.name: "" for f in tmp.iterdir() if f.is_file()}
        write_manifest(tmp, manifest)
        check_target(out_dir, overwrite, inputs)  # nothing appeared there meanwhile
        swap_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"wrote {out_dir} in {time.monotonic() - t0:.0f}s")
    return out_dir
