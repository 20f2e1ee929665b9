"""Read `torch.save` checkpoints (a zip of a pickle plus raw storages) without PyTorch.

The file is untrusted. A pickle can name any importable callable and have it called; this
reader never imports, calls or instantiates anything the file names. Every GLOBAL goes through
an explicit allow-list that maps the few names a state dict needs (OrderedDict, the tensor
rebuild functions, the storage classes by dtype) to this module's own inert stand-ins;
`argparse.Namespace` (the `args` of training scripts) and NumPy scalars read as inert data.
Anything else is refused before a single opcode after it runs.

Storages are memory-mapped, never copied: each persistent id names a zip member, which must be
stored uncompressed, listed once, and hold at least the bytes the storage needs; a tensor's
offset, sizes and strides are checked against its storage before a view is made. Tensors come
out as read-only NumPy views of the file.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import pickle
import stat
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from engine.importing.errors import CheckpointError

MAX_PICKLE_BYTES = 64 << 20  # a state dict's pickle is well under 1 MB; optimizer states more
MAX_DIMS = 8
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header, 30 bytes
LOCAL_MAGIC = b"PK\x03\x04"

# torch storage class -> NumPy dtype (little-endian; a big-endian file swaps them)
STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "BFloat16Storage": None,  # no NumPy dtype: refused when a tensor uses it
}


def _pread(fd: int, size: int, offset: int) -> bytes:
    """`size` bytes at `offset` (os.pread where it exists; Windows has no pread)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


class _Refused(Exception):
    """Raised inside the unpickler; becomes a one-line CheckpointError."""


class _StorageType:
    """Stand-in for a torch storage class: only carries its name and dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """One storage: a flat read-only array over its zip member."""

    def __init__(self, array: np.ndarray | None, name: str, numel: int, kind: str):
        self.array, self.name, self.numel, self.kind = array, name, numel, kind


class Namespace(dict):
    """`argparse.Namespace` read as a plain dict of its attributes (never the real class)."""

    def __setstate__(self, state) -> None:
        if isinstance(state, dict):
            self.update(state)


class Inert:
    """An object the file describes but that a state dict never needs (a NumPy scalar or
    dtype in the training arguments): it keeps nothing and does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        pass


def _int(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Refused(f"a tensor's {what} is not a non-negative integer")
    return value


def _rebuild_tensor(storage, offset, size, stride, *_rest) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 over our storages: a checked, read-only strided view."""
    if not isinstance(storage, _Storage):
        raise _Refused("a tensor is rebuilt from something that is not a storage")
    if not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise _Refused("a tensor's size or stride is not a tuple")
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise _Refused(f"a tensor has {len(size)} sizes and {len(stride)} strides")
    offset = _int(offset, "storage offset")
    size = tuple(_int(s, "size") for s in size)
    stride = tuple(_int(s, "stride") for s in stride)
    if storage.array is None:
        raise _Refused(f"storage {storage.name} holds bfloat16, which is not supported")
    if math.prod(size) == 0:
        return np.zeros(size, dtype=storage.array.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= storage.numel:
        raise _Refused(
            f"a tensor of shape {list(size)} reaches element {last:,} of storage "
            f"{storage.name}, which has {storage.numel:,}"
        )
    item = storage.array.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage.array[offset:],
        shape=size,
        strides=tuple(s * item for s in stride),
        writeable=False,
    )
    return view


def _rebuild_parameter(data, *_rest) -> np.ndarray:
    if not isinstance(data, np.ndarray):
        raise _Refused("a parameter is rebuilt from something that is not a tensor")
    return data


def _latin1(text, encoding="latin1"):
    """_codecs.encode as pickle protocol 2 uses it for bytes objects, and nothing more."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("a bytes object is encoded in an unexpected way")
    return text.encode("latin1")


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("argparse", "Namespace"): Namespace,
    ("_codecs", "encode"): _latin1,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("torch", "Size"): tuple,
    ("torch", "device"): Inert,
    ("numpy", "dtype"): Inert,
    ("numpy.core.multiarray", "scalar"): Inert,
    ("numpy._core.multiarray", "scalar"): Inert,
    # more values training scripts keep in their `args`: read as nothing, never built
    ("numpy.core.multiarray", "_reconstruct"): Inert,
    ("numpy._core.multiarray", "_reconstruct"): Inert,
    ("numpy", "ndarray"): Inert,
    ("pathlib", "PosixPath"): Inert,
    ("pathlib", "WindowsPath"): Inert,
    ("pathlib", "PurePosixPath"): Inert,
    ("pathlib", "PureWindowsPath"): Inert,
    ("datetime", "datetime"): Inert,
    ("datetime", "date"): Inert,
    ("datetime", "timedelta"): Inert,
}
for _name in STORAGE_DTYPES:
    _ALLOWED[("torch", _name)] = _StorageType(_name)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages):
        super().__init__(io.BytesIO(data))
        self._storages = storages

    def find_class(self, module: str, name: str):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(f"it names {module[:60]}.{name[:60]}, which a state dict never needs")
        return found

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise _Refused("it has a persistent id that is not a storage")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str):
            raise _Refused("it has a storage of an unknown kind")
        return self._storages(kind, key, _int(numel, "storage size"))


class _Archive:
    """The zip's members, checked, with the data offsets of stored members."""

    def __init__(self, path: Path, fd: int, size: int):
        self.path, self.size = path, size
        self.map: mmap.mmap | None = None
        with os.fdopen(os.dup(fd), "rb") as stream:
            try:
                zf = zipfile.ZipFile(stream)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
                raise self.refuse(
                    f"is not a readable PyTorch checkpoint (truncated or damaged?): {str(e)[:80]}"
                ) from None
            infos = zf.infolist()
            names = [i.filename for i in infos]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise self.refuse(f"is damaged: the member {dupes[0][:80]} appears twice")
            pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise self.refuse(
                    "is not a readable PyTorch checkpoint (it has no data.pkl)"
                    if not pickles
                    else "is damaged: it holds more than one data.pkl"
                )
            self.prefix = pickles[0][: -len("data.pkl")]
            self.infos = {i.filename: i for i in infos}
            info = self.infos[pickles[0]]
            if info.file_size > MAX_PICKLE_BYTES:
                raise self.refuse(
                    f"is damaged: its data.pkl claims {info.file_size:,} bytes, far more "
                    "than a state dict's"
                )
            try:
                with zf.open(info) as member:
                    self.pickle = member.read(MAX_PICKLE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                raise self.refuse(f"is damaged: data.pkl cannot be read ({str(e)[:80]})") from None
            self.byteorder = "little"
            order = self.infos.get(self.prefix + "byteorder")
            if order is not None and order.file_size <= 16:
                self.byteorder = zf.read(order).decode("ascii", "replace").strip()
        if self.byteorder not in ("little", "big"):
            raise self.refuse(f"is damaged: byte order '{self.byteorder[:16]}'")

    def refuse(self, why: str) -> CheckpointError:
        return CheckpointError(f"{self.path.name} {why}")

    def data_offset(self, info: zipfile.ZipInfo, fd: int) -> int:
        """Where a stored member's bytes start, from its local header (checked)."""
        head = _pread(fd, LOCAL_HEADER.size, info.header_offset)
        if len(head) != LOCAL_HEADER.size or head[:4] != LOCAL_MAGIC:
            raise _Refused(f"the zip header of {info.filename[:80]} is damaged")
        fields = LOCAL_HEADER.unpack(head)
        name_len, extra_len = fields[-2], fields[-1]
        name = _pread(fd, name_len, info.header_offset + LOCAL_HEADER.size)
        if name.decode("utf-8", "replace") != info.filename:
            raise _Refused(f"the zip header of {info.filename[:80]} names another member")
        start = info.header_offset + LOCAL_HEADER.size + name_len + extra_len
        if start + info.file_size > self.size:
            raise _Refused(f"member {info.filename[:80]} reaches past the end of the file")
        return start


def _open_regular(path: Path) -> tuple[int, int]:
    """An fd of `path`, refused unless it is a regular file (not a link, FIFO or device)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    if stat.S_ISLNK(info.st_mode):
        raise CheckpointError(f"{path.name} is a symbolic link: give the file itself")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path.name} is not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # replaced between the two looks
        os.close(fd)
        raise CheckpointError(f"{path.name} is not a regular file")
    if info.st_size == 0:
        os.close(fd)
        raise CheckpointError(f"checkpoint is empty: {path}")
    return fd, info.st_size


def read_pth(path: str | Path) -> object:
    """The object a `torch.save` file holds, with tensors as read-only NumPy arrays (views of
    a memory map of the file), dicts as dicts and `argparse.Namespace` as a dict. Refuses,
    in one line, anything that is not plain data."""
    path = Path(path)
    fd, size = _open_regular(path)
    try:
        if _pread(fd, 4, 0) != LOCAL_MAGIC:
            raise CheckpointError(
                f"{path.name} is not a readable PyTorch checkpoint (not a torch.save zip; the "
                "legacy pre-1.6 format is not read)"
            )
        archive = _Archive(path, fd, size)
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        little = archive.byteorder == "little"
        made: dict[str, _Storage] = {}

        def storage(kind: _StorageType, key: str, numel: int) -> _Storage:
            name = archive.prefix + "data/" + key
            if name in made:
                if (made[name].numel, made[name].kind) != (numel, kind.name):
                    raise _Refused(f"storage {key[:40]} is used with two sizes or dtypes")
                return made[name]
            info = archive.infos.get(name)
            if info is None:
                raise _Refused(f"storage {key[:40]} has no member data/{key[:40]}")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise _Refused(f"storage {key[:40]} is compressed (torch.save stores them plain)")
            item = 2 if kind.dtype is None else np.dtype(kind.dtype).itemsize
            if numel * item > info.file_size:
                raise _Refused(
                    f"storage {key[:40]} claims {numel:,} elements ({numel * item:,} bytes) but "
                    f"its member holds {info.file_size:,} bytes"
                )
            start = archive.data_offset(info, fd)
            array = None
            if kind.dtype is not None:
                dtype = np.dtype(kind.dtype).newbyteorder("<" if little else ">")
                array = np.frombuffer(mapped, dtype=dtype, count=numel, offset=start)
            made[name] = _Storage(array, key[:40], numel, kind.name)
            return made[name]

        try:
            return _Unpickler(archive.pickle, storage).load()
        except _Refused as e:
            raise CheckpointError(f"{path.name} is refused: {e}") from None
        except RecursionError:
            raise CheckpointError(f"{path.name} is refused: its pickle nests too deeply") from None
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
            raise CheckpointError(
                f"{path.name} is not a readable PyTorch checkpoint (truncated or damaged?): {first}"
            ) from None
        except (IndexError, KeyError, MemoryError, OverflowError) as e:
            raise CheckpointError(
                f"{path.name} is not a readable PyTorch checkpoint (its pickle is damaged: "
                f"{type(e).__name__})"
            ) from None
    finally:
        os.close(fd)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A checkpoint's flat state dict ({'model': sd} and {'state_dict': sd} unwrap): every
    value a tensor, every key a string. Other entries (args, epoch, optimizer) are read as data
    and dropped."""
    path = Path(path)
    obj = read_pth(path)
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    ):
        raise CheckpointError(f"{path.name} holds no state_dict of tensors")
    return dict(obj)
