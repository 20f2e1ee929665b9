"""Regenerate the weight-free ONNX graph templates of engine/importing/templates/ (PyTorch).

    python scripts/make_import_templates.py [NAME ...]

For each architecture the importers know (the official VQGAN tokenizer, MAGE ViT-B and ViT-L,
MaskGIT 256 and 512) this builds the PyTorch model with distinct random weights, exports its
bundle graphs with the same export code as `main.py export` (engine/modeling/export.py), and
then works out, for every weight the exporter wrote, which state-dict tensor it came from and
how (as is, transposed, its first rows): the random values make that match unambiguous. The
weights are then taken out: each template is the graph alone plus a JSON recipe
(`NAME.json`), which the import layer fills from a checkpoint with NumPy
(engine/importing/templates.py). Small constants of the graph (shapes, eps) stay in it.

tests/engine/test_import_templates.py keeps these templates and the PyTorch export in
agreement on the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.importing.templates import TEMPLATES_DIR
from engine.modeling.config import MAGE_VIT_BASE, MAGE_VIT_LARGE, VQGAN_OFFICIAL
from engine.modeling.export import OPSET, export_tokenizer_onnx
from engine.modeling.mage import MAGE, FeaturesExport, TransformerExport
from engine.modeling.maskgit import (
    MaskGitConfig,
    MaskGitExport,
    MaskGitFeatures,
    MaskGitTransformer,
)
from engine.modeling.vqgan import VQGAN

SMALL = 4  # a float constant that is no weight must be this small (an eps, a scale)


def _export(module, args, path: Path, inputs, outputs, dynamic) -> None:
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
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


def _randomise(module: torch.nn.Module, seed: int) -> dict[str, np.ndarray]:
    """Distinct random values in every float tensor, so each exported weight matches one
    state-dict tensor only."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.randn(value.shape, generator=g) * 0.05 + 0.01)
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def _candidates(a: np.ndarray, sd: dict[str, np.ndarray]):
    """(key, ops, view) for every way a state-dict tensor could give `a`'s values."""
    n = a.size
    for key, t in sd.items():
        if t.dtype != a.dtype:
            continue
        if t.size == n:
            yield key, [], t.reshape(-1)
            if t.ndim == 2:
                yield key, ["T"], t.T.reshape(-1)
        elif t.size > n:
            rows = t.reshape(t.shape[0], -1)
            width = rows.shape[1]
            if n % width == 0:
                k = n // width
                yield key, [["rows", k]], rows[:k].reshape(-1)
                if t.ndim == 2:
                    yield key, [["rows", k], "T"], rows[:k].T.reshape(-1)


def _match(a: np.ndarray, sd: dict[str, np.ndarray]) -> tuple[str, list] | None:
    """The one (key, ops) that gives `a`, or None for a constant of the graph itself."""
    flat = a.reshape(-1)
    found = [
        (key, ops)
        for key, ops, view in _candidates(a, sd)
        if view[0] == flat[0] and np.array_equal(view, flat)
    ]
    if len(found) > 1 or (not found and a.size > SMALL):
        raise SystemExit(f"weight of shape {list(a.shape)} matches {len(found)} tensors: {found}")
    return found[0] if found else None


def make_template(name: str, onnx_files: dict[str, Path], module: torch.nn.Module, sd) -> None:
    recipe: dict = {
        "state": {k: [str(v.dtype), list(v.shape)] for k, v in sd.items()},
        "graphs": {},
    }
    for graph_name, path in onnx_files.items():
        model = onnx.load(str(path))
        weights, kept = [], []
        for init in model.graph.initializer:
            a = numpy_helper.to_array(init)
            found = _match(a, sd) if a.dtype == np.float32 and a.size else None
            if found is None:
                kept.append(init)
                continue
            key, ops = found
            weights.append({"name": init.name, "key": key, "ops": ops, "dims": list(a.shape)})
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        out = TEMPLATES_DIR / f"{name}.{graph_name}"
        out.write_bytes(model.SerializeToString())
        recipe["graphs"][graph_name] = {"template": out.name, "weights": weights}
        print(f"{out.name}: {len(weights)} weights, {out.stat().st_size / 1e3:.0f} kB of graph")
    (TEMPLATES_DIR / f"{name}.json").write_text(json.dumps(recipe) + "\n")


def tokenizer(work: Path) -> None:
    vqgan = VQGAN(VQGAN_OFFICIAL).eval()
    sd = _randomise(vqgan, 1)
    export_tokenizer_onnx(vqgan, work)
    files = sorted(p.name for p in work.glob("tokenizer_*.onnx"))
    make_template("vqgan", {f: work / f for f in files}, vqgan, sd)


def mage(name: str, cfg, work: Path) -> None:
    model = MAGE(cfg).eval()
    sd = _randomise(model, 2)
    seq = torch.randint(0, cfg.codebook_size, (2, cfg.seq_len))
    _export(
        TransformerExport(model),
        (seq,),
        work / "transformer.onnx",
        ["tokens"],
        ["logits"],
        {"tokens": {0: "B"}, "logits": {0: "B"}},
    )
    _export(
        FeaturesExport(model),
        (seq,),
        work / "features.onnx",
        ["tokens"],
        ["features"],
        {"tokens": {0: "B"}, "features": {0: "B"}},
    )
    files = ("transformer.onnx", "features.onnx")
    make_template(name, {f: work / f for f in files}, model, sd)


def maskgit(name: str, grid: int, work: Path) -> None:
    model = MaskGitTransformer(MaskGitConfig(grid=grid)).eval()
    sd = _randomise(model, 3)
    tokens = torch.randint(0, model.cfg.codebook_size, (2, grid * grid))
    class_ids = torch.tensor([0, model.cfg.num_classes - 1])
    _export(
        MaskGitExport(model),
        (tokens, class_ids),
        work / "transformer.onnx",
        ["tokens", "class_ids"],
        ["logits"],
        {"tokens": {0: "B"}, "class_ids": {0: "B"}, "logits": {0: "B"}},
    )
    _export(
        MaskGitFeatures(model),
        (tokens,),
        work / "features.onnx",
        ["tokens"],
        ["features"],
        {"tokens": {0: "B"}, "features": {0: "B"}},
    )
    files = ("transformer.onnx", "features.onnx")
    make_template(name, {f: work / f for f in files}, model, sd)


MAKERS = {
    "vqgan": tokenizer,
    "mage_vit_base": lambda work: mage("mage_vit_base", MAGE_VIT_BASE, work),
    "mage_vit_large": lambda work: mage("mage_vit_large", MAGE_VIT_LARGE, work),
    "maskgit_256": lambda work: maskgit("maskgit_256", 16, work),
    "maskgit_512": lambda work: maskgit("maskgit_512", 32, work),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help=f"any of {', '.join(MAKERS)} (default: all)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.names) - set(MAKERS))
    if unknown:
        ap.error(f"unknown template {unknown[0]}")
    TEMPLATES_DIR.mkdir(parents=True, exist_ok=True)
    for name in args.names or list(MAKERS):
        with tempfile.TemporaryDirectory() as tmp:
            MAKERS[name](Path(tmp))


if __name__ == "__main__":
    main()
