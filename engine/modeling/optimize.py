"""Fused transformer graph for onnxruntime: `optimize_transformer(path)` rewrites a
transformer.onnx in place (`python -m engine.modeling.optimize BUNDLE` does it for a bundle).

1. Each attention block of our export (a packed qkv Linear, scaled dot-product attention, heads
   merged back) becomes one `com.microsoft.Attention` node: the same weights and bias, scale
   1/sqrt(head size); onnxruntime runs it as one kernel instead of ~30 small nodes.
2. onnxruntime's transformer optimizer (`onnxruntime.transformers.optimizer`, BERT rules)
   fuses residual Add + LayerNorm into SkipLayerNormalization and bias + GELU into BiasGelu.

The result computes the same function within fp32 noise (the export's parity check compares it
with PyTorch). Fused nodes are onnxruntime contrib operators, which every onnxruntime build
(CPU and GPU) has. A graph without the expected pattern is left as it is.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)


def _initializer_name(graph: onnx.GraphProto, name: str) -> str:
    """The initializer behind `name`, through the Identity aliases the exporter makes when it
    stores equal tensors (e.g. all-zero biases) once."""
    producers = {n.output[0]: n for n in graph.node if n.op_type == "Identity"}
    while name in producers:
        name = producers[name].input[0]
    return name


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    name = _initializer_name(graph, name)
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def fuse_attention(model: onnx.ModelProto) -> int:
    """Replace every `<prefix>/attn/qkv/MatMul` ... `<prefix>/attn/Reshape_1` chain (our MAGE
    export's attention) with one com.microsoft.Attention node. Returns how many were fused."""
    graph = model.graph
    by_name = {n.name: n for n in graph.node}
    producers = {out: n for n in graph.node for out in n.output}
    fused = 0
    for name, matmul in list(by_name.items()):
        if not name.endswith("/attn/qkv/MatMul") or matmul.op_type != "MatMul":
            continue
        prefix = name[: -len("/qkv/MatMul")]
        add = by_name.get(prefix + "/qkv/Add")
        reshape_in = by_name.get(prefix + "/Reshape")
        merge = by_name.get(prefix + "/Reshape_1")
        if add is None or reshape_in is None or merge is None:
            continue
        weight = _constant_value(graph, matmul.input[1])
        bias_name = next((i for i in add.input if i != matmul.output[0]), None)
        bias = _constant_value(graph, bias_name) if bias_name else None
        concat = producers.get(reshape_in.input[1])
        heads = None
        if concat is not None and concat.op_type == "Concat" and len(concat.input) == 5:
            value = _constant_value(graph, concat.input[3])
            heads = int(value.reshape(-1)[0]) if value is not None and value.size == 1 else None
        if (
            weight is None
            or bias is None
            or heads is None
            or weight.ndim != 2
            or weight.shape[1] != 3 * weight.shape[0]
            or bias.shape != (weight.shape[1],)
            or weight.shape[0] % heads
        ):
            continue
        assert bias_name is not None
        node = helper.make_node(
            "Attention",
            [
                matmul.input[0],
                _initializer_name(graph, matmul.input[1]),
                _initializer_name(graph, bias_name),
            ],
            [merge.output[0]],
            name=prefix + "/Attention",
            domain="com.microsoft",
            num_heads=heads,
        )
        graph.node.insert(list(graph.node).index(merge), node)
        graph.node.remove(merge)
        fused += 1
    if fused:
        _drop_dead_nodes(graph)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    outputs = {o.name for o in graph.output}
    while True:
        used = Counter(i for n in graph.node for i in n.input)
        dead = [n for n in graph.node if not any(o in used or o in outputs for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    read = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


def optimize_transformer(path: str | Path) -> dict[str, int]:
    """Rewrite transformer.onnx at `path` with fused attention, SkipLayerNormalization and
    BiasGelu. Returns the count of each fused operator."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    path = Path(path)
    model = onnx.load(str(path))
    attention = fuse_attention(model)
    counts = {"Attention": attention}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / "fused.onnx"
        onnx.save(model, str(staged))
        options = FusionOptions("bert")
        options.enable_attention = False  # done above; the BERT patterns do not match ours
        optimized = optimize_model(
            str(staged),
            model_type="bert",
            opt_level=0,
            optimization_options=options,
            use_gpu=False,
        )
        stats = optimized.get_fused_operator_statistics()
        counts.update({k: v for k, v in stats.items() if v and k != "Attention"})
        optimized.save_model_to_file(str(staged))
        staged.replace(path)
    log.info("transformer graph fused: %s", counts)
    return counts


def optimize_bundle(bundle_dir: str | Path) -> dict[str, int]:
    """Fuse a bundle's transformer.onnx in place and rewrite its manifest."""
    from engine.runtime.manifest import read_manifest, write_manifest

    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    counts = optimize_transformer(bundle_dir / "transformer.onnx")
    write_manifest(bundle_dir, manifest)
    return counts


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(
        description="Fuse a bundle's transformer.onnx (attention, SkipLayerNorm, BiasGelu)."
    )
    ap.add_argument("bundle")
    args = ap.parse_args(argv)
    counts = optimize_bundle(args.bundle)
    fused = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"{args.bundle}: transformer.onnx fused ({fused})")


if __name__ == "__main__":
    main()
