"""Bundle graphs without tracing: weight-free ONNX templates filled from a checkpoint.

Each template (templates/NAME.GRAPH.onnx) is a graph the PyTorch export wrote once
(scripts/make_import_templates.py) with its weights taken out; templates/NAME.json says, for
every weight, which state-dict tensor it is and how it was laid out (as is, transposed, its
first rows), and lists the full state dict the architecture expects (key, dtype, shape).

Filling writes every distinct weight once into one external-data file beside the graphs (ONNX's
own external-data format, which onnxruntime and `onnx.load` read), and each graph refers to it
by offset: transformer.onnx and features.onnx share one copy of the transformer's weights, the
three tokenizer decoders one copy of the decoder's. Each graph also records the data file's
sha256 in its metadata, so two bundles with different weights never have identical graph files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnx

from engine.importing.errors import CheckpointError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
BIG_ALIGN = 1 << 16  # page (and Windows allocation) granularity: lets onnxruntime map weights
SMALL_ALIGN = 64
BIG = 1 << 20


@dataclass(frozen=True)
class Template:
    name: str
    state: dict[str, tuple[str, tuple[int, ...]]]  # key -> (dtype, shape) of the state dict
    graphs: dict[str, dict]  # bundle file name -> {"template": file, "weights": [...]}

    def graph(self, file_name: str) -> onnx.ModelProto:
        info = self.graphs[file_name]
        return onnx.load_model_from_string((TEMPLATES_DIR / info["template"]).read_bytes())


@cache
def load_template(name: str) -> Template:
    data = json.loads((TEMPLATES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    state = {k: (dt, tuple(shape)) for k, (dt, shape) in data["state"].items()}
    return Template(name, state, data["graphs"])


def _shape(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_state(
    sd: Mapping[str, np.ndarray], template: Template, what: str, finite: bool = True
) -> None:
    """The state dict holds exactly the template's keys with their dtypes and shapes and (for
    float tensors) only finite values; else one CheckpointError naming the first bad key."""
    expected = template.state
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{what}: key '{missing[0]}' is missing{more}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{what}: unexpected key '{unexpected[0]}'{more}")
    for key, (dtype, shape) in expected.items():
        value = sd[key]
        if tuple(value.shape) != shape:
            raise CheckpointError(
                f"{what}: key '{key}' has shape {_shape(value.shape)}, expected {_shape(shape)}"
            )
        if value.dtype != np.dtype(dtype):
            raise CheckpointError(f"{what}: key '{key}' has dtype {value.dtype}, expected {dtype}")
        if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"{what}: key '{key}' contains NaN or infinite values")


def _apply(value: np.ndarray, ops: list) -> np.ndarray:
    for op in ops:
        if op == "T":
            value = value.T
        elif isinstance(op, list) and op[0] == "rows":
            value = value.reshape(value.shape[0], -1)[: op[1]]
        else:
            raise ValueError(f"unknown template op {op!r}")
    return value


class WeightsWriter:
    """Appends distinct weights to one external-data file; hashes it as it goes."""

    def __init__(self, path: Path):
        self.path = path
        self.stream = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.digest = hashlib.sha256()
        self.offset = 0
        self.placed: dict[tuple, tuple[int, int]] = {}

    def _write(self, data) -> None:
        self.stream.write(data)
        self.digest.update(data)
        self.offset += len(memoryview(data).cast("B"))

    def place(self, key: str, ops: list, value: np.ndarray) -> tuple[int, int]:
        """(offset, length) of this tensor's little-endian float32 bytes in the file."""
        ident = (key, json.dumps(ops))
        if ident not in self.placed:
            data = np.ascontiguousarray(_apply(value, ops), dtype="<f4")
            align = BIG_ALIGN if data.nbytes >= BIG else SMALL_ALIGN
            pad = -self.offset % align
            if pad:
                self._write(bytes(pad))
            start = self.offset
            self._write(data.data.cast("B") if data.size else b"")
            self.placed[ident] = (start, data.nbytes)
        return self.placed[ident]

    def close(self) -> str:
        self.stream.close()
        return self.digest.hexdigest()


def write_graphs(
    template: Template,
    sd: Mapping[str, np.ndarray],
    folder: Path,
    data_name: str,
    files: Iterable[str] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[str]:
    """Fill the template's graphs from `sd` (already checked with check_state) into `folder`,
    their weights in `folder/data_name`. Returns the names of the files written."""
    files = list(files or template.graphs)
    writer = WeightsWriter(folder / data_name)
    try:
        tables = {}
        for file_name in files:
            rows = []
            for w in template.graphs[file_name]["weights"]:
                offset, length = writer.place(w["key"], w["ops"], sd[w["key"]])
                rows.append((w, offset, length))
            tables[file_name] = rows
            progress(f"weights of {file_name}")
    finally:
        digest = writer.close()
    for file_name, rows in tables.items():
        model = template.graph(file_name)
        for w, offset, length in rows:
            tensor = onnx.TensorProto(name=w["name"], data_type=onnx.TensorProto.FLOAT)
            tensor.dims.extend(w["dims"])
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for k, v in (("location", data_name), ("offset", offset), ("length", length)):
                tensor.external_data.add(key=k, value=str(v))
            model.graph.initializer.append(tensor)
        del model.metadata_props[:]
        model.metadata_props.add(key="weights_sha256", value=digest)
        model.metadata_props.add(key="template", value=template.name)
        (folder / file_name).write_bytes(model.SerializeToString())
    return [*files, data_name]
