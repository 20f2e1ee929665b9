"""Editor: the view-model between the widgets and the document, the model and the jobs.

Widgets call its methods and listen to its signals (krita's model layer); it owns the
`Document` (the only history), the QUndoStack that wraps it, the `JobController` for runs and
the `ModelManager`. Nothing here draws; nothing here blocks the GUI thread for long.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QUndoStack

from app.controller import JobController
from app.core import mask_ops
from app.core.document import RECORDED, REPLACED, Change, Document, StrokeRecord
from app.core.options import MODE_TITLES, EditOptions
from app.model_manager import ModelManager
from app.planner import EditPlan, Planner
from app.runs import edit_run, extend_run, generate_run, reroll_run
from app.undo import ChangeCommand
from engine.runtime.errors import MageError
from engine.runtime.imageio import load_image, load_mask, save_png
from engine.runtime.runs import RunResult, Step

log = logging.getLogger(__name__)
Box = mask_ops.Box


class Editor(QObject):
    document_changed = Signal()  # another document, or the canvas was resized
    image_changed = Signal(object)  # Box that changed
    mask_changed = Signal(object)  # Box that changed
    plan_changed = Signal(object)  # EditPlan | None
    options_changed = Signal(object)  # EditOptions
    preview_changed = Signal(object)  # Patch | None: pixels shown over the image
    progress = Signal(object)  # Step
    run_changed = Signal(object)  # RunResult | None: the candidates on show
    applied_changed = Signal(int)  # index of the applied candidate, -1 for none
    busy_changed = Signal(bool)
    status = Signal(str)  # a transient message for the status bar
    error = Signal(str)  # a one-line problem to show the user
    notice = Signal(str)  # a one-line notice to show until dismissed
    file_notice = Signal(str)  # about the file just opened: gone when another image opens
    saved = Signal(str)  # path the image was saved to
    saving_changed = Signal(bool)  # a save is being written in the background
    save_progress = Signal(int)  # bytes of the PNG written so far

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.document: Document | None = None
        self.input_files: list[str] = []  # files read into the current image
        self.options = EditOptions()
        self.undo_stack = QUndoStack(self)
        self.jobs = JobController(self)
        self.models = ModelManager(self)
        self.plan: EditPlan | None = None  # where the next edit will work
        # Every change of the mask or the options schedules a plan and counts here; a plan is
        # fresh while the count is the one it was requested at (no whole-mask comparison).
        self._mask_revision = 0
        self._requested = (0, -1)  # (planner request number, revision it was asked at)
        self._plan_revision = -1  # revision the shown plan was made at
        self.run: RunResult | None = None
        self.applied = -1  # candidate of self.run currently applied
        self._applied_at = -1  # document history_index right after that apply
        self._stack_moving = False  # the undo stack itself is moving the document
        self._run_document: Document | None = None  # the document a run started on
        self._notices_shown = 0  # bundle notices already shown (CUDA fallback...)
        # asked before a run that would close the open document (Generate); False cancels
        self.confirm_new_document: Callable[[], bool] | None = None
        self._stroke: StrokeRecord | None = None
        self._save_thread: threading.Thread | None = None
        self._opened_at = 0  # history index of the document as opened (a sample: with its mask)
        self._save_path = ""
        self._snapshotting = False  # a save is copying the pixels: they must not change
        self._plan_timer = QTimer(self, singleShot=True, interval=30)
        self._plan_timer.timeout.connect(self._update_plan)
        self.planner = Planner(self)  # plans off the GUI thread, latest request wins
        self.planner.ready.connect(self._on_plan)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(lambda: self._end_run("Cancelled"))
        self.jobs.busy_changed.connect(self.busy_changed)
        self.models.loaded.connect(self._on_model_loaded)

    @property
    def bundle(self):
        return self.models.bundle

    def _on_model_loaded(self, bundle) -> None:
        self._notices_shown = len(bundle.notices)  # shown on load
        self._schedule_plan()

    # -- documents ------------------------------------------------------------------------

    def open_file(self, path: str, confirm: Callable[[], bool] | None = None) -> bool:
        """Loads an image; on failure emits one line in `error` and keeps the open document.
        The file is read first: `confirm` (e.g. "discard unsaved changes?") is asked only
        once it has opened, and False from it keeps the open document too."""
        try:
            loaded = load_image(path)
        except MageError as error:
            self.error.emit(str(error))
            return False
        except MemoryError:
            self.error.emit(f"Cannot load image '{path}': not enough memory to edit it")
            return False
        if confirm is not None and not confirm():
            return False
        try:
            self.set_image(loaded.rgb, loaded.alpha, loaded.path)
        except MageError as error:
            self.error.emit(str(error))
            return False
        if loaded.notices:
            name = os.path.basename(path)
            self.file_notice.emit(f"{name}: " + "; ".join(loaded.notices))
        return True

    def load_mask_file(self, path: str) -> bool:
        """Loads a mask file (scaled to the image when its size differs) as one undo step;
        False with an `error` when it cannot be used."""
        if self.document is None:
            return False
        try:
            mask = load_mask(path, self.document.size, scale=True)
        except MageError as error:
            self.error.emit(str(error))
            return False
        self.set_mask(mask)
        self.note_input(path)
        return True

    def set_image(self, rgb: np.ndarray, alpha: np.ndarray | None = None, path: str = "") -> None:
        document = Document(rgb, alpha, path, self.options)  # may raise: nothing changed yet
        self.jobs.cancel()
        self._attach(document)
        self._stroke = None
        self._forget_run()
        self.document_changed.emit()
        self._schedule_plan()

    def adopt_document(self, document: Document) -> None:
        """Takes over a document with its history (a restored session): the undo stack gets
        one command per change and stands at the document's undo position."""
        self.jobs.cancel()
        self._stroke = None
        self._attach(document)
        self._forget_run()
        if document.options != self.options:
            self.options = document.options
            self.options_changed.emit(document.options)
        self.document_changed.emit()
        self._schedule_plan()

    def has_edits(self) -> bool:
        """The open image holds changes made since it was opened (what opening did, such as a
        sample's mask, does not count); closing it would lose them or their undo history."""
        doc = self.document
        return doc is not None and doc.history_index > self._opened_at

    def mark_opened(self) -> None:
        """What the document holds now is as it was opened (a sample with its mask loaded)."""
        if self.document is not None:
            self._opened_at = self.document.history_index

    @property
    def saving(self) -> bool:
        """A save is being written in the background."""
        return self._save_thread is not None

    @property
    def saving_to(self) -> str:
        """The file a background save is writing ("" when none)."""
        return self._save_path

    def save(self, path: str) -> bool:
        """Writes the current image as PNG with the last run's settings in text chunks.

        The file is encoded and written on another thread while this one keeps processing
        events (the window answers; `save_progress` reports the bytes written), so for the
        caller it is one call that returns when the file is written, True, or has failed, False
        with an `error`. The pixels are those at the call: edits made meanwhile stay unsaved.
        The PNG goes to a temporary file in the same folder and is renamed over `path` only
        when complete, so quitting or a crash mid-save never leaves a half-written file there.
        """
        doc = self.document
        if doc is None:
            return False
        if self._save_thread is not None:
            self.error.emit(f"Cannot save '{path}' yet: still saving {self._save_path}")
            return False
        read = next((f for f in self.input_files if _same_file(path, f)), None)
        if read is not None:
            what = "the original" if read == doc.path else "a file this image was made from"
            self.error.emit(f"Cannot save '{path}': that is {what}; choose a new name")
            return False
        source, source_alpha, text = doc.rgb, doc.alpha, self._png_text()
        index = doc.history_index
        outcome: dict[str, str] = {}
        copied = threading.Event()
        relay = _SaveRelay()
        loop = QEventLoop()
        relay.done.connect(loop.quit, Qt.ConnectionType.QueuedConnection)
        relay.wrote.connect(self.save_progress, Qt.ConnectionType.QueuedConnection)

        def write() -> None:
            try:
                # the snapshot is taken here (NumPy copies without the GIL): 270 MB of a
                # 10000x9000 image would otherwise hold the window's thread for a moment
                try:
                    rgb = source.copy()
                    alpha = None if source_alpha is None else source_alpha.copy()
                finally:
                    copied.set()
                save_png(path, rgb, alpha, text, on_write=relay.report)
            except (MageError, ValueError) as error:
                outcome["error"] = str(error)
            except MemoryError:
                outcome["error"] = f"Cannot save '{path}': not enough memory to encode it"
            except Exception as error:  # noqa: BLE001 - reported, never a silent thread death
                log.exception("saving %s failed", path)
                outcome["error"] = f"Cannot save '{path}': {error}"
            finally:
                relay.finish()

        thread = threading.Thread(target=write, name="save-png")
        self._save_thread, self._save_path = thread, path
        self.saving_changed.emit(True)
        self.status.emit(f"Saving {path}...")
        try:
            thread.start()
            # until the pixels are copied nothing may change them: the window repaints and
            # its timers run, keys and clicks wait (a few milliseconds; a second at most for
            # the largest images), and a finished run is applied just after
            self._snapshotting = True
            try:
                while not copied.wait(0.005):
                    QCoreApplication.processEvents(
                        QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents, 5
                    )
            finally:
                self._snapshotting = False
            if thread.is_alive():
                loop.exec()  # returns when written, or early when the application quits
            thread.join()  # quitting mid-save: the file is finished, never abandoned
        finally:
            self._save_thread, self._save_path = None, ""
            self.saving_changed.emit(False)
        if "error" in outcome:
            self.error.emit(outcome["error"])
            return False
        if self.document is doc:
            doc.saved_index = index
        self.status.emit(f"Saved {path}")
        self.saved.emit(path)
        return True

    def note_input(self, path: str) -> None:
        """`path` was read into the current image (a loaded mask): Save never writes over it."""
        if path not in self.input_files:
            self.input_files.append(path)

    def _png_text(self) -> dict[str, str]:
        text = {"Software": "MAGE Studio"}
        if self.run is not None and self.bundle is not None and self.run.settings is not None:
            seed = self.run.candidates[max(self.applied, 0)].seed
            settings = replace(self.run.settings, seeds=(seed,))
            text.update(settings.describe(self.bundle.manifest))
            text["mage:mode"] = self.run.kind
        return text

    # -- mask editing ---------------------------------------------------------------------

    def begin_stroke(self) -> None:
        if self.document is not None:
            self._stroke = StrokeRecord()

    def stroke_segment(self, p0, p1, radius: float, erase: bool = False) -> None:
        if self.document is None or self._stroke is None:
            return
        mask = self.document.mask
        self._stroke.cover(mask, mask_ops.segment_box(mask.shape, p0, p1, radius))
        box = mask_ops.paint_segment(mask, p0, p1, radius, not erase)
        if box is not None:
            self.mask_changed.emit(box)
            self._schedule_plan()

    def end_stroke(self, label: str) -> None:
        doc, stroke = self.document, self._stroke
        self._stroke = None
        if doc is None or stroke is None:
            return
        region = stroke.change(doc.mask)
        if region is not None:
            doc.record(Change(label, mask=region))

    def fill_shape(self, kind: str, points, erase: bool = False) -> None:
        """kind "rect" (two corners) or "lasso" (polygon)."""
        if self.document is None:
            return
        mask = self.document.mask.copy()
        if kind == "rect":
            mask_ops.fill_rect(mask, points[0], points[1], not erase)
        else:
            mask_ops.fill_polygon(mask, points, not erase)
        self._replace_mask(mask, "Rectangle" if kind == "rect" else "Lasso")

    def set_mask(self, mask: np.ndarray, label: str = "Load mask") -> None:
        if self.document is not None:
            self._replace_mask(np.asarray(mask, bool), label)

    def clear_mask(self) -> None:
        if self.document is not None:
            self._replace_mask(np.zeros_like(self.document.mask), "Clear mask")

    def invert_mask(self) -> None:
        if self.document is not None:
            self._replace_mask(~self.document.mask, "Invert mask")

    def grow_mask(self, cells: int = 1) -> None:
        self._resize_mask(cells)

    def shrink_mask(self, cells: int = 1) -> None:
        self._resize_mask(-cells)

    def token_pixels(self) -> int:
        """Side of one token cell in image pixels for the current mask (at least 1)."""
        if self.plan is not None and self.bundle is not None:
            return max(1, round(self.plan.cell_side))
        if self.document is not None:
            return max(1, round(min(self.document.size) / 16))
        return 1

    def _resize_mask(self, cells: int) -> None:
        if self.document is None or not self.document.mask.any():
            return
        radius = self.token_pixels() * abs(cells)
        grown = (mask_ops.dilate if cells > 0 else mask_ops.erode)(self.document.mask, radius)
        self._replace_mask(grown, "Grow mask" if cells > 0 else "Shrink mask")

    def _replace_mask(self, mask: np.ndarray, label: str) -> None:
        assert self.document is not None  # the callers check there is an image
        self.document.replace_mask(mask, label)

    # -- the document's history and the undo stack ------------------------------------------

    def _attach(self, document: Document) -> None:
        """Shows `document`: the undo stack gets one command per change of its history and
        stands at its undo position; from now on every change of it is announced."""
        if self.document is not None and self._on_document in self.document.listeners:
            self.document.listeners.remove(self._on_document)
        self.document = document
        self._opened_at = 0
        self.input_files = [document.path] if document.path else []  # never saved over
        index = document.history_index
        with self._moving():  # not announced: the widgets hear document_changed afterwards
            self.undo_stack.clear()
            while document.redo() is not None:  # commands are pushed in the applied state
                pass
            for position in range(len(document.history)):
                self.undo_stack.push(ChangeCommand(document, position, moving=self._moving))
            self.undo_stack.setIndex(index)  # undoes the tail through the commands
        document.listeners.append(self._on_document)

    def _on_document(self, event: str, change: Change) -> None:
        """Every change of the document's history: the undo stack follows, widgets hear."""
        doc = self.document
        assert doc is not None  # only the attached document calls
        if event in (RECORDED, REPLACED):
            with self._moving():  # a replacement merges into the command on top
                self.undo_stack.push(
                    ChangeCommand(
                        doc, doc.history_index - 1, replaces=event == REPLACED, moving=self._moving
                    )
                )
            self._announce(change)
            return
        if not self._stack_moving and self.undo_stack.index() != doc.history_index:
            with self._moving():  # the document moved by itself: the stack follows
                self.undo_stack.setIndex(doc.history_index)
        self._announce(change)
        if change.canvas is not None or change.image is not None:
            self.jobs.cancel()  # a run started on the old pixels no longer fits
        self._sync_applied()

    @contextmanager
    def _moving(self):
        """While the undo stack moves the document (or follows it)."""
        outer, self._stack_moving = self._stack_moving, True
        try:
            yield
        finally:
            self._stack_moving = outer

    def _announce(self, change: Change) -> None:
        if change.canvas is not None:
            self.document_changed.emit()
        else:
            if change.image is not None:
                self.image_changed.emit(change.image.box)
            if change.mask is not None:
                self.mask_changed.emit(change.mask.box)
        self._schedule_plan()

    # -- options and the token plan -----------------------------------------------------------

    def set_options(self, options: EditOptions) -> None:
        if options == self.options:
            return
        self.options = options
        if self.document is not None:
            self.document.options = options
        self.options_changed.emit(options)
        self._schedule_plan()

    def _schedule_plan(self) -> None:
        self._mask_revision += 1
        if not self._plan_timer.isActive():
            self._plan_timer.start()

    def _update_plan(self) -> None:
        if (
            self.document is not None
            and self.bundle is not None
            and self.options.mode in ("remove", "class")
        ):
            settings = self.options.settings((0,))
            # the overlay follows when the plan arrives; the window never waits for it
            number = self.planner.request(self.bundle.manifest, self.document.mask.copy(), settings)
            self._requested = (number, self._mask_revision)
            return
        self.planner.forget()
        self.plan = None
        self.plan_changed.emit(None)

    def _on_plan(self, number: int, plan: EditPlan | None) -> None:
        if number == self.planner.latest:
            self.plan = plan
            asked, revision = self._requested
            self._plan_revision = revision if asked == number else -1
            self.plan_changed.emit(plan)

    # -- runs ---------------------------------------------------------------------------

    def start_run(self) -> bool:
        """Start the run the options describe; False (and an `error`) when it cannot start."""
        why = self._cannot_run()
        if why:
            self.error.emit(why)
            return False
        options, bundle = self.options, self.bundle
        if (
            options.mode == "generate"
            and self.document is not None
            and self.confirm_new_document is not None
            and not self.confirm_new_document()
        ):
            return False
        settings = options.settings(options.pick_seeds())
        doc = self.document
        self._run_document = doc
        if options.mode == "generate":
            self.jobs.start("generate", lambda: generate_run(bundle, settings))
        elif options.mode == "extend":
            assert doc is not None  # every mode but generate needs an image (_cannot_run)
            rgb, alpha = doc.rgb.copy(), doc.alpha
            side, cells = options.extend_side, options.extend_cells
            self.jobs.start("extend", lambda: extend_run(bundle, rgb, alpha, side, cells, settings))
        else:
            # the plan the grid shows, when nothing changed since it was asked for
            fresh = self.plan is not None and self._plan_revision == self._mask_revision
            assert doc is not None
            rgb, mask, plan = doc.rgb.copy(), doc.mask.copy(), self.plan if fresh else None
            self.jobs.start("edit", lambda: edit_run(bundle, rgb, mask, settings, plan=plan))
        self.status.emit(f"{MODE_TITLES[options.mode]}: running on {bundle.device.upper()}...")
        return True

    def reroll(self, count: int | None = None) -> bool:
        """Decode again the least confident tokens of the applied candidate."""
        run, bundle = self.run, self.bundle
        if run is None or run.fill is None or bundle is None or self.jobs.busy:
            self.error.emit("Re-roll needs a finished refill to work on")
            return False
        count = count or self.options.reroll_count
        candidate = max(self.applied, 0)
        settings = replace(run.settings, seeds=self.options.pick_seeds())
        self._run_document = self.document
        self.jobs.start("reroll", lambda: reroll_run(bundle, run, candidate, count, settings))
        self.status.emit(f"Re-rolling the {count} least confident tokens...")
        return True

    def cancel_run(self) -> None:
        self.jobs.cancel()

    def _cannot_run(self) -> str:
        if self.bundle is None:
            return self.models.error or "The model is still loading"
        mode, document = self.options.mode, self.document
        if mode != "generate" and document is None:
            return "Open an image first (File > Open, drop a file, or paste)"
        missing = self.options.class_missing(self.bundle.manifest)
        if missing:
            return missing
        if mode in ("remove", "class") and document is not None and not document.mask.any():
            return "Paint over the area to refill first"
        return ""

    def _on_progress(self, step: Step) -> None:
        self.progress.emit(step)
        if step.preview is not None:
            self.preview_changed.emit(step.preview)

    def _on_finished(self, outcome: RunResult) -> None:
        if self._snapshotting:  # applied once the save has its copy of the pixels
            QTimer.singleShot(5, lambda: self._on_finished(outcome))
            return
        self._show_bundle_notices()
        if outcome.kind != "generate" and self.document is not self._run_document:
            # the image it was made for was closed meanwhile: never paste it into another
            self.preview_changed.emit(None)
            self.status.emit("The result was dropped: another image is open now")
            return
        self.run = outcome
        self.applied, self._applied_at = -1, -1
        self.run_changed.emit(outcome)
        self.apply_candidate(0)
        log.info("%s done in %.2f s", outcome.kind, outcome.seconds)
        self.status.emit(
            f"{outcome.kind.capitalize()} done in {outcome.seconds:.1f} s "
            f"(seeds {', '.join(str(c.seed) for c in outcome.candidates)})"
        )

    def _on_failed(self, message: str) -> None:
        self._show_bundle_notices()
        self.preview_changed.emit(None)
        self.error.emit(message)

    def _show_bundle_notices(self) -> None:
        """Notices the model added while running (CUDA failed, now on the CPU): once each."""
        notices = list(self.bundle.notices) if self.bundle is not None else []
        if len(notices) > self._notices_shown:
            self.notice.emit(" ".join(notices[self._notices_shown :]))
        self._notices_shown = len(notices)

    # -- messages and previews other objects hand to the widgets ---------------------------

    def report_error(self, message: str) -> None:
        """A one-line problem for the user (a file that would not open, a failed decode)."""
        self.error.emit(message)

    def show_preview(self, patch) -> None:
        """Pixels to show over the image without changing it (a scrubbed step); None hides."""
        self.preview_changed.emit(patch)

    def _end_run(self, message: str) -> None:
        self.preview_changed.emit(None)
        self.status.emit(message)

    def apply_candidate(self, index: int) -> None:
        """Put candidate `index` of the last run into the image (replacing one applied from
        the same run, so clicking through candidates is one undo step)."""
        run = self.run
        if run is None or not 0 <= index < len(run.candidates):
            return
        if index == self.applied and self._applied_at == self._history_index():
            return
        # another candidate of the same run takes the place of the one applied last
        replace_last = self.applied >= 0 and self._applied_at == self._history_index()
        candidate = run.candidates[index]
        label = f"{run.kind.capitalize()} (seed {candidate.seed})"
        meta = {"seed": candidate.seed, "kind": run.kind}
        if run.resizes_canvas and (self.document is None or run.kind == "generate"):
            # a generated image is a new, unsaved document; it never overwrites a photo
            document = Document(candidate.patch.rgb, None, "", self.options)
            document.saved_index = -1
            self._attach(document)
            self.document_changed.emit()
            self._schedule_plan()  # a change of the open document schedules one (_announce)
        elif run.resizes_canvas:
            assert self.document is not None  # the branch above makes a missing one
            self.document.replace_canvas(
                candidate.patch.rgb, run.alpha, label, meta, replace_last=replace_last
            )
        else:
            patch = candidate.patch
            assert self.document is not None  # a patch goes into the image it was made for
            self.document.apply_image_patch(
                patch.x0, patch.y0, patch.rgb, label, meta=meta, replace_last=replace_last
            )
        self.applied, self._applied_at = index, self._history_index()
        self.preview_changed.emit(None)
        self.applied_changed.emit(index)

    def _history_index(self) -> int:
        return self.document.history_index if self.document is not None else -1

    def _sync_applied(self) -> None:
        """After undo/redo the applied candidate is only known if we are back at its state."""
        index = self.applied if self._applied_at == self._history_index() else -1
        self.applied_changed.emit(index)

    def _forget_run(self) -> None:
        self.run, self.applied, self._applied_at = None, -1, -1
        self.run_changed.emit(None)
        self.preview_changed.emit(None)


class _SaveRelay(QObject):
    """Signals from the saving thread to the window's thread (queued)."""

    done = Signal()
    wrote = Signal(int)  # bytes written so far

    def __init__(self):
        super().__init__()
        self._reported = 0

    def finish(self) -> None:
        self.done.emit()

    def report(self, written: int) -> None:
        if written - self._reported >= 256 * 1024:  # a few signals per megabyte
            self._reported = written
            self.wrote.emit(written)


def _same_file(a: str, b: str) -> bool:
    """True when both paths name one file (links and case-insensitive names included)."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
