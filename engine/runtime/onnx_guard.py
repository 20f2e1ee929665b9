"""A bounded look inside an ONNX file before onnxruntime opens it.

onnxruntime folds constants while it creates a session, so a file of a few KB whose graph says
`ConstantOfShape([60000, 60000, 3])` (or a `Tile`, `Expand`, `Resize` or random tensor of a
constant, huge size) allocates gigabytes before any of our checks could look at its outputs.
This reads the protobuf wire format directly (engine.runtime may not import `onnx`) through a
read-only memory map, skipping weight payloads without copying them, and refuses a file when:

- a tensor stored in it (an initializer or a Constant) declares more than MAX_TENSOR_BYTES,
  or keeps its data in another file that is not a plain regular file beside it holding those
  bytes (a bundle is self-contained: external data could otherwise name any file or device on
  the disk). Imported bundles keep their weights once, in `transformer.weights` and
  `tokenizer.weights` beside the graphs that share them; the manifest lists those files with
  their sha256 like every other;
- a graph input, output or value_info declares a fixed shape of more than MAX_TENSOR_BYTES;
- a node that makes a tensor of a given size (ConstantOfShape, Expand, Tile, Resize, EyeLike,
  RandomNormal/Uniform) is given that size as a constant that comes to more than
  MAX_TENSOR_ELEMENTS elements, or Tile/Expand would multiply a tensor by more than that.

The bound: 1 GiB for one tensor (2^28 float32 elements). The largest real tensors of a bundle
are far below it: ViT-L's biggest weight matrix is 4 MB x 4, MaskGIT's 1024-code embedding a
few MB, and a 256 px decoder's largest activation about 32 MB per image. Sizes computed from
the input at run time are bounded by the manifest's image and grid limits and by
`Bundle._check_tokenizer`'s one-token probe, which runs with its memory capped
(`sessions.PROBE_MEMORY`).
"""

from __future__ import annotations

import math
import mmap
import os
import stat
import struct

from engine.runtime.errors import BundleError

MAX_TENSOR_BYTES = 1 << 30
MAX_TENSOR_ELEMENTS = MAX_TENSOR_BYTES // 4
MAX_DEPTH = 8  # nested subgraphs (If / Loop bodies)
MAX_SMALL = 16  # int64 constants remembered as possible shapes (a shape has a few dims)
# bytes per element of each TensorProto.DataType (strings count as 1: their data is stored)
ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 1, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}
ITEM_BYTES.update({14: 8, 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1})
INT64 = 7
FLOAT = 1
# op type -> index of the input that holds the size of the tensor it makes
SIZE_INPUT = {"ConstantOfShape": 0, "Expand": 1, "Tile": 1, "Resize": 3}
SHAPE_ATTRIBUTE = ("RandomNormal", "RandomUniform", "EyeLike")


class _Refused(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise _Refused("damaged (a number runs past its message)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value) of one message: value is an int for varints and
    fixed-size fields, a (start, end) span for length-delimited ones."""
    pos = start
    value: int | tuple[int, int]
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            value, pos = 0, pos + 8
        elif wire == 5:
            value, pos = 0, pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + length), pos + length
        else:
            raise _Refused("damaged (an unknown protobuf wire type)")
        if pos > end:
            raise _Refused("damaged (a field runs past its message)")
        yield field, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(buf, wire: int, value) -> list[int]:
    """A repeated int64 field: one varint, or a packed span of them."""
    if wire == 0:
        return [_signed(value)]
    out, (pos, end) = [], value
    while pos < end:
        v, pos = _varint(buf, pos, end)
        out.append(_signed(v))
    return out


def _text(buf, span) -> str:
    return bytes(buf[span[0] : span[1]][:200]).decode("utf-8", "replace")


class _Checker:
    def __init__(self, buf, folder: str = "."):
        self.buf = buf
        self.folder = folder  # where external data files must be
        self.small: dict[str, list[int]] = {}  # small int64 constants by name
        self.scales: dict[str, list[float]] = {}  # small float constants (Resize scales)
        self.data_sizes: dict[str, int] = {}  # external data file -> its size

    def external(self, entries: dict[str, str], size: int, shown: str) -> None:
        """External data must lie in a regular file beside the model, named plainly, and be
        exactly the tensor's bytes, inside that file."""
        where = entries.get("location", "")
        if (
            not where
            or where in (".", "..")
            or any(c in where for c in "/\\:\0")
            or where != where.strip()
        ):
            raise _Refused(f"{shown} keeps its data in another file outside the model's folder")
        if where not in self.data_sizes:
            try:
                info = os.lstat(os.path.join(self.folder, where))
            except OSError:
                raise _Refused(f"{shown} keeps its data in another file that is missing") from None
            if not stat.S_ISREG(info.st_mode):
                raise _Refused(f"{shown} keeps its data in another file that is not a plain file")
            self.data_sizes[where] = info.st_size
        try:
            offset = int(entries.get("offset", "0"))
            length = int(entries.get("length", str(size)))
        except ValueError:
            raise _Refused(f"{shown} has a damaged external data entry") from None
        if offset < 0 or length != size or offset + length > self.data_sizes[where]:
            raise _Refused(
                f"{shown} keeps its data in another file, but not whole inside {where[:60]}"
            )

    def tensor(self, span, what: str) -> None:
        buf = self.buf
        dims: list[int] = []
        dtype, name, external = 0, "", False
        entries: dict[str, str] = {}
        for field, wire, value in _fields(buf, *span):
            if field == 1:
                dims += _ints(buf, wire, value)
            elif field == 2 and wire == 0:
                dtype = value
            elif field == 8 and wire == 2:
                name = _text(buf, value)
            elif field == 13 and wire == 2:
                external = True
                entry = {k: _text(buf, v) for k, w, v in _fields(buf, *value) if w == 2}
                entries[entry.get(1, "")] = entry.get(2, "")
            elif field == 13 or (field == 14 and wire == 0 and value == 1):
                external = True
        shown = f"{what} '{name}'" if name else what
        if any(d < 0 for d in dims):
            raise _Refused(f"{shown} has a negative dimension")
        size = math.prod(dims) * ITEM_BYTES.get(dtype, 1)
        if size > MAX_TENSOR_BYTES:
            raise _Refused(f"{shown} declares {size / 2**30:.1f} GiB")
        if external:
            self.external(entries, size, shown)
        if name and dtype == INT64 and len(dims) <= 1:
            values = self.int64_values(span)
            if values is not None:
                self.small[name] = values
        if name and dtype == FLOAT and len(dims) == 1 and 0 < dims[0] <= MAX_SMALL:
            floats = self.float_values(span)
            if floats is not None:
                self.scales[name] = floats

    def float_values(self, span) -> list[float] | None:
        """The values of a small float tensor (packed float_data or raw_data)."""
        raw = b""
        for field, wire, value in _fields(self.buf, *span):
            if wire == 2 and field in (4, 9):
                start, stop = value
                if stop - start > 4 * MAX_SMALL:
                    return None
                raw += bytes(self.buf[start:stop])
        count = len(raw) // 4
        return list(struct.unpack(f"<{count}f", raw[: 4 * count])) if count else None

    def int64_values(self, span) -> list[int] | None:
        """The values of a small int64 tensor (a shape); None when it holds more."""
        buf = self.buf
        values: list[int] = []
        for field, wire, value in _fields(buf, *span):
            if field == 7:
                values += _ints(buf, wire, value)
            elif field == 9 and wire == 2:
                start, stop = value
                if stop - start > 8 * MAX_SMALL:
                    return None
                raw = bytes(buf[start:stop])
                values += [
                    int.from_bytes(raw[i : i + 8], "little", signed=True)
                    for i in range(0, len(raw) - 7, 8)
                ]
            if len(values) > MAX_SMALL:
                return None
        return values

    def value_info(self, span, what: str) -> None:
        buf = self.buf
        name, dims, dtype = "", [], 1
        for field, wire, value in _fields(buf, *span):
            if field == 1 and wire == 2:
                name = _text(buf, value)
            elif field == 2 and wire == 2:  # TypeProto
                for f2, w2, v2 in _fields(buf, *value):
                    if f2 == 1 and w2 == 2:  # tensor_type
                        for f3, w3, v3 in _fields(buf, *v2):
                            if f3 == 1 and w3 == 0:
                                dtype = v3
                            elif f3 == 2 and w3 == 2:  # shape
                                dims = self._dims(v3)
        known = [d for d in dims if d is not None]
        size = math.prod(known) * ITEM_BYTES.get(dtype, 1) if known else 0
        if size > MAX_TENSOR_BYTES:
            raise _Refused(f"{what} '{name}' declares a shape of {size / 2**30:.1f} GiB")

    def _dims(self, span) -> list[int | None]:
        out: list[int | None] = []
        for field, wire, value in _fields(self.buf, *span):
            if field == 1 and wire == 2:
                dim = None
                for f2, w2, v2 in _fields(self.buf, *value):
                    if f2 == 1 and w2 == 0:
                        dim = _signed(v2)
                out.append(dim if dim is not None and dim > 0 else None)
        return out

    def graph(self, span, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise _Refused("subgraphs nested too deeply")
        nodes = []
        for field, wire, value in _fields(self.buf, *span):
            if wire != 2:
                continue
            if field == 5:
                self.tensor(value, "initializer")
            elif field in (11, 12, 13):
                self.value_info(value, {11: "input", 12: "output", 13: "value"}[field])
            elif field == 1:
                nodes.append(value)
        parsed = [self.node(value, depth) for value in nodes]  # Constants first: their names
        for op, inputs, shape_attr in parsed:
            self.sizes(op, inputs, shape_attr)

    def node(self, span, depth: int) -> tuple[str, list[str], list[int]]:
        buf = self.buf
        op, inputs, outputs, shape_attr = "", [], [], []
        attributes = []
        for field, wire, value in _fields(buf, *span):
            if wire != 2:
                continue
            if field == 1:
                inputs.append(_text(buf, value))
            elif field == 2:
                outputs.append(_text(buf, value))
            elif field == 4:
                op = _text(buf, value)
            elif field == 5:
                attributes.append(value)
        for attribute in attributes:
            attr_name = ""
            for field, wire, value in _fields(buf, *attribute):
                if field == 1 and wire == 2:
                    attr_name = _text(buf, value)
                elif field == 5 and wire == 2:  # t: e.g. a Constant's value
                    self.tensor(value, f"constant of {op or 'a node'}")
                    if op == "Constant" and outputs and self._is_int64(value):
                        values = self.int64_values(value)
                        if values is not None:
                            self.small[outputs[0]] = values
                elif field == 10 and wire == 2:
                    self.tensor(value, f"constant of {op or 'a node'}")
                elif field in (6, 11) and wire == 2:
                    self.graph(value, depth + 1)
                elif field == 8 and attr_name == "shape":
                    shape_attr += _ints(buf, wire, value)
        return op, inputs, shape_attr

    def _is_int64(self, span) -> bool:
        return any(f == 2 and w == 0 and v == INT64 for f, w, v in _fields(self.buf, *span))

    def sizes(self, op: str, inputs: list[str], shape_attr: list[int]) -> None:
        if op == "Resize" and len(inputs) > 2 and inputs[2] in self.scales:
            # every input has at least one element, so the output has at least this many
            growth = math.prod(max(v, 1.0) for v in self.scales[inputs[2]])
            if not growth <= MAX_TENSOR_ELEMENTS:
                shown = "x".join(f"{v:g}" for v in self.scales[inputs[2]][:6])
                raise _Refused(f"its Resize scales a tensor up by {shown} ({growth:,.0f} times)")
        values: list[int] | None = None
        if op in SIZE_INPUT and len(inputs) > SIZE_INPUT[op]:
            values = self.small.get(inputs[SIZE_INPUT[op]])
        elif op in SHAPE_ATTRIBUTE and shape_attr:
            values = shape_attr
        if not values:
            return
        count = math.prod(max(v, 1) for v in values)
        if count > MAX_TENSOR_ELEMENTS:
            shown = "x".join(str(v) for v in values[:6])
            raise _Refused(f"its {op} makes a tensor of {shown} ({count:,} elements)")


def check_onnx(path: str | os.PathLike) -> None:
    """Raises BundleError (one line) when the ONNX file at `path` declares tensors too large
    to allocate (see the module's docstring); returns quietly for a file within the bounds
    and leaves any other damage for onnxruntime to report."""
    name = os.path.basename(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as stream:
            st = os.fstat(stream.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                return
            size = st.st_size
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                view = memoryview(buf)
                try:
                    checker = _Checker(view, os.path.dirname(os.path.abspath(path)))
                    for field, wire, value in _fields(view, 0, size):
                        if field == 7 and wire == 2:
                            checker.graph(value)
                finally:
                    view.release()
    except _Refused as why:
        raise BundleError(f"model file {name} is refused: {why}") from None
    except (OSError, ValueError):
        return  # unreadable or not a regular file: onnxruntime says why in one line
