"""Crash-safe autosave of the open document, and restoring it after a crash or kill -9.

The session lives in ``user_data_dir()/session/`` (``session-2`` ... when another instance
holds that one), written by the session store (`app.core.session`, which describes the folder).

Writes are debounced (at most one per `delay_ms`), atomic (temp file + fsync + os.replace) and
flushed when the app quits. A clean exit removes the session; a session.json found at start is
therefore one a crash or kill left behind, and the app offers to restore it. The user's image
file is only ever read (for its hash, or to reload a very large one it references).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal

from app.core.session import (
    SESSION_FILE,
    RestoreError,
    SessionStore,
    Snapshot,
    _check_writable,
    _os_reason,
    _prune,
    _Writer,
    check_session,
    session_root,
    snapshot,
)

log = logging.getLogger(__name__)

MAX_INSTANCES = 8
# Sessions the user declined, or that could not be restored, are moved here (never deleted
# at once); only the newest KEEP_OLDER are kept.
OLDER_FOLDER = "older sessions"
KEEP_OLDER = 10

__all__ = [
    "Autosaver",
    "RestoreError",
    "SessionStore",
    "Snapshot",
    "check_session",
    "session_root",
    "snapshot",
]


# -- the Qt side ----------------------------------------------------------------------------


class Autosaver(QObject):
    """Saves `editor`'s document after every change (debounced) and restores it after a crash.

    Args:
        editor: the app.editor.Editor to follow.
        root: the session folder (default `session_root()`); instances that find it locked use
            root-2, root-3, ...
        delay_ms: at most one write per this many milliseconds.
    """

    failed = Signal(str)  # one line, emitted once until a write succeeds again

    def __init__(
        self, editor, root: Path | None = None, delay_ms: int = 300, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.editor = editor
        self.root = Path(root) if root is not None else session_root()
        self.folder: Path | None = None
        self._lock: QLockFile | None = None
        self.store: SessionStore | None = None
        self._writer: _Writer | None = None
        self._failed_once = False
        self._active = False
        self.problem = ""  # why autosave is off, one line for a banner ("" when on)
        self._timer = QTimer(self, singleShot=True, interval=delay_ms)
        self._timer.timeout.connect(self.save_now)
        self._claim()

    # -- folder and lock ----------------------------------------------------------------------

    def _claim(self) -> None:
        """Takes one session folder: the first with a session a crash left behind (its lock
        is stale: the process that held it is gone), else the first no running instance
        holds. Folders are locked one at a time and created only when taken, so instances
        starting together each get their own, and none holds more than one."""
        candidates = [self.root] + [
            self.root.with_name(f"{self.root.name}-{n}") for n in range(2, MAX_INSTANCES + 1)
        ]
        crashed = [f for f in candidates if SessionStore(f).has_session()]
        problem = ""
        for folder in crashed + [f for f in candidates if f not in crashed]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                _check_writable(folder)
            except OSError as error:
                problem = f"cannot write to {folder} ({_os_reason(error)})"
                log.warning("no autosave in %s: %s", folder, error)
                if error.errno in (
                    errno.EACCES,
                    errno.EPERM,
                    errno.EROFS,
                    errno.ENOSPC,
                    errno.ENOTDIR,
                ):
                    break  # its siblings are in the same place: no better there
                continue
            lock = QLockFile(str(folder / "lock"))
            lock.setStaleLockTime(0)  # stale only when its process is gone
            if lock.tryLock(0):
                self.folder, self._lock = folder, lock
                self.store = SessionStore(folder)
                self._writer = _Writer(self.store, self._report_failure, self._writes_work)
                return
            if lock.error() == QLockFile.LockError.PermissionError:
                problem = f"cannot write to {folder} (permission denied)"
                break
        if not problem:
            problem = f"every session folder under {self.root.parent} is in use"
        self.problem = f"Autosave is off: {problem}; your edits are not being backed up"
        log.warning("%s", self.problem)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    # -- restore --------------------------------------------------------------------------

    def pending(self) -> dict | None:
        """The JSON of a session a crash left behind (before `start`), else None."""
        if self.store is None or not self.store.has_session() or self._active:
            return None
        try:
            return self.store.info()
        except RestoreError as error:
            return {"error": str(error)}

    def restore(self) -> str:
        """Puts the crashed session into the editor; "" on success, else why not (then the
        session is set aside, not deleted)."""
        assert self.store is not None  # a session to restore is one pending() offered
        try:
            doc, _meta = self.store.load()
        except RestoreError as error:
            self.set_aside("unrestorable")
            return f"Could not restore the last session: {error}"
        self.editor.adopt_document(doc)
        log.info("restored session: %d changes, at step %d", len(doc.history), doc.history_index)
        return ""

    def discard(self) -> None:
        """The user declined the crashed session: it is set aside, not deleted."""
        if self.store is not None and self.store.has_session():
            self.set_aside("declined")

    def keep_discarded(self, why: str = "discarded") -> Path | None:
        """The user discarded the open document's unsaved changes: its session, brought up
        to date first, goes to "older sessions" (as a declined one does) instead of being
        overwritten by the next document. Returns where it went (None: nothing to keep, or
        it could not be moved)."""
        if self.store is None:
            return None
        if self._active:
            self._timer.stop()
            doc = self.editor.document
            if doc is not None:
                self._claimed_writer.submit(snapshot(doc))
            self._claimed_writer.flush()
        if not self.store.has_session():
            return None
        return self.set_aside(why)

    def set_aside(self, why: str) -> Path | None:
        """Moves the session (session.json and its blobs) into the "older sessions" folder
        beside the session folders, named by time and `why`; only the newest KEEP_OLDER are
        kept there. Returns where it went; None when it could not be moved, and then
        autosave stops for this run rather than write over it."""
        if self.store is None:
            return None
        assert self.folder is not None  # claimed with the store
        older = self.root.parent / OLDER_FOLDER
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            older.mkdir(parents=True, exist_ok=True)
            for n in range(100):
                target = older / f"{stamp}-{why}" if n == 0 else older / f"{stamp}-{why}-{n}"
                try:
                    target.mkdir()
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(f"{older} is full of sessions from {stamp}")
            for name in (SESSION_FILE, "blobs"):
                if os.path.lexists(self.folder / name):
                    os.replace(self.folder / name, target / name)
        except OSError as error:
            log.warning("could not set the session aside: %s", error)
            self.problem = (
                f"Autosave is off: the last session in {self.folder} could not be "
                f"set aside ({_os_reason(error)}); it was left as it was"
            )
            self.failed.emit(self.problem)
            self._release()
            return None
        self.store = SessionStore(self.folder)
        self._writer = _Writer(self.store, self._report_failure, self._writes_work)
        log.info("set the last session aside in %s", target)
        _prune(older, KEEP_OLDER)
        return target

    # -- following the editor ---------------------------------------------------------------

    def start(self) -> None:
        """Begin autosaving (after any restore); writes the current state soon."""
        if self.store is None or self._active:
            return
        self._active = True
        e = self.editor
        e.undo_stack.indexChanged.connect(self.schedule)
        e.document_changed.connect(self.schedule)
        e.options_changed.connect(self.schedule)
        e.saved.connect(self.schedule)
        self.schedule()

    def schedule(self, *_) -> None:
        if self._active and not self._timer.isActive():
            self._timer.start()

    def save_now(self) -> None:
        """Hands the current state to the writer (returns at once)."""
        if not self._active:
            return
        self._timer.stop()
        doc = self.editor.document
        self._claimed_writer.submit(None if doc is None else snapshot(doc))

    def flush(self, timeout: float = 30.0) -> bool:
        """Writes any pending change and waits for the writer."""
        if not self._active:
            return True
        if self._timer.isActive():
            self.save_now()
        return self._claimed_writer.flush(timeout)

    def close(self, clean: bool = True) -> None:
        """Stop. clean=True (the user closed the window with nothing unsaved, or after the
        unsaved changes were set aside): the session is removed; otherwise the last state is
        flushed (when autosave was started) and kept for the next start to offer."""
        if self.store is None:
            return
        if self._active:
            self._active = False
            self._timer.stop()
            e = self.editor
            for signal in (
                e.undo_stack.indexChanged,
                e.document_changed,
                e.options_changed,
                e.saved,
            ):
                with contextlib.suppress(RuntimeError, TypeError):
                    signal.disconnect(self.schedule)
            if not clean:
                doc = self.editor.document
                self._claimed_writer.submit(None if doc is None else snapshot(doc))
            self._claimed_writer.flush()
        if clean:
            self.store.clear()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None
        self.store = None

    @property
    def _claimed_writer(self) -> _Writer:
        """The writer, made when a session folder was claimed (autosave runs only then)."""
        assert self._writer is not None
        return self._writer

    @property
    def writes(self) -> int:
        return self._writer.writes if self._writer is not None else 0

    def _writes_work(self) -> None:
        self._failed_once = False  # the next failure is news again

    def _report_failure(self, message: str) -> None:
        if not self._failed_once:
            self._failed_once = True
            self.failed.emit(f"Autosave failed: {message}; your edits are not being backed up")


# -- helpers --------------------------------------------------------------------------------
