"""NumPy <-> QImage conversions. Arrays are uint8 RGB [H, W, 3] or bool masks [H, W]."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

OPAQUE = np.uint32(0xFF000000)


def rgb_to_argb32(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint32 [H, W] 0xFFRRGGBB (QImage.Format_RGB32 layout)."""
    rgb = rgb.astype(np.uint32, copy=False)
    return OPAQUE | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def qimage_over(buffer: np.ndarray, fmt: QImage.Format) -> QImage:
    """A QImage that shares a C-contiguous uint32 [H, W] buffer (keep the buffer alive)."""
    h, w = buffer.shape
    return QImage(buffer.data, w, h, 4 * w, fmt)


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    """An independent QImage copy of an RGB array."""
    data = np.ascontiguousarray(rgb_to_argb32(rgb))
    return qimage_over(data, QImage.Format.Format_RGB32).copy()


def rgb_from_qimage(image: QImage) -> np.ndarray:
    """Any QImage -> uint8 [H, W, 3] (e.g. a pasted clipboard image)."""
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    w, h = image.width(), image.height()
    raw = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    pixels = raw.reshape(h, image.bytesPerLine() // 4, 4)[:, :w]
    return np.ascontiguousarray(pixels[..., [2, 1, 0]])  # BGRA in memory on little-endian
