"""JobController: the one place that starts, cancels and supersedes runs.

Widgets and the editor never touch a worker; they call `start(...)` / `cancel()` and listen to
the signals. Only one job is current: starting another asks the running one to stop at its
next step and forgets it (`superseded`), so its late signals are ignored by id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, QThreadPool, Signal

from app.worker import GeneratorWorker


def _returning(fn: Callable[[], object]) -> Generator[object, None, object]:
    """A generator with no steps that returns what `fn` returns."""
    yield from ()
    return fn()


class JobController(QObject):
    started = Signal(str)  # kind
    progress = Signal(object)  # whatever the job yields (StepProgress)
    finished = Signal(object)  # the job's return value (a RunResult for runs)
    cancelled = Signal()
    failed = Signal(str)  # one-line message
    superseded = Signal()
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self._pool = pool or QThreadPool(self)
        # room for a superseded job to reach its next step while the new one starts
        self._pool.setMaxThreadCount(max(2, self._pool.maxThreadCount()))
        self._next_id = 0
        self._current: GeneratorWorker | None = None
        self._kind = ""
        self._alive: dict[int, GeneratorWorker] = {}  # started, not yet finished

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def kind(self) -> str:
        return self._kind if self._current is not None else ""

    def start(self, kind: str, job: Callable[[], Generator[object, None, object]]) -> int:
        """Run a generator job (superseding the current one); returns its id."""
        self._next_id += 1
        worker = GeneratorWorker(self._next_id, job)
        was_busy = self.busy
        if self._current is not None:
            self._current.quit()
            self._current = None
            self.superseded.emit()
        queued = Qt.ConnectionType.QueuedConnection
        worker.signals.yielded.connect(self._on_yielded, queued)
        worker.signals.returned.connect(self._on_returned, queued)
        worker.signals.errored.connect(self._on_errored, queued)
        worker.signals.aborted.connect(self._on_aborted, queued)
        worker.signals.finished.connect(self._on_finished, queued)
        self._current, self._kind = worker, kind
        self._alive[worker.job_id] = worker
        self._pool.start(worker)
        self.started.emit(kind)
        if not was_busy:
            self.busy_changed.emit(True)
        return worker.job_id

    def call(self, kind: str, fn: Callable[[], object]) -> int:
        """Run a plain function as a job (no steps); `finished` carries its return value."""
        return self.start(kind, lambda: _returning(fn))

    def cancel(self) -> None:
        """Stop the current job at its next step; `cancelled` follows when it has stopped."""
        if self._current is not None:
            self._current.quit()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Process events until no job runs (for scripted use: --screenshot and tests)."""
        deadline = time.monotonic() + timeout
        while (self._current is not None or self._alive) and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)
        return self._current is None and not self._alive

    # -- internals ----------------------------------------------------------------------

    def _current_job(self, job_id: int) -> GeneratorWorker | None:
        """The current worker, if it runs job `job_id`."""
        current = self._current
        return current if current is not None and current.job_id == job_id else None

    def _is_current(self, job_id: int) -> bool:
        return self._current_job(job_id) is not None

    def _on_yielded(self, job_id: int, value: object) -> None:
        # steps already queued when Cancel was pressed are not shown
        current = self._current_job(job_id)
        if current is not None and not current.abort_requested:
            self.progress.emit(value)

    def _on_returned(self, job_id: int, value: object) -> None:
        current = self._current_job(job_id)
        if current is not None:
            aborted = current.abort_requested  # Cancel pressed after it had returned
            self._end()
            if aborted:
                self.cancelled.emit()
            else:
                self.finished.emit(value)

    def _on_errored(self, job_id: int, message: str) -> None:
        if self._is_current(job_id):
            self._end()
            self.failed.emit(message)

    def _on_aborted(self, job_id: int) -> None:
        if self._is_current(job_id):
            self._end()
            self.cancelled.emit()

    def _on_finished(self, job_id: int) -> None:
        self._alive.pop(job_id, None)

    def _end(self) -> None:
        self._current = None
        self.busy_changed.emit(False)
