"""Export VQGAN + MAGE modules as a model bundle (contract: README "Model bundles").

Writes tokenizer_encoder.onnx, tokenizer_decoder.onnx, transformer.onnx and features.onnx (and
the optional region decoders, engine/modeling/region_decode.py) into a temporary folder beside
the target, runs PyTorch and onnxruntime on the same inputs and refuses to finish when they
disagree beyond fp32 noise, then writes the manifest (with sha256 of every file) and
MODEL_CARD.md and moves the folder into place.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.importing.bundle import TOKENIZER_WEIGHTS
from engine.importing.checks import check_region_decoders
from engine.importing.errors import ExportError
from engine.importing.target import check_target, swap_into_place
from engine.modeling.from_bundle import tokens_agree_with_bundle
from engine.modeling.mage import MAGE, FeaturesExport, TransformerExport
from engine.modeling.region_decode import export_region_decoders
from engine.modeling.vqgan import VQGAN, TokenizerDecoder, TokenizerEncoder
from engine.runtime.manifest import Manifest, read_manifest, write_manifest
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS
from engine.runtime.sessions import create_session
from engine.runtime.speed import REGION_DECODER_FILE, STATS_DECODER_FILE
from engine.runtime.workdirs import sweep, work_dir

log = logging.getLogger(__name__)
OPSET = 17

# Tolerances that separate fp32 noise from real bugs (measured: tests/fixtures/README.md).
LOGITS_MAX_ABS = 1e-3
PIXELS_MAX_ABS = 1e-3
TOKEN_AGREEMENT_MIN = 0.99


@dataclass
class ParityReport:
    encoder_token_agreement: float
    decoder_max_abs: float
    logits_max_abs: float
    logits_mean_abs: float
    features_max_abs: float

    def lines(self) -> list[str]:
        return [
            f"tokenizer encoder: tokens agree on {self.encoder_token_agreement:.2%}",
            f"tokenizer decoder: max |d| = {self.decoder_max_abs:.2e}",
            f"transformer logits: max |d| = {self.logits_max_abs:.2e}, "
            f"mean |d| = {self.logits_mean_abs:.2e}",
            f"features: max |d| = {self.features_max_abs:.2e}",
        ]


def _export(module, args, path: Path, inputs, outputs, dynamic) -> None:
    # The exporter restores each wrapper's training flag afterwards, recursively: a wrapper
    # left in training mode would switch dropout back on in the wrapped model.
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def export_tokenizer_onnx(vqgan: VQGAN, folder: Path) -> None:
    """Write tokenizer_encoder.onnx and tokenizer_decoder.onnx (dynamic batch, H, W), and the
    optional region decoders (engine/modeling/region_decode.py)."""
    vqgan.eval()
    size, grid = vqgan.cfg.image_size, vqgan.cfg.grid
    image = torch.rand(2, 3, size, size)
    tokens_hw = torch.randint(0, vqgan.cfg.codebook_size, (2, grid, grid))
    with torch.no_grad():
        _export(
            TokenizerEncoder(vqgan),
            (image,),
            folder / "tokenizer_encoder.onnx",
            ["image"],
            ["tokens"],
            {"image": {0: "B", 2: "H", 3: "W"}, "tokens": {0: "B", 1: "h", 2: "w"}},
        )
        _export(
            TokenizerDecoder(vqgan),
            (tokens_hw,),
            folder / "tokenizer_decoder.onnx",
            ["tokens"],
            ["image"],
            {"tokens": {0: "B", 1: "h", 2: "w"}, "image": {0: "B", 2: "H", 3: "W"}},
        )
    export_region_decoders(vqgan, folder)


def export_onnx(vqgan: VQGAN, mage: MAGE, folder: Path) -> None:
    """Write the four ONNX files of a bundle (dynamic batch; tokenizer also dynamic H, W)."""
    export_tokenizer_onnx(vqgan, folder)
    mage.eval()
    grid = vqgan.cfg.grid
    seq = torch.randint(0, mage.cfg.codebook_size, (2, grid * grid))
    with torch.no_grad():
        if mage.cfg.fixed_class_slot is None:
            class_ids = torch.zeros(2, dtype=torch.long)
            _export(
                TransformerExport(mage),
                (seq, class_ids),
                folder / "transformer.onnx",
                ["tokens", "class_ids"],
                ["logits"],
                {"tokens": {0: "B"}, "class_ids": {0: "B"}, "logits": {0: "B"}},
            )
        else:
            _export(
                TransformerExport(mage),
                (seq,),
                folder / "transformer.onnx",
                ["tokens"],
                ["logits"],
                {"tokens": {0: "B"}, "logits": {0: "B"}},
            )
        _export(
            FeaturesExport(mage),
            (seq,),
            folder / "features.onnx",
            ["tokens"],
            ["features"],
            {"tokens": {0: "B"}, "features": {0: "B"}},
        )


def tokenizer_parity(vqgan: VQGAN, folder: Path, seed: int = 0) -> tuple[float, float]:
    """(token agreement, max |pixel difference|) of PyTorch vs the folder's tokenizer ONNX."""
    g = torch.Generator().manual_seed(seed)
    vqgan.eval()
    size, grid = vqgan.cfg.image_size, vqgan.cfg.grid
    images = torch.rand(2, 3, size, size, generator=g)
    ids = torch.randint(0, vqgan.cfg.codebook_size, (2, grid, grid), generator=g)
    enc = create_session(folder / "tokenizer_encoder.onnx", "cpu")[0]
    dec = create_session(folder / "tokenizer_decoder.onnx", "cpu")[0]
    with torch.no_grad():
        t_tokens = vqgan.encode(images).numpy()
        t_pixels = vqgan.decode(ids).clamp(0, 1).numpy()
    o_tokens = enc.run(None, {"image": images.numpy()})[0]
    o_pixels = dec.run(None, {"tokens": ids.numpy()})[0]
    return float((o_tokens == t_tokens).mean()), float(np.abs(o_pixels - t_pixels).max())


def check_parity(vqgan: VQGAN, mage: MAGE, folder: Path, seed: int = 0) -> ParityReport:
    """Run PyTorch and onnxruntime (CPU) on the same inputs and measure the differences."""
    g = torch.Generator().manual_seed(seed)
    vqgan.eval()
    mage.eval()
    cfg, size, grid = mage.cfg, vqgan.cfg.image_size, vqgan.cfg.grid
    images = torch.rand(2, 3, size, size, generator=g)
    ids = torch.randint(0, cfg.codebook_size, (2, grid * grid), generator=g)
    # one half-masked and one fully-masked sequence: the two regimes decoding visits
    seq = ids.clone()
    seq[0, torch.randperm(grid * grid, generator=g)[: grid * grid // 2]] = cfg.mask_token_id
    seq[1] = cfg.mask_token_id
    sess = {
        name: create_session(folder / f"{name}.onnx", "cpu")[0]
        for name in ("tokenizer_encoder", "tokenizer_decoder", "transformer", "features")
    }
    with torch.no_grad():
        t_tokens = vqgan.encode(images).numpy()
        t_pixels = vqgan.decode(ids.reshape(2, grid, grid)).clamp(0, 1).numpy()
        feeds = {"tokens": seq.numpy()}
        class_ids = None
        if cfg.fixed_class_slot is None:
            class_ids = torch.tensor([0, cfg.num_class_slots - 1])
            feeds["class_ids"] = class_ids.numpy()
        t_logits = mage(seq, class_ids).numpy()
        t_feat = mage.features(ids).numpy()
    o_tokens = sess["tokenizer_encoder"].run(None, {"image": images.numpy()})[0]
    grid_ids = ids.reshape(2, grid, grid).numpy()
    o_pixels = sess["tokenizer_decoder"].run(None, {"tokens": grid_ids})[0]
    o_logits = sess["transformer"].run(None, feeds)[0]
    o_feat = sess["features"].run(None, {"tokens": ids.numpy()})[0]
    d_logits = np.abs(o_logits - t_logits)
    return ParityReport(
        encoder_token_agreement=float((o_tokens == t_tokens).mean()),
        decoder_max_abs=float(np.abs(o_pixels - t_pixels).max()),
        logits_max_abs=float(d_logits.max()),
        logits_mean_abs=float(d_logits.mean()),
        features_max_abs=float(np.abs(o_feat - t_feat).max()),
    )


def refuse_disagreement(report: ParityReport) -> None:
    """One ExportError naming every output where PyTorch and onnxruntime differ beyond noise."""
    bad = []  # each test is written so that NaN (which compares false) fails it
    if not report.encoder_token_agreement >= TOKEN_AGREEMENT_MIN:
        bad.append(f"tokens agree on only {report.encoder_token_agreement:.2%}")
    if not report.decoder_max_abs <= PIXELS_MAX_ABS:
        bad.append(f"decoded pixels differ by {report.decoder_max_abs:.2e}")
    if not report.logits_max_abs <= LOGITS_MAX_ABS:
        bad.append(f"logits differ by {report.logits_max_abs:.2e}")
    if not report.features_max_abs <= LOGITS_MAX_ABS * 10:
        bad.append(f"features differ by {report.features_max_abs:.2e}")
    if bad:
        raise ExportError("PyTorch and onnxruntime disagree beyond fp32 noise: " + "; ".join(bad))


def model_card(
    manifest: Manifest, report: ParityReport, params: dict[str, int], details: str
) -> str:
    lines = [
        f"# {manifest.name}",
        "",
        f"Source: {manifest.source}",
        "",
        "| | |",
        "|---|---|",
        f"| image size | {manifest.image_size} px |",
        f"| token grid | {manifest.grid[0]}x{manifest.grid[1]} |",
        f"| codebook | {manifest.codebook_size} |",
        f"| classes | {len(manifest.class_names) if manifest.class_names else 'unconditional'} |",
    ]
    lines += [f"| {k} parameters | {v:,} |" for k, v in params.items()]
    lines += ["", "## Export check (PyTorch vs onnxruntime, fp32, CPU)", ""]
    lines += [f"- {line}" for line in report.lines()]
    if details:
        lines += ["", details.strip()]
    return "\n".join(lines) + "\n"


def export_bundle(
    vqgan: VQGAN,
    mage: MAGE,
    out_dir: str | Path,
    *,
    name: str,
    source: str,
    class_names: list[str] | None = None,
    decoding: dict | None = None,
    details: str = "",
    extra_files: dict[str, str | Path] | None = None,
    overwrite: bool = False,
    inputs: Sequence[str | Path | None] = (),
) -> ParityReport:
    """Export, check parity, write manifest + MODEL_CARD.md; move into `out_dir` at the end.
    `inputs` are the command's input files: a folder holding one is never replaced."""
    out_dir = Path(out_dir)
    check_target(out_dir, overwrite, [*inputs, *(extra_files or {}).values()])
    if (
        mage.cfg.fixed_class_slot is None
        and class_names is not None
        and len(class_names) != mage.cfg.num_class_slots - 1
    ):
        raise ExportError(
            f"{len(class_names)} class names for a model with "
            f"{mage.cfg.num_class_slots - 1} classes"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep(out_dir.parent)  # work folders of exports that were killed
    with work_dir(out_dir) as tmp:  # removed however it ends (SIGTERM and SIGHUP included)
        export_onnx(vqgan, mage, tmp)
        report = check_parity(vqgan, mage, tmp)
        for line in report.lines():
            log.info(line)
        refuse_disagreement(report)
        check_region_decoders(tmp, vqgan.cfg.grid, vqgan.cfg.codebook_size)
        for fname, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / fname)
        cfg = mage.cfg
        conditional = cfg.fixed_class_slot is None
        if conditional and class_names is None:
            class_names = [f"class {i}" for i in range(cfg.num_class_slots - 1)] or None
        manifest = Manifest(
            name=name,
            image_size=vqgan.cfg.image_size,
            grid=[vqgan.cfg.grid] * 2,
            codebook_size=cfg.codebook_size,
            mask_token_id=cfg.mask_token_id,
            class_names=class_names if conditional else None,
            null_class_id=cfg.null_class_id if conditional else None,
            decoding=decoding
            or {"steps": DEFAULT_STEPS, "choice_temperature": DEFAULT_CHOICE_TEMPERATURE},
            source=source,
            features_dim=cfg.embed_dim,
        )
        params = {
            "tokenizer": sum(p.numel() for p in vqgan.parameters()),
            "transformer": sum(p.numel() for p in mage.parameters()),
        }
        (tmp / "MODEL_CARD.md").write_text(model_card(manifest, report, params, details))
        manifest.files = {f.name: "" for f in tmp.iterdir() if f.is_file()}
        write_manifest(tmp, manifest)
        check_target(out_dir, overwrite, [*inputs, *(extra_files or {}).values()])
        swap_into_place(tmp, out_dir)
        return report


def replace_tokenizer(
    vqgan: VQGAN,
    source_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str,
    details: str = "",
    overwrite: bool = False,
    inputs: Sequence[str | Path | None] = (),
) -> tuple[float, float]:
    """A copy of the bundle at `source_dir` with `vqgan` as its tokenizer (its transformer,
    features, heads and credits kept), for a tokenizer fine-tuned with its codes fixed
    (`train tokenizer --decoder-only`). Refuses a tokenizer that tokenises differently from the
    bundle's, since the bundle's transformer was trained on those tokens. Returns the new
    tokenizer's (token agreement, max pixel difference) against PyTorch."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    manifest = read_manifest(source_dir)
    if (vqgan.cfg.image_size, [vqgan.cfg.grid] * 2, vqgan.cfg.codebook_size) != (
        manifest.image_size,
        list(manifest.grid),
        manifest.codebook_size,
    ):
        raise ExportError(
            f"the tokenizer ({vqgan.cfg.image_size} px, grid {vqgan.cfg.grid}, "
            f"{vqgan.cfg.codebook_size} codes) does not fit {source_dir.name}"
        )
    agree = tokens_agree_with_bundle(vqgan, source_dir)
    if not agree >= TOKEN_AGREEMENT_MIN:
        raise ExportError(
            f"the tokenizer gives other tokens than {source_dir.name}'s (they "
            f"agree on {agree:.1%}): its transformer would not fit; fine-tune "
            "with --decoder-only, or export a transformer trained on it"
        )
    check_target(out_dir, overwrite, [source_dir, *inputs])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep(out_dir.parent)  # work folders of exports that were killed
    with work_dir(out_dir) as tmp:  # removed however it ends (SIGTERM and SIGHUP included)
        export_tokenizer_onnx(vqgan, tmp)
        tokens_ok, pixels_diff = tokenizer_parity(vqgan, tmp)
        log.info(
            "tokenizer encoder: tokens agree on %.2f%%; decoder: max |d| = %.2e",
            100 * tokens_ok,
            pixels_diff,
        )
        if not (tokens_ok >= TOKEN_AGREEMENT_MIN and pixels_diff <= PIXELS_MAX_ABS):  # NaN fails
            raise ExportError(
                f"PyTorch and onnxruntime disagree beyond fp32 noise: tokens "
                f"agree on {tokens_ok:.2%}, pixels differ by {pixels_diff:.2e}"
            )
        check_region_decoders(tmp, vqgan.cfg.grid, vqgan.cfg.codebook_size)
        keep = set(manifest.files) - {
            "tokenizer_encoder.onnx",
            "tokenizer_decoder.onnx",
            STATS_DECODER_FILE,
            REGION_DECODER_FILE,
            TOKENIZER_WEIGHTS,  # an imported bundle's tokenizer weights: replaced too
            "MODEL_CARD.md",
        }
        for fname in keep:  # names may hold folders ("heads/photos.npz")
            (tmp / fname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_dir / fname, tmp / fname)
        card = (source_dir / "MODEL_CARD.md").read_text(encoding="utf-8").rstrip()
        card = card.replace(f"# {manifest.name}\n", f"# {name}\n", 1)
        params = sum(p.numel() for p in vqgan.parameters())
        card += (
            f"\n\n## Tokenizer replaced\n\nThis bundle is `{manifest.name}` with a "
            f"fine-tuned tokenizer ({params:,} parameters): its tokens agree with the "
            f"original's on {agree:.2%} of test inputs, so the transformer is kept. Export "
            f"check: tokens agree on {tokens_ok:.2%}, decoder max |d| = {pixels_diff:.2e}."
            + (f"\n\n{details.strip()}" if details else "")
            + "\n"
        )
        (tmp / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        manifest.name = name
        manifest.files = {
            f.relative_to(tmp).as_posix(): "" for f in sorted(tmp.rglob("*")) if f.is_file()
        }
        write_manifest(tmp, manifest)
        check_target(out_dir, overwrite, [source_dir, *inputs])
        swap_into_place(tmp, out_dir)
        return tokens_ok, pixels_diff
