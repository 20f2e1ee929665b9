"""A file server on 127.0.0.1 for download tests: byte ranges, and faults on request.

`server.files[PATH] = bytes` serves a file at PATH (a Google Drive file id is served at
`/uc?export=download&id=ID`, first as Drive's large-file confirmation page, then at the form's
`/download?...` address); `LoopbackServer(tls=CONTEXT)` speaks https. Faults, set on the
server object:
- `drop_after = {PATH: n}`: the next n-byte answer for PATH closes the connection mid-file
  (once per entry; `drops` counts them)
- `missing = {PATH}`: 404
- `delay`: seconds to sleep between blocks (a slow server)
- `ignore_range`: answer every request with the whole file (status 200)
- `announce = {PATH: n}`: claim n bytes in Content-Length, send the real file
- `drive_error`: Drive's page says this instead of offering the file
- `drive_action`: the address Drive's page sends the confirmation to (default: this server)
Hostile answers, for the downloader's defences:
- `content_range = {PATH: f(start, size) -> str}`: the Content-Range of a 206 answer
- `no_length = {PATH}`: no Content-Length; the end of the file is the end of the connection
- `extra = {PATH: n}`: n zero bytes after the file (n = -1: without end)
- `drip = {PATH: s}`: one byte of the body every s seconds
- `drop_every = {PATH: n}`: every answer for PATH closes the connection after n bytes
- `header_drip`: seconds between the bytes of an endless header (the status line comes first)
- `redirects = {PATH: location}`: 302 to that address
- `pages = {PATH: html}`: a web page (200, text/html) instead of the file (a sign-in page)
`requests` records (path, Range header) of every request.
"""

from __future__ import annotations

import html
import http.server
import io
import re
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

from engine.runtime import official_models as om
from engine.runtime.downloads import RemoteFile

BLOCK = 64 * 1024


class LoopbackServer:
    def __init__(self, tls: ssl.SSLContext | None = None):
        self.files: dict[str, bytes | Path] = {}  # a Path is served from disk
        self.drive: dict[str, bytes | Path] = {}
        self.drop_after: dict[str, int] = {}
        self.missing: set[str] = set()
        self.announce: dict[str, int] = {}
        self.delay = 0.0
        self.ignore_range = False
        self.drive_error = ""  # Drive's refusal text (e.g. its download quota) on the page
        self.drive_action = ""
        self.content_range: dict[str, object] = {}
        self.no_length: set[str] = set()
        self.extra: dict[str, int] = {}
        self.drip: dict[str, float] = {}
        self.drop_every: dict[str, int] = {}
        self.header_drip = 0.0
        self.redirects: dict[str, str] = {}
        self.pages: dict[str, str] = {}
        self.drops = 0
        self.requests: list[tuple[str, str | None]] = []
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.scheme = "http"
        if tls is not None:  # https with the caller's certificate
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)  # an IP server's address, not a socket file's
        return f"{self.scheme}://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                split = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(split.query)
                server.requests.append((split.path, self.headers.get("Range")))
                if server.header_drip:
                    return self._drip_headers()
                if split.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[split.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if split.path in server.pages:
                    return self._page(server.pages[split.path])
                if split.path == "/uc" and query.get("id", [""])[0] in server.drive:
                    return self._confirmation(query["id"][0])
                if split.path == "/download" and query.get("id", [""])[0] in server.drive:
                    if query.get("confirm") != ["t"] or query.get("uuid") != ["u-42"]:
                        return self._page("<p>missing confirmation</p>")
                    return self._file(split.path, server.drive[query["id"][0]])
                if split.path in server.missing or split.path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                self._file(split.path, server.files[split.path])

            def _page(self, body: str):
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _confirmation(self, file_id: str):
                if server.drive_error:
                    error = html.escape(server.drive_error)
                    return self._page(f'<p class="uc-error-subcaption">{error}</p>')
                action = html.escape(server.drive_action or f"{server.url}/download")
                self._page(
                    "<html><body><p>Google Drive can't scan this file for viruses.</p>\n"
                    f'<form id="download-form" action="{action}" method="get">'
                    '<input type="submit" value="Download anyway"/>'
                    f'<input type="hidden" name="id" value="{file_id}">'
                    '<input type="hidden" name="export" value="download">'
                    '<input type="hidden" name="confirm" value="t">'
                    '<input type="hidden" name="uuid" value="u-42"></form>\n'
                    "</body></html>"
                )

            def _drip_headers(self):
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while True:
                        self.wfile.write(b"a")
                        self.wfile.flush()
                        time.sleep(server.header_drip)
                except OSError:
                    self.close_connection = True

            def _file(self, path: str, data):
                if isinstance(data, Path):  # a large file is read from disk as it is sent
                    with open(data, "rb") as stream:
                        return self._send(path, stream, data.stat().st_size)
                return self._send(path, io.BytesIO(data), len(data))

            def _send(self, path: str, stream, size: int):
                start = 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    shape = server.content_range.get(path)
                    span = (
                        shape(start, size)
                        if callable(shape)
                        else f"bytes {start}-{size - 1}/{size}"
                    )
                    self.send_header("Content-Range", span)
                else:
                    self.send_response(200)
                stream.seek(start)
                length = server.announce.get(path, size) - start
                self.send_header("Content-Type", "application/octet-stream")
                if path in server.no_length:
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                limit = server.drop_after.pop(path, server.drop_every.get(path))
                left = size - start if limit is None else min(limit, size - start)
                drip = server.drip.get(path)
                while left > 0:
                    if server.delay:
                        time.sleep(server.delay)
                    if drip:
                        time.sleep(drip)
                    block = stream.read(1 if drip else min(BLOCK, left))
                    left -= len(block)
                    if not self._write(block):
                        return
                extra = server.extra.get(path, 0)
                while extra and limit is None:
                    block = bytes(BLOCK if extra < 0 else min(BLOCK, extra))
                    extra = extra if extra < 0 else extra - len(block)
                    if not self._write(block):
                        return
                if limit is not None:
                    server.drops += 1
                    self.close_connection = True

            def _write(self, block: bytes) -> bool:
                try:
                    self.wfile.write(block)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
                    return False
                return True

        return Handler


def bundle_entry(bundle_path: Path, server: LoopbackServer, name="tiny-official", sizes=True):
    """A catalog entry whose files are a small real bundle served by `server` under /tiny/
    (its URLs name another host: set the download base to `server.url`). `sizes=False`: no
    published sizes, only approximate ones (as for most official checkpoints)."""
    files = {}
    for path in sorted(Path(bundle_path).iterdir()):
        if path.is_file():
            server.files[f"/tiny/{path.name}"] = path.read_bytes()
            size = path.stat().st_size
            url = f"https://example.invalid/tiny/{path.name}"
            files[path.name] = (
                RemoteFile(path.name, url, size=size)
                if sizes
                else RemoteFile(path.name, url, approx_size=size)
            )
    return om.OfficialModel(
        name=name,
        title="Tiny test model",
        files=files,
        importer="bundle",
        licence="no licence stated",
        source="tests",
        abilities=("removal",),
    )
