"""Downloading large files on the user's request: resumable, verified, cancellable.

A file is written to `NAME.part` beside its target and renamed to `NAME` only once its size
(and sha256, where known) is checked, so a partial file never sits under the final name. A
later call continues the `.part` with an HTTP range request; a server that ignores the range
(status 200) restarts it from the first byte. A dropped connection or a timeout is retried
from where it stopped. Google Drive answers a large file with a confirmation page instead of
the file; the optional `gdown` package reads that page (the `download` extra).

Only the standard library is used here (urllib); nothing is fetched unless a caller asks.
`MAGE_STUDIO_DOWNLOAD_BASE` (or the `base` argument of `resolve_url`) sends every request to
another host, such as a mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.runtime.errors import MageError

ENV_BASE = "MAGE_STUDIO_DOWNLOAD_BASE"
PART_SUFFIX = ".part"
CHUNK = 1 << 16  # network reads: progress and cancel are seen every 64 KiB
MAX_PAGE_BYTES = 2 << 20  # a confirmation page larger than this is not one
USER_AGENT = "MAGE-Studio-downloader"
GDOWN_HINT = "pip install -e '.[download]' (or pip install gdown)"

Progress = Callable[[int, "int | None"], None]  # bytes so far, total bytes (None: unknown)


class DownloadError(MageError):
    """A download failed; `str(error)` says which file and why in one line."""


class DownloadCancelled(DownloadError):
    """The user cancelled; the `.part` file is kept for a later resume."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch. `size` and `sha256` are checked when known; `approx_size` (bytes)
    is shown to the user and used for the free-space check when the exact size is not
    published. `drive`: the host may answer with Google Drive's confirmation page."""

    name: str  # the local file name
    url: str
    size: int | None = None
    sha256: str | None = None
    approx_size: int | None = None
    drive: bool = False

    @property
    def expected_size(self) -> int:
        return self.size or self.approx_size or 0


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def resolve_url(url: str, base: str | None = None) -> str:
    """`url` with its scheme and host replaced by `base` (or $MAGE_STUDIO_DOWNLOAD_BASE), the
    base's path prefixed: "https://host/a/b?q" with base "http://127.0.0.1:8000/m" gives
    "http://127.0.0.1:8000/m/a/b?q"."""
    base = base if base is not None else os.environ.get(ENV_BASE, "")
    if not base:
        return url
    b, u = urllib.parse.urlsplit(base), urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        (b.scheme, b.netloc, b.path.rstrip("/") + u.path, u.query, u.fragment)
    )


def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def check_free_space(folder: Path, needed: int, what: str = "the download") -> None:
    """Refuse in one line when `folder`'s disk has fewer than `needed` free bytes."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # unknown: let the write itself fail with its own message
    if needed > free:
        raise DownloadError(
            f"not enough free disk space in {folder} for {what}: needs {human_size(needed)}, "
            f"{human_size(free)} free"
        )


def sha256_of(path: Path, cancel: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"{path.name}: cancelled while checking")
            digest.update(block)
    return digest.hexdigest()


def _gdown_confirmation_url(page: str, name: str) -> str:
    try:
        from gdown.download import get_url_from_gdrive_confirmation
    except ImportError:
        raise DownloadError(
            f"{name}: Google Drive asks to confirm this large download, which needs the gdown "
            f"package: {GDOWN_HINT}"
        ) from None
    try:
        return get_url_from_gdrive_confirmation(page)
    except Exception as e:  # gdown's FileURLRetrievalError and parse failures
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DownloadError(f"{name}: Google Drive refused the download: {first}") from None


def gdown_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gdown") is not None


_RETRYABLE = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
)


class _Dropped(Exception):
    """A connection ended early or timed out: retry from where the file stopped."""


def _total_from(response, status: int, offset: int) -> int | None:
    if status == 206:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if m and m.group(3) != "*":
            return int(m.group(3))
        length = response.headers.get("Content-Length")
        return offset + int(length) if length and length.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download_file(
    remote: RemoteFile,
    target: Path,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    *,
    base: str | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    backoff: float = 1.0,
    reserve: int = 0,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Fetch `remote` to `target` (resuming `target.part`); returns `target`. `reserve`:
    bytes that must stay free beyond the file (room for what is built from it). Raises
    DownloadError (one line) or DownloadCancelled; a `.part` is kept unless it is wrong."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and (remote.size is None or target.stat().st_size == remote.size):
        return target  # only a verified file is ever renamed to the final name
    part = part_path(target)
    have = part.stat().st_size if part.is_file() else 0
    check_free_space(target.parent, max(remote.expected_size - have, 0) + reserve, remote.name)
    url = resolve_url(remote.url, base)
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    failures = 0
    total: int | None = remote.size
    while True:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(f"{remote.name}: cancelled; run again to resume")
        have = part.stat().st_size if part.is_file() else 0
        if remote.size is not None and have > remote.size:
            part.unlink()
            have = 0
        if total is not None and have == total and have > 0:
            break
        try:
            got = _fetch(opener, url, remote, part, have, progress, cancel, timeout, reserve, say)
            total = got
            break
        except _Dropped as e:
            now = part.stat().st_size if part.is_file() else 0
            failures = 0 if now > have else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"{remote.name}: {e} (gave up after {retries} retries; run again to resume)"
                ) from None
            if say:
                say(f"{remote.name}: {e}; retrying")
            wait = min(backoff * (2 ** max(failures - 1, 0)), 30.0)
            if cancel is not None and cancel.wait(wait):
                raise DownloadCancelled(f"{remote.name}: cancelled; run again to resume") from None
            if cancel is None:
                time.sleep(wait)
    _verify(remote, part, total, cancel)
    os.replace(part, target)
    return target


def _open(opener, url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)


def _fetch(opener, url, remote, part, offset, progress, cancel, timeout, reserve, say):
    """One request: append to `part` from `offset`; returns the file's total size (or the
    bytes written when the server gives none). Raises _Dropped for a retryable failure."""
    try:
        # Drive's confirmation page is asked for whole; the range goes to the file's address
        response = _open(opener, url, 0 if remote.drive else offset, timeout)
        if remote.drive and "text/html" not in response.headers.get("Content-Type", ""):
            if offset:  # served directly (a small file): ask again for the rest only
                response.close()
                response = _open(opener, url, offset, timeout)
        elif remote.drive:
            page = response.read(MAX_PAGE_BYTES).decode("utf-8", "replace")
            response.close()
            url = _gdown_confirmation_url(page, remote.name)
            response = _open(opener, url, offset, timeout)
            if "text/html" in response.headers.get("Content-Type", ""):
                response.close()
                raise DownloadError(
                    f"{remote.name}: Google Drive sent a web page instead of the file (its daily "
                    "download limit may be reached; try again later)"
                )
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            m = re.match(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") if e.headers else "")
            if m and int(m.group(1)) == offset:
                return offset  # the .part already holds the whole file
            part.unlink(missing_ok=True)  # the range is past the server's file: start over
            raise _Dropped("the server refused to resume; starting over") from None
        if e.code in (408, 429) or e.code >= 500:
            raise _Dropped(f"server error (HTTP {e.code})") from None
        reason = "not found" if e.code == 404 else (e.reason or "refused")
        raise DownloadError(f"{remote.name}: {reason} (HTTP {e.code}) at {url}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, OSError) and not isinstance(e.reason, socket.gaierror):
            raise _Dropped(f"connection failed ({_reason(e.reason)})") from None
        raise DownloadError(f"{remote.name}: cannot reach {url} ({_reason(e.reason)})") from None
    except _RETRYABLE as e:
        raise _Dropped(f"connection failed ({_reason(e)})") from None

    with response:
        status = response.status
        if status == 206:
            m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Dropped("the server resumed at the wrong place; starting over")
            mode = "ab"
        else:  # 200: the whole file (a server that ignores ranges restarts cleanly)
            if offset and say:
                say(f"{remote.name}: the server does not resume downloads; starting over")
            offset, mode = 0, "wb"
        total = _total_from(response, status, offset)
        if remote.size is not None and total is not None and total != remote.size:
            raise DownloadError(
                f"{remote.name}: wrong size: the server has {total} bytes, expected "
                f"{remote.size}; not downloaded"
            )
        if total is not None:
            check_free_space(part.parent, total - offset + reserve, remote.name)
        done = offset
        if progress:
            progress(done, total)
        try:
            with open(part, mode) as out:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled(f"{remote.name}: cancelled; run again to resume")
                    block = response.read(CHUNK if total is None else min(CHUNK, total - done))
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
                    if total is not None and done >= total:
                        break
        except _RETRYABLE as e:
            raise _Dropped(f"connection dropped at {human_size(done)} ({_reason(e)})") from None
        except OSError as e:
            raise DownloadError(f"{remote.name}: cannot write {part}: {e.strerror or e}") from None
        if total is not None and done < total:
            raise _Dropped(f"connection dropped at {human_size(done)} of {human_size(total)}")
        return total if total is not None else done


def _reason(e) -> str:
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:160]


def _verify(remote: RemoteFile, part: Path, total: int | None, cancel) -> None:
    size = part.stat().st_size
    expected = remote.size if remote.size is not None else total
    if expected is not None and size != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{remote.name}: wrong size: got {size} bytes, expected {expected}; removed"
        )
    if remote.sha256:
        digest = sha256_of(part, cancel)
        if digest != remote.sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{remote.name}: damaged download (sha256 {digest[:16]}..., expected "
                f"{remote.sha256[:16]}...); removed"
            )
