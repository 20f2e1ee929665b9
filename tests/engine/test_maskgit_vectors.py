"""Exactness against the official google-research/maskgit code, and the imported bundle at work.

`tests/fixtures/official_vectors/maskgit_seed4242.npz` holds tokens, raw decoded pixels and
logits that the unmodified official JAX code computed on a synthetic checkpoint pair of the real
sizes, which `maskgit_make_ckpt.py` rebuilds bit-identically. We import that pair with
`main.py import-maskgit` as a plain install runs it (every tensor checked, graph templates filled,
PyTorch made unimportable in the child) and compare both the PyTorch modules and the bundle's
onnxruntime outputs with the vectors within the measured tolerances of
tests/fixtures/README.md. The real-size files also feed the refusal tests (truncated, swapped,
another codebook) and the end-to-end runs through the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FIXTURES
from engine.cli import main as cli_main
from engine.modeling.maskgit_checkpoint import build_maskgit
from engine.runtime.bundle import Bundle
from no_torch import run_main_without_torch

VECTORS = FIXTURES / "official_vectors"
TOKENIZER = "tokenizer_imagenet256_checkpoint"
TRANSFORMER = "maskgit_imagenet256_checkpoint"
pytestmark = pytest.mark.slow

# tests/fixtures/README.md: fp32 noise vs the smallest porting-bug effect
LOGITS_MAX, LOGITS_MEAN = 1e-3, 1e-4
PIXELS_MAX, PIXELS_MEAN = 1e-3, 2e-5
LATENT_MAX = 1e-3
CLEAR_MARGIN = 1e-2  # tokens must agree where the nearest code is this much nearer
CLEAR_GAP = 1e-3  # argmax must agree where the top two logits are this far apart


@pytest.fixture(scope="module")
def vectors():
    return np.load(VECTORS / "maskgit_seed4242.npz")


@pytest.fixture(scope="module")
def pair(maskgit_pair):
    """The official-format checkpoint pair (seed 4242), checked by its sha256s (conftest)."""
    assert [p.name for p in maskgit_pair] == [TOKENIZER, TRANSFORMER]
    return maskgit_pair


@pytest.fixture(scope="module")
def modules(pair):
    return build_maskgit(*pair)


@pytest.fixture(scope="module")
def bundle_path(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("maskgit-bundle") / "maskgit-256"
    run = run_main_without_torch("import-maskgit", *pair, "-o", out, timeout=1500)
    assert run.returncode == 0, run.stderr
    assert "[3/3] checking the bundle" in run.stdout
    assert "finite" in run.stdout
    return out


@pytest.fixture(scope="module")
def bundle(bundle_path):
    return Bundle(bundle_path, device="cpu")


def _images(vectors) -> np.ndarray:
    """The official model input (images / 255, NHWC) as the bundle's NCHW float32."""
    return (vectors["images"].astype(np.float32) / 255).transpose(0, 3, 1, 2)


def _check_logits(ours: np.ndarray, golden: np.ndarray) -> None:
    d = np.abs(ours - golden)
    assert d.max() <= LOGITS_MAX, (d.max(), d.mean())
    assert d.mean() <= LOGITS_MEAN, (d.max(), d.mean())
    top2 = np.sort(golden, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > CLEAR_GAP
    assert clear.mean() > 0.99
    assert (ours.argmax(-1) == golden.argmax(-1))[clear].all()


def _check_tokens(ours: np.ndarray, vectors) -> None:
    golden = vectors["image_tokens"]
    assert ours.shape == golden.shape
    clear = vectors["token_margin"] >= CLEAR_MARGIN
    assert (ours == golden)[clear].all()
    assert (ours != golden).sum() <= (~clear).sum()


# -- PyTorch ------------------------------------------------------------------------------------


def test_pytorch_tokens_and_latents_match_official(modules, vectors):
    vqgan, _ = modules
    with torch.no_grad():
        latents = vqgan.encoder(torch.from_numpy(_images(vectors)))
        tokens = vqgan.quantize.nearest(latents).numpy()  # as vqgan.encode, one encoder pass
    assert np.abs(latents.permute(0, 2, 3, 1).numpy() - vectors["latents"]).max() <= LATENT_MAX
    _check_tokens(tokens, vectors)


def test_pytorch_raw_pixels_match_official(modules, vectors):
    """The PyTorch decoder is unclipped like the official one: compare the raw output."""
    vqgan, _ = modules
    with torch.no_grad():
        pixels = vqgan.decode(torch.from_numpy(vectors["image_tokens"]).long())
    d = np.abs(pixels.permute(0, 2, 3, 1).numpy() - vectors["decoded"])
    assert d.max() <= PIXELS_MAX, (d.max(), d.mean())
    assert d.mean() <= PIXELS_MEAN, (d.max(), d.mean())


def test_pytorch_logits_match_official_at_all_257_positions(modules, vectors):
    _, model = modules
    seq = torch.from_numpy(vectors["seq_tokens"]).long()  # -1 = mask, as the official code
    with torch.no_grad():
        logits = model(seq).numpy()
        # the case with masked positions, alone both times: a batch of 3 and a batch of 1 may
        # round differently (~5e-5), -1 and the mask row may not
        masked = seq[1:2]
        as_minus_one = model(masked).numpy()
        as_row = model(torch.where(masked < 0, model.cfg.mask_row, masked)).numpy()
    assert logits.shape == (3, 257, 2025)
    np.testing.assert_array_equal(as_minus_one, as_row)  # -1 is the mask row
    _check_logits(logits[..., :1024], vectors["logits"])
    full = logits[:, vectors["logits_full_positions"]]
    assert np.abs(full - vectors["logits_full"]).max() <= LOGITS_MAX


# -- the bundle (onnxruntime) --------------------------------------------------------------------


def test_manifest_and_model_card(bundle):
    m = bundle.manifest
    assert (m.image_size, m.grid, m.codebook_size, m.mask_token_id) == (256, [16, 16], 1024, 2024)
    assert m.class_names is not None
    assert len(m.class_names) == 1000
    assert m.class_names[207] == "golden retriever"
    assert m.null_class_id is None
    assert m.needs_class
    assert m.class_synonyms is not None
    assert len(m.class_synonyms) == 1000
    assert m.decoding == {"steps": 16, "choice_temperature": 4.5}
    assert m.features_dim == 768
    assert TRANSFORMER in m.source
    data = json.loads((bundle.path / "manifest.json").read_text())
    assert data["null_class_id"] is None
    assert data["format_version"] == 1
    assert {"transformer.onnx", "features.onnx", "MODEL_CARD.md"} <= set(data["files"])
    card = (bundle.path / "MODEL_CARD.md").read_text()
    assert "Apache-2.0" in card
    assert "no licence for the weights" in card
    assert "issue #2" in card


def test_onnx_tokens_match_official(bundle, vectors):
    _check_tokens(bundle.encode(_images(vectors)), vectors)


def test_onnx_pixels_match_official_clipped(bundle, vectors):
    """The bundle's decoder clips to [0, 1] (contract): compare with the clipped vectors; the
    raw output is checked through PyTorch above."""
    pixels = bundle.decode(vectors["image_tokens"].astype(np.int64)).transpose(0, 2, 3, 1)
    d = np.abs(pixels - np.clip(vectors["decoded"], 0, 1))
    assert d.max() <= PIXELS_MAX, (d.max(), d.mean())
    assert d.mean() <= PIXELS_MEAN, (d.max(), d.mean())


def test_onnx_logits_match_official_at_the_image_positions(bundle, vectors):
    seq = vectors["seq_tokens"].astype(np.int64)
    tokens = np.where(seq[:, 1:] < 0, bundle.manifest.mask_token_id, seq[:, 1:])
    labels = seq[:, 0] - 1024
    np.testing.assert_array_equal(labels, vectors["seq_labels"])
    logits = bundle.logits(tokens, labels)
    assert logits.shape == (3, 256, 1024)
    _check_logits(logits, vectors["logits"][:, 1:])


def test_features_are_the_mean_image_state(bundle, modules, vectors):
    _, model = modules
    tokens = vectors["image_tokens"][:1].reshape(1, -1).astype(np.int64)
    feats = bundle.features(tokens)
    ids = torch.cat([torch.full((1, 1), model.cfg.mask_row), torch.from_numpy(tokens)], 1)
    with torch.no_grad():
        ref = model.hidden(ids)[:, 1:].mean(1).numpy()
    assert feats.shape == (1, 768)
    assert np.abs(feats - ref).max() <= 1e-3


# -- refusals on real-size files -----------------------------------------------------------------


def _rewrite(src, dst, path: str, value) -> None:
    """Copy a Flax file with one leaf replaced (records passed through untouched)."""
    tree = msgpack.unpackb(src.read_bytes(), ext_hook=lambda c, d: msgpack.ExtType(c, d))
    node = tree
    *parents, name = path.split("/")
    for part in parents:
        node = node[part]
    node[name] = value
    dst.write_bytes(msgpack.packb(tree, use_bin_type=True))


def _record(a: np.ndarray, dtype: str | None = None) -> msgpack.ExtType:
    payload = [list(a.shape), dtype or a.dtype.name, np.ascontiguousarray(a).tobytes()]
    return msgpack.ExtType(1, msgpack.packb(payload, use_bin_type=True))


def _refused(capsys, tmp_path, tokenizer, transformer) -> str:
    out = tmp_path / "out"
    code = cli_main(["import-maskgit", str(tokenizer), str(transformer), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    return err


def test_truncated_real_file_names_the_tensor(pair, tmp_path, capsys):
    tokenizer, transformer = pair
    cut = tmp_path / TOKENIZER
    with open(tokenizer, "rb") as src:
        cut.write_bytes(src.read(100_000_000))
    err = _refused(capsys, tmp_path, cut, transformer)
    assert "is truncated: the file ends inside params/" in err


def test_swapped_real_files_are_explained(pair, tmp_path, capsys):
    tokenizer, transformer = pair
    err = _refused(capsys, tmp_path, transformer, tokenizer)
    assert "is a MaskGIT transformer checkpoint, not a tokenizer" in err


def test_wrong_shape_and_dtype_in_a_real_file(pair, tmp_path, capsys):
    tokenizer, transformer = pair
    bad = tmp_path / TOKENIZER
    kernel = "params/decoder/Conv_5/kernel"
    _rewrite(tokenizer, bad, kernel, _record(np.zeros((3, 3, 3, 128), np.float32)))
    err = _refused(capsys, tmp_path, bad, transformer)
    assert f"tensor '{kernel}' has shape [3, 3, 3, 128], expected [3, 3, 128, 3]" in err
    _rewrite(tokenizer, bad, kernel, _record(np.zeros((3, 3, 128, 3), np.float16)))
    err = _refused(capsys, tmp_path, bad, transformer)
    assert f"tensor '{kernel}' has dtype float16, expected float32" in err


def test_a_transformer_for_another_codebook_is_refused(pair, tmp_path, capsys):
    tokenizer, transformer = pair
    small = tmp_path / TOKENIZER
    codebook = np.random.default_rng(0).normal(size=(512, 256)).astype(np.float32)
    _rewrite(tokenizer, small, "params/quantizer/codebook", _record(codebook))
    err = _refused(capsys, tmp_path, small, transformer)
    assert "has a vocabulary of 2025" in err
    assert "512 codes" in err
    assert "do not belong together" in err


# -- the bundle at work --------------------------------------------------------------------------


def _run(capsys, *argv) -> tuple[int, str]:
    code = cli_main([*map(str, argv)])
    return code, capsys.readouterr().err


def test_generate_needs_a_class_and_runs_with_one(bundle_path, tmp_path, capsys):
    out = tmp_path / "dog.png"
    code, err = _run(capsys, "generate", "--model", bundle_path, "-o", out, "--steps", "2")
    assert code == 2
    assert "needs a class" in err
    assert not out.exists()
    code, err = _run(
        capsys, "generate", "--model", bundle_path, "--class", "207", "--steps", "2",
        "--seed", "1", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert "golden retriever" in err  # the resolved class is said
    with Image.open(out) as png:
        assert png.size == (256, 256)


def test_edit_as_a_class_keeps_the_unmasked_photo(bundle_path, tmp_path, capsys):
    rng = np.random.default_rng(0)
    photo = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[30:60, 40:80] = 255
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    code, err = _run(
        capsys, "edit", tmp_path / "photo.png", "--mask", tmp_path / "mask.png",
        "--model", bundle_path, "--class", "207", "--steps", "2", "--seed", "3", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == photo.shape
    np.testing.assert_array_equal(result[:, :8], photo[:, :8])  # far from the mask
    assert np.abs(result[35:55, 45:75].astype(int) - photo[35:55, 45:75]).mean() > 5


# -- 512 px ---------------------------------------------------------------------------------------


@pytest.mark.timeout(1800)  # an import of the real-size 512 px pair
def test_the_512_px_pair_imports_loads_and_generates(pair, tmp_path, capsys):
    """MaskGIT ImageNet 512: 1025 positions, a 32x32 grid. The synthetic tokenizer file is the
    same for both sizes (the official ones differ only in their weights)."""
    made = subprocess.run(
        [
            sys.executable, str(VECTORS / "maskgit_make_ckpt.py"), str(tmp_path),
            "--image-size", "512", "--only", "transformer",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    transformer = tmp_path / "maskgit_imagenet512_checkpoint"
    out = tmp_path / "maskgit-512"
    code, err = _run(capsys, "import-maskgit", pair[0], transformer, "-o", out)
    assert code == 0, err
    transformer.unlink()  # 660 MB
    m = Bundle(out, device="cpu").manifest
    assert (m.image_size, m.grid, m.seq_len, m.mask_token_id) == (512, [32, 32], 1024, 2024)
    png = tmp_path / "lighthouse.png"
    code, err = _run(
        capsys, "generate", "--model", out, "--class", "beacon", "--steps", "1", "-o", png
    )
    assert code == 0, err
    with Image.open(png) as image:
        assert image.size == (512, 512)
