"""Checks of a written bundle with onnxruntime (no PyTorch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.runtime.errors import MageError
from engine.runtime.sessions import QUIET, create_session
from engine.runtime.speed import REGION_DECODER_FILE, STATS_DECODER_FILE

PIXELS_MAX_ABS = 1e-3  # the stats decoder against the plain decoder (fp32 noise)


class RegionDecoderError(MageError):
    """The region decoders disagree with the tokenizer's own decoder."""


def check_session(path: str | Path) -> ort.InferenceSession:
    """A CPU session for a one-off check: basic graph optimisations and no pre-packed weight
    copies, so it opens in a second and maps its weights instead of copying them."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.add_session_config_entry("session.disable_prepacking", "1")
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = QUIET
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises private exception types: the runtime's one line
        return create_session(path, "cpu")[0]


def check_region_decoders(
    folder: str | Path, grid: int, codebook_size: int, seed: int = 0
) -> float:
    """Max |pixel difference| of the stats decoder, and of the region decoder fed the whole
    grid with those statistics, against the folder's plain tokenizer_decoder.onnx; raises
    RegionDecoderError beyond fp32 noise."""
    folder = Path(folder)
    plain = check_session(folder / "tokenizer_decoder.onnx")
    with_stats = check_session(folder / STATS_DECODER_FILE)
    region = check_session(folder / REGION_DECODER_FILE)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, codebook_size, (2, grid, grid), dtype=np.int64)
    want = plain.run(None, {"tokens": tokens})[0]
    image, stats = with_stats.run(None, {"tokens": tokens})
    # the whole grid live, or none of it (all statistics from the full decode's sums)
    live = np.ones((2, 1, grid, grid), np.float32)
    nothing = np.zeros((2, *stats.shape[1:4]), np.float32)
    again = region.run(None, {"tokens": tokens, "live": live, "outside": nothing})[0]
    given = region.run(None, {"tokens": tokens, "live": 0 * live, "outside": stats.sum((-2, -1))})[
        0
    ]
    diff = max(float(np.abs(x - want).max()) for x in (image, again, given))
    if not diff <= PIXELS_MAX_ABS:  # NaN compares false both ways: it must fail
        raise RegionDecoderError(
            f"the region decoders differ from tokenizer_decoder.onnx by {diff:.1e} "
            f"(more than fp32 noise, {PIXELS_MAX_ABS:g})"
        )
    return diff
