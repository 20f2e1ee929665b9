"""Robust image and mask loading, and atomic PNG saving.

Every failure reaches the user as one line (ImageError, MaskError, OutputError): what went wrong
and why, never a traceback. Loading normalises every mode Pillow can read to uint8 RGB plus an
optional alpha channel, and keeps peak memory near two copies of the image (the decoded Pillow
image and the NumPy result), so very large photos still load.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from engine.runtime.errors import ImageError, MageError, MaskError, OutputError
from engine.runtime.manifest import replace_file

_BAND_PIXELS = 1 << 20  # pixels copied per band when moving Pillow data into NumPy
_EXIF_ORIENTATION = 0x0112
_SUPPORTED_SIGNATURES = (  # formats Pillow reads: if it cannot, the file is damaged
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEIF_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
_SAME_FORMAT = {"MPO": "JPEG"}  # multi-picture JPEGs from cameras are still JPEGs
_GRAY_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


@dataclass
class LoadedImage:
    """A decoded image, normalised for the pipeline.

    Attributes:
        rgb: uint8 [H, W, 3], EXIF orientation applied.
        alpha: uint8 [H, W] when the file has transparency (not all opaque), else None.
        path: the path it was read from.
        format: Pillow's format name from the content (e.g. "PNG", "JPEG"), not the extension.
        notices: one-line notices for the user (first frame of an animation, rescaled depth...).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    path: str
    format: str
    notices: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Reads an image file of any format Pillow supports.

    Args:
        path: file to read; the content decides the format, not the extension.

    Returns:
        A `LoadedImage` with uint8 RGB [H, W, 3] and optional uint8 alpha [H, W].

    Raises:
        ImageError: missing, unreadable, empty, not an image, unsupported format, truncated or
            damaged, over Pillow's decompression-bomb limit, or out of memory.
    """
    name = os.fspath(path)
    rgb, alpha, fmt, notices = _load_arrays(name, ImageError, "image")
    return LoadedImage(rgb=rgb, alpha=alpha, path=name, format=fmt, notices=notices)


def load_mask(
    path: str | os.PathLike, size: tuple[int, int] | None = None, scale: bool = False
) -> np.ndarray:
    """Reads a mask image: white (or opaque) = area to regenerate.

    The alpha channel is used when the file has one that is not all opaque (strokes painted on
    a transparent layer); otherwise the luminance. Grey levels are thresholded at 50 %, and a
    mask holding only the values 0 and 1 is taken as 0/1.

    Args:
        path: mask file.
        size: (width, height) of the image it belongs to, or None to skip the check.
        scale: resize (nearest neighbour) a mask of another size instead of refusing it.

    Returns:
        bool [H, W].

    Raises:
        MaskError: unreadable mask (same cases as `load_image`) or a size mismatch.
    """
    name = os.fspath(path)
    rgb, alpha, _, _ = _load_arrays(name, MaskError, "mask")
    mask = _mask_from_arrays(rgb, alpha)
    if size is None or (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask
    width, height = int(size[0]), int(size[1])
    if not scale:
        raise MaskError(
            f"Mask '{name}' is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{width}x{height}; resize the mask or turn on mask scaling"
        )
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (width, height), Image.Resampling.NEAREST
    )
    return np.asarray(resized) >= 128


def save_png(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    text: dict[str, str] | None = None,
    on_write: Callable[[int], None] | None = None,
) -> None:
    """Writes a PNG atomically: a temporary file in the same folder, then os.replace.

    On any failure the temporary file is removed and an existing target is left untouched.

    Args:
        path: target file.
        rgb: uint8 [H, W, 3].
        alpha: optional uint8 [H, W]; the PNG is RGBA when given.
        text: PNG text chunks (Latin-1 values as tEXt, others as iTXt), e.g. seed and settings.
        on_write: called with the bytes written so far after each chunk of the file (progress
            for a window saving in the background; the encoder writes about 64 KB at a time).

    Raises:
        OutputError: missing folder, target is a folder, read-only folder, disk full, or any
            other write error.
        ValueError: arrays of the wrong dtype or shape, or invalid text keys.
    """
    name = os.fspath(path)
    image = _image_for_png(rgb, alpha)
    info = _png_info(text or {})
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise OutputError(f"Cannot save '{name}': the folder '{folder}' does not exist")
    if os.path.isdir(name):
        raise OutputError(f"Cannot save '{name}': a folder with that name exists")
    temp = os.path.join(folder, f".{os.path.basename(name)}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never clobber another file; a new file gets 0o666 less the umask.
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise OutputError(_write_message(name, folder, error)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            target = stream if on_write is None else _CountingWriter(stream, on_write)
            image.save(target, format="PNG", pnginfo=info)
            stream.flush()
            os.fsync(stream.fileno())  # data on disk before the rename makes it visible
        replace_file(Path(temp), Path(name))  # an overwritten file keeps its permissions
    except BaseException as error:
        _remove_quietly(temp)
        if isinstance(error, OSError):
            raise OutputError(_write_message(name, folder, error)) from None
        raise


class _CountingWriter:
    """A binary stream that reports the bytes written through it."""

    def __init__(self, stream, report: Callable[[int], None]):
        self._stream, self._report, self.written = stream, report, 0

    def write(self, data) -> int:
        count = self._stream.write(data)
        self.written += len(data)
        self._report(self.written)
        return count

    def __getattr__(self, name):  # tell, seek, flush, fileno... of the real stream
        return getattr(self._stream, name)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes as lowercase hex (read in chunks, constant memory).

    Raises:
        MageError: the file cannot be read.
    """
    name = os.fspath(path)
    digest = hashlib.sha256()
    try:
        with _open_regular(name, f"Cannot read '{name}'", MageError) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as error:
        raise MageError(f"Cannot read '{name}': {_os_reason(error)}") from None
    return digest.hexdigest()


# --- reading ---------------------------------------------------------------------------------


def _load_arrays(name: str, error_cls: type[MageError], what: str):
    """Open and convert a file: (rgb, alpha, format, notices); one-line `error_cls` on failure."""
    image, notices = _read(name, error_cls, what)
    try:
        rgb, alpha = _to_arrays(image, notices, f"Cannot load {what} '{name}'", error_cls)
    except MemoryError:
        raise error_cls(_memory_message(name, what, image)) from None
    finally:
        image.close()
    return rgb, alpha, _format(image), notices


def _read(name: str, error_cls: type[MageError], what: str) -> tuple[Image.Image, list[str]]:
    """Opens, decodes and orients the first frame; every failure becomes one `error_cls` line."""
    prefix = f"Cannot load {what} '{name}'"
    try:
        with _open_regular(name, prefix, error_cls) as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                raise error_cls(f"{prefix}: the file is empty")
            head = stream.read(32)
            stream.seek(0)
            image, notices = _decode(stream, head, prefix, error_cls, what)
    except FileNotFoundError:
        raise error_cls(f"{prefix}: file not found") from None
    except IsADirectoryError:
        raise error_cls(f"{prefix}: it is a folder, not a file") from None
    except OSError as error:
        raise error_cls(f"{prefix}: {_os_reason(error)}") from None
    notices.extend(_extension_notice(name, image))
    return image, notices


def _open_regular(name: str, prefix: str, error_cls: type[MageError]):
    """Opens a regular file for reading. A FIFO, device, socket or folder is refused in one
    line before anything could block on it: stat first, then open without blocking (a FIFO
    swapped in between still cannot hang) and check the opened file again."""
    kind = _not_regular(os.stat(name).st_mode)
    if kind:
        raise error_cls(f"{prefix}: {kind}")
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        kind = _not_regular(os.fstat(fd).st_mode)
        if kind:
            raise error_cls(f"{prefix}: {kind}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _not_regular(mode: int) -> str:
    """What a file that is not a regular file is, as the end of a sentence ("" if regular)."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "it is a folder, not a file"
    kinds = (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((text for test, text in kinds if test(mode)), "a special file")
    return f"it is {kind}, not a regular file"


def _decode(stream, head: bytes, prefix: str, error_cls: type[MageError], what: str):
    """Pillow open + load of frame 0 + EXIF orientation, with one-line errors."""
    notices: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        # Between MAX_IMAGE_PIXELS and twice that, Pillow only warns: load, but tell the user.
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        try:
            image = Image.open(stream)
            frames = getattr(image, "n_frames", 1)
            image.load()
        except Image.DecompressionBombError as error:
            raise error_cls(f"{prefix}: {_bomb_reason(error)}") from None
        except UnidentifiedImageError:
            raise error_cls(f"{prefix}: {_unidentified_reason(head)}") from None
        except MemoryError:
            raise error_cls(f"{prefix}: not enough memory to decode it") from None
        except Exception as error:  # noqa: BLE001 - any decoder failure means a damaged file
            reason = f"the file is truncated or damaged ({_short(error)})"
            raise error_cls(f"{prefix}: {reason}") from None
    if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
        width, height = image.size
        megapixels = width * height / 1e6
        notices.append(f"very large {what}: {width}x{height} ({megapixels:.0f} megapixels)")
    if frames > 1:
        notices.append(_frames_notice(image, frames))
    return _apply_orientation(image, prefix, error_cls), notices


def _apply_orientation(image: Image.Image, prefix: str, error_cls: type[MageError]) -> Image.Image:
    """Applies EXIF orientation; skipped when absent so no copy is made for normal files."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not stop the image from loading
        return image
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except MemoryError:
            raise error_cls(f"{prefix}: not enough memory to rotate it") from None
    return image


def _to_arrays(
    image: Image.Image, notices: list[str], prefix: str, error_cls: type[MageError]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> (uint8 RGB [H, W, 3], uint8 alpha [H, W] or None)."""
    mode = image.mode
    if mode in _GRAY_HIGH_DEPTH:
        gray = _gray_to_uint8(np.asarray(image), mode, notices)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    if mode == "RGB":
        return _copy_bands(image, 3), None
    if mode == "RGBA":
        return _split_alpha(_copy_bands(image, 4))
    has_alpha = mode in ("LA", "La", "PA", "RGBa") or "transparency" in image.info
    try:
        converted = image.convert("RGBA" if has_alpha else "RGB")
    except (ValueError, OSError) as error:
        reason = f"cannot convert its {mode} colours to RGB ({_short(error)})"
        raise error_cls(f"{prefix}: {reason}") from None
    try:
        if has_alpha:
            return _split_alpha(_copy_bands(converted, 4))
        return _copy_bands(converted, 3), None
    finally:
        converted.close()


def _copy_bands(image: Image.Image, channels: int) -> np.ndarray:
    """Copies a Pillow image into a new writable array in row bands: uint8 [H, W, channels].

    np.asarray(image) would first build a full bytes copy; bands keep the peak at two copies.
    """
    width, height = image.size
    out = np.empty((height, width, channels), dtype=np.uint8)
    rows = max(1, _BAND_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        band = image.crop((0, top, width, bottom))
        out[top:bottom] = np.asarray(band).reshape(bottom - top, width, channels)
    return out


def _split_alpha(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 [H, W, 4] -> (RGB [H, W, 3], alpha [H, W] or None when fully opaque)."""
    alpha = rgba[:, :, 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[:, :, :3]), None
    return np.ascontiguousarray(rgba[:, :, :3]), alpha.copy()


def _gray_to_uint8(values: np.ndarray, mode: str, notices: list[str]) -> np.ndarray:
    """High bit-depth grey [H, W] -> uint8 [H, W], scaled (not clipped) to the full range."""
    if mode.startswith("I;16"):
        return _scale_16bit(values)
    if mode == "I" and values.size and values.min() >= 0 and values.max() <= 65535:
        return _scale_16bit(values)  # older Pillow opens 16-bit PNGs as "I"
    data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "F" and data.size and data.min() >= 0.0 and data.max() <= 1.0:
        return np.rint(data * 255.0).astype(np.uint8)
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    notices.append(f"{mode} image: values {low:g}..{high:g} were stretched to 0..255")
    if high <= low:
        return np.zeros(data.shape, dtype=np.uint8)
    return np.rint((data - low) * (255.0 / (high - low))).astype(np.uint8)


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 with rounding (65535 / 257 = 255 exactly)."""
    wide = values.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _mask_from_arrays(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Alpha if it carries information, else luminance; threshold at 50 %: -> bool [H, W]."""
    if alpha is not None:
        return alpha >= 128
    # ITU-R 601 luma with integer weights summing to 1000: grey pixels keep their value.
    luma = (
        rgb[:, :, 0] * np.uint32(299)
        + rgb[:, :, 1] * np.uint32(587)
        + rgb[:, :, 2] * np.uint32(114)
        + 500
    ) // 1000
    if luma.size and luma.max() == 1:
        return luma == 1  # a 0/1 mask saved straight from an array
    return luma >= 128


# --- messages --------------------------------------------------------------------------------


def _unidentified_reason(head: bytes) -> str:
    """Why Pillow could not identify a file, judged from its first bytes."""
    for signature, fmt in _SUPPORTED_SIGNATURES:
        if head.startswith(signature):
            return f"the {fmt} file is truncated or damaged"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "the WEBP file is truncated or damaged"
    if head[4:8] == b"ftyp":
        fmt = _HEIF_BRANDS.get(head[8:12], "ISO media (" + head[8:12].decode("latin-1") + ")")
        return f"unsupported image format ({fmt}); convert it to PNG or JPEG first"
    if head.startswith(b"\xff\x0a") or head[4:8] == b"JXL ":
        return "unsupported image format (JPEG XL); convert it to PNG or JPEG first"
    if head.startswith(b"%PDF"):
        return "unsupported image format (PDF); export the page as PNG first"
    if b"<svg" in head or head.lstrip().startswith(b"<?xml"):
        return "unsupported image format (SVG); export it as PNG first"
    return "not an image file, or an unsupported image format"


def _bomb_reason(error: Exception) -> str:
    """One line with the pixel count and the limit, parsed from Pillow's message."""
    numbers = [int(n) for n in re.findall(r"\d+", str(error))]
    if len(numbers) >= 2:
        return (
            f"{numbers[0]:,} pixels is over the safety limit of {numbers[1]:,} pixels "
            "(possible decompression bomb)"
        )
    return "the image is over the pixel safety limit (possible decompression bomb)"


def _frames_notice(image: Image.Image, frames: int) -> str:
    """Tells the user that only the first frame/page/picture is used."""
    fmt = _format(image)
    if fmt == "MPO":
        return f"multi-picture JPEG: using the first of {frames} pictures"
    if fmt == "TIFF":
        return f"multi-page TIFF: using the first of {frames} pages"
    return f"animated {fmt}: using the first of {frames} frames"


def _extension_notice(name: str, image: Image.Image) -> list[str]:
    """A notice when the extension names another format than the content (content wins)."""
    ext = os.path.splitext(name)[1].lower()
    claimed = Image.registered_extensions().get(ext)
    actual = _format(image)
    if claimed is None or _SAME_FORMAT.get(actual, actual) == _SAME_FORMAT.get(claimed, claimed):
        return []
    return [f"the file is named {ext} but holds a {actual} image; loaded it as {actual}"]


def _memory_message(name: str, what: str, image: Image.Image) -> str:
    """One line for running out of memory while converting."""
    width, height = image.size
    return f"Cannot load {what} '{name}': not enough memory for a {width}x{height} image"


def _format(image: Image.Image) -> str:
    """Pillow's format name from the content, or "unknown"."""
    return image.format or "unknown"


def _short(error: Exception) -> str:
    """First line of an exception message, bounded, so user messages stay one line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _os_reason(error: OSError) -> str:
    """Short lowercase reason for an OS error, e.g. "permission denied"."""
    if isinstance(error, PermissionError):
        return "permission denied"
    return error.strerror.lower() if error.strerror else _short(error)


# --- writing ---------------------------------------------------------------------------------


def _image_for_png(rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """Validates the arrays and wraps them in a Pillow image (RGB or RGBA)."""
    pixels = np.asarray(rgb)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 [H, W, 3], got {pixels.dtype} {pixels.shape}")
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    mask = np.asarray(alpha)
    if mask.dtype != np.uint8 or mask.shape != pixels.shape[:2]:
        raise ValueError(f"alpha must be uint8 {pixels.shape[:2]}, got {mask.dtype} {mask.shape}")
    return Image.fromarray(np.dstack([pixels, mask]), "RGBA")


def _png_info(text: dict[str, str]) -> PngImagePlugin.PngInfo:
    """PNG text chunks; Pillow writes Latin-1 values as tEXt and falls back to iTXt."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 79:
            raise ValueError(f"PNG text keys must be 1-79 characters, got {key!r}")
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"PNG text keys must be Latin-1, got {key!r}") from None
        info.add_text(key, str(value))
    return info


def _write_message(name: str, folder: str, error: OSError) -> str:
    """One line for a failed save, naming the likely cause."""
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"Cannot save '{name}': the disk is full"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot save '{name}': the folder '{folder}' is read-only or not writable"
    return f"Cannot save '{name}': {_os_reason(error)}"


def _remove_quietly(path: str) -> None:
    """Deletes a temporary file, ignoring errors (it may not exist)."""
    with contextlib.suppress(OSError):  # already gone, or its folder vanished
        os.remove(path)
