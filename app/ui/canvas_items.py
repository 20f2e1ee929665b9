"""Scene items of the canvas: the image, the mask overlay, the token grid, result previews.

The image and the mask are drawn straight from uint32 buffers that the items own, through a
QImage sharing that memory; an edit rewrites only the touched rectangle of the buffer and
repaints only that rectangle, so painting stays fast on large photos.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from app.planner import Part
from app.ui.qimage import qimage_over, rgb_to_argb32

MASK_RGBA = (255, 64, 129, 120)  # translucent pink: visible on skies, skin and foliage


class BufferItem(QGraphicsItem):
    """Draws a uint32 [H, W] buffer in scene pixels (one scene unit = one image pixel)."""

    def __init__(self, fmt: QImage.Format):
        super().__init__()
        self._fmt = fmt
        self._buffer = np.zeros((1, 1), np.uint32)
        self._image = qimage_over(self._buffer, fmt)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)

    def set_buffer(self, buffer: np.ndarray) -> None:
        self.prepareGeometryChange()
        self._buffer = np.ascontiguousarray(buffer, dtype=np.uint32)
        self._image = qimage_over(self._buffer, self._fmt)
        self.update()

    def write(self, box, values: np.ndarray) -> None:
        x0, y0, x1, y1 = box
        self._buffer[y0:y1, x0:x1] = values
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def boundingRect(self) -> QRectF:
        h, w = self._buffer.shape
        return QRectF(0, 0, w, h)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        exposed = option.exposedRect.toAlignedRect().intersected(
            self.boundingRect().toAlignedRect()
        )
        if exposed.isEmpty():
            return
        painter.drawImage(QRectF(exposed), self._image, QRectF(exposed))


class ImageItem(BufferItem):
    """The photo. Zoomed out, it draws from a cached half/quarter/... size copy: smoothly
    scaling the full photo on every repaint cost tens of milliseconds on the GUI thread."""

    def __init__(self):
        super().__init__(QImage.Format.Format_RGB32)
        self._levels: dict[int, QImage] = {}

    def set_rgb(self, rgb: np.ndarray) -> None:
        self._levels.clear()
        self.set_buffer(rgb_to_argb32(rgb))

    def update_rgb(self, rgb: np.ndarray, box) -> None:
        x0, y0, x1, y1 = box
        self.write(box, rgb_to_argb32(rgb[y0:y1, x0:x1]))
        for level, image in self._levels.items():
            self._rescale_region(level, image, box)

    def _rescale_region(self, level: int, image: QImage, box) -> None:
        """Refresh only the changed rectangle of a cached smaller copy."""
        step = 1 << level
        h, w = self._buffer.shape
        x0, y0 = box[0] // step * step, box[1] // step * step
        x1, y1 = min(-(-box[2] // step) * step, w), min(-(-box[3] // step) * step, h)
        tw, th = max(1, (x1 - x0) >> level), max(1, (y1 - y0) >> level)
        part = self._image.copy(x0, y0, x1 - x0, y1 - y0).scaled(
            tw, th, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        painter = QPainter(image)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(x0 >> level, y0 >> level, part)
        painter.end()

    def _level(self, zoom: float) -> tuple[QImage, float]:
        level = 0
        while zoom * 2 ** (level + 1) <= 1.0 and level < 6:
            level += 1
        if level == 0:
            return self._image, 1.0
        if level not in self._levels:
            h, w = self._buffer.shape
            self._levels[level] = self._image.scaled(
                max(1, w >> level),
                max(1, h >> level),
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        image = self._levels[level]
        return image, image.width() / self._buffer.shape[1]

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        zoom = painter.transform().m11()
        image, scale = self._level(zoom)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom < 1.0)
        source = QRectF(
            exposed.x() * scale,
            exposed.y() * scale,
            exposed.width() * scale,
            exposed.height() * scale,
        )
        painter.drawImage(exposed, image, source)


class MaskItem(BufferItem):
    def __init__(self):
        super().__init__(QImage.Format.Format_ARGB32_Premultiplied)
        r, g, b, a = MASK_RGBA
        # premultiplied ARGB: colour channels scaled by alpha
        self._on = np.uint32(
            (a << 24) | (r * a // 255 << 16) | (g * a // 255 << 8) | (b * a // 255)
        )

    def set_mask(self, mask: np.ndarray) -> None:
        self.set_buffer(np.where(mask, self._on, np.uint32(0)))

    def update_mask(self, mask: np.ndarray, box) -> None:
        x0, y0, x1, y1 = box
        self.write(box, np.where(mask[y0:y1, x0:x1], self._on, np.uint32(0)))


class GridItem(QGraphicsItem):
    """The model's working squares (one per separately edited part of the mask), their token
    cells and per-cell colours.

    By default cells that will regenerate are tinted; colours given with a single part replace
    that with any RGBA per cell (the confidence heatmap, or grey for cells the step scrubber has
    not decided).
    """

    def __init__(self):
        super().__init__()
        self._parts: tuple[Part, ...] = ()
        self._colors: np.ndarray | None = None
        self.show_lines = True

    def set_part(self, part: Part | None, colors: np.ndarray | None = None) -> None:
        self.set_parts(() if part is None else (part,), colors)

    def set_parts(self, parts, colors: np.ndarray | None = None) -> None:
        self.prepareGeometryChange()
        self._parts = tuple(parts)
        self._colors = colors if len(self._parts) == 1 else None
        self.update()

    def boundingRect(self) -> QRectF:
        rect = QRectF()
        for part in self._parts:
            sq = part.square
            rect = rect.united(QRectF(sq.x0 - 2, sq.y0 - 2, sq.side + 4, sq.side + 4))
        return rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        for part in self._parts:
            self._paint_part(painter, part)

    def _paint_part(self, painter: QPainter, part: Part) -> None:
        sq, edges = part.square, part.cell_edges
        gh, gw = part.token_mask.shape
        colors = self._colors
        if colors is None:
            colors = np.zeros((gh, gw, 4), np.uint8)
            colors[part.token_mask] = (80, 200, 255, 70)
        painter.setPen(Qt.PenStyle.NoPen)
        for row, col in zip(*np.nonzero(colors[..., 3]), strict=True):
            r, g, b, a = (int(v) for v in colors[row, col])
            x0, y0, x1, y1 = part.cell_box(row, col)
            painter.fillRect(QRectF(x0, y0, x1 - x0, y1 - y0), QColor(r, g, b, a))
        if self.show_lines:
            pen = QPen(QColor(255, 255, 255, 60), 0)
            painter.setPen(pen)
            for e in edges[1:-1]:
                painter.drawLine(QPointF(sq.x0 + e, sq.y0), QPointF(sq.x0 + e, sq.y0 + sq.side))
                painter.drawLine(QPointF(sq.x0, sq.y0 + e), QPointF(sq.x0 + sq.side, sq.y0 + e))
            self._outline_cells(painter, part)
        frame = QPen(QColor(80, 200, 255, 230), 2)
        frame.setCosmetic(True)
        frame.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(frame)
        painter.setBrush(QBrush())
        painter.drawRect(QRectF(sq.x0, sq.y0, sq.side, sq.side))

    def _outline_cells(self, painter: QPainter, part: Part) -> None:
        """A solid outline around the region that regenerates."""
        pen = QPen(QColor(80, 200, 255, 220), 1.5)
        pen.setCosmetic(True)
        painter.setPen(pen)
        tm = np.pad(part.token_mask, 1)
        for row, col in zip(*np.nonzero(part.token_mask), strict=True):
            x0, y0, x1, y1 = part.cell_box(row, col)
            r, c = row + 1, col + 1
            if not tm[r - 1, c]:
                painter.drawLine(QPointF(x0, y0), QPointF(x1, y0))
            if not tm[r + 1, c]:
                painter.drawLine(QPointF(x0, y1), QPointF(x1, y1))
            if not tm[r, c - 1]:
                painter.drawLine(QPointF(x0, y0), QPointF(x0, y1))
            if not tm[r, c + 1]:
                painter.drawLine(QPointF(x1, y0), QPointF(x1, y1))
