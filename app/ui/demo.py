"""Demo mode for a presenter: the samples refilled one after another, slowly, full screen.

For each sample: the photo with its mask and the token grid the model works on; the refill run
on a worker (app.runs.edit_run, the editor's own run machinery), then replayed one decoding step
at a time (app.runs.step_preview, as the step scrubber does) with the cells not yet decided
covered and the decided ones coloured by the model's confidence (the editor's heatmap); then the
result beside the original. It cycles through the samples until a key is pressed. Everything
runs locally on the loaded model.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter
from PySide6.QtWidgets import QWidget

from app.controller import JobController
from app.core.options import EditOptions
from app.inspector import confidence_colors, run_part, undecided_colors
from app.planner import EditPlan, Part, plan_edit
from app.runs import RunResult, edit_run, step_image
from app.samples import Sample, load_samples, read_sample
from app.ui.canvas_items import MASK_RGBA, GridItem
from app.ui.qimage import qimage_from_rgb
from engine.runtime.errors import MageError

log = logging.getLogger(__name__)
BACKGROUND = QColor(18, 18, 22)
TEXT = QColor(236, 236, 242)
DIM = QColor(150, 150, 162)
PHASES = ("waiting", "intro", "running", "decode", "result", "message")
HEATMAP_ALPHA = 150  # the heatmap's strongest red stays translucent over the fill


@dataclass(frozen=True)
class DemoTiming:
    """Seconds each part is on screen."""

    intro: float = 5.0  # the photo, its mask and the token grid
    step: float = 1.2  # one decoding step
    result: float = 7.0  # the result beside the original
    retry: float = 0.3  # waiting for the model to load

    def scaled(self, factor: float) -> DemoTiming:
        return DemoTiming(self.intro * factor, self.step * factor, self.result * factor, self.retry)


TIMING = DemoTiming()  # what View > Demo mode uses


@dataclass
class DemoRun:
    """What the worker hands back: the finished edit and the image after every step."""

    outcome: RunResult
    steps: list[np.ndarray]  # full-size image as decided after step k (the last: the result)


def demo_job(bundle, rgb: np.ndarray, plan: EditPlan | np.ndarray, options: EditOptions, seed: int):
    """Runs the refill of the plan the grid shows (or of a mask), then decodes the image after
    every step for the slow replay."""
    settings = options.settings((seed,))
    outcome = yield from edit_run(bundle, rgb, plan, settings, preview_interval=float("inf"))
    final = outcome.images[0]
    frames = []
    if outcome.fill is not None:
        for k in range(len(outcome.history) - 1):
            patch = step_image(bundle, outcome, 0, k)
            frame = rgb.copy()
            h, w = patch.rgb.shape[:2]
            frame[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w] = patch.rgb
            frames.append(frame)
    frames.append(final)
    return DemoRun(outcome, frames)


def tint_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with the mask shown as the canvas shows it (translucent pink)."""
    r, g, b, a = MASK_RGBA
    out = rgb.astype(np.float32)
    alpha = a / 255.0
    out[mask] = out[mask] * (1 - alpha) + np.array([r, g, b], np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class DemoMode(QWidget):
    """A top-level window; any key (Esc included) leaves it."""

    finished = Signal()  # the presenter left
    state_changed = Signal(str, int)  # phase, step (-1 when not decoding)

    def __init__(
        self,
        models,
        samples: list[Sample],
        timing: DemoTiming | None = None,
        options: EditOptions | None = None,
        parent=None,
    ):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("MAGE Studio - demo")
        self.setObjectName("demo-mode")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setCursor(Qt.CursorShape.BlankCursor)
        self.models = models
        self.samples = list(samples)
        self.timing = timing or DemoTiming()
        base = options or EditOptions()
        self.options = replace(base, mode="remove", candidates=1, class_name="")
        self.index = 0  # sample on show
        self.shown = 0  # samples begun so far
        self.results = 0  # results shown so far
        self.phase, self.step = "waiting", -1
        self.hold: tuple[str, int] | None = None  # stop there (scripted screenshots)
        self.title, self.caption = "", ""
        self.left: np.ndarray | None = None
        self.right: np.ndarray | None = None
        self._left_q: QImage | None = None
        self._right_q: QImage | None = None
        self._grid = GridItem()
        self._grid_on = False
        self._rgb: np.ndarray | None = None  # the sample on show and its mask
        self._mask: np.ndarray | None = None
        self._parts: tuple[Part, ...] = ()
        self.run: DemoRun | None = None
        self._intro_over = False
        self._left_demo = False
        self._jobs = JobController(self)
        self._jobs.progress.connect(self._on_progress)
        self._jobs.finished.connect(self._on_run)
        self._jobs.failed.connect(self._on_failed)
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._advance)
        self._next: str = ""
        if self.samples:
            self._begin()
        else:
            self._message(
                "No sample photos found",
                "Demo mode plays the samples listed in assets/samples.json.",
            )

    # -- the sequence ------------------------------------------------------------------------

    def _begin(self) -> None:
        """Start the current sample (or wait for the model)."""
        bundle = self.models.bundle
        if bundle is None:
            if self.models.busy or not self.models.error:
                self._set("waiting", title="MAGE Studio", caption="Loading the model...")
                self._after(self.timing.retry, "begin")
            else:
                self._message("No model loaded", self.models.error)
            return
        sample = self.samples[self.index]
        try:
            rgb, mask = read_sample(sample)
        except MageError as error:
            log.warning("demo: %s", error)
            self._next_sample()
            return
        self.shown += 1
        self._rgb, self._mask, self.run = rgb, mask, None
        settings = self.options.settings((0,))
        plan = plan_edit(bundle.manifest, mask, settings)
        self._parts = plan.parts if plan is not None else ()
        gh, gw = bundle.manifest.grid
        hidden = plan.masked_count if plan is not None else 0
        self.left, self.right = tint_mask(rgb, mask), None
        self._grid.set_parts(self._parts)
        self._grid.show_lines = True
        self._grid_on = True
        self._intro_over = False
        self._set(
            "intro",
            title=sample.title,
            caption=f"The model sees the photo as a {gh} x {gw} grid of tokens, each a "
            f"word from a codebook of {bundle.manifest.codebook_size}. "
            f"The {hidden} tokens under the pink mask are hidden: the "
            "transformer has to predict them from the rest.",
        )
        seed = self.shown  # another draw each time round
        planned = mask if plan is None else plan
        self._jobs.start("demo", lambda: demo_job(bundle, rgb, planned, self.options, seed))
        self._after(self.timing.intro, "intro_over")

    def _advance(self) -> None:
        what, self._next = self._next, ""
        if what == "begin":
            self._begin()
        elif what == "intro_over":
            self._intro_over = True
            if self.run is not None:
                self._show_step(0)
            else:
                self._set("running", caption="Predicting the hidden tokens...")
        elif what == "step":
            self._show_step(self.step + 1)
        elif what == "next":
            self._next_sample()

    def _on_progress(self, progress) -> None:
        if self.phase == "running":
            self.caption = (
                f"Predicting the hidden tokens: step {progress.step} of {progress.total}..."
            )
            self.update()

    def _on_run(self, run: DemoRun) -> None:
        self.run = run
        if self._intro_over:
            self._show_step(0)

    def _on_failed(self, message: str) -> None:
        log.warning("demo: %s", message)
        self._message("The refill failed", message)
        self._after(self.timing.result, "next")

    def _show_step(self, k: int) -> None:
        run, bundle = self.run, self.models.bundle
        assert run is not None  # steps are shown once the run is back
        steps = len(run.steps)
        if k >= steps or bundle is None or run.outcome.fill is None:
            self._show_result()
            return
        part = run_part(run.outcome, bundle.manifest)
        self.left = run.steps[k]
        if part is not None:
            gh, gw = part.token_mask.shape
            tokens = run.outcome.history[k][0].reshape(gh, gw)
            undecided = tokens == bundle.manifest.mask_token_id
            conf = run.outcome.confidence[0].reshape(gh, gw)
            colors = confidence_colors(conf, part.token_mask & ~undecided)
            colors[..., 3] = np.minimum(colors[..., 3], HEATMAP_ALPHA)  # the fill shows
            colors[undecided] = undecided_colors(undecided)[undecided]
            self._grid.show_lines = False
            self._grid.set_part(part, colors)
            self._grid_on = True
            left = int(undecided.sum())
            total = int(part.token_mask.sum())
            caption = (
                f"Step {k + 1} of {steps}: the transformer predicts every hidden token "
                f"and keeps the ones it is most confident of. {total - left} of {total} "
                f"decided (red = less sure), {left} still hidden (dark)."
            )
        else:
            self._grid_on = False
            caption = f"Step {k + 1} of {steps}"
        self._set("decode", step=k, caption=caption)
        self._after(self.timing.step, "step")

    def _show_result(self) -> None:
        run, rgb, mask = self.run, self._rgb, self._mask
        assert run is not None  # after its steps
        assert rgb is not None
        assert mask is not None
        self.results += 1
        self.left = tint_mask(rgb, mask)
        self.right = run.steps[-1]
        self._grid_on = False
        seconds = run.outcome.seconds
        self._set(
            "result",
            caption=f"Original with its mask (left) and MAGE's refill (right), "
            f"computed here in {seconds:.1f} s.",
        )
        self._after(self.timing.result, "next")

    def _next_sample(self) -> None:
        self.index = (self.index + 1) % len(self.samples)
        self._begin()

    def _message(self, title: str, caption: str) -> None:
        self.left = self.right = None
        self._grid_on = False
        self._set("message", title=title, caption=caption)

    def _set(
        self, phase: str, step: int = -1, title: str | None = None, caption: str | None = None
    ) -> None:
        self.phase, self.step = phase, step
        if title is not None:
            self.title = title
        if caption is not None:
            self.caption = caption
        self._left_q = qimage_from_rgb(self.left) if self.left is not None else None
        self._right_q = qimage_from_rgb(self.right) if self.right is not None else None
        self.update()
        self.state_changed.emit(phase, step)

    def _after(self, seconds: float, what: str) -> None:
        if self.hold is not None and self.hold == (self.phase, self.step):
            return  # frozen here for a screenshot
        self._next = what
        self._timer.start(max(0, int(seconds * 1000)))

    # -- leaving -------------------------------------------------------------------------------

    def leave(self) -> None:
        if self._left_demo:
            return
        self._left_demo = True
        self._timer.stop()
        self._jobs.cancel()
        self.close()
        self.finished.emit()

    def keyPressEvent(self, event) -> None:
        if (
            event.key() in (Qt.Key.Key_Shift, Qt.Key.Key_Control, Qt.Key.Key_Alt, Qt.Key.Key_Meta)
            and event.modifiers()
        ):
            event.accept()  # a lone modifier is not a decision to leave
            return
        event.accept()
        self.leave()

    def closeEvent(self, event) -> None:
        self._timer.stop()
        self._jobs.cancel()
        if not self._left_demo:
            self._left_demo = True
            self.finished.emit()
        super().closeEvent(event)

    # -- drawing -------------------------------------------------------------------------------

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), BACKGROUND)
        unit = max(10, min(w / 60, h / 34))
        margin = unit * 1.5
        title_font = _font(unit * 1.6, bold=True)
        text_font = _font(unit * 1.0)
        small_font = _font(unit * 0.65)
        p.setFont(title_font)
        p.setPen(TEXT)
        title_box = QRectF(margin, margin * 0.6, w - 2 * margin, unit * 2.4)
        p.drawText(
            title_box, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.title
        )
        p.setFont(small_font)
        p.setPen(DIM)
        bundle = self.models.bundle
        corner = "MAGE Studio demo"
        if bundle is not None:
            corner += f"  |  {bundle.manifest.name} on {str(bundle.device).upper()}"
        if self.samples and self.phase not in ("waiting", "message"):
            corner += f"  |  sample {self.index + 1} of {len(self.samples)}"
        p.drawText(title_box, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, corner)
        footer = QRectF(margin, h - margin - unit, w - 2 * margin, unit)
        p.drawText(footer, Qt.AlignmentFlag.AlignCenter, "Press any key to leave demo mode")
        caption_box = QRectF(margin * 2, h - margin - unit * 5.2, w - 4 * margin, unit * 4)
        p.setFont(text_font)
        p.setPen(TEXT)
        p.drawText(
            caption_box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.caption
        )
        area = QRectF(
            margin,
            title_box.bottom() + unit * 0.6,
            w - 2 * margin,
            caption_box.top() - title_box.bottom() - unit * 1.2,
        )
        if self._left_q is None:
            return
        if self._right_q is None:
            self._draw_image(p, self._left_q, area, self._grid_on)
            return
        gap = unit * 2
        half = QRectF(area.x(), area.y(), (area.width() - gap) / 2, area.height() - unit * 1.6)
        right = half.translated(half.width() + gap, 0)
        shown_left = self._draw_image(p, self._left_q, half, False)
        shown_right = self._draw_image(p, self._right_q, right, False)
        p.setFont(text_font)
        p.setPen(DIM)
        for box, label in ((shown_left, "Original"), (shown_right, "Refilled by MAGE")):
            p.drawText(
                QRectF(box.x(), box.bottom() + unit * 0.2, box.width(), unit * 1.4),
                Qt.AlignmentFlag.AlignCenter,
                label,
            )
        p.end()

    def _draw_image(self, p: QPainter, image, area: QRectF, grid: bool) -> QRectF:
        """Fits the image into `area` (centred) and returns where it went."""
        iw, ih = image.width(), image.height()
        scale = min(area.width() / iw, area.height() / ih)
        target = QRectF(0, 0, iw * scale, ih * scale)
        target.moveCenter(area.center())
        p.drawImage(target, image)
        if grid:
            p.save()
            p.setClipRect(target)  # a context square may reach past the photo's edge
            p.translate(QPointF(target.x(), target.y()))
            p.scale(scale, scale)
            self._grid.paint(p, None)
            p.restore()
        return target


def _font(pixels: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPixelSize(max(8, int(pixels)))
    font.setBold(bold)
    return font


def start_demo(window, timing: DemoTiming | None = None, full_screen: bool = True) -> DemoMode:
    """View > Demo mode: full screen over the window, on the window's model."""
    old = getattr(window, "demo_mode", None)
    if old is not None:
        with contextlib.suppress(RuntimeError):  # already deleted
            old.leave()
    demo = DemoMode(window.editor.models, load_samples(), timing or TIMING, window.editor.options)
    window.demo_mode = demo
    demo.finished.connect(lambda: setattr(window, "demo_mode", None))
    if full_screen:
        demo.showFullScreen()
    else:
        demo.show()
    demo.activateWindow()
    demo.setFocus()
    return demo
