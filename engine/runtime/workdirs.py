"""Work folders beside a target: where an import or install builds a bundle before it is moved
into place, never left behind.

A work folder is `.NAME.XXXXXXXX.work` in the target's folder, with a lock file beside it
(`.NAME.XXXXXXXX.work.lock`) that its maker holds (flock) while it runs. It is removed when
the `with` block ends, however it ends: an error, Ctrl+C, or SIGTERM / SIGHUP (while a work
folder is open in the main thread, those signals end the process through the same clean-up).
A kill -9 or a power cut cannot be caught: the next start calls `sweep`, which removes every
work folder of ours whose lock nobody holds, and nothing else (not a folder without our lock
file, not a link).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORK_SUFFIX = ".work"
LOCK_SUFFIX = ".lock"
CAUGHT = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

_open_count = 0
_count_lock = threading.Lock()
_saved: dict[int, object] = {}


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, removing the work folders


def _catch_signals() -> None:
    global _open_count
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread; sweep() covers the rest
    with _count_lock:
        _open_count += 1
        if _open_count > 1:
            return
        for sig in CAUGHT:
            if signal.getsignal(sig) == signal.SIG_DFL:  # never replace an application's own
                _saved[sig] = signal.signal(sig, _exit_on_signal)


def _release_signals() -> None:
    global _open_count
    if threading.current_thread() is not threading.main_thread():
        return
    with _count_lock:
        _open_count -= 1
        if _open_count:
            return
        for sig, previous in _saved.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        _saved.clear()


@contextmanager
def work_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A new, private work folder beside `target`, locked while the block runs and removed
    after it (a folder the block moved into place stays where it went)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _catch_signals()
    try:
        path = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=WORK_SUFFIX, dir=target.parent)
        )
        lock = path.with_name(path.name + LOCK_SUFFIX)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            lock.unlink(missing_ok=True)
            os.close(fd)
    finally:
        _release_signals()


def sweep(folder: str | os.PathLike) -> list[Path]:
    """Remove the work folders in `folder` whose maker has ended (their lock is free); returns
    them. Folders of a running import, and anything without our lock file, stay."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith("."):
            continue
        if name.endswith(WORK_SUFFIX + LOCK_SUFFIX):
            work = folder / name[: -len(LOCK_SUFFIX)]
            lock = folder / name
        elif name.endswith(WORK_SUFFIX):
            work = folder / name
            lock = folder / (name + LOCK_SUFFIX)
            if not entry.is_dir(follow_symlinks=False):
                continue
        else:
            continue
        if _take_lock(lock):
            if os.path.lexists(work):
                info = os.lstat(work)
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(work, ignore_errors=True)
                    removed.append(work)
            lock.unlink(missing_ok=True)
    return removed


def _take_lock(lock: Path) -> bool:
    """True when `lock` is a lock file of ours (a regular file) that nobody holds."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
