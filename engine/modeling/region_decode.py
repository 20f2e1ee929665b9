"""Tokenizer decoders for an exact-quality region decode (optional bundle files).

A region decode runs the VQGAN decoder on a crop of the token grid. Its convolutions see
nearly all the context they need within a margin of a few tokens, but every GroupNorm takes
its statistics over the whole input, so a crop normalises with other statistics than the full
grid and its pixels come out visibly different. Two extra decoders fix that:

- `tokenizer_decoder_stats.onnx`: in "tokens" int64 [B,h,w]; out "image" float32 [B,3,H,W]
  (the plain decoder's pixels, clipped to [0,1]) and "stats" float32 [B,L,G,2]: the mean and
  variance of each of the decoder's L GroupNorms (G groups), in the order they run.
- `tokenizer_decoder_region.onnx`: in "tokens" int64 [B,h',w'] (any crop) and "stats"
  float32 [B,L,G,2]; out "image" float32 [B,3,h'*d,w'*d]: the crop decoded with every
  GroupNorm using the given statistics instead of the crop's own.

The runtime keeps the statistics of a full decode per context square and decodes later
candidates and edits of that square as crops (engine/runtime/speed.py).

    python -m engine.modeling.region_decode BUNDLE

adds both files to an existing bundle, rebuilding the PyTorch tokenizer from the bundle's own
ONNX (engine/modeling/from_bundle.py), and checks them before it writes the manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.modeling.vqgan import VQGAN
from engine.runtime.errors import MageError
from engine.runtime.manifest import read_manifest, write_manifest
from engine.runtime.sessions import create_session
from engine.runtime.speed import REGION_DECODER_FILE, STATS_DECODER_FILE

OPSET = 17
PIXELS_MAX_ABS = 1e-3  # the stats decoder against the plain decoder (fp32 noise)


class RegionDecoderError(MageError):
    """The region decoders disagree with the tokenizer's own decoder."""


def _group_stats(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    xg = x.reshape(x.shape[0], groups, -1)
    mean = xg.mean(-1)
    var = (xg - mean.unsqueeze(-1)).pow(2).mean(-1)
    return mean, var


def _normalise(norm: nn.GroupNorm, x: torch.Tensor, mean, var) -> torch.Tensor:
    xg = x.reshape(x.shape[0], norm.num_groups, -1)
    y = ((xg - mean.unsqueeze(-1)) * torch.rsqrt(var.unsqueeze(-1) + norm.eps)).reshape(x.shape)
    return y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)


@contextlib.contextmanager
def _norms(decoder: nn.Module, record: list | None = None, given=None) -> Iterator[None]:
    """Within the block, every GroupNorm of `decoder` appends its (mean, var) to `record`, or
    normalises with the next (mean, var) of `given` ([B,L,G,2], in call order)."""
    norms = [m for m in decoder.modules() if isinstance(m, nn.GroupNorm)]
    calls = [0]

    def forward_of(norm: nn.GroupNorm):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if given is None:
                mean, var = _group_stats(x, norm.num_groups)
                assert record is not None
                record.append(torch.stack([mean, var], -1))
            else:
                mean, var = given[:, calls[0], :, 0], given[:, calls[0], :, 1]
            calls[0] += 1
            return _normalise(norm, x, mean, var)

        return forward

    for norm in norms:
        norm.forward = forward_of(norm)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward


class DecoderWithStats(nn.Module):
    """tokens [B,h,w] -> image [B,3,H,W] clipped to [0,1], stats [B,L,G,2]."""

    def __init__(self, vqgan: VQGAN):
        super().__init__()
        self.vqgan = vqgan

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        record: list[torch.Tensor] = []
        with _norms(self.vqgan.decoder, record=record):
            image = self.vqgan.decode(tokens).clamp(0.0, 1.0)
        return image, torch.stack(record, 1)


class DecoderWithGivenStats(nn.Module):
    """tokens [B,h',w'], stats [B,L,G,2] -> image [B,3,h'*d,w'*d] clipped to [0,1]."""

    def __init__(self, vqgan: VQGAN):
        super().__init__()
        self.vqgan = vqgan

    def forward(self, tokens: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        with _norms(self.vqgan.decoder, given=stats):
            return self.vqgan.decode(tokens).clamp(0.0, 1.0)


def _export(module: nn.Module, args, path: Path, inputs, outputs, dynamic) -> None:
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
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


def export_region_decoders(vqgan: VQGAN, folder: str | Path) -> None:
    """Write tokenizer_decoder_stats.onnx and tokenizer_decoder_region.onnx into `folder`."""
    folder = Path(folder)
    vqgan.eval()
    grid, k = vqgan.cfg.grid, vqgan.cfg.codebook_size
    tokens = torch.randint(0, k, (2, grid, grid))
    with torch.no_grad():
        _, stats = DecoderWithStats(vqgan)(tokens)
    _export(
        DecoderWithStats(vqgan),
        (tokens,),
        folder / STATS_DECODER_FILE,
        ["tokens"],
        ["image", "stats"],
        {"tokens": {0: "B", 1: "h", 2: "w"}, "image": {0: "B", 2: "H", 3: "W"}, "stats": {0: "B"}},
    )
    _export(
        DecoderWithGivenStats(vqgan),
        (tokens, stats),
        folder / REGION_DECODER_FILE,
        ["tokens", "stats"],
        ["image"],
        {"tokens": {0: "B", 1: "h", 2: "w"}, "stats": {0: "B"}, "image": {0: "B", 2: "H", 3: "W"}},
    )


def check_region_decoders(
    folder: str | Path, grid: int, codebook_size: int, seed: int = 0
) -> float:
    """Max |pixel difference| of the stats decoder, and of the region decoder fed the whole
    grid with those statistics, against the folder's plain tokenizer_decoder.onnx; raises
    RegionDecoderError beyond fp32 noise."""
    folder = Path(folder)
    plain = create_session(folder / "tokenizer_decoder.onnx", "cpu")[0]
    with_stats = create_session(folder / STATS_DECODER_FILE, "cpu")[0]
    region = create_session(folder / REGION_DECODER_FILE, "cpu")[0]
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, codebook_size, (2, grid, grid), dtype=np.int64)
    want = plain.run(None, {"tokens": tokens})[0]
    image, stats = with_stats.run(None, {"tokens": tokens})
    again = region.run(None, {"tokens": tokens, "stats": stats})[0]
    diff = max(float(np.abs(image - want).max()), float(np.abs(again - want).max()))
    if diff > PIXELS_MAX_ABS:
        raise RegionDecoderError(
            f"the region decoders differ from tokenizer_decoder.onnx by {diff:.1e} "
            f"(more than fp32 noise, {PIXELS_MAX_ABS:g})"
        )
    return diff


def add_to_bundle(bundle_dir: str | Path) -> float:
    """Export both region decoders from the bundle's own tokenizer into the bundle, check them
    and list them in its manifest. Returns the max pixel difference of the check."""
    from engine.modeling.from_bundle import tokenizer_from_bundle

    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    vqgan = tokenizer_from_bundle(bundle_dir)
    with tempfile.TemporaryDirectory(dir=bundle_dir.parent) as tmp:
        work = Path(tmp)
        shutil.copyfile(bundle_dir / "tokenizer_decoder.onnx", work / "tokenizer_decoder.onnx")
        export_region_decoders(vqgan, work)
        diff = check_region_decoders(work, manifest.grid[0], manifest.codebook_size)
        for name in (STATS_DECODER_FILE, REGION_DECODER_FILE):
            shutil.move(str(work / name), bundle_dir / name)
    manifest.files.update({STATS_DECODER_FILE: "", REGION_DECODER_FILE: ""})
    write_manifest(bundle_dir, manifest)
    return diff


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Add the region decoders to a model bundle.")
    ap.add_argument("bundle")
    args = ap.parse_args(argv)
    diff = add_to_bundle(args.bundle)
    print(
        f"{args.bundle}: wrote {STATS_DECODER_FILE} and {REGION_DECODER_FILE} "
        f"(max |d| vs tokenizer_decoder.onnx {diff:.1e})"
    )


if __name__ == "__main__":
    main()
