"""The fused transformer graph (engine/modeling/optimize.py) against the plain export."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import onnx
import pytest

from conftest import make_tiny_models
from engine.runtime.decode import iterative_decode, last_step, make_rngs
from engine.runtime.sessions import create_session


@pytest.fixture(scope="module")
def plain_and_fused(tiny_bundle_path, tmp_path_factory):
    from engine.modeling.optimize import optimize_transformer

    folder = tmp_path_factory.mktemp("fused")
    plain = shutil.copyfile(tiny_bundle_path / "transformer.onnx", folder / "transformer.onnx")
    fused = shutil.copyfile(plain, folder / "fused.onnx")
    counts = optimize_transformer(fused)
    return plain, fused, counts, make_tiny_models()[1].cfg


def _logits(path, tokens, class_ids):
    sess = create_session(path, "cpu")[0]
    return sess.run(None, {"tokens": tokens, "class_ids": class_ids})[0]


def test_every_attention_block_is_one_fused_node(plain_and_fused):
    plain, fused, counts, cfg = plain_and_fused
    ops = Counter(n.op_type for n in onnx.load(str(fused)).graph.node)
    blocks = cfg.depth + cfg.decoder_depth
    assert counts["Attention"] == blocks
    assert ops["Attention"] == blocks
    assert ops["Softmax"] == 0
    assert ops["SkipLayerNormalization"] > 0
    assert len(onnx.load(str(fused)).graph.node) < len(onnx.load(str(plain)).graph.node) / 2


def test_fused_logits_equal_the_plain_graph_within_fp32_noise(plain_and_fused):
    plain, fused, _, cfg = plain_and_fused
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.codebook_size, (4, cfg.grid * cfg.grid))
    tokens[0] = cfg.mask_token_id  # generation
    tokens[1, rng.random(cfg.grid * cfg.grid) < 0.2] = cfg.mask_token_id  # a 20% edit
    class_ids = np.array([0, 1, 2, cfg.num_class_slots - 1])
    a, b = _logits(plain, tokens, class_ids), _logits(fused, tokens, class_ids)
    assert np.abs(a - b).max() < 1e-4 * max(1.0, np.abs(a).max())
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.999


def test_fused_graph_gives_the_same_tokens_for_the_same_seed(plain_and_fused):
    plain, fused, _, cfg = plain_and_fused
    n = cfg.grid * cfg.grid
    start = np.full((2, n), cfg.mask_token_id, np.int64)
    start[1, : n // 2] = np.arange(n // 2) % cfg.codebook_size  # an edit: half known
    results = []
    for path in (plain, fused):
        sess = create_session(path, "cpu")[0]

        def fn(tokens, sess=sess):
            ids = np.full(len(tokens), cfg.num_class_slots - 1, np.int64)
            return sess.run(None, {"tokens": tokens, "class_ids": ids})[0]

        last = last_step(
            iterative_decode(
                start,
                fn,
                mask_token_id=cfg.mask_token_id,
                steps=8,
                choice_temperature=4.5,
                rngs=make_rngs([7, 8]),
            )
        )
        results.append(last.tokens)
    assert np.array_equal(results[0], results[1])


def test_fused_graph_quantises_to_int8(plain_and_fused, tmp_path):
    from engine.modeling.quantize import quantize_transformer

    plain, fused, _, cfg = plain_and_fused
    out = quantize_transformer(fused, tmp_path / "int8.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops["QAttention"] == cfg.depth + cfg.decoder_depth
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, cfg.codebook_size, (2, cfg.grid * cfg.grid))
    class_ids = np.array([0, 1])
    a, b = _logits(plain, tokens, class_ids), _logits(out, tokens, class_ids)
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.7  # int8: close, not equal
