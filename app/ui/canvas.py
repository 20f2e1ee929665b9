"""CanvasView: shows the document and turns mouse and keys into Editor calls.

Scene units are image pixels. Tools: brush and eraser (round, size in image pixels), rectangle
and lasso (left button; any tool erases with the right button). Navigation follows IOPaint:
wheel zooms at the cursor, Space-drag or the middle button pans, Esc fits; hold backslash to see
the original image (Lightroom's before/after key; Tab moves focus as everywhere else).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsEllipseItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
)

from app.editor import Editor
from app.planner import Part
from app.runs import Patch
from app.ui.canvas_items import GridItem, ImageItem, MaskItem
from app.ui.qimage import qimage_from_rgb

TOOLS = ("brush", "eraser", "rect", "lasso")
MIN_ZOOM, MAX_ZOOM = 0.02, 32.0


class CanvasView(QGraphicsView):
    files_dropped = Signal(list)
    zoom_changed = Signal(float)
    brush_size_changed = Signal(int)
    original_shown = Signal(bool)  # the original is on show instead of the edited image

    def __init__(self, editor: Editor, parent=None):
        super().__init__(parent)
        self.editor = editor
        self.tool = "brush"
        self.brush_size = 40
        self.setScene(QGraphicsScene(self))
        self.setFrameShape(QFrame.Shape.NoFrame)
        # zoom anchors itself (zoom_by): the point under the cursor, or the view centre, stays
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)
        # no scroll bars: pan with Space-drag or the middle button, as in IOPaint
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fitted = True  # keep fitting on resize until the user zooms
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setBackgroundBrush(QColor(38, 38, 42))
        self._image, self._mask, self._grid = ImageItem(), MaskItem(), GridItem()
        self._preview = QGraphicsPixmapItem()
        self._preview.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._shape = QGraphicsPathItem()
        self._cursor = QGraphicsEllipseItem()
        for z, item in enumerate(
            (self._image, self._preview, self._mask, self._grid, self._shape, self._cursor)
        ):
            item.setZValue(z)
            self.scene().addItem(item)
        outline = QPen(QColor(255, 255, 255, 220), 1.5)
        outline.setCosmetic(True)
        self._cursor.setPen(outline)
        self._cursor.setVisible(False)
        self._shape.setPen(outline)
        self._shape.setBrush(QColor(255, 64, 129, 60))
        self.show_grid = True
        self._grid_plan = None
        # the part and cell colours the heatmap or scrubber shows
        self._override: tuple[Part, np.ndarray | None] | None = None
        self._cursor_at: QPointF | None = None
        self._last: QPointF | None = None  # last brush point, scene coordinates
        self._shape_points: list[QPointF] = []
        self._erasing = False
        self._panning = False
        self._space_down = False
        self._pan_from = None
        self._showing_original = False
        self.original_label = QLabel("Original", self)
        self.original_label.setStyleSheet(
            "QLabel { background: rgba(0, 0, 0, 170); color: white;"
            " padding: 3px 8px; border-radius: 4px; }"
        )
        self.original_label.move(10, 10)
        self.original_label.setVisible(False)
        editor.document_changed.connect(self.reload)
        editor.image_changed.connect(self._on_image_changed)
        editor.mask_changed.connect(self._on_mask_changed)
        editor.plan_changed.connect(self._on_layout)
        editor.preview_changed.connect(self.show_preview)

    # -- document -> items ---------------------------------------------------------------

    def reload(self) -> None:
        doc = self.editor.document
        if doc is None:
            return
        self._image.set_rgb(doc.rgb)
        self._mask.set_mask(doc.mask)
        w, h = doc.size
        pad = max(w, h) * 1.5  # room to pan past the edges and to zoom at a point near them
        self.scene().setSceneRect(QRectF(-pad, -pad, w + 2 * pad, h + 2 * pad))
        self.fit()

    def _on_image_changed(self, box) -> None:
        if self.editor.document is not None and not self._showing_original:
            self._image.update_rgb(self.editor.document.rgb, box)

    def _on_mask_changed(self, box) -> None:
        if self.editor.document is not None:
            self._mask.update_mask(self.editor.document.mask, box)

    def _on_layout(self, plan) -> None:
        self._grid_plan = plan
        self._refresh_grid()

    def set_grid_override(self, part: Part | None, colors: np.ndarray | None) -> None:
        """Show another part with per-cell colours (heatmap, scrubber); None restores."""
        self._override = (part, colors) if part is not None else None
        self._refresh_grid()

    def _refresh_grid(self) -> None:
        override = self._override
        if override is not None:
            self._grid.show_lines = False
            self._grid.set_part(*override)
        else:
            self._grid.show_lines = True
            plan = self._grid_plan
            self._grid.set_parts(plan.parts if plan is not None and self.show_grid else ())

    def set_show_grid(self, on: bool) -> None:
        self.show_grid = on
        self._refresh_grid()

    def show_preview(self, patch: Patch | None) -> None:
        if patch is None:
            self._preview.setVisible(False)
            return
        self._preview.setPixmap(QPixmap.fromImage(qimage_from_rgb(patch.rgb)))
        self._preview.setPos(patch.x0, patch.y0)
        self._preview.setVisible(True)

    # -- zoom ---------------------------------------------------------------------------

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        doc = self.editor.document
        if doc is None:
            return
        w, h = doc.size
        self.fitInView(
            QRectF(0, 0, w, h).adjusted(-8, -8, 8, 8), Qt.AspectRatioMode.KeepAspectRatio
        )
        self._fitted = True
        self.zoom_changed.emit(self.zoom)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def set_zoom(self, zoom: float, anchor: QPoint | None = None) -> None:
        """Zoom so that the scene point at viewport position `anchor` (default: the view
        centre) stays where it is."""
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        if anchor is None:
            anchor = self.viewport().rect().center()
        fixed = self.mapToScene(anchor)
        self._fitted = False
        self.scale(zoom / self.zoom, zoom / self.zoom)
        moved = self.mapFromScene(fixed) - anchor
        bar_h, bar_v = self.horizontalScrollBar(), self.verticalScrollBar()
        bar_h.setValue(bar_h.value() + moved.x())
        bar_v.setValue(bar_v.value() + moved.y())
        self.zoom_changed.emit(self.zoom)
        self._update_cursor(None)

    def zoom_by(self, factor: float, anchor: QPoint | None = None) -> None:
        self.set_zoom(self.zoom * factor, anchor)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.25**steps, event.position().toPoint())

    # -- tools --------------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self._update_cursor(None)

    def set_brush_size(self, size: int) -> None:
        size = int(min(max(size, 1), 2000))
        if size != self.brush_size:
            self.brush_size = size
            self.brush_size_changed.emit(size)
        self._update_cursor(None)

    def mousePressEvent(self, event) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space_down
        ):
            self._panning, self._pan_from = True, event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        if self.editor.document is None:
            return
        self._erasing = button == Qt.MouseButton.RightButton or self.tool == "eraser"
        point = self.mapToScene(event.position().toPoint())
        if self.tool in ("brush", "eraser"):
            self.editor.begin_stroke()
            self._last = point
            self._paint_to(point)
        else:
            self._shape_points = [point]

    def mouseMoveEvent(self, event) -> None:
        if self._panning:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            bar_h, bar_v = self.horizontalScrollBar(), self.verticalScrollBar()
            bar_h.setValue(bar_h.value() - int(delta.x()))
            bar_v.setValue(bar_v.value() - int(delta.y()))
            return
        point = self.mapToScene(event.position().toPoint())
        self._update_cursor(point)
        if self._last is not None:
            self._paint_to(point)
        elif self._shape_points:
            if self.tool == "rect":
                self._shape_points[1:] = [point]
            else:
                self._shape_points.append(point)
            self._shape.setPath(self._shape_path())

    def mouseReleaseEvent(self, event) -> None:
        if self._panning:
            self._panning = False
            self.viewport().setCursor(
                Qt.CursorShape.OpenHandCursor if self._space_down else Qt.CursorShape.CrossCursor
            )
            return
        if self._last is not None:
            self._last = None
            self.editor.end_stroke("Erase" if self._erasing else "Brush")
        elif self._shape_points:
            points = [(p.x(), p.y()) for p in self._shape_points]
            self._shape_points = []
            self._shape.setPath(QPainterPath())
            if self.tool == "rect" and len(points) >= 2:
                self.editor.fill_shape("rect", [points[0], points[-1]], self._erasing)
            elif self.tool == "lasso" and len(points) >= 3:
                self.editor.fill_shape("lasso", points, self._erasing)

    def _paint_to(self, point: QPointF) -> None:
        last = self._last
        assert last is not None  # a stroke is under way
        radius = self.brush_size / 2
        self.editor.stroke_segment(
            (last.x(), last.y()), (point.x(), point.y()), radius, self._erasing
        )
        self._last = point

    def _shape_path(self) -> QPainterPath:
        path = QPainterPath()
        pts = self._shape_points
        if self.tool == "rect" and len(pts) >= 2:
            path.addRect(QRectF(pts[0], pts[-1]).normalized())
        elif pts:
            path.moveTo(pts[0])
            for p in pts[1:]:
                path.lineTo(p)
            path.closeSubpath()
        return path

    def _update_cursor(self, point: QPointF | None) -> None:
        brush = self.tool in ("brush", "eraser") and not self._space_down
        if point is not None:
            self._cursor_at = point
        at = self._cursor_at
        self._cursor.setVisible(brush and at is not None and self.editor.document is not None)
        if at is not None:
            r = self.brush_size / 2
            self._cursor.setRect(QRectF(at.x() - r, at.y() - r, 2 * r, 2 * r))
        self.viewport().setCursor(
            Qt.CursorShape.CrossCursor if not self._space_down else Qt.CursorShape.OpenHandCursor
        )

    def leaveEvent(self, event) -> None:
        self._cursor.setVisible(False)
        super().leaveEvent(event)

    # -- keys: Space pans, backslash shows the original, Esc fits -------------------------------

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if event.isAutoRepeat() and key in (Qt.Key.Key_Space, Qt.Key.Key_Backslash):
            return
        if key == Qt.Key.Key_Space:
            self._space_down = True
            self._update_cursor(None)
        elif key == Qt.Key.Key_Backslash:
            self.show_original(True)
        elif key == Qt.Key.Key_Escape:
            self.fit()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        key = event.key()
        if event.isAutoRepeat():
            return
        if key == Qt.Key.Key_Space:
            self._space_down = False
            self._update_cursor(None)
        elif key == Qt.Key.Key_Backslash:
            self.show_original(False)
        else:
            super().keyReleaseEvent(event)

    def show_original(self, on: bool) -> None:
        doc = self.editor.document
        if doc is None or on == self._showing_original:
            return
        self._showing_original = on
        self.original_label.setVisible(on)
        self.original_label.raise_()
        same_size = doc.original.shape == doc.rgb.shape
        self._image.set_rgb(doc.original if on and same_size else doc.rgb)
        for item in (self._mask, self._grid, self._preview):
            item.setOpacity(0.0 if on else 1.0)
        self.original_shown.emit(on)

    # -- drag and drop ----------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:
        if self.editor.document is None:
            painter.resetTransform()
            painter.setPen(QColor(170, 170, 178))
            painter.drawText(
                self.viewport().rect(),
                Qt.AlignmentFlag.AlignCenter,
                "Open, drop or paste an image\nor choose Generate to make one",
            )
