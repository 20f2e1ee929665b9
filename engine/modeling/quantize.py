"""int8 transformer for the CPU: `python -m engine.modeling.quantize BUNDLE [--into-bundle]`.

Dynamic quantisation (onnxruntime.quantization, which needs the `onnx` package, hence here and
not in engine/runtime): MatMul weights become QUInt8, activations are quantised per call.
QInt8 weights lose accuracy badly on AVX2 CPUs (top-1 agreement 55% measured on ViT-B), so only
QUInt8 is offered. The file goes to the user cache (keyed by transformer.onnx's sha256), where
`engine.runtime.speed.find_int8` looks for it, or into the bundle (listed in its manifest).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from engine.runtime.manifest import read_manifest, write_manifest
from engine.runtime.speed import INT8_FILE, int8_cache_path


def quantize_transformer(src: str | Path, dst: str | Path, per_channel: bool = False) -> Path:
    """fp32 transformer.onnx -> int8 (QUInt8 weights, dynamic activations)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        out = Path(tmp) / dst.name
        quantize_dynamic(
            str(src),
            str(out),
            weight_type=QuantType.QUInt8,
            per_channel=per_channel,
            # Attention: a fused transformer (engine/modeling/optimize.py) keeps its qkv
            # weights there; FLOAT is the type of tensors made by such contrib operators.
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
        )
        shutil.move(str(out), dst)
    return dst


def quantize_bundle(
    bundle_dir: str | Path, into_bundle: bool = False, per_channel: bool = False
) -> Path:
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir, verify_hashes=False)
    src = bundle_dir / "transformer.onnx"
    if into_bundle:
        dst = quantize_transformer(src, bundle_dir / INT8_FILE, per_channel)
        manifest.files[INT8_FILE] = ""
        write_manifest(bundle_dir, manifest)
        return dst
    return quantize_transformer(src, int8_cache_path(manifest), per_channel)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument(
        "--into-bundle",
        action="store_true",
        help="write transformer.int8.onnx into the bundle and its manifest",
    )
    ap.add_argument("--per-channel", action="store_true")
    args = ap.parse_args(argv)
    print(quantize_bundle(args.bundle, args.into_bundle, args.per_channel))


if __name__ == "__main__":
    main()
