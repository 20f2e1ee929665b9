"""Downloading large files on the user's request: resumable, verified, cancellable, bounded.

A file is written to `NAME.part` beside its target and renamed to `NAME` only once its size
(and sha256, where known) is checked, so a partial file never sits under the final name. A
later call continues the `.part` with an HTTP range request; a server that ignores the range
(status 200) restarts it from the first byte. A dropped connection is retried from where it
stopped. Google Drive answers a large file with a confirmation page instead of the file; the
optional `gdown` package reads that page (the `download` extra).

The server is not trusted:
- the `.part` is created exclusively and never through a link; an existing one is used only
  when it is a regular file of this user with no other name (a planted link or hard link is
  refused, so nothing outside the download folder is ever written or renamed);
- a file never grows past its published size, or the size the server announces, or, when
  neither is known, twice its approximate size (`RemoteFile.limit`); a byte range that does not
  start where the `.part` ends, or that claims a smaller file, is refused;
- a file without a published size or checksum is taken as the server sends it: only its
  import can judge it, and a failed import sends it back (`RemoteFile.verifiable`,
  official_models.send_back_unverified);
- reads return what has arrived (at most 64 KiB); a connection that brings fewer than
  `STALL_BYTES` in `timeout` seconds (headers included) gives up with one line, and a cancel is
  answered within `POLL` seconds (a watchdog shuts the socket);
- a host that cannot be reached fails at once ("cannot reach HOST (no connection?)"); only a
  connection that already brought bytes is retried;
- only https is spoken (http only to the loopback address, for tests and local mirrors), and
  only to the file's own host, Google Drive's download hosts for a Drive file, and the host of
  `MAGE_STUDIO_DOWNLOAD_BASE`: redirects and Drive's confirmation page go nowhere else.

Only the standard library is used here (http.client, ssl); nothing is fetched unless a caller
asks. `MAGE_STUDIO_DOWNLOAD_BASE` (or the `base` argument of `resolve_url`) sends every
request to another host, such as a mirror.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import http.cookiejar
import ipaddress
import os
import re
import select
import shutil
import socket
import ssl
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.runtime.errors import MageError

ENV_BASE = "MAGE_STUDIO_DOWNLOAD_BASE"
PART_SUFFIX = ".part"
CHUNK = 1 << 16  # the most one read returns: progress and cancel are seen at least this often
MAX_PAGE_BYTES = 2 << 20  # a confirmation page larger than this is not one
USER_AGENT = "MAGE-Studio-downloader"
GDOWN_HINT = "pip install -e '.[download]' (or pip install gdown)"

STALL_BYTES = 16 << 10  # a connection must bring this much per `timeout` seconds
POLL = 0.2  # the watchdog's tick: cancel and deadlines are seen within this
CONNECT_TIMEOUT = 4.0  # seconds to open a connection (an unreachable host fails within 5 s)
MAX_REDIRECTS = 5
SIZE_SLACK = 2  # a file known only approximately may be up to twice that size
MAX_UNKNOWN_SIZE = 64 << 30  # the cap of a file whose size nobody states
# Google Drive serves a confirmed download from these hosts (besides the file's own)
DRIVE_HOSTS = ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")
DRIVE_HOST_SUFFIX = ".googleusercontent.com"

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

    @property
    def limit(self) -> int:
        """The most bytes this file may have: its size, else twice its approximate size."""
        if self.size is not None:
            return self.size
        if self.approx_size:
            return self.approx_size * SIZE_SLACK
        return MAX_UNKNOWN_SIZE

    @property
    def verifiable(self) -> bool:
        """Whether a download can be proved complete without importing it."""
        return self.size is not None or self.sha256 is not None


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


def regular_size(path: Path) -> int:
    """The size of `path` if it is a regular file (never through a link), else 0."""
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


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


def _sha256_fd(fd: int, cancel: threading.Event | None, name: str) -> str:
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, 1 << 20, offset):
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(f"{name}: cancelled while checking")
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def gdown_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gdown") is not None


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


# -- where a download may go --------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(remote: RemoteFile, base: str | None = None) -> frozenset[str]:
    """The hosts `remote` may be fetched from: its own, the download base's, and Drive's
    download hosts for a Drive file."""
    base = base if base is not None else os.environ.get(ENV_BASE, "")
    hosts = {(urllib.parse.urlsplit(remote.url).hostname or "").lower()}
    if base:
        hosts.add((urllib.parse.urlsplit(base).hostname or "").lower())
    if remote.drive:
        hosts.update(DRIVE_HOSTS)
    return frozenset(h for h in hosts if h)


def check_url(url: str, hosts: frozenset[str], name: str) -> urllib.parse.SplitResult:
    """Refuse (one line) an address other than https (or http to the loopback address) to one
    of `hosts` (Drive's *.googleusercontent.com counts as a Drive host)."""
    try:
        if any(c.isspace() or not c.isprintable() for c in url) or len(url) > 8000:
            raise ValueError("spaces or control characters")  # no header injection either
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise DownloadError(f"{name}: refused the address {_shown_url(url)}") from None
    scheme_ok = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
    drive_ok = host.endswith(DRIVE_HOST_SUFFIX) and "drive.google.com" in hosts
    if not scheme_ok or not host or not (host in hosts or drive_ok):
        raise DownloadError(
            f"{name}: refused to fetch from {_shown_url(url)}: only https to "
            f"{', '.join(sorted(hosts))} is allowed"
        )
    return parts


def _shown_url(url: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in url)
    return text if len(text) <= 120 else text[:117] + "..."


# -- the .part file: exclusive, never through a link -------------------------------------------


def _refuse_part(path: Path, why: str) -> DownloadError:
    return DownloadError(
        f"{path} {why}: it was not made by this download; move it away and run again"
    )


def open_part(part: Path) -> int:
    """A read-write descriptor for `part`: created exclusively when absent; an existing one only
    when it is a regular file of this user with no other name (never a link, a hard link,
    a FIFO or a device)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(part, flags | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pass
    try:
        fd = os.open(part, flags | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise _refuse_part(part, "is a symbolic link") from None
        if e.errno in (errno.EISDIR, errno.ENXIO, errno.ENODEV):
            raise _refuse_part(part, "is not a regular file") from None
        raise DownloadError(f"cannot open {part}: {e.strerror or e}") from None
    info = os.fstat(fd)
    why = ""
    if not stat.S_ISREG(info.st_mode):
        why = "is not a regular file"
    elif info.st_nlink != 1:
        why = "has another name (a hard link)"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        why = "belongs to another user"
    if why:
        os.close(fd)
        raise _refuse_part(part, why)
    os.set_blocking(fd, True)
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISREG(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _discard(part: Path, fd: int) -> None:
    """Empty the `.part` behind `fd` and remove its name if it still names that file."""
    os.ftruncate(fd, 0)
    if _same_file(part, fd):
        part.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- one connection, watched --------------------------------------------------------------------


class _Dropped(Exception):
    """A connection ended early: retry from where the file stopped."""


class _Unreachable(Exception):
    """No connection could be opened."""


class _Watchdog:
    """Shuts the current connection down when the user cancels or when it brings fewer than
    STALL_BYTES in `stall` seconds, so no read or header wait outlives either."""

    def __init__(self, cancel: threading.Event | None, stall: float):
        self.cancel, self.stall = cancel, stall
        self.reason = ""  # "cancelled" or "stalled" once it acted
        self._sock: socket.socket | None = None
        self._mark = (time.monotonic(), 0)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-watchdog", daemon=True)
        self._thread.start()

    def attach(self, sock: socket.socket | None, done: int = 0) -> None:
        with self._lock:
            self._sock = sock
            self._mark = (time.monotonic(), done)
            if self.reason and sock is not None:
                self._shut(sock)

    def progress(self, done: int) -> None:
        if done - self._mark[1] >= STALL_BYTES:
            self._mark = (time.monotonic(), done)

    def close(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(POLL):
            why = ""
            if self.cancel is not None and self.cancel.is_set():
                why = "cancelled"
            elif time.monotonic() - self._mark[0] > self.stall and self._sock is not None:
                why = "stalled"
            if why:
                with self._lock:
                    self.reason = self.reason or why
                    if self._sock is not None:
                        self._shut(self._sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # the plain socket's shutdown: wakes a read blocked in another thread
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _lookup(host: str, port: int, cancel: threading.Event | None, deadline: float) -> list:
    """getaddrinfo, given up at the deadline or on cancel (a resolver that cannot reach its
    server may wait far longer; its thread is left to finish on its own)."""
    box: dict = {}

    def resolve() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            box["error"] = e

    thread = threading.Thread(target=resolve, name="download-lookup", daemon=True)
    thread.start()
    while thread.is_alive():
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("cancelled")
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Unreachable("the name lookup timed out")
        thread.join(min(POLL, left))
    if "error" in box:
        raise _Unreachable(_reason(box["error"]))
    return box["infos"]


def _connect(host: str, port: int, cancel: threading.Event | None) -> socket.socket:
    """A TCP connection (name lookup included) within CONNECT_TIMEOUT, given up at once when
    cancelled."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    infos = _lookup(host, port, cancel, deadline)
    last = "timed out"
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            code = sock.connect_ex(address)
            while code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled("cancelled")
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                _, ready, _ = select.select([], [sock], [], min(POLL, left))
                if ready:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                sock.setblocking(True)
                return sock
            last = os.strerror(code) if code not in (errno.EINPROGRESS, errno.EALREADY) else last
        except BaseException:
            sock.close()
            raise
        sock.close()
        if time.monotonic() >= deadline:
            break
    raise _Unreachable(last)


class _Connection(http.client.HTTPConnection):
    """http.client over a socket that is already open (plain or TLS)."""

    def __init__(self, host: str, port: int, sock: socket.socket, default_port: int):
        super().__init__(host, port)
        self.sock = sock
        self.default_port = default_port  # the Host header names the port only if unusual

    def connect(self):  # never reconnect behind the watchdog's back
        raise http.client.NotConnected()


@dataclass
class _Session:
    remote: RemoteFile
    hosts: frozenset[str]
    watchdog: _Watchdog
    cancel: threading.Event | None
    timeout: float
    jar: http.cookiejar.CookieJar
    folder: Path
    host: str = ""  # of the last answer
    url: str = ""
    got_bytes: bool = False  # this call already received data: connection failures are retried
    sock: socket.socket | None = None

    def close(self, response) -> None:
        """End the answer and its connection (the socket is not left to the collector)."""
        response.close()
        self.watchdog.attach(None)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def check_cancel(self) -> None:
        if self.watchdog.reason == "cancelled" or (self.cancel and self.cancel.is_set()):
            raise DownloadCancelled(f"{self.remote.name}: cancelled; run again to resume")

    def open(self, url: str, offset: int, done: int = 0):
        """GET `url` (following allowed redirects) from byte `offset`: the response."""
        for _ in range(MAX_REDIRECTS + 1):
            parts = check_url(url, self.hosts, self.remote.name)
            host = parts.hostname or ""
            default = 443 if parts.scheme == "https" else 80
            port = parts.port or default
            try:
                sock = _connect(host, port, self.cancel)
            except _Unreachable as e:
                self.check_cancel()
                if self.got_bytes:
                    raise _Dropped(f"cannot reach {host} ({e})") from None
                raise DownloadError(
                    f"{self.remote.name}: cannot reach {host} (no connection?): {e}"
                ) from None
            except DownloadCancelled:
                self.check_cancel()
                raise
            sock.settimeout(self.timeout + 5)  # a backstop: the watchdog acts first
            self.watchdog.attach(sock, done)
            try:
                if parts.scheme == "https":
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
                    self.watchdog.attach(sock, done)
                conn = _Connection(host, port, sock, default)
                path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
                request = urllib.request.Request(url, headers=self._headers(offset))
                self.jar.add_cookie_header(request)
                conn.request("GET", path, headers=dict(request.header_items()))
                response = conn.getresponse()
                self.jar.extract_cookies(response, request)
            except ssl.SSLCertVerificationError as e:
                sock.close()
                raise DownloadError(
                    f"{self.remote.name}: the secure connection to {host} failed "
                    f"({e.verify_message or 'certificate not trusted'})"
                ) from None
            except (OSError, http.client.HTTPException) as e:
                sock.close()
                self.check_cancel()
                if self.watchdog.reason == "stalled":
                    raise self.stalled(host) from None
                raise _Dropped(f"connection failed ({_reason(e)})") from None
            except ValueError as e:  # a header http.client will not send (from a cookie)
                sock.close()
                raise DownloadError(
                    f"{self.remote.name}: {host} sent an answer that cannot be followed "
                    f"({_reason(e)})"
                ) from None
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location") or ""
                response.close()
                sock.close()
                url = urllib.parse.urljoin(url, location.strip())
                continue
            self.host, self.url, self.sock = host, url, sock  # for messages and close()
            return response
        raise DownloadError(f"{self.remote.name}: too many redirects")

    def stalled(self, host: str) -> DownloadError:
        return DownloadError(
            f"{self.remote.name}: the connection to {host} stalled (under "
            f"{human_size(STALL_BYTES)} in {self.timeout:g} s); run again to resume"
        )

    @staticmethod
    def _headers(offset: int) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        return headers


# -- download ------------------------------------------------------------------------------------


def _check_folder(folder: Path) -> None:
    try:
        info = os.lstat(folder)
    except OSError as e:
        raise DownloadError(f"cannot use {folder}: {e.strerror or e}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise DownloadError(
            f"{folder} is not a plain folder (a link or a file): move it away and run again"
        )


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
    bytes that must stay free beyond the file (room for what is built from it). `timeout`:
    seconds a connection may bring fewer than STALL_BYTES before the download gives up.
    Raises DownloadError (one line) or DownloadCancelled; a `.part` is kept unless it is
    wrong."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _check_folder(target.parent)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise _refuse_part(target, "is not a regular file")
        if remote.size is None or info.st_size == remote.size:
            return target  # only a verified file is ever renamed to the final name
    part = part_path(target)
    url = resolve_url(remote.url, base)
    hosts = allowed_hosts(remote, base)
    check_url(url, hosts, remote.name)
    fd = open_part(part)
    watchdog = _Watchdog(cancel, timeout)
    jar = http.cookiejar.CookieJar()
    session = _Session(remote, hosts, watchdog, cancel, timeout, jar, target.parent)
    try:
        have = os.fstat(fd).st_size
        if have > remote.limit:  # more than the file can hold: a stale or foreign .part
            os.ftruncate(fd, 0)
            have = 0
        check_free_space(target.parent, max(remote.expected_size - have, 0) + reserve, remote.name)
        total = _download(session, url, fd, progress, backoff, retries, reserve, say)
        _verify(remote, part, fd, total, cancel)
        if not _same_file(part, fd):
            raise _refuse_part(part, "was replaced during the download")
        os.replace(part, target)
    finally:
        watchdog.close()
        if os.fstat(fd).st_size == 0 and _same_file(part, fd):
            part.unlink()  # nothing came: leave nothing behind
        os.close(fd)
    return target


def _download(session, url, fd, progress, backoff, retries, reserve, say) -> int | None:
    """Fill the `.part` behind `fd`, retrying dropped connections; the file's total size (None
    when no one said it)."""
    remote = session.remote
    failures = 0
    while True:
        session.check_cancel()
        have = os.fstat(fd).st_size
        try:
            return _fetch(session, url, fd, have, progress, reserve, say)
        except _Dropped as e:
            # a connection counts as progress only if it brought a real amount: a server that
            # drops every connection after a few bytes runs out of retries
            now = os.fstat(fd).st_size
            failures = 0 if now - have >= STALL_BYTES else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"{remote.name}: {e} (gave up after {retries} retries; run again to resume)"
                ) from None
            if say:
                say(f"{remote.name}: {e}; retrying")
            wait = min(backoff * (2 ** max(failures - 1, 0)), 30.0)
            if session.cancel is not None:
                if session.cancel.wait(wait):
                    session.check_cancel()
            else:
                time.sleep(wait)


def _content_range(response) -> tuple[int, int, int | None] | None:
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.getheader("Content-Range", "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), None if m.group(3) == "*" else int(m.group(3))


def _length(response) -> int | None:
    value = (response.getheader("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _fetch(session: _Session, url, fd, offset, progress, reserve, say) -> int | None:
    """One request: append to the `.part` from `offset`; returns the file's total size (None
    when the server gives none). Raises _Dropped for a retryable failure."""
    remote = session.remote
    # Drive's confirmation page is asked for whole; the range goes to the file's address
    response = session.open(url, 0 if remote.drive else offset, offset)
    try:
        if remote.drive and "text/html" in response.getheader("Content-Type", ""):
            page = _read_page(session, response)
            session.close(response)
            url = _gdown_confirmation_url(page, remote.name)
            response = session.open(url, offset, offset)
            if "text/html" in response.getheader("Content-Type", ""):
                raise DownloadError(
                    f"{remote.name}: Google Drive sent a web page instead of the file (its daily "
                    "download limit may be reached; try again later)"
                )
        elif remote.drive and offset and response.status == 200:
            # served directly (a small file) from the first byte: ask again for the rest only
            session.close(response)
            response = session.open(url, offset, offset)
        return _receive(session, response, fd, offset, progress, reserve, say)
    finally:
        session.close(response)


def _read_page(session: _Session, response) -> str:
    try:
        data = response.read(MAX_PAGE_BYTES)
    except (OSError, http.client.HTTPException) as e:
        session.check_cancel()
        if session.watchdog.reason == "stalled":
            raise session.stalled(session.host) from None
        raise _Dropped(f"connection dropped ({_reason(e)})") from None
    return data.decode("utf-8", "replace")


def _receive(session: _Session, response, fd, offset, progress, reserve, say) -> int | None:
    remote, status, name = session.remote, response.status, session.remote.name
    if status == 416 and offset:
        found = re.fullmatch(r"bytes \*/(\d+)", response.getheader("Content-Range", "").strip())
        if found and int(found.group(1)) == offset:
            return offset  # the .part already holds the whole file
        os.ftruncate(fd, 0)  # the range is past the server's file: start over
        raise _Dropped("the server refused to resume; starting over")
    if status in (408, 429) or status >= 500:
        raise _Dropped(f"server error (HTTP {status})")
    if status not in (200, 206):
        reason = "not found" if status == 404 else (response.reason or "refused")
        raise DownloadError(f"{name}: {reason} (HTTP {status}) at {_shown_url(session.url)}")
    length = _length(response)
    if status == 206:
        span = _content_range(response)
        if span is None or span[0] != offset or span[1] < span[0]:
            os.ftruncate(fd, 0)
            raise _Dropped("the server resumed at the wrong place; starting over")
        start, end, total = span
        if total is not None and total < offset:
            os.ftruncate(fd, 0)
            raise DownloadError(
                f"{name}: the server says the file has {total} bytes, fewer than the {offset} "
                "already downloaded; the partial file was removed (run again to start over)"
            )
        if total is not None and total <= end:
            raise DownloadError(f"{name}: the server sent a damaged byte range; try again later")
        if length is not None and length != end - start + 1:
            raise DownloadError(f"{name}: the server sent a damaged byte range; try again later")
        if total is None:
            total = end + 1 if length is not None else None
    else:  # 200: the whole file (a server that ignores ranges restarts cleanly)
        if offset and say:
            say(f"{name}: the server does not resume downloads; starting over")
        offset = 0
        total = length
    if remote.size is not None and total is not None and total != remote.size:
        raise DownloadError(
            f"{name}: wrong size: the server has {total} bytes, expected {remote.size}; "
            "not downloaded"
        )
    if total is not None:
        _check_limit(remote, total)
        check_free_space(session.folder, total - offset + reserve, name)
    if status == 200:
        os.ftruncate(fd, 0)
    limit = total if total is not None else remote.limit
    stop = limit if total is not None else limit + 1  # a byte past an unstated limit: excess
    done = offset
    os.lseek(fd, offset, os.SEEK_SET)
    if progress:
        progress(done, total)
    try:
        while done < stop:
            if session.cancel is not None and session.cancel.is_set():
                break  # answered below
            block = response.read1(min(CHUNK, stop - done))
            if not block:
                break
            _write_all(fd, block)
            done += len(block)
            session.got_bytes = True
            session.watchdog.progress(done)
            if progress:
                progress(done, total)
    except (OSError, http.client.HTTPException) as e:
        session.check_cancel()
        if session.watchdog.reason == "stalled":
            raise session.stalled(session.host) from None
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DownloadError(f"{name}: cannot write the download: {e.strerror}") from None
        raise _Dropped(f"connection dropped at {human_size(done)} ({_reason(e)})") from None
    session.check_cancel()
    if session.watchdog.reason == "stalled":
        raise session.stalled(session.host)
    if done > limit:
        os.ftruncate(fd, 0)
        raise DownloadError(
            f"{name}: the server sent more than the {human_size(limit)} this file can have; removed"
        )
    whole = total if total is not None else remote.size
    if whole is not None and done < whole:  # an early end, announced or not, is resumed
        raise _Dropped(f"connection dropped at {human_size(done)} of {human_size(whole)}")
    return total


def _check_limit(remote: RemoteFile, size: int) -> None:
    """Refuse a file the server says is larger than it can be (see RemoteFile.limit)."""
    if size > remote.limit:
        raise DownloadError(
            f"{remote.name}: the server has {human_size(size)}, more than the "
            f"{human_size(remote.limit)} this file can have; not downloaded"
        )


def _reason(e) -> str:
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:160]


def _verify(remote: RemoteFile, part: Path, fd: int, total: int | None, cancel) -> None:
    size = os.fstat(fd).st_size
    expected = remote.size if remote.size is not None else total
    if expected is not None and size != expected:
        _discard(part, fd)
        raise DownloadError(
            f"{remote.name}: wrong size: got {size} bytes, expected {expected}; removed"
        )
    if remote.sha256:
        digest = _sha256_fd(fd, cancel, remote.name)
        if digest != remote.sha256.lower():
            _discard(part, fd)
            raise DownloadError(
                f"{remote.name}: damaged download (sha256 {digest[:16]}..., expected "
                f"{remote.sha256[:16]}...); removed"
            )
