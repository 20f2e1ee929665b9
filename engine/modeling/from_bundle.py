"""Read a bundle's own tokenizer back into PyTorch, so a shipped model can be fine-tuned.

A bundle holds only ONNX files. Convolution weights and the codebook keep their parameter
names in them ("vqgan.decoder.conv_in.weight"), but the exporter folds each GroupNorm's scale
and shift into anonymous constants of a Mul and an Add after an InstanceNormalization, and
their node names drop the level index ("/encoder/block.0/norm1/Mul"). Those are matched by
order instead: ONNX nodes are stored in execution order, and a forward pass of the PyTorch
module with hooks gives its GroupNorms in the same order. The model size is read from the
weight shapes. `tokenizer_from_bundle` then re-exports the result and refuses it unless it
reproduces the bundle's own tokens and pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from engine.modeling.config import VqganConfig
from engine.modeling.vqgan import VQGAN, TokenizerDecoder, TokenizerEncoder
from engine.runtime.manifest import read_manifest
from engine.runtime.sessions import create_session

PREFIX = "vqgan."


class BundleWeightsError(ValueError):
    """The bundle's tokenizer cannot be read back (unknown layout, or it does not round-trip)."""


def _graph(path: Path) -> tuple[onnx.GraphProto, dict[str, np.ndarray]]:
    """The graph and its constant tensors by name, including the Identity aliases the exporter
    makes when it stores equal tensors (e.g. untrained all-ones norm scales) once."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:  # nodes are in execution order: aliases of aliases resolve
        if node.op_type == "Identity" and node.input[0] in inits:
            inits[node.output[0]] = inits[node.input[0]]
    return model.graph, inits


def _norm_constants(
    graph: onnx.GraphProto, inits: dict[str, np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scale, shift) of every folded GroupNorm, in execution order: the Mul and the Add that
    follow each InstanceNormalization's reshape back."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def next_op(output: str, op: str) -> onnx.NodeProto:
        for node in consumers.get(output, []):
            if node.op_type == op:
                return node
        raise BundleWeightsError(f"no {op} after {output}: not a tokenizer this reader knows")

    found = []
    for node in graph.node:
        if node.op_type != "InstanceNormalization":
            continue
        reshape = next_op(node.output[0], "Reshape")
        mul = next_op(reshape.output[0], "Mul")
        add = next_op(mul.output[0], "Add")
        scale = [inits[i] for i in mul.input if i in inits]
        shift = [inits[i] for i in add.input if i in inits]
        if len(scale) != 1 or len(shift) != 1:
            raise BundleWeightsError(f"{mul.name}: the GroupNorm constants are not initializers")
        found.append((scale[0].reshape(-1), shift[0].reshape(-1)))
    return found


def _config(inits: dict[str, np.ndarray], image_size: int) -> VqganConfig:
    """Model sizes from the encoder's weight shapes."""

    def shape(key: str) -> tuple[int, ...]:
        if PREFIX + key not in inits:
            raise BundleWeightsError(f"the encoder has no {key}: not a tokenizer of this layout")
        return inits[PREFIX + key].shape

    ch = shape("encoder.conv_in.weight")[0]
    widths: list[int] = []
    blocks = 0
    while PREFIX + f"encoder.down.{len(widths)}.block.0.conv1.weight" in inits:
        widths.append(shape(f"encoder.down.{len(widths)}.block.0.conv1.weight")[0])
    while PREFIX + f"encoder.down.0.block.{blocks}.conv1.weight" in inits:
        blocks += 1
    codebook_size, codebook_dim = shape("quantize.embedding.weight")
    z_channels = shape("encoder.conv_out.weight")[0]
    if not widths or any(w % ch for w in widths):
        raise BundleWeightsError("cannot read the encoder's level widths")
    return VqganConfig(
        image_size=image_size,
        ch=ch,
        ch_mult=tuple(w // ch for w in widths),
        num_res_blocks=blocks,
        z_channels=z_channels,
        codebook_size=codebook_size,
        codebook_dim=codebook_dim if codebook_dim != z_channels else None,
    )


def _norm_call_order(model: VQGAN, part: str) -> list[str]:
    """Names of the GroupNorms of `part` ("encoder" or "decoder") in the order they run."""
    order: list[str] = []
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: order.append(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.GroupNorm) and name.startswith(part + ".")
    ]
    try:
        with torch.no_grad():
            size, grid = model.cfg.image_size, model.cfg.grid
            if part == "encoder":
                model.encode(torch.zeros(1, 3, size, size))
            else:
                model.decode(torch.zeros(1, grid, grid, dtype=torch.long))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def read_tokenizer_state(bundle_dir: str | Path) -> tuple[VqganConfig, dict[str, torch.Tensor]]:
    """The tokenizer's config and state_dict as stored in a bundle (not yet verified)."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    graphs = {
        part: _graph(bundle_dir / f"tokenizer_{part}.onnx") for part in ("encoder", "decoder")
    }
    cfg = _config(graphs["encoder"][1], manifest.image_size)
    model = VQGAN(cfg)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for part, (graph, inits) in graphs.items():
        for name, value in inits.items():
            key = name[len(PREFIX) :]
            if name.startswith(PREFIX) and key in expected:
                state[key] = torch.from_numpy(np.array(value))
        norms = _norm_call_order(model, part)
        constants = _norm_constants(graph, inits)
        if len(norms) != len(constants):
            raise BundleWeightsError(
                f"tokenizer_{part}.onnx has {len(constants)} GroupNorms, "
                f"the model of its size {len(norms)}"
            )
        for name, (scale, shift) in zip(norms, constants, strict=True):
            state[f"{name}.weight"] = torch.from_numpy(np.array(scale))
            state[f"{name}.bias"] = torch.from_numpy(np.array(shift))
    missing = sorted(set(expected) - set(state))
    if missing:
        raise BundleWeightsError(
            f"the bundle lacks {len(missing)} tokenizer weights, e.g. {missing[0]}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise BundleWeightsError(
                f"{key}: shape {tuple(tensor.shape)} in the bundle, "
                f"{tuple(expected[key].shape)} expected"
            )
    return cfg, state


def _test_images(size: int, seed: int) -> torch.Tensor:
    """Noise and smooth images (noise alone visits few codes)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(8, 3, size, size, generator=g)
    images[4:] = torch.nn.functional.avg_pool2d(images[4:], 9, 1, 4)
    return images


def tokens_agree_with_bundle(model: VQGAN, bundle_dir: str | Path, seed: int = 0) -> float:
    """Fraction of test-image tokens on which `model` and the bundle's encoder agree."""
    enc = create_session(Path(bundle_dir) / "tokenizer_encoder.onnx", "cpu")[0]
    images = _test_images(model.cfg.image_size, seed)
    want = enc.run(None, {"image": images.numpy()})[0]
    model.eval()
    with torch.no_grad():
        got = TokenizerEncoder(model)(images).numpy()
    return float((got == want).mean())


def tokenizer_from_bundle(bundle_dir: str | Path, seed: int = 0) -> VQGAN:
    """The bundle's tokenizer as a PyTorch VQGAN, verified: it must give the bundle's tokens
    (>= 99.9% of them) and pixels (max |d| <= 1e-4) on test inputs."""
    bundle_dir = Path(bundle_dir)
    cfg, state = read_tokenizer_state(bundle_dir)
    model = VQGAN(cfg)
    model.load_state_dict(state, strict=True)
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.codebook_size, (2, cfg.grid, cfg.grid), generator=g)
    dec = create_session(bundle_dir / "tokenizer_decoder.onnx", "cpu")[0]
    want_pixels = dec.run(None, {"tokens": ids.numpy()})[0]
    with torch.no_grad():
        got_pixels = TokenizerDecoder(model)(ids).numpy()
    agree = tokens_agree_with_bundle(model, bundle_dir, seed)
    diff = float(np.abs(got_pixels - want_pixels).max())
    if agree < 0.999 or diff > 1e-4:
        raise BundleWeightsError(
            f"{bundle_dir.name}: the tokenizer read back does not match the "
            f"bundle (tokens agree on {agree:.2%}, pixels differ by "
            f"{diff:.1e})"
        )
    return model


def tokenizer_checkpoint(bundle_dir: str | Path) -> dict:
    """A `train tokenizer` checkpoint (for --init) holding a bundle's verified tokenizer."""
    model = tokenizer_from_bundle(bundle_dir)
    return {
        "kind": "tokenizer",
        "config": model.cfg.to_dict(),
        "model": model.state_dict(),
        "step": 0,
        "source_bundle": str(bundle_dir),
    }
