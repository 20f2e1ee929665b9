"""Official checkpoint layout: strict loading from the reference key lists (never derived from
our own modules), variant detection, and one-line errors for wrong or damaged files."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from conftest import FIXTURES, REPO
from engine.modeling.mage_checkpoint import CheckpointError, build_official, read_checkpoint

VITB_KEYS = FIXTURES / "mage_vitb_keys.tsv"
VQGAN_KEYS = FIXTURES / "vqgan_keys.tsv"


def read_keys(path) -> list[tuple[str, str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            key, dtype, shape = line.split("\t")
            rows.append((key, dtype, tuple(int(s) for s in shape.split(",")) if shape else ()))
    return rows


def vitl_keys() -> list[tuple[str, str, tuple[int, ...]]]:
    """ViT-L keys from the ViT-B list by the reference's rules (section 5.2): 24 encoder
    blocks, width 1024; decoder_pred keeps 768 outputs."""

    def widen(key, shape):
        if key.startswith("vqgan.") or key == "token_emb.position_ids":
            return shape
        if key == "decoder_pred.weight":
            return (768, 1024)
        if key == "decoder_pred.bias":
            return shape
        return tuple({768: 1024, 2304: 3072, 3072: 4096}.get(s, s) for s in shape)

    rows = []
    for key, dtype, shape in read_keys(VITB_KEYS):
        m = re.match(r"blocks\.(\d+)\.(.*)", key)
        if m and m.group(1) == "0":  # expand block 0's keys to 24 blocks, in order
            continue
        if m:
            continue
        rows.append((key, dtype, widen(key, shape)))
    block = [
        (k.split(".", 2)[2], d, s) for k, d, s in read_keys(VITB_KEYS) if k.startswith("blocks.0.")
    ]
    enc = [(f"blocks.{i}.{suffix}", d, widen("x", s)) for i in range(24) for suffix, d, s in block]
    first_dec = next(i for i, r in enumerate(rows) if r[0] == "norm.weight")
    return rows[:first_dec] + enc + rows[first_dec:]


def fake_state_dict(rows, fill=True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, dtype, shape in rows:
        if dtype == "int64":
            n = shape[-1]
            sd[key] = torch.arange(n).reshape(shape)
        elif fill:
            sd[key] = torch.randn(shape, generator=g) * 0.02
        else:
            sd[key] = torch.zeros(shape)
    return sd


@pytest.fixture(scope="module")
def vitb_sd():
    return fake_state_dict(read_keys(VITB_KEYS))


def test_reference_counts():
    rows = read_keys(VITB_KEYS)
    assert len(rows) == 433
    assert sum(1 for k, _, _ in rows if k.startswith("vqgan.")) == 168
    assert sum(torch.Size(s).numel() for _, _, s in rows) == 200_990_061
    large = vitl_keys()
    assert len(large) == 577
    assert sum(torch.Size(s).numel() for _, _, s in large) == 464_407_405


@pytest.mark.slow
def test_vitb_full_checkpoint_loads_strictly(tmp_path, vitb_sd):
    path = tmp_path / "mage-vitb.pth"
    torch.save({"model": vitb_sd, "epoch": 1599}, path)
    variant, vqgan, mage = build_official(read_checkpoint(path))
    assert variant == "mage_vit_base_patch16"
    ours = {**{f"vqgan.{k}": v for k, v in vqgan.state_dict().items()}, **mage.state_dict()}
    assert set(ours) == set(vitb_sd)
    for key, value in vitb_sd.items():
        assert torch.equal(ours[key], value), key


@pytest.mark.slow
def test_vitl_detected_and_loaded(tmp_path):
    sd = fake_state_dict(vitl_keys(), fill=False)
    variant, _, mage = build_official(sd)
    assert variant == "mage_vit_large_patch16"
    assert mage.cfg.depth == 24
    assert mage.cfg.embed_dim == 1024


@pytest.mark.slow
def test_standalone_tokenizer_file(tmp_path, vitb_sd):
    flat = {k[len("vqgan.") :]: v for k, v in vitb_sd.items() if k.startswith("vqgan.")}
    assert [k for k, _, _ in read_keys(VQGAN_KEYS)] == list(flat)
    vq_path = tmp_path / "vqgan_jax_strongaug.ckpt"
    torch.save(flat, vq_path)  # flat dict, no wrapper, as the official file
    no_vq = {k: v for k, v in vitb_sd.items() if not k.startswith("vqgan.")}
    _, vqgan, _ = build_official(no_vq, read_checkpoint(vq_path))
    assert torch.equal(vqgan.quantize.embedding.weight, flat["quantize.embedding.weight"])
    with pytest.raises(CheckpointError, match="tokenizer-only"):
        build_official(read_checkpoint(vq_path))
    with pytest.raises(CheckpointError, match="no 'vqgan"):
        build_official(no_vq)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sd: sd.pop("mlm_layer.ln.bias"), r"key 'mlm_layer\.ln\.bias' is missing"),
        (lambda sd: sd.update({"extra.weight": torch.zeros(1)}), r"unexpected key 'extra\.weight'"),
        (
            lambda sd: sd.update({"blocks.3.attn.qkv.weight": torch.zeros(2304, 700)}),
            r"'blocks\.3\.attn\.qkv\.weight' has shape \[2304, 700\], expected \[2304, 768\]",
        ),
        (
            lambda sd: sd.update({"vqgan.decoder.conv_out.bias": torch.zeros(4)}),
            r"tokenizer: key 'decoder\.conv_out\.bias' has shape \[4\], expected \[3\]",
        ),
        (lambda sd: sd.update({"norm.weight": torch.full((768,), float("nan"))}), "NaN"),
        (
            lambda sd: sd.update({"token_emb.word_embeddings.weight": torch.zeros(2025, 512)}),
            "neither ViT-B",
        ),
    ],
)
@pytest.mark.slow
def test_wrong_checkpoints_name_the_key(vitb_sd, change, message):
    sd = dict(vitb_sd)
    change(sd)
    with pytest.raises(CheckpointError, match=message):
        build_official(sd)


@pytest.mark.slow
def test_damaged_files_are_one_line_errors(tmp_path, vitb_sd):
    good = tmp_path / "good.pth"
    torch.save({"model": {k: vitb_sd[k] for k in list(vitb_sd)[:5]}}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, message in [
        (truncated, "not a readable PyTorch checkpoint"),
        (tmp_path / "missing.pth", "not found"),
    ]:
        with pytest.raises(CheckpointError, match=message) as info:
            read_checkpoint(path)
        assert "\n" not in str(info.value)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "main.py"),
            "import-mage",
            str(text),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: notes.pth is not a readable PyTorch checkpoint")
    assert not (tmp_path / "out").exists()
