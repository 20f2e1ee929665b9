"""Writing an imported bundle: fill the templates into a temporary folder beside the target,
check the graphs with onnxruntime, write MODEL_CARD.md and the manifest (sha256 of every file,
the shared weight files included) and move the folder into place."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from engine.importing.checks import check_region_decoders, check_session
from engine.importing.errors import ExportError
from engine.importing.target import check_target, swap_into_place
from engine.importing.templates import Template, write_graphs
from engine.runtime.manifest import Manifest, check_manifest, write_manifest
from engine.runtime.workdirs import sweep, work_dir

TOKENIZER_WEIGHTS = "tokenizer.weights"
TRANSFORMER_WEIGHTS = "transformer.weights"
CHECK_GRID = 4  # tokens per side of the tokenizer check (its graphs take any multiple of 16 px)


class Steps:
    """Numbered progress lines: "[2/3] writing the graphs ...", with each step's time."""

    def __init__(self, say: Callable[[str], None], names: Sequence[str]):
        self.say, self.names, self.t0 = say, list(names), time.monotonic()
        self.index = 0

    def next(self, text: str) -> None:
        self.index += 1
        self.say(f"[{self.index}/{len(self.names)}] {text} ...")

    def done(self, text: str) -> None:
        self.say(f"      {text} ({time.monotonic() - self.t0:.0f}s)")


def check_graphs(folder: Path, manifest: Manifest, conditional: bool, seed: int = 0) -> list[str]:
    """Run every graph on small inputs with onnxruntime (CPU): outputs of the contract's shapes,
    all finite; the region decoders agree with the plain decoder. Returns report lines."""
    rng = np.random.default_rng(seed)
    grid, k = manifest.grid[0], manifest.codebook_size
    n = grid * grid
    lines = []

    def run(name: str, feeds: dict) -> list[np.ndarray]:
        session = check_session(folder / name)
        outs = session.run(None, feeds)
        if not all(np.isfinite(o).all() for o in outs if o.dtype.kind == "f"):
            raise ExportError(f"{name} gives NaN or infinite values on test inputs")
        return outs

    side = CHECK_GRID
    image = rng.random((1, 3, side * manifest.downsample, side * manifest.downsample), np.float32)
    tokens = run("tokenizer_encoder.onnx", {"image": image})[0]
    if tokens.shape != (1, side, side) or tokens.min() < 0 or tokens.max() >= k:
        raise ExportError(f"tokenizer_encoder.onnx gives tokens of shape {tokens.shape}")
    pixels = run("tokenizer_decoder.onnx", {"tokens": tokens})[0]
    if pixels.shape != image.shape or pixels.min() < 0 or pixels.max() > 1:
        raise ExportError(f"tokenizer_decoder.onnx gives an image of shape {pixels.shape}")
    diff = check_region_decoders(folder, side, k)
    lines.append(f"tokenizer: runs; region decoders agree with the decoder (max |d| {diff:.1e})")
    seq = rng.integers(0, k, (2, n), dtype=np.int64)
    seq[0, rng.permutation(n)[: n // 2]] = manifest.mask_token_id
    seq[1] = manifest.mask_token_id
    feeds = {"tokens": seq}
    if conditional:
        feeds["class_ids"] = np.array([0, len(manifest.class_names or [1]) - 1], np.int64)
    logits = run("transformer.onnx", feeds)[0]
    if logits.shape != (2, n, k):
        raise ExportError(f"transformer.onnx gives logits of shape {logits.shape}")
    features = run("features.onnx", {"tokens": seq})[0]
    if features.shape != (2, manifest.features_dim):
        raise ExportError(f"features.onnx gives features of shape {features.shape}")
    lines.append(
        f"transformer: logits {list(logits.shape)} and features {list(features.shape)}, finite"
    )
    return lines


def write_bundle(
    out_dir: Path,
    *,
    overwrite: bool,
    inputs: Sequence[Path],
    tokenizer: tuple[Template, dict[str, np.ndarray]],
    transformer: tuple[Template, dict[str, np.ndarray]],
    manifest: Manifest,
    card: Callable[[list[str]], str],
    steps: Steps,
) -> Path:
    """Fill, check and install a bundle; the card is made from the check's report lines. The
    tensor dicts are emptied once written, so the check runs without the checkpoint in memory
    (the caller must hold no other reference to the arrays)."""
    check_manifest(manifest, out_dir.name)  # what loading would refuse, before writing anything
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep(out_dir.parent)  # work folders of imports that were killed
    # locked while it runs, removed however it ends (SIGTERM and SIGHUP included)
    with work_dir(out_dir) as tmp:
        steps.next("writing the ONNX graphs and one copy of the weights")
        files = write_graphs(*tokenizer, tmp, TOKENIZER_WEIGHTS)
        files += write_graphs(*transformer, tmp, TRANSFORMER_WEIGHTS)
        tokenizer[1].clear()
        transformer[1].clear()
        size = sum((tmp / f).stat().st_size for f in files)
        steps.done(f"{len(files)} files, {size / 1e9:.2f} GB")
        steps.next("checking the bundle with onnxruntime")
        report = check_graphs(tmp, manifest, manifest.class_names is not None)
        for line in report:
            steps.say("      " + line)
        (tmp / "MODEL_CARD.md").write_text(card(report), encoding="utf-8")
        manifest.files = {name: "" for name in [*files, "MODEL_CARD.md"]}
        write_manifest(tmp, manifest)  # hashes every file
        check_target(out_dir, overwrite, inputs)  # nothing appeared there meanwhile
        swap_into_place(tmp, out_dir)
        steps.done(f"wrote {out_dir}")
    return out_dir


def model_card(manifest: Manifest, params: dict[str, int], report: list[str], details: str) -> str:
    classes = len(manifest.class_names) if manifest.class_names else "unconditional"
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
        f"| classes | {classes} |",
    ]
    lines += [f"| {k} parameters | {v:,} |" for k, v in params.items()]
    lines += ["", "## Import check (onnxruntime, fp32, CPU)", ""]
    lines += [f"- {line}" for line in report]
    lines += ["", details.strip()]
    return "\n".join(lines) + "\n"
