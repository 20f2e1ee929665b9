"""The session store: a document with its whole history on disk, written cheaply after every
change and read back exactly (Qt-free; `app.autosave` drives it from the GUI).

A session folder holds:

    lock            QLockFile: which running instance owns the folder (stale after a crash)
    session.json    small: image path + sha256, options, history entries, undo index
    blobs/<key>.npy content-addressed arrays: the image as opened, every undo patch and
                    canvas state (masks bit-packed); written once, never rewritten

The document's history is the whole truth: the state at undo index k is the image as opened
with changes 0..k-1 applied, so a session is the opened image plus the recorded changes, and
writing it after a change costs that change's patch (plus a few KB of JSON). Patches, canvas
states and the opened image are never modified after they are made, so a snapshot is taken on
the GUI thread by reference (microseconds) and hashed and written on a background thread.
This is the one serialisation of a document.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import stat
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.document import Canvas, Change, Document, Region
from app.core.options import EditOptions
from engine.runtime.errors import MageError
from engine.runtime.imageio import file_digest, load_image
from engine.runtime.locations import user_data_dir

log = logging.getLogger(__name__)

SESSION_VERSION = 1
SESSION_FILE = "session.json"
MAX_SESSION_BYTES = 64 << 20  # a session.json is a few KB per change
# Opened images larger than this are referenced by path + sha256 instead of copied into the
# session (a 108 MP photo would cost 324 MB per open); smaller ones are copied, so a restore
# works even when the file was moved or edited elsewhere.
REFERENCE_PIXELS = 24_000_000


def session_root() -> Path:
    return user_data_dir() / "session"


class RestoreError(MageError):
    """A session that cannot be restored (damaged, or its image changed)."""


# -- snapshots (GUI thread, by reference) ---------------------------------------------------


@dataclass
class Snapshot:
    """A document's history by reference; arrays in it are never modified afterwards."""

    path: str
    options: dict
    original: np.ndarray
    alpha0: np.ndarray | None
    history: list[Change]
    history_index: int
    saved_index: int
    extra: dict
    time: float


def snapshot(doc: Document, extra: dict | None = None) -> Snapshot:
    """Cheap: copies references and small dicts, not pixels."""
    first_canvas = next((c.canvas for c in doc.history if c.canvas is not None), None)
    # alpha only changes through canvas changes, so the alpha as opened is the one before the
    # first of them (or the current one when there is none)
    alpha0 = first_canvas[0].alpha if first_canvas is not None else doc.alpha
    return Snapshot(
        doc.path,
        doc.options.to_dict(),
        doc.original,
        alpha0,
        list(doc.history),
        doc.history_index,
        doc.saved_index,
        dict(extra or {}),
        time.time(),
    )


# -- the store (no Qt; the writer thread calls write()) -----------------------------------


class SessionStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.blobs = self.folder / "blobs"
        self._keys: dict[int, tuple[weakref.ref, str]] = {}  # id(array) -> (ref, key)
        self._file_digests: dict[tuple, str] = {}  # (path, size, mtime) -> sha256
        self._max_pixels: int | None = None  # while loading: the largest canvas it holds

    @property
    def json_path(self) -> Path:
        return self.folder / SESSION_FILE

    def has_session(self) -> bool:
        return self.json_path.is_file()

    def info(self) -> dict:
        """The session's JSON, checked field by field (raises RestoreError when unreadable,
        damaged or written by another version)."""
        try:
            st = os.stat(self.json_path)
            if not stat.S_ISREG(st.st_mode):
                raise RestoreError(
                    "the autosaved session is damaged (session.json is not a regular file)"
                )
            if st.st_size > MAX_SESSION_BYTES:
                raise RestoreError(
                    f"the autosaved session is damaged (session.json is {st.st_size:,} bytes)"
                )
            meta = json.loads(self.json_path.read_text(encoding="utf-8"))
        except RestoreError:
            raise
        except RecursionError:
            raise RestoreError("the autosaved session is damaged (nested too deeply)") from None
        except (OSError, ValueError) as error:
            raise RestoreError(f"the autosaved session is damaged ({_short(error)})") from None
        if not isinstance(meta, dict) or meta.get("version") != SESSION_VERSION:
            raise RestoreError("the autosaved session was written by another version")
        problem = check_session(meta)
        if problem:
            raise RestoreError(f"the autosaved session is damaged ({problem})")
        return meta

    # writing ------------------------------------------------------------------------------

    def write(self, snap: Snapshot | None) -> None:
        """Writes what is new of `snap` and then session.json; None removes the session."""
        if snap is None:
            self.clear()
            return
        self.blobs.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()

        def ref(array):
            if array is None:
                return None
            key = self._store(array)
            used.add(key)
            return key

        original: dict = {"size": [int(snap.original.shape[1]), int(snap.original.shape[0])]}
        if snap.path:
            digest = self._file_digest(snap.path)
            if digest:
                original["file"], original["sha256"] = os.path.abspath(snap.path), digest
        if not (
            snap.original.shape[0] * snap.original.shape[1] > REFERENCE_PIXELS
            and "sha256" in original
        ):
            original["pixels"] = ref(snap.original)
        entries = []
        for change in snap.history:
            entry: dict = {"label": change.label, "meta": change.meta}
            for part in ("mask", "image"):
                patch = getattr(change, part)
                if patch is not None:
                    entry[part] = {
                        "x0": int(patch.x0),
                        "y0": int(patch.y0),
                        "before": ref(patch.before),
                        "after": ref(patch.after),
                    }
            if change.canvas is not None:
                entry["canvas"] = [
                    {"rgb": ref(s.rgb), "alpha": ref(s.alpha), "mask": ref(s.mask)}
                    for s in change.canvas
                ]
            entries.append(entry)
        meta = {
            "version": SESSION_VERSION,
            "time": snap.time,
            "pid": os.getpid(),
            "path": snap.path,
            "original": original,
            "alpha0": ref(snap.alpha0),
            "options": snap.options,
            "history": entries,
            "history_index": snap.history_index,
            "saved_index": snap.saved_index,
            "extra": snap.extra,
        }
        data = json.dumps(meta, separators=(",", ":")).encode("utf-8")
        _atomic_write(self.json_path, lambda stream: stream.write(data), sync_folder=True)
        self._collect(used)

    def clear(self) -> None:
        """Removes session.json and the blobs (the lock stays with its owner)."""
        try:
            self.json_path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("could not remove %s: %s", self.json_path, error)
        shutil.rmtree(self.blobs, ignore_errors=True)
        self._keys.clear()

    def _store(self, array: np.ndarray) -> str:
        cached = self._keys.get(id(array))
        if cached is not None and cached[0]() is array:
            key = cached[1]
            if (self.blobs / f"{key}.npy").is_file():
                return key
        data = _pack(array) if array.dtype == bool else np.ascontiguousarray(array)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{data.dtype.str}{data.shape}".encode())
        digest.update(data.data.cast("B"))
        key = ("m" if array.dtype == bool else "a") + digest.hexdigest()
        target = self.blobs / f"{key}.npy"
        if not target.is_file():
            _atomic_write(target, lambda stream: np.save(stream, data, allow_pickle=False))
        with contextlib.suppress(TypeError):  # not weak-referenceable: hashed again next time
            self._keys[id(array)] = (weakref.ref(array), key)
        return key

    def _file_digest(self, path: str) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return ""
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if key not in self._file_digests:
            try:
                self._file_digests[key] = file_digest(path)
            except MageError:
                return ""
        return self._file_digests[key]

    def _collect(self, used: set[str]) -> None:
        """Deletes blobs session.json no longer names (undone-and-replaced history)."""
        for blob in self.blobs.glob("*.npy"):
            if blob.stem not in used:
                with contextlib.suppress(OSError):  # removed next time
                    blob.unlink()
        for temp in [*self.blobs.glob(".*.tmp"), *self.folder.glob(".*.tmp")]:
            # left by a write that a crash cut short
            if time.time() - _mtime(temp) > 60:
                temp.unlink(missing_ok=True)

    # reading ------------------------------------------------------------------------------

    def load(self) -> tuple[Document, dict]:
        """The document as autosaved, with its history and undo position, and the JSON."""
        meta = self.info()
        try:
            return self._load(meta), meta
        except RestoreError:
            raise
        except MemoryError:
            raise RestoreError("not enough memory to restore the autosaved session") from None
        except Exception as error:  # noqa: BLE001 - any damage becomes one line
            raise RestoreError(f"the autosaved session is damaged ({_short(error)})") from None

    def _load(self, meta: dict) -> Document:
        self._max_pixels = None
        original = self._original(meta)
        # The largest canvas the session can hold: the image as opened, or one an extend
        # made (canvas states, read from their headers only). A mask blob claiming more
        # pixels is damage, refused before it is unpacked.
        pixels = original.shape[0] * original.shape[1]
        for entry in meta["history"]:
            for state in entry.get("canvas") or ():
                shape = self._header(state["rgb"])[0]
                if len(shape) != 3:
                    raise RestoreError("the autosaved session is damaged (a canvas is not RGB)")
                pixels = max(pixels, shape[0] * shape[1])
        self._max_pixels = pixels
        alpha0 = self._blob(meta["alpha0"])
        doc = Document(
            original, alpha0, meta.get("path", ""), EditOptions.from_dict(meta.get("options", {}))
        )
        for entry in meta["history"]:
            change = Change(str(entry["label"]), meta=dict(entry.get("meta") or {}))
            for part in ("mask", "image"):
                if part in entry:
                    p = entry[part]
                    setattr(
                        change,
                        part,
                        Region(
                            int(p["x0"]),
                            int(p["y0"]),
                            self._needed(p["before"]),
                            self._needed(p["after"]),
                        ),
                    )
            if "canvas" in entry:
                before, after = (
                    Canvas(self._needed(s["rgb"]), self._blob(s["alpha"]), self._needed(s["mask"]))
                    for s in entry["canvas"]
                )
                change.canvas = (before, after)
            doc.history.append(change)
        index = int(meta["history_index"])
        if not 0 <= index <= len(doc.history):
            raise RestoreError("the autosaved session is damaged (bad undo position)")
        for change in doc.history:  # every change must fit, the redo tail too
            _check_fits(doc, change)
            doc.apply(change, forward=True)
        for change in reversed(doc.history[index:]):
            doc.apply(change, forward=False)
        doc.history_index = index
        doc.saved_index = int(meta.get("saved_index", -1))
        return doc

    def _original(self, meta: dict) -> np.ndarray:
        info = meta["original"]
        if info.get("pixels"):
            return self._needed(info["pixels"])
        path, digest = info.get("file", ""), info.get("sha256", "")
        if not path or not os.path.isfile(path):
            raise RestoreError(f"the image '{path}' it was made from is gone")
        if file_digest(path) != digest:
            raise RestoreError(f"the image '{path}' changed since it was opened")
        rgb = load_image(path).rgb
        if [rgb.shape[1], rgb.shape[0]] != list(info["size"]):
            raise RestoreError(f"the image '{path}' changed since it was opened")
        return rgb

    def _needed(self, key: str | None) -> np.ndarray:
        """An array the session cannot do without."""
        array = self._blob(key)
        if array is None:
            raise RestoreError("the autosaved session is damaged (an array is missing)")
        return array

    def _header(self, key) -> tuple[tuple[int, ...], np.dtype, bytes]:
        """A blob's shape and dtype from its .npy header, checked against the file's size
        before anything is allocated (a header claiming 60000x60000 over a few bytes is
        damage), and the first 8 bytes of its data (a packed mask's height and width)."""
        if not isinstance(key, str) or not key.isalnum() or not key.isascii():
            raise RestoreError("the autosaved session is damaged (bad blob name)")
        path = self.blobs / f"{key}.npy"
        damaged = RestoreError(f"the autosaved session is damaged ({path.name} is not valid)")
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):  # never block on a FIFO
                raise RestoreError(
                    f"the autosaved session is damaged ({path.name} is not a regular file)"
                )
            with open(path, "rb") as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
                else:
                    raise damaged
                offset = stream.tell()
                head = stream.read(8)
        except FileNotFoundError:
            raise RestoreError(
                f"the autosaved session is incomplete ({path.name} is missing)"
            ) from None
        except (ValueError, OSError):
            raise damaged from None
        if dtype.hasobject or any(not isinstance(n, int) or n < 0 for n in shape):
            raise damaged
        if offset + math.prod(shape) * dtype.itemsize != st.st_size:
            raise RestoreError(
                f"the autosaved session is damaged ({path.name}: its header does not match "
                "its size)"
            )
        return tuple(shape), dtype, head

    def _blob(self, key: str | None) -> np.ndarray | None:
        if key is None:
            return None
        shape, dtype, head = self._header(key)
        path = self.blobs / f"{key}.npy"
        if key.startswith("m"):  # a packed mask: its own height x width come first
            if len(shape) != 1 or dtype != np.uint8 or shape[0] < 8:
                raise RestoreError(f"the autosaved session is damaged ({path.name} is not a mask)")
            h, w = (int(v) for v in np.frombuffer(head, ">u4"))
            limit = self._max_pixels
            if (h * w + 7) // 8 != shape[0] - 8 or (limit is not None and h * w > limit):
                raise RestoreError(
                    f"the autosaved session is damaged ({path.name} says {w}x{h}, which "
                    "does not match its data or the image)"
                )
        try:
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise RestoreError(
                f"the autosaved session is incomplete ({path.name} is missing)"
            ) from None
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{data.dtype.str}{data.shape}".encode())
        digest.update(np.ascontiguousarray(data).data.cast("B"))
        if digest.hexdigest() != key[1:]:
            raise RestoreError(f"the autosaved session is damaged ({path.name} changed)")
        return _unpack(data) if key.startswith("m") else data


def check_session(meta: dict) -> str:
    """Why a session's JSON cannot be a session this version wrote ("" when it can): every
    field restore and the restore question read, with its type and range."""

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def integer(value, low: int = 0, high: int = 1 << 31) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    def key(value) -> bool:
        return value is None or (isinstance(value, str) and 0 < len(value) <= 64)

    when: Any = meta.get("time")
    if not number(when) or not math.isfinite(when) or not 0 <= when < 1e11:
        return "bad time"
    if not isinstance(meta.get("path", ""), str) or len(meta.get("path", "")) > 4096:
        return "bad path"
    if not isinstance(meta.get("options", {}), dict):
        return "bad options"
    for value in meta.get("options", {}).values():
        if (
            value is not None
            and not isinstance(value, (str, bool))
            and not (number(value) and math.isfinite(value) and abs(value) <= 1e9)
        ):
            return "bad options"
    if not isinstance(meta.get("extra", {}), dict):
        return "bad extra"
    original = meta.get("original")
    if not isinstance(original, dict):
        return "no original image"
    size = original.get("size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(integer(v, 1, 1 << 20) for v in size)
    ):
        return "bad image size"
    if (
        not key(original.get("pixels"))
        or not isinstance(original.get("file", ""), str)
        or not isinstance(original.get("sha256", ""), str)
    ):
        return "bad original image"
    if original.get("pixels") is None and not original.get("file"):
        return "no original image"
    if not key(meta.get("alpha0")):
        return "bad alpha"
    history = meta.get("history")
    if not isinstance(history, list):
        return "bad history"
    for entry in history:
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
            return "bad history entry"
        if not isinstance(entry.get("meta") or {}, dict):
            return "bad history entry"
        for part in ("mask", "image"):
            if part in entry:
                patch = entry[part]
                if (
                    not isinstance(patch, dict)
                    or not integer(patch.get("x0"))
                    or not integer(patch.get("y0"))
                    or not all(
                        isinstance(patch.get(k), str) and key(patch[k]) for k in ("before", "after")
                    )
                ):
                    return "bad history entry"
        if "canvas" in entry:
            canvas = entry["canvas"]
            if (
                not isinstance(canvas, list)
                or len(canvas) != 2
                or not all(
                    isinstance(c, dict)
                    and key(c.get("alpha"))
                    and isinstance(c.get("rgb"), str)
                    and key(c["rgb"])
                    and isinstance(c.get("mask"), str)
                    and key(c["mask"])
                    for c in canvas
                )
            ):
                return "bad history entry"
    if not integer(meta.get("history_index"), 0, len(history)):
        return "bad undo position"
    if not integer(meta.get("saved_index", -1), -1, len(history)):
        return "bad saved position"
    if "pid" in meta and not integer(meta["pid"], 0, 1 << 40):
        return "bad pid"
    return ""


def _check_fits(doc: Document, change: Change) -> None:
    h, w = doc.rgb.shape[:2]
    damaged = RestoreError("the autosaved session is damaged (a change does not fit)")
    for patch, ndim in ((change.mask, 2), (change.image, 3)):
        if patch is not None:
            if patch.before.ndim != ndim or patch.before.shape != patch.after.shape:
                raise damaged
            x0, y0, x1, y1 = patch.box
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h or (ndim == 3 and patch.before.shape[2] != 3):
                raise damaged
    for state in change.canvas or ():
        size = state.rgb.shape[:2]
        if (
            state.rgb.ndim != 3
            or state.rgb.shape[2] != 3
            or state.rgb.dtype != np.uint8
            or state.mask.shape != size
            or state.mask.dtype != bool
            or (state.alpha is not None and state.alpha.shape != size)
        ):
            raise damaged


# -- the background writer ----------------------------------------------------------------


_NOTHING = object()


class _Writer:
    """One daemon thread writing the latest snapshot; older pending ones are skipped."""

    def __init__(self, store: SessionStore, on_error, on_success=None):
        self._store, self._on_error, self._on_success = store, on_error, on_success
        self._cond = threading.Condition()
        self._pending: Any = _NOTHING  # a Snapshot, None (remove the session) or nothing
        self._busy = False
        self._thread: threading.Thread | None = None
        self.writes = 0

    def submit(self, snap: Snapshot | None) -> None:
        with self._cond:
            self._pending = snap
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="autosave", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not _NOTHING or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is _NOTHING:
                    self._cond.wait()
                snap, self._pending, self._busy = self._pending, _NOTHING, True
            try:
                self._store.write(snap)
                self.writes += 1
                if self._on_success is not None:
                    self._on_success()
            except Exception as error:  # noqa: BLE001 - autosave must never take the app down
                log.warning("autosave failed: %s", error)
                self._on_error(_short(error))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def _atomic_write(path: Path, write, sync_folder: bool = False) -> None:
    """Temp file in the same folder, fsync, os.replace: readers see old or new, never half."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sync_folder and hasattr(os, "O_DIRECTORY"):
        try:
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass  # not every file system syncs folders


def _check_writable(folder: Path) -> None:
    """Raises OSError when a file cannot be created in `folder`."""
    probe = folder / f".probe.{secrets.token_hex(4)}.tmp"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    probe.unlink()


def _prune(older: Path, keep: int) -> None:
    """Removes all but the newest `keep` set-aside sessions (by name: they start with the
    time)."""
    try:
        kept = sorted(
            (p for p in older.iterdir() if p.is_dir() and not p.is_symlink()),
            key=lambda p: (_mtime(p), p.name),
            reverse=True,
        )
    except OSError:
        return
    for stale in kept[keep:]:
        shutil.rmtree(stale, ignore_errors=True)


def _os_reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied"
    return error.strerror.lower() if error.strerror else _short(error)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _pack(mask: np.ndarray) -> np.ndarray:
    """bool [H, W] -> uint8 bits with the shape in front (8x smaller)."""
    h, w = mask.shape
    return np.concatenate(
        [np.array([h, w], dtype=">u4").view(np.uint8), np.packbits(mask, axis=None)]
    )


def _unpack(packed: np.ndarray) -> np.ndarray:
    packed = np.asarray(packed, dtype=np.uint8)
    h, w = (int(v) for v in packed[:8].view(">u4"))
    return np.unpackbits(packed[8:], count=h * w).astype(bool).reshape(h, w)
