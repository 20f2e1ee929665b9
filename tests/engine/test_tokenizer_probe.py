"""The bundle's tokenizer check at load: a decoder that does not take int64 tokens alone, that
decodes nothing, or that decodes to the wrong size is refused in one line; one whose nodes
cannot work on a one-token grid but decode a whole grid to the right size loads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine.runtime.bundle import Bundle
from engine.runtime.errors import BundleError
from engine.runtime.manifest import sha256_file


def _decoder(tokens_type=TensorProto.INT64, extra_input=False, node="conv", scale=1) -> bytes:
    """tokens [n,h,w] -> an image [n,3,H,W] whose graph needs more than one token: a reshape
    into groups of four (then `scale` pixels a token), or an unpadded 3x3 convolution; or,
    with node="broken", a graph that decodes no grid at all (a reshape into 7x5)."""
    inputs = [helper.make_tensor_value_info("tokens", tokens_type, ["n", "h", "w"])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "H", "W"])
    nodes = [
        helper.make_node("Cast", ["tokens"], ["values"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["values", "axis"], ["plane"]),
    ]
    init = [helper.make_tensor("axis", TensorProto.INT64, [1], [1])]
    if node == "reshape":
        nodes += [
            helper.make_node("Reshape", ["plane", "fours"], ["grouped"]),
            helper.make_node("Shape", ["plane"], ["shape"]),
            helper.make_node("Reshape", ["grouped", "shape"], ["small"]),
            helper.make_node("Resize", ["small", "", "scales"], ["grey"], mode="nearest"),
            helper.make_node("Concat", ["grey", "grey", "grey"], ["image"], axis=1),
        ]
        init.append(helper.make_tensor("fours", TensorProto.INT64, [2], [-1, 4]))
        init.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, scale, scale]))
    elif node == "broken":
        nodes += [
            helper.make_node("Reshape", ["plane", "fixed"], ["flat"]),
            helper.make_node("Shape", ["plane"], ["shape"]),
            helper.make_node("Reshape", ["flat", "shape"], ["grey"]),
            helper.make_node("Concat", ["grey", "grey", "grey"], ["image"], axis=1),
        ]
        init.append(helper.make_tensor("fixed", TensorProto.INT64, [2], [7, 5]))
    else:
        nodes.append(helper.make_node("Conv", ["plane", "kernel"], ["image"]))
        init.append(helper.make_tensor("kernel", TensorProto.FLOAT, [3, 1, 3, 3], [0.1] * 27))
    graph = helper.make_graph(nodes, "decoder", inputs, [image], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _with_decoder(src, folder, model: bytes):
    out = folder / "bundle"
    shutil.copytree(src, out)
    (out / "tokenizer_decoder.onnx").write_bytes(model)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["tokenizer_decoder.onnx"] = sha256_file(out / "tokenizer_decoder.onnx")
    for optional in ("tokenizer_decoder_stats.onnx", "tokenizer_decoder_region.onnx"):
        manifest["files"].pop(optional, None)  # fast decoders made for the original one
        (out / optional).unlink(missing_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (_decoder(tokens_type=TensorProto.INT32), "'tokens' tensor(int32), expected only"),
        (_decoder(extra_input=True), "'scale' tensor(float), expected only 'tokens'"),
    ],
    ids=["int32-tokens", "second-input"],
)
def test_a_decoder_that_does_not_take_int64_tokens_alone_is_refused(
    tiny_bundle_path, tmp_path, model, said
):
    path = _with_decoder(tiny_bundle_path, tmp_path, model)
    with pytest.raises(BundleError, match=r"tokenizer_decoder\.onnx takes") as refused:
        Bundle(path, device="cpu")
    message = str(refused.value)
    assert said in message
    assert "\n" not in message


def _refusal(bundle_path) -> str:
    with pytest.raises(BundleError) as refused:
        Bundle(bundle_path, device="cpu")
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_decoder_that_decodes_no_grid_is_refused_at_load(tiny_bundle_path, tmp_path):
    message = _refusal(_with_decoder(tiny_bundle_path, tmp_path, _decoder(node="broken")))
    gh, gw = Bundle(tiny_bundle_path, device="cpu").manifest.grid
    assert f"tokenizer_decoder.onnx cannot decode a {gh}x{gw} token grid: " in message
    assert "Reshape" in message  # onnxruntime's own reason, its first line


@pytest.mark.parametrize("node", ["reshape", "conv"])
def test_a_decoder_that_needs_more_than_one_token_is_held_to_the_size_of_a_whole_grid(
    tiny_bundle_path, tmp_path, node
):
    """Neither decodes one token; on a whole grid, one gives a pixel a token and the other
    loses the border: both are refused at load, before any run, saying what they made."""
    manifest = Bundle(tiny_bundle_path, device="cpu").manifest
    gh, gw = manifest.grid
    message = _refusal(_with_decoder(tiny_bundle_path, tmp_path, _decoder(node=node)))
    made = f"{gh}x{gw}" if node == "reshape" else f"{gh - 2}x{gw - 2}"
    assert f"turns a {gh}x{gw} token grid into 3x{made} pixels" in message
    assert f"says {manifest.downsample}x{manifest.downsample} a token" in message


def test_a_decoder_that_needs_more_than_one_token_but_decodes_a_grid_loads(
    tiny_bundle_path, tmp_path
):
    ds = Bundle(tiny_bundle_path, device="cpu").manifest.downsample
    path = _with_decoder(tiny_bundle_path, tmp_path, _decoder(node="reshape", scale=ds))
    bundle = Bundle(path, device="cpu")
    grid = bundle.manifest.grid
    image = bundle.decode(np.ones((1, *grid), np.int64))
    assert image.shape == (1, 3, grid[0] * ds, grid[1] * ds)
    assert np.all(image == 1.0)  # token value 1, repeated over its pixels
