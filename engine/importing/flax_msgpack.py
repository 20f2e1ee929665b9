"""Read Flax checkpoints (`flax.serialization.to_bytes`: msgpack) without JAX or Flax.

The file is untrusted input. It is parsed as data only (msgpack maps, strings and ext records;
nothing in it is ever executed) and walked against the tree the caller expects, so every
problem is one line that names the tensor path and why: a truncated file, a tensor of another
shape or dtype, an unknown or missing entry, a byte count that does not fit the shape.

Format (as Flax writes it): a map of maps keyed by module names, sorted; every array leaf is a
msgpack ext record of type 1 whose payload is msgpack `[shape, dtype name, C-order bytes]`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import msgpack
import numpy as np

from engine.importing.errors import CheckpointError

ARRAY_EXT = 1  # Flax's ext code for an ndarray (3 = a numpy scalar, not used in checkpoints)
MAX_TENSOR_BYTES = 256 << 20  # no parameter of the supported models comes near this
MAX_DIMS = 8
READ_SIZE = 4 << 20

# A spec maps "a/b/c" leaf paths to shapes; None in a shape accepts any positive size there.
Shape = tuple[int | None, ...]
Spec = Mapping[str, Shape]


class _LeafError(Exception):
    """Raised inside the ext hook; the walker adds the tensor's path."""


def _shown(shape) -> str:
    return "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"


def _array(code: int, data: bytes) -> np.ndarray:
    """msgpack ext hook: one Flax array record -> a float32 array (checked)."""
    if code != ARRAY_EXT:
        raise _LeafError(f"is a msgpack ext record of type {code}, not an array (type 1)")
    try:
        record = msgpack.unpackb(
            data, raw=False, max_bin_len=MAX_TENSOR_BYTES, max_str_len=64, max_array_len=64
        )
    except (ValueError, msgpack.UnpackException) as e:
        raise _LeafError(f"has a damaged array record ({type(e).__name__})") from None
    if not isinstance(record, list) or len(record) != 3:
        raise _LeafError("has a damaged array record (not [shape, dtype, bytes])")
    shape, dtype, buf = record
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise _LeafError("has a damaged array record (its shape is not a list of sizes)")
    if not isinstance(dtype, str) or not isinstance(buf, bytes):
        raise _LeafError("has a damaged array record (dtype or data of the wrong kind)")
    if dtype != "float32":
        raise _LeafError(f"has dtype {dtype[:20]}, expected float32")
    need = math.prod(shape) * 4
    if need != len(buf):
        raise _LeafError(
            f"holds {len(buf):,} bytes but its shape {_shown(shape)} of float32 needs {need:,}"
        )
    return np.frombuffer(buf, dtype="<f4").reshape(shape)


def _tree(spec: Spec) -> dict:
    root: dict = {}
    for path, shape in spec.items():
        node = root
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = tuple(shape)
    return root


class _Walker:
    def __init__(self, path: Path, spec: Spec, what: str, hint: Callable[[str], str | None]):
        self.file, self.what, self.hint = path, what, hint
        self.tree = _tree(spec)
        self.out: dict[str, np.ndarray] = {}

    def fail(self, where: str, why: str) -> CheckpointError:
        return CheckpointError(f"{self.file.name} ({self.what}): {where} {why}")

    def not_flax(self, why: str = "") -> CheckpointError:
        return CheckpointError(
            f"{self.file.name} is not a Flax checkpoint (msgpack) of the {self.what}{why}"
        )

    def read(self, unpacker: msgpack.Unpacker, where: str, call):
        try:
            return call()
        except msgpack.OutOfData:
            raise CheckpointError(
                f"{self.file.name} ({self.what}) is truncated: the file ends inside "
                f"{where or 'its first entry'}"
            ) from None
        except _LeafError as e:
            raise self.fail(f"tensor '{where}'", str(e)) from None
        except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as e:
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise self.fail(f"entry '{where or '(top)'}'", f"is damaged ({first})") from None

    def walk(self, unpacker: msgpack.Unpacker, node: dict, where: str) -> None:
        try:
            count = unpacker.read_map_header()
        except msgpack.OutOfData:
            if not where:
                raise CheckpointError(f"{self.file.name} ({self.what}) is empty") from None
            raise CheckpointError(
                f"{self.file.name} ({self.what}) is truncated: the file ends inside {where}"
            ) from None
        except (ValueError, msgpack.UnpackException):
            if not where:
                raise self.not_flax() from None
            raise self.fail(f"'{where}'", "is not a map of modules") from None
        seen: set[str] = set()
        for _ in range(count):
            try:
                key = self.read(unpacker, where, unpacker.unpack)
            except CheckpointError:
                if not where:
                    raise self.not_flax() from None
                raise
            if not isinstance(key, str) or len(key) > 200:
                if not where:
                    raise self.not_flax()
                raise self.fail(f"'{where}'", "has a key that is not a module name")
            path = f"{where}/{key}" if where else key
            if key in seen:
                raise self.fail(f"'{path}'", "appears twice")
            seen.add(key)
            child = node.get(key)
            if child is None:
                if not where:  # other collections beside "params" (optimizer state): unused
                    self.read(unpacker, path, unpacker.skip)
                    continue
                hint = self.hint(path)
                if hint:
                    raise CheckpointError(f"{self.file.name}: {hint}")
                raise self.fail(f"'{path}'", f"is not part of the {self.what}")
            if isinstance(child, dict):
                self.walk(unpacker, child, path)
                continue
            value = self.read(unpacker, path, unpacker.unpack)
            if not isinstance(value, np.ndarray):
                raise self.fail(f"tensor '{path}'", f"is a {type(value).__name__}, not an array")
            if len(value.shape) != len(child) or any(
                want is not None and got != want
                for got, want in zip(value.shape, child, strict=True)
            ):
                raise self.fail(
                    f"tensor '{path}'",
                    f"has shape {_shown(value.shape)}, expected {_shown(child)}",
                )
            if min(value.shape, default=1) == 0:
                raise self.fail(f"tensor '{path}'", "is empty")
            if not np.isfinite(value).all():
                raise self.fail(f"tensor '{path}'", "contains NaN or infinite values")
            self.out[path] = value
        missing = sorted(set(node) - seen)
        if missing and not where and not seen & set(node):
            raise self.not_flax(f" (it has no '{missing[0]}')")
        if missing:
            path = f"{where}/{missing[0]}" if where else missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise self.fail(f"'{path}'", f"is missing{more}")


def read_flax_checkpoint(
    path: str | Path,
    spec: Spec,
    what: str,
    hint: Callable[[str], str | None] = lambda _path: None,
) -> dict[str, np.ndarray]:
    """The tensors of a Flax msgpack checkpoint as {"a/b/c": float32 array}, checked against
    `spec` (every leaf present with its shape, nothing else below the top level). `what` names
    the file's role in messages; `hint(path)` may explain an unexpected entry (a swapped file).
    Top-level collections not in the spec are skipped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    walker = _Walker(path, spec, what, hint)
    with open(path, "rb") as stream:
        unpacker = msgpack.Unpacker(
            stream,
            ext_hook=_array,
            raw=False,
            read_size=READ_SIZE,
            max_buffer_size=MAX_TENSOR_BYTES + READ_SIZE,
            strict_map_key=False,
        )
        walker.walk(unpacker, walker.tree, "")
        # the checkpoint must end the file: anything after it, whole or cut short, is damage
        if unpacker.tell() == os.fstat(stream.fileno()).st_size:
            return walker.out
    raise CheckpointError(f"{path.name} ({what}) is damaged: data follows the checkpoint")
