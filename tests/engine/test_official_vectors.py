"""Exactness against the official LTH14/mage code.

`tests/fixtures/official_vectors/` holds tokens, pixels and logits that the official
implementation computed from a synthetic official-format ViT-B checkpoint. We rebuild that
checkpoint bit-identically, import it with `main.py import-mage` as a plain install runs it (the
restricted reader and the graph templates, with PyTorch made unimportable in the child) and
compare the bundle's onnxruntime outputs with the vectors within the fixtures README's
tolerances.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES
from engine.runtime.bundle import Bundle
from no_torch import run_main_without_torch

VECTORS = FIXTURES / "official_vectors"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def official_bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("official")
    ckpt = work / "mage_vitb_seed777.pth"
    made = subprocess.run(
        [sys.executable, str(VECTORS / "make_ckpt.py"), str(ckpt)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    assert "5b706e79d0b04accb0222f3f38e2e1fb00d032258e4ad3c24423ab6b64978509" in made.stdout
    out = work / "bundle"
    run = run_main_without_torch("import-mage", ckpt, "-o", out, timeout=900)
    assert run.returncode == 0, run.stderr
    assert "[3/3] checking the bundle" in run.stdout
    assert "finite" in run.stdout
    ckpt.unlink()  # 800 MB
    return Bundle(out, device="cpu")


@pytest.fixture(scope="module")
def vectors():
    return np.load(VECTORS / "vitb_seed777.npz")


def test_manifest_follows_the_contract(official_bundle):
    m = official_bundle.manifest
    assert (m.image_size, m.grid, m.codebook_size, m.mask_token_id) == (256, [16, 16], 1024, 2024)
    assert m.class_names is None
    assert m.null_class_id is None
    data = json.loads((official_bundle.path / "manifest.json").read_text())
    assert data["format"] == "mage-bundle"
    assert data["format_version"] == 1
    assert set(data["files"]) >= {
        "tokenizer_encoder.onnx",
        "tokenizer_decoder.onnx",
        "transformer.onnx",
        "features.onnx",
        "MODEL_CARD.md",
    }
    assert "mage_vit_base_patch16" in (official_bundle.path / "MODEL_CARD.md").read_text()


def test_tokens_match_official(official_bundle, vectors):
    tokens = official_bundle.encode(vectors["images"])
    assert tokens.shape == (2, 16, 16)
    assert tokens.dtype == np.int64
    assert (tokens != vectors["image_tokens"]).sum() <= 2  # of 512: near-tie flips only


def test_decoded_pixels_match_official(official_bundle, vectors):
    pixels = official_bundle.decode(vectors["image_tokens"])
    # the bundle clips to [0, 1]; the official decoder output is raw
    expected = np.clip(vectors["decoded"], 0.0, 1.0)
    assert np.abs(pixels - expected).max() <= 1e-3


def test_logits_match_official(official_bundle, vectors):
    logits = official_bundle.logits(vectors["seq_tokens"])
    assert logits.shape == (3, 256, 1024)
    diff = np.abs(logits - vectors["logits"])
    assert diff.max() <= 1e-3
    assert diff.mean() <= 1e-4
