"""Tokenizer decoders for an exact-quality region decode (optional bundle files).

A region decode runs the VQGAN decoder on a crop of the token grid. Its convolutions see
nearly all the context they need within a margin of a few tokens, but every GroupNorm takes
its statistics over the whole input, so a crop normalises with other statistics than the full
grid and its pixels come out visibly different. Two extra decoders fix that:

- `tokenizer_decoder_stats.onnx`: in "tokens" int64 [B,h,w]; out "image" float32 [B,3,H,W]
  (the plain decoder's pixels, clipped to [0,1]) and "stats" float32 [B,L,G,3,h,w]: for each
  of the decoder's L GroupNorms (in the order they run), each of its G groups and each token
  cell, the count, sum and sum of squares of the GroupNorm's input over that cell.
- `tokenizer_decoder_region.onnx`: in "tokens" int64 [B,h',w'] (a crop), "live" float32
  [B,1,h',w'] and "outside" float32 [B,L,G,3]; out "image" float32 [B,3,h'*d,w'*d]. Each
  GroupNorm takes its statistics from the crop's own activations over the live cells (the
  changed tokens and their ring) together with the cell sums of a full decode over every other
  cell (`outside`), so it normalises as a full decode of the new tokens would: only the
  crop's border, where the convolutions miss context, still differs.

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

import torch
import torch.nn.functional as F
from torch import nn

from engine.importing.checks import check_region_decoders
from engine.modeling.vqgan import VQGAN
from engine.runtime.manifest import read_manifest, write_manifest
from engine.runtime.speed import REGION_DECODER_FILE, STATS_DECODER_FILE

OPSET = 17
PIXELS_MAX_ABS = 1e-3  # the stats decoder against the plain decoder (fp32 noise)


def _group_stats(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    xg = x.reshape(x.shape[0], groups, -1)
    mean = xg.mean(-1)
    var = (xg - mean.unsqueeze(-1)).pow(2).mean(-1)
    return mean, var


def _normalise(norm: nn.GroupNorm, x: torch.Tensor, mean, var) -> torch.Tensor:
    xg = x.reshape(x.shape[0], norm.num_groups, -1)
    y = ((xg - mean.unsqueeze(-1)) * torch.rsqrt(var.unsqueeze(-1) + norm.eps)).reshape(x.shape)
    return y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)


def _cell_sums(x: torch.Tensor, groups: int, scale: int) -> torch.Tensor:
    """(count, sum, sum of squares) of each group over each token cell: [B,G,3,h,w]."""
    b, c = x.shape[0], x.shape[1]
    area = scale * scale
    sums = F.avg_pool2d(x, scale) * area if scale > 1 else x
    squares = F.avg_pool2d(x * x, scale) * area if scale > 1 else x * x
    h, w = sums.shape[-2], sums.shape[-1]
    sums = sums.reshape(b, groups, -1, h, w).sum(2)
    squares = squares.reshape(b, groups, -1, h, w).sum(2)
    count = torch.ones_like(sums) * float(area * (c // groups))
    return torch.stack([count, sums, squares], 2)


def _mixed_stats(x, groups: int, scale: int, live, outside) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance [B,G] over the `live` cells of `x` ([B,1,h,w] at token resolution)
    together with the (count, sum, sum of squares) `outside` [B,G,3] of the rest."""
    b, c = x.shape[0], x.shape[1]
    m = F.interpolate(live, scale_factor=float(scale), mode="nearest") if scale > 1 else live
    xm = x * m
    count = m.reshape(b, 1, -1).sum(-1) * float(c // groups) + outside[..., 0]
    total = xm.reshape(b, groups, -1).sum(-1) + outside[..., 1]
    squares = (xm * x).reshape(b, groups, -1).sum(-1) + outside[..., 2]
    mean = total / count
    return mean, torch.clamp(squares / count - mean * mean, min=0.0)


@contextlib.contextmanager
def _norms(
    decoder: nn.Module, width: int, record: list | None = None, live=None, outside=None
) -> Iterator[None]:
    """Within the block every GroupNorm of `decoder` (fed a grid `width` tokens wide) appends
    the per-cell sums of its input to `record` and normalises as usual, or normalises with the
    statistics of its input over the `live` cells plus the next `outside` sums ([B,L,G,3], in
    call order)."""
    norms = [m for m in decoder.modules() if isinstance(m, nn.GroupNorm)]
    calls = [0]

    def forward_of(norm: nn.GroupNorm):
        def forward(x: torch.Tensor) -> torch.Tensor:
            scale = int(x.shape[-1]) // width
            if outside is None:
                assert record is not None
                record.append(_cell_sums(x, norm.num_groups, scale))
                mean, var = _group_stats(x, norm.num_groups)
            else:
                here = outside[:, calls[0]]
                mean, var = _mixed_stats(x, norm.num_groups, scale, live, here)
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
    """tokens [B,h,w] -> image [B,3,H,W] clipped to [0,1], stats [B,L,G,3,h,w]: (count, sum,
    sum of squares) of each GroupNorm's input per group and token cell."""

    def __init__(self, vqgan: VQGAN):
        super().__init__()
        self.vqgan = vqgan

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        record: list[torch.Tensor] = []
        with _norms(self.vqgan.decoder, int(tokens.shape[-1]), record=record):
            image = self.vqgan.decode(tokens).clamp(0.0, 1.0)
        return image, torch.stack(record, 1)


class DecoderWithGivenStats(nn.Module):
    """tokens [B,h',w'] (a crop), live [B,1,h',w'] (1 where the crop's own activations count),
    outside [B,L,G,3] (count, sum, sum of squares of everything else, from a full decode) ->
    image [B,3,h'*d,w'*d] clipped to [0,1]."""

    def __init__(self, vqgan: VQGAN):
        super().__init__()
        self.vqgan = vqgan

    def forward(
        self, tokens: torch.Tensor, live: torch.Tensor, outside: torch.Tensor
    ) -> torch.Tensor:
        with _norms(self.vqgan.decoder, int(tokens.shape[-1]), live=live, outside=outside):
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
    live = torch.zeros(2, 1, grid, grid)
    live[:, :, 2:-2, 2:-2] = 1.0
    outside = (stats * (1 - live[:, None, None])).sum((-2, -1))
    _export(
        DecoderWithStats(vqgan),
        (tokens,),
        folder / STATS_DECODER_FILE,
        ["tokens"],
        ["image", "stats"],
        {
            "tokens": {0: "B", 1: "h", 2: "w"},
            "image": {0: "B", 2: "H", 3: "W"},
            "stats": {0: "B", 4: "h", 5: "w"},
        },
    )
    _export(
        DecoderWithGivenStats(vqgan),
        (tokens, live, outside),
        folder / REGION_DECODER_FILE,
        ["tokens", "live", "outside"],
        ["image"],
        {
            "tokens": {0: "B", 1: "h", 2: "w"},
            "live": {0: "B", 2: "h", 3: "w"},
            "outside": {0: "B"},
            "image": {0: "B", 2: "H", 3: "W"},
        },
    )


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
