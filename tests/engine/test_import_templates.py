"""The shipped graph templates (engine/importing/templates/): complete, small, filled with one
copy of each weight, and in agreement with the PyTorch modules they were exported from."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from engine.importing.bundle import TOKENIZER_WEIGHTS
from engine.importing.templates import TEMPLATES_DIR, load_template, write_graphs
from engine.runtime.sessions import create_session

NAMES = ("vqgan", "mage_vit_base", "mage_vit_large", "maskgit_256", "maskgit_512")


@pytest.mark.parametrize("name", NAMES)
def test_templates_are_complete_and_weight_free(name):
    template = load_template(name)
    assert template.graphs
    for file_name, info in template.graphs.items():
        graph = template.graph(file_name)
        names = {w["name"] for w in info["weights"]}
        for w in info["weights"]:
            dtype, shape = template.state[w["key"]]
            assert dtype == "float32"
            assert np.prod(w["dims"]) <= np.prod(shape)
        # every input of every node is a graph input, a node output, a kept constant or a
        # weight the recipe fills
        known = {i.name for i in graph.graph.input} | {i.name for i in graph.graph.initializer}
        known |= {o for node in graph.graph.node for o in node.output} | names | {""}
        used = {i for node in graph.graph.node for i in node.input}
        assert used <= known, sorted(used - known)[:3]
        assert sum(i.ByteSize() for i in graph.graph.initializer) < 200_000  # no weights left


# official tensors the forward pass never reads (MAGE keeps them in its released files)
UNUSED = {
    "cls_token",
    "pos_embed",
    "mask_token",
    "decoder_pos_embed",
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "decoder_pred.weight",
    "decoder_pred.bias",
    "token_emb.position_ids",  # 0..256, constants of the graphs (the importer checks them)
}


@pytest.mark.parametrize("name", NAMES)
def test_every_used_tensor_is_filled_from_the_checkpoint(name):
    """No weight may be left as a constant of the template (it would hold the random value
    the template was exported with)."""
    template = load_template(name)
    filled = {w["key"] for info in template.graphs.values() for w in info["weights"]}
    assert filled == set(template.state) - UNUSED


def test_templates_stay_small():
    total = sum(p.stat().st_size for p in TEMPLATES_DIR.iterdir())
    assert total < 8_000_000, total


@pytest.mark.slow  # writes the tokenizer's 218 MB of weights
def test_filling_writes_each_weight_once(tmp_path):
    """The three tokenizer decoders share one copy of the decoder's weights."""
    template = load_template("vqgan")
    sd = {
        k: np.full(shape, i, dtype=np.float32)
        for i, (k, (_dt, shape)) in enumerate(template.state.items())
    }
    files = write_graphs(template, sd, tmp_path, TOKENIZER_WEIGHTS)
    assert set(files) == set(template.graphs) | {TOKENIZER_WEIGHTS}
    unique = sum(v.nbytes for v in sd.values())
    data = (tmp_path / TOKENIZER_WEIGHTS).stat().st_size
    assert unique <= data < unique * 1.05
    decoder = onnx.load(str(tmp_path / "tokenizer_decoder.onnx"))
    meta = {p.key: p.value for p in decoder.metadata_props}
    assert len(meta["weights_sha256"]) == 64
    assert meta["template"] == "vqgan"
    # onnxruntime reads the shared file; the constant weights give a constant image
    session = create_session(tmp_path / "tokenizer_decoder.onnx", "cpu")[0]
    image = session.run(None, {"tokens": np.zeros((1, 4, 4), np.int64)})[0]
    assert image.shape == (1, 3, 64, 64)
    assert np.isfinite(image).all()
    # a graph's weights are views into the file: the graph itself stays small
    assert (tmp_path / "tokenizer_decoder.onnx").stat().st_size < 1_000_000


def test_recipes_name_known_ops():
    for name in NAMES:
        data = json.loads((TEMPLATES_DIR / f"{name}.json").read_text())
        for info in data["graphs"].values():
            for w in info["weights"]:
                assert all(op == "T" or op[0] == "rows" for op in w["ops"])


# -- agreement with PyTorch (the modules the templates were exported from) ------------------------


def _random_state(module, seed: int) -> dict[str, np.ndarray]:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                spread = 0.3 if key.endswith(("norm1.weight", "norm2.weight")) else 0.05
                value.copy_(torch.randn(value.shape, generator=g) * spread + 0.01)
                if key.endswith(
                    ("ln.weight", "norm.weight", "LayerNorm.weight", "norm_out.weight")
                ):
                    value.add_(1.0)
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_tokenizer_template_agrees_with_pytorch(tmp_path):
    import torch  # the dev setup always has it

    from engine.importing.checks import check_region_decoders
    from engine.modeling.config import VQGAN_OFFICIAL
    from engine.modeling.vqgan import VQGAN

    vqgan = VQGAN(VQGAN_OFFICIAL).eval()
    sd = _random_state(vqgan, 0)
    write_graphs(load_template("vqgan"), sd, tmp_path, TOKENIZER_WEIGHTS)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 256, 256, generator=g)
    ids = torch.randint(0, 1024, (2, 16, 16), generator=g)
    with torch.no_grad():
        t_tokens = vqgan.encode(images).numpy()
        t_pixels = vqgan.decode(ids).clamp(0, 1).numpy()
    enc = create_session(tmp_path / "tokenizer_encoder.onnx", "cpu")[0]
    dec = create_session(tmp_path / "tokenizer_decoder.onnx", "cpu")[0]
    o_tokens = enc.run(None, {"image": images.numpy()})[0]
    o_pixels = dec.run(None, {"tokens": ids.numpy()})[0]
    assert (o_tokens == t_tokens).mean() >= 0.99
    assert np.abs(o_pixels - t_pixels).max() <= 1e-3
    assert check_region_decoders(tmp_path, 16, 1024) <= 1e-3


def _mage(name):
    from engine.modeling.config import MAGE_VIT_BASE, MAGE_VIT_LARGE
    from engine.modeling.mage import MAGE

    model = MAGE(MAGE_VIT_BASE if name == "mage_vit_base" else MAGE_VIT_LARGE).eval()

    def run(tokens, _labels):
        return model(tokens), model.features(tokens)

    return model, run, model.cfg.mask_token_id, None


def _maskgit(name):
    from engine.modeling.maskgit import (
        MaskGitConfig,
        MaskGitExport,
        MaskGitFeatures,
        MaskGitTransformer,
    )

    model = MaskGitTransformer(MaskGitConfig(grid=16 if name == "maskgit_256" else 32)).eval()

    def run(tokens, labels):
        return MaskGitExport(model)(tokens, labels), MaskGitFeatures(model)(tokens)

    return model, run, model.cfg.mask_row, model.cfg.num_classes


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[1:])
def test_transformer_templates_agree_with_pytorch(tmp_path, name):
    import torch  # the dev setup always has it

    model, run, mask_id, classes = (_mage if name.startswith("mage") else _maskgit)(name)
    sd = _random_state(model, 0)
    files = write_graphs(load_template(name), sd, tmp_path, "transformer.weights")
    assert set(files) == {"transformer.onnx", "features.onnx", "transformer.weights"}
    unique = sum(v.nbytes for k, v in sd.items() if v.dtype == np.float32)
    assert (tmp_path / "transformer.weights").stat().st_size < unique * 1.05  # one copy
    n = 256 if name != "maskgit_512" else 1024
    g = torch.Generator().manual_seed(2)
    seq = torch.randint(0, 1024, (2, n), generator=g)
    seq[0, torch.randperm(n, generator=g)[: n // 2]] = mask_id
    seq[1] = mask_id
    labels = torch.tensor([0, classes - 1]) if classes else None
    if name == "maskgit_512" and labels is not None:
        # a row of 1025 positions costs four rows of the 256 px template's 257 (half a minute
        # on 2 cores): one row, half masked, with the last class, checks the 32x32 grid; the
        # batch axis comes from the same export code, checked with two rows on the others
        seq, labels = seq[:1], labels[1:]
    with torch.no_grad():
        t_logits, t_feat = (t.numpy() for t in run(seq, labels))
    feeds = {"tokens": seq.numpy()}
    if labels is not None:
        feeds["class_ids"] = labels.numpy()
    o_logits = create_session(tmp_path / "transformer.onnx", "cpu")[0].run(None, feeds)[0]
    o_feat = create_session(tmp_path / "features.onnx", "cpu")[0].run(
        None, {"tokens": feeds["tokens"]}
    )[0]
    assert o_logits.shape == t_logits.shape
    assert np.abs(o_logits - t_logits).max() <= 1e-3
    assert np.abs(o_feat - t_feat).max() <= 1e-2
