"""Run a job on a QThreadPool thread and report back through queued signals.

Modelled on superqt's GeneratorWorker (as napari uses it): the job is a generator; the worker
sends each yielded value to the GUI thread and checks its abort flag between steps, so a
generator that yields once per decoding step gets progress and cancel points for free (every
engine run is such a generator: engine/runtime/run.py).

Every signal carries the job id so the receiver can ignore a job it has superseded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator

from PySide6.QtCore import QObject, QRunnable, Signal

from engine.runtime.errors import MageError

log = logging.getLogger(__name__)


class WorkerAborted(Exception):
    """Raised inside the worker when it was asked to stop."""


class WorkerSignals(QObject):
    yielded = Signal(int, object)  # job id, value
    returned = Signal(int, object)  # job id, return value
    errored = Signal(int, str)  # job id, one-line message
    aborted = Signal(int)
    finished = Signal(int)  # always last, after returned/errored/aborted


class GeneratorWorker(QRunnable):
    """Iterates `job()` (a generator) off the GUI thread.

    Args:
        job_id: echoed in every signal.
        job: a no-argument callable returning the generator to run.
    """

    def __init__(self, job_id: int, job: Callable[[], Generator[object, None, object]]):
        super().__init__()
        self.setAutoDelete(False)  # the controller keeps a reference until `finished`
        self.job_id = job_id
        self._job = job
        self._abort = threading.Event()
        self.done = threading.Event()
        self.signals = WorkerSignals()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def quit(self) -> None:
        """Ask the job to stop at its next step; returns at once."""
        self._abort.set()

    def run(self) -> None:
        try:
            self._run_job()
        except WorkerAborted:
            self.signals.aborted.emit(self.job_id)
        except MageError as error:
            self.signals.errored.emit(self.job_id, str(error))
        except (ValueError, MemoryError) as error:
            # the engine raises ValueError for arguments it cannot use (e.g. extend by 0)
            self.signals.errored.emit(self.job_id, _one_line(error))
        except Exception as error:  # noqa: BLE001 - a worker must never die silently
            log.exception("job %d failed", self.job_id)
            self.signals.errored.emit(self.job_id, f"Unexpected error: {_one_line(error)}")
        finally:
            self.done.set()
            self.signals.finished.emit(self.job_id)

    def _run_job(self) -> None:
        gen = self._job()
        try:
            while True:
                if self._abort.is_set():
                    raise WorkerAborted
                try:
                    value = next(gen)
                except StopIteration as stop:
                    if self._abort.is_set():
                        raise WorkerAborted from None
                    self.signals.returned.emit(self.job_id, stop.value)
                    return
                self.signals.yielded.emit(self.job_id, value)
        finally:
            gen.close()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]
