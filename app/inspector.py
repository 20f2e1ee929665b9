"""Looking inside a finished run: the step scrubber and the confidence heatmap.

`RunResult.history` holds the tokens after every step; showing step k decodes those tokens
(on a worker, since a decode is a model call) and covers the cells not yet decided. The heatmap
colours each regenerated cell by the probability the model gave its token.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.controller import JobController
from app.editor import Editor
from app.runs import step_image
from engine.runtime.plan import Part, Square, plan_square
from engine.runtime.runs import RunResult
from engine.runtime.settings import Settings


def run_part(run: RunResult, manifest) -> Part | None:
    """Where a run's tokens sit on the image (the whole image for a generated one)."""
    if run.fill is not None:
        return run.fill.part
    if run.kind == "generate":
        side = manifest.image_size
        return plan_square(
            manifest, np.ones((side, side), bool), Square(0, 0, side), Settings(ring=0)
        )
    return None  # extend: several squares, no single grid


class RunInspector(QObject):
    overlay_changed = Signal(object)  # (TokenLayout, RGBA [gh, gw, 4]) or None
    step_shown = Signal(int)  # step index on show, -1 for the final result

    def __init__(self, editor: Editor, parent: QObject | None = None):
        super().__init__(parent)
        self.editor = editor
        self.heatmap = False
        self.heatmap_opacity = 0.5
        self.step = -1
        self._jobs = JobController(self)
        self._jobs.finished.connect(self._on_step_decoded)
        self._jobs.failed.connect(editor.report_error)
        editor.run_changed.connect(self._on_run)
        editor.applied_changed.connect(self._refresh)  # bound: dropped with the inspector

    @property
    def steps(self) -> int:
        run = self.editor.run
        return len(run.history) if run is not None else 0

    def can_inspect(self) -> bool:
        run, bundle = self.editor.run, self.editor.bundle
        return run is not None and bundle is not None and run_part(run, bundle.manifest) is not None

    def set_heatmap(self, on: bool) -> None:
        self.heatmap = on
        self._refresh()

    def set_heatmap_opacity(self, opacity: float) -> None:
        self.heatmap_opacity = opacity
        if self.heatmap:
            self._refresh()

    def show_step(self, step: int) -> None:
        """Show the image as decided after `step` (0-based); the last step or -1 is the result."""
        if not self.can_inspect():
            return
        if step < 0 or step >= self.steps - 1:
            self.step = -1
            self._jobs.cancel()
            self.editor.show_preview(None)
            self._refresh()
            self.step_shown.emit(-1)
            return
        self.step = step
        run, bundle = self.editor.run, self.editor.bundle
        assert run is not None  # can_inspect
        candidate = max(self.editor.applied, 0)
        # a newer request supersedes a decode still running: dragging stays responsive
        self._jobs.call("scrub", lambda: step_image(bundle, run, candidate, step))
        self._refresh()

    def _on_step_decoded(self, patch) -> None:
        if self.step >= 0:
            self.editor.show_preview(patch)
            self.step_shown.emit(self.step)

    def _on_run(self, run) -> None:
        self.step = -1
        self._refresh()

    def _refresh(self, *_) -> None:
        run, bundle = self.editor.run, self.editor.bundle
        part = run_part(run, bundle.manifest) if run is not None and bundle else None
        if run is None or part is None:
            self.overlay_changed.emit(None)
            return
        candidate = max(self.editor.applied, 0)
        gh, gw = part.token_mask.shape
        if self.step >= 0:
            tokens = run.history[self.step][candidate]
            undecided = (tokens == bundle.manifest.mask_token_id).reshape(gh, gw)
            self.overlay_changed.emit((part, undecided_colors(undecided)))
        elif self.heatmap:
            conf = run.confidence[candidate].reshape(gh, gw)
            self.overlay_changed.emit(
                (part, confidence_colors(conf, part.token_mask, self.heatmap_opacity))
            )
        else:
            self.overlay_changed.emit(None)


def confidence_colors(
    confidence: np.ndarray, token_mask: np.ndarray, opacity: float = 0.5
) -> np.ndarray:
    """RGBA per cell: regenerated cells from red (unsure) to clear (sure), at most `opacity`
    opaque so the fill stays visible underneath."""
    opacity = float(np.clip(opacity, 0.0, 1.0))
    conf = np.clip(confidence.astype(np.float32), 0, 1)
    colors = np.zeros(conf.shape + (4,), np.uint8)
    colors[..., 0] = 255
    colors[..., 1] = (conf * 220).astype(np.uint8)
    colors[..., 2] = 40
    alpha = opacity * (235 * (1 - conf) + 20)
    colors[..., 3] = np.where(token_mask, np.round(alpha).astype(np.uint8), 0)
    return colors


def undecided_colors(undecided: np.ndarray) -> np.ndarray:
    colors = np.zeros(undecided.shape + (4,), np.uint8)
    colors[undecided] = (40, 40, 46, 235)
    return colors
