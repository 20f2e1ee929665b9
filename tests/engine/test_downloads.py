"""The downloader against a loopback server: ranges, resume, faults, checks. Never the internet."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import namedtuple
from typing import Any

import pytest
from loopback import LoopbackServer

from engine.runtime import downloads
from engine.runtime.downloads import (
    DownloadCancelled,
    DownloadError,
    RemoteFile,
    download_file,
    part_path,
    regular_size,
    resolve_url,
)

DATA = bytes(range(256)) * 1200  # 307,200 bytes: several blocks of the server and the reader
FAST: dict[str, Any] = {"backoff": 0.01, "timeout": 5.0}


@pytest.fixture
def server():
    with LoopbackServer() as s:
        s.files["/f/model.bin"] = DATA
        yield s


def remote(server, **kw) -> RemoteFile:
    return RemoteFile("model.bin", server.url + "/f/model.bin", **kw)


def test_download_checks_size_and_sha256_and_reports_progress(server, tmp_path):
    seen = []
    target = tmp_path / "model.bin"
    sha = hashlib.sha256(DATA).hexdigest()
    out = download_file(
        remote(server, size=len(DATA), sha256=sha),
        target,
        lambda d, t: seen.append((d, t)),
        **FAST,
    )
    assert out == target
    assert target.read_bytes() == DATA
    assert not part_path(target).exists()
    assert seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) > 3
    # a finished file is not fetched again
    n = len(server.requests)
    download_file(remote(server, size=len(DATA)), target, **FAST)
    assert len(server.requests) == n


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    server.drop_after["/f/model.bin"] = 100_000
    target = tmp_path / "model.bin"
    download_file(remote(server), target, **FAST)
    assert target.read_bytes() == DATA
    assert server.drops == 1
    assert server.requests == [("/f/model.bin", None), ("/f/model.bin", "bytes=100000-")]


def test_cancel_keeps_the_part_and_a_second_call_resumes(server, tmp_path):
    target = tmp_path / "model.bin"
    cancel = threading.Event()

    def progress(done, total):
        if done >= 150_000:
            cancel.set()

    with pytest.raises(DownloadCancelled, match="cancelled"):
        download_file(remote(server), target, progress, cancel, **FAST)
    part = part_path(target)
    assert not target.exists()
    kept = part.stat().st_size
    assert 150_000 <= kept < len(DATA)
    assert part.read_bytes() == DATA[:kept]

    download_file(remote(server), target, **FAST)
    assert target.read_bytes() == DATA
    assert server.requests[-1] == ("/f/model.bin", f"bytes={kept}-")


def test_a_server_that_ignores_ranges_restarts_cleanly(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(b"x" * 5000)  # stale bytes that are not the file's
    server.ignore_range = True
    lines: list[str] = []
    download_file(remote(server, size=len(DATA)), target, say=lines.append, **FAST)
    assert target.read_bytes() == DATA
    assert server.requests == [("/f/model.bin", "bytes=5000-")]
    assert "starting over" in lines[0]


def test_a_complete_part_is_finished_without_downloading_again(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(DATA)
    download_file(remote(server), target, **FAST)  # size unknown: the server says 416 */N
    assert target.read_bytes() == DATA
    assert not part_path(target).exists()


def test_404_is_one_line_and_leaves_nothing(server, tmp_path):
    server.missing.add("/f/model.bin")
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        download_file(remote(server), target, **FAST)
    assert "not found (HTTP 404)" in str(err.value)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_from_the_server_is_refused(server, tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match=r"wrong size: the server has 307200 bytes, expected"):
        download_file(remote(server, size=len(DATA) + 1), target, **FAST)
    assert not target.exists()
    assert not part_path(target).exists()


def test_a_server_announcing_more_than_it_sends_is_not_accepted(server, tmp_path):
    server.announce["/f/model.bin"] = len(DATA) + 10
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match="wrong size"):
        download_file(remote(server, size=len(DATA)), target, **FAST)
    assert not target.exists()


def test_damaged_download_is_removed(server, tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match="damaged download"):
        download_file(remote(server, sha256="0" * 64), target, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_server_gives_up_in_one_line_and_keeps_what_came(server, tmp_path):
    server.delay = 0.5
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        download_file(remote(server), target, retries=1, backoff=0.01, timeout=0.2)
    message = str(err.value)
    assert "connection to 127.0.0.1 stalled" in message
    assert "run again to resume" in message
    assert "\n" not in message
    assert not target.exists()
    assert len(server.requests) == 1


def test_cancel_during_a_slow_download(server, tmp_path):
    server.delay = 0.2
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    with pytest.raises(DownloadCancelled):
        download_file(remote(server), tmp_path / "model.bin", cancel=cancel, **FAST)
    timer.cancel()
    assert 0 < part_path(tmp_path / "model.bin").stat().st_size < len(DATA)


def test_no_free_space_refuses_before_any_request(server, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DownloadError, match="not enough free disk space") as err:
        download_file(remote(server, size=len(DATA)), tmp_path / "model.bin", **FAST)
    assert "307.2 KB" in str(err.value)
    assert server.requests == []


def test_drive_confirmation_page_is_read_with_gdown(server, tmp_path):
    server.drive["1AbC"] = DATA
    drive = RemoteFile("m.pth", "https://drive.google.com/uc?export=download&id=1AbC", drive=True)
    target = tmp_path / "m.pth"
    download_file(drive, target, base=server.url, **FAST)
    assert target.read_bytes() == DATA
    assert [p for p, _ in server.requests] == ["/uc", "/download"]


def test_drive_resume_goes_through_the_confirmation_again(server, tmp_path):
    server.drive["1AbC"] = DATA
    server.drop_after["/download"] = 70_000
    drive = RemoteFile("m.pth", "https://drive.google.com/uc?export=download&id=1AbC", drive=True)
    target = tmp_path / "m.pth"
    download_file(drive, target, base=server.url, **FAST)
    assert target.read_bytes() == DATA
    assert server.requests[-2:] == [("/uc", None), ("/download", "bytes=70000-")]


def test_drive_refusal_is_one_line(server, tmp_path):
    server.drive["1AbC"] = DATA
    server.drive_error = "Too many users have viewed or downloaded this file recently."
    drive = RemoteFile("m.pth", "https://drive.google.com/uc?export=download&id=1AbC", drive=True)
    with pytest.raises(DownloadError) as err:
        download_file(drive, tmp_path / "m.pth", base=server.url, **FAST)
    assert str(err.value) == (
        "m.pth: Google Drive refused the download: Too many users have viewed or downloaded "
        "this file recently."
    )
    assert list(tmp_path.iterdir()) == []


def test_drive_without_gdown_says_what_to_install(server, tmp_path, monkeypatch):
    server.drive["1AbC"] = DATA
    monkeypatch.setitem(sys.modules, "gdown", None)
    monkeypatch.setitem(sys.modules, "gdown.download", None)
    drive = RemoteFile("m.pth", "https://drive.google.com/uc?export=download&id=1AbC", drive=True)
    with pytest.raises(DownloadError) as err:
        download_file(drive, tmp_path / "m.pth", base=server.url, **FAST)
    assert "needs the gdown package" in str(err.value)
    assert "pip install" in str(err.value)
    assert not (tmp_path / "m.pth").exists()


def test_resolve_url_points_every_host_at_the_base(monkeypatch):
    url = "https://storage.googleapis.com/maskgit-public/checkpoints/x?a=1"
    assert resolve_url(url, "http://127.0.0.1:9/mirror/") == (
        "http://127.0.0.1:9/mirror/maskgit-public/checkpoints/x?a=1"
    )
    monkeypatch.setenv(downloads.ENV_BASE, "http://127.0.0.1:8")
    assert resolve_url(url) == "http://127.0.0.1:8/maskgit-public/checkpoints/x?a=1"
    monkeypatch.delenv(downloads.ENV_BASE)
    assert resolve_url(url) == url


# -- a hostile server and a hostile download folder ----------------------------------------------


def test_a_planted_part_symlink_never_touches_its_target(server, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"the user's own words")
    folder = tmp_path / "dl"
    folder.mkdir()
    target = folder / "model.bin"
    part_path(target).symlink_to(precious)
    for ignore_range in (False, True):  # appended to, or truncated and rewritten
        server.ignore_range = ignore_range
        with pytest.raises(DownloadError, match="is a symbolic link") as err:
            download_file(remote(server), target, **FAST)
        assert "\n" not in str(err.value)
        assert precious.read_bytes() == b"the user's own words"
        assert part_path(target).is_symlink()
        assert not target.exists()
    assert server.requests == []


def test_a_hard_linked_fifo_or_foreign_part_is_refused(server, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep")
    target = tmp_path / "dl" / "model.bin"
    target.parent.mkdir()
    os.link(precious, part_path(target))
    with pytest.raises(DownloadError, match="hard link"):
        download_file(remote(server), target, **FAST)
    assert precious.read_bytes() == b"keep"
    part_path(target).unlink()
    os.mkfifo(part_path(target))  # must not hang
    with pytest.raises(DownloadError, match="not a regular file"):
        download_file(remote(server), target, **FAST)
    part_path(target).unlink()
    part_path(target).mkdir()
    with pytest.raises(DownloadError, match="not a regular file"):
        download_file(remote(server), target, **FAST)
    assert server.requests == []


def test_a_link_at_the_final_name_or_folder_is_refused(server, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep")
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "model.bin").symlink_to(precious)
    with pytest.raises(DownloadError, match="not a regular file"):
        download_file(remote(server, size=4), folder / "model.bin", **FAST)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    with pytest.raises(DownloadError, match="not a plain folder"):
        download_file(remote(server), tmp_path / "linked" / "model.bin", **FAST)
    assert list(elsewhere.iterdir()) == []
    assert precious.read_bytes() == b"keep"


def test_a_part_swapped_for_a_link_during_the_download_is_not_renamed(server, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep")
    target = tmp_path / "model.bin"

    def swap(done, total):
        if done == len(DATA):
            part_path(target).unlink()
            part_path(target).symlink_to(precious)

    with pytest.raises(DownloadError, match="replaced during the download"):
        download_file(remote(server), target, swap, **FAST)
    assert not target.exists()
    assert precious.read_bytes() == b"keep"


def test_a_206_claiming_a_smaller_file_is_one_line_and_reads_nothing(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(DATA[:100_000])
    server.content_range["/f/model.bin"] = lambda start, size: (
        f"bytes {start}-{size - 1}/{start - 1}"
    )
    with pytest.raises(DownloadError) as err:
        download_file(remote(server), target, **FAST)
    assert "fewer than the 100000 already downloaded" in str(err.value)
    assert "\n" not in str(err.value)
    assert not target.exists()


@pytest.mark.parametrize(
    "span",
    [
        lambda start, size: f"bytes {start}-{10**12}/*",  # no end in sight, no length below
        lambda start, size: f"bytes {start}-{start - 5}/{size}",  # ends before it starts
        lambda start, size: f"bytes {start + 7}-{size - 1}/{size}",  # the wrong place
    ],
)
def test_bogus_content_ranges_never_grow_the_file_past_its_size(server, tmp_path, span):
    server.content_range["/f/model.bin"] = span
    server.no_length.add("/f/model.bin")
    server.extra["/f/model.bin"] = -1  # and an endless body
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(DATA[:100_000])
    with pytest.raises(DownloadError) as err:
        download_file(remote(server, size=len(DATA)), target, retries=1, **FAST)
    assert "\n" not in str(err.value)
    assert regular_size(part_path(target)) <= len(DATA)
    assert not target.exists()


def test_a_200_without_length_stops_at_the_files_limit_and_blocks_nothing(server, tmp_path):
    server.no_length.add("/f/model.bin")
    server.extra["/f/model.bin"] = -1  # writes until the disk is full, if let
    target = tmp_path / "model.bin"
    for size in ({"size": len(DATA)}, {"approx_size": len(DATA)}):
        with pytest.raises(DownloadError, match=r"more than the .* this file can have") as err:
            download_file(remote(server, **size), target, **FAST)
        assert "\n" not in str(err.value)
        assert not part_path(target).exists()
        assert not target.exists()
    # a full or oversized .part left by anything else does not block the next try
    part_path(target).write_bytes(bytes(3 * len(DATA)))
    server.extra.clear()
    download_file(remote(server, approx_size=len(DATA)), target, **FAST)
    assert target.read_bytes() == DATA


def test_an_announced_size_over_the_limit_is_refused_before_reading(server, tmp_path):
    server.announce["/f/model.bin"] = 10**13
    with pytest.raises(DownloadError, match=r"more than the 614\.4 KB this file can have"):
        download_file(remote(server, approx_size=len(DATA)), tmp_path / "model.bin", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_sign_in_page_or_a_cut_reply_is_refused_where_the_size_is_published(server, tmp_path):
    target = tmp_path / "model.bin"
    server.pages["/f/model.bin"] = "<html><body>Please sign in to this network</body></html>"
    with pytest.raises(DownloadError, match="wrong size"):
        download_file(remote(server, size=len(DATA)), target, **FAST)
    del server.pages["/f/model.bin"]
    server.no_length.add("/f/model.bin")
    server.drop_after["/f/model.bin"] = 40_000  # the connection ends: looks like the end
    download_file(remote(server, size=len(DATA)), target, **FAST)  # resumed, not taken as whole
    assert target.read_bytes() == DATA
    assert server.requests[-1] == ("/f/model.bin", "bytes=40000-")


def test_without_a_published_size_only_the_import_can_judge_a_file(server, tmp_path):
    """Such a file is taken as the server sends it and is marked unverifiable: a failed import
    sends it back (tests/test_cli_download.py)."""
    server.no_length.add("/f/model.bin")
    server.drop_after["/f/model.bin"] = 40_000
    loose = remote(server, approx_size=len(DATA))
    download_file(loose, tmp_path / "model.bin", **FAST)
    assert regular_size(tmp_path / "model.bin") == 40_000
    assert not loose.verifiable
    assert remote(server, size=1).verifiable
    assert remote(server, sha256="0" * 64).verifiable


def test_a_dripping_body_gives_up_at_the_progress_deadline(server, tmp_path):
    server.drip["/f/model.bin"] = 0.02  # 50 bytes a second: never a socket timeout
    with pytest.raises(DownloadError, match="stalled") as err:
        download_file(remote(server), tmp_path / "model.bin", retries=5, backoff=0.01, timeout=0.5)
    assert "\n" not in str(err.value)
    assert len(server.requests) == 1  # a stall is given up, not retried


def test_dripping_headers_give_up_at_the_progress_deadline(server, tmp_path):
    server.header_drip = 0.05
    with pytest.raises(DownloadError, match="stalled"):
        download_file(remote(server), tmp_path / "model.bin", backoff=0.01, timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def _in_thread(call):
    box = {}

    def run():
        try:
            box["result"] = call()
        except BaseException as e:  # handed to the test
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.parametrize("where", ["body", "headers"])
def test_cancel_is_answered_while_a_read_waits(server, tmp_path, where):
    """A read that waits on a silent server (60 s progress deadline) ends on cancel: the test
    would block for a minute otherwise."""
    if where == "body":
        server.drip["/f/model.bin"] = 30.0
    else:
        server.header_drip = 30.0
    cancel = threading.Event()
    thread, box = _in_thread(
        lambda: download_file(remote(server), tmp_path / "model.bin", cancel=cancel, timeout=60)
    )
    while not server.requests:
        time.sleep(0.01)
    cancel.set()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(box.get("error"), DownloadCancelled)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_one_line_without_retries(tmp_path):
    port = _free_port()  # nothing listens there: refused at once
    lines: list[str] = []
    with pytest.raises(DownloadError) as err:
        download_file(
            RemoteFile("model.bin", f"http://127.0.0.1:{port}/f/model.bin"),
            tmp_path / "model.bin",
            say=lines.append,
            **FAST,
        )
    assert str(err.value).startswith("model.bin: cannot reach 127.0.0.1 (no connection?)")
    assert lines == []
    assert list(tmp_path.iterdir()) == []


def test_a_host_that_never_answers_the_connection_gives_up_quickly(tmp_path, monkeypatch):
    """A listener whose queue is full drops new connections like an offline network."""
    monkeypatch.setattr(downloads, "CONNECT_TIMEOUT", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):  # fill the accept queue
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        queued.append(s)
    try:
        with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1 \(no connection\?\)"):
            download_file(
                RemoteFile("model.bin", f"http://127.0.0.1:{port}/m"), tmp_path / "m", **FAST
            )
    finally:
        for s in queued:
            s.close()
        listener.close()


@pytest.mark.parametrize(
    "location",
    [
        "ftp://127.0.0.1/f/model.bin",
        "file:///etc/hostname",
        "http://localhost:{port}/f/model.bin",  # the same machine, another name: another host
        "https://example.invalid/f/model.bin",
        "http://[::1]:{port}/f/model.bin",
        "/f/moved file.bin",  # a space: never sent in a request line
        "/f/moved%0d%0aX: y\tz",
    ],
)
def test_redirects_go_only_to_allowed_hosts_and_schemes(server, tmp_path, location):
    port = server.url.rsplit(":", 1)[1]
    server.redirects["/f/model.bin"] = location.format(port=port)
    with pytest.raises(DownloadError, match=r"refused (to fetch from|the address)") as err:
        download_file(remote(server), tmp_path / "model.bin", **FAST)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert len(server.requests) == 1


def test_a_redirect_to_an_allowed_place_is_followed(server, tmp_path):
    server.redirects["/f/model.bin"] = "/f/moved.bin"
    server.files["/f/moved.bin"] = DATA
    target = tmp_path / "model.bin"
    download_file(remote(server), target, **FAST)
    assert target.read_bytes() == DATA
    assert [p for p, _ in server.requests] == ["/f/model.bin", "/f/moved.bin"]


@pytest.mark.parametrize(
    "action", ["file:///etc/hostname", "ftp://127.0.0.1/x", "https://evil.example/x"]
)
def test_a_drive_page_pointing_elsewhere_is_refused(server, tmp_path, action):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    server.drive["1AbC"] = DATA
    server.drive_action = action.replace("/etc/hostname", str(fifo))
    drive = RemoteFile("m.pth", "https://drive.google.com/uc?export=download&id=1AbC", drive=True)
    folder = tmp_path / "dl"
    with pytest.raises(DownloadError, match="refused to fetch from"):
        download_file(drive, folder / "m.pth", base=server.url, **FAST)
    assert list(folder.iterdir()) == []


def test_only_https_or_loopback_http_and_known_hosts():
    drive = RemoteFile("m", "https://drive.google.com/uc?id=1", drive=True)
    hosts = downloads.allowed_hosts(drive, "")
    downloads.check_url("https://drive.usercontent.google.com/download?id=1", hosts, "m")
    downloads.check_url("https://doc-0s-8c-docs.googleusercontent.com/x", hosts, "m")
    for url in (
        "http://drive.google.com/uc?id=1",  # not https
        "https://storage.googleapis.com/x",  # not this file's host
        "https://googleusercontent.com.evil.example/x",
        "data:text/plain,hello",
        "https://drive.google.com:notaport/x",
    ):
        with pytest.raises(DownloadError, match="refused"):
            downloads.check_url(url, hosts, "m")
    plain = RemoteFile("m", "https://storage.googleapis.com/b/m")
    with pytest.raises(DownloadError, match="refused"):
        downloads.check_url(
            "https://drive.usercontent.google.com/x", downloads.allowed_hosts(plain, ""), "m"
        )
    mirror = downloads.allowed_hosts(plain, "http://127.0.0.1:9")
    downloads.check_url("http://127.0.0.1:9/b/m", mirror, "m")
    with pytest.raises(DownloadError, match="refused"):  # http only to the loopback address
        downloads.check_url(
            "http://mirror.example/b/m",
            downloads.allowed_hosts(plain, "http://mirror.example"),
            "m",
        )


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 (openssl), trusted only where a test says so."""
    assert shutil.which("openssl"), "openssl is a test dependency (setup.sh --dev installs it)"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
        + ["-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    return cert, server_side


def test_https_resumes_and_refuses_an_untrusted_certificate(certificate, tmp_path, monkeypatch):
    cert, server_side = certificate
    with LoopbackServer(tls=server_side) as tls_server:
        tls_server.files["/f/model.bin"] = DATA
        tls_server.drop_after["/f/model.bin"] = 100_000
        target = tmp_path / "model.bin"
        with pytest.raises(DownloadError, match=r"secure connection to 127\.0\.0\.1 failed") as err:
            download_file(remote(tls_server), target, **FAST)
        assert "\n" not in str(err.value)
        assert not target.exists()
        trusted = ssl.create_default_context(cafile=str(cert))
        monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: trusted)
        download_file(remote(tls_server, size=len(DATA)), target, **FAST)
        assert target.read_bytes() == DATA
        assert tls_server.requests[-1] == ("/f/model.bin", "bytes=100000-")


def test_a_name_lookup_that_hangs_or_fails_is_one_line_within_the_deadline(tmp_path, monkeypatch):
    """Offline with a resolver that cannot reach its server: the lookup is given up at the
    connection deadline; a lookup that fails says so at once (no network is used: the lookup
    is replaced)."""
    monkeypatch.setattr(downloads, "CONNECT_TIMEOUT", 0.3)
    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: release.wait(30) and [])
    far = RemoteFile("model.bin", "https://mirror.example.invalid/model.bin")
    try:
        with pytest.raises(DownloadError) as err:
            download_file(far, tmp_path / "model.bin", **FAST)
        assert str(err.value) == (
            "model.bin: cannot reach mirror.example.invalid (no connection?): "
            "the name lookup timed out"
        )
    finally:
        release.set()

    def no_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_name)
    with pytest.raises(DownloadError, match=r"cannot reach mirror\.example\.invalid \(no conn"):
        download_file(far, tmp_path / "model.bin", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_drops_every_connection_after_a_few_bytes_runs_out_of_retries(
    server, tmp_path
):
    server.drop_every["/f/model.bin"] = 10
    lines: list[str] = []
    with pytest.raises(DownloadError, match="gave up after 3 retries") as err:
        download_file(remote(server), tmp_path / "model.bin", retries=3, say=lines.append, **FAST)
    assert "\n" not in str(err.value)
    assert len(server.requests) == 4
    assert len(lines) == 3


def test_cancel_is_answered_while_a_connection_waits(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "CONNECT_TIMEOUT", 60.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):  # a full accept queue: new connections wait
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        queued.append(s)
    cancel = threading.Event()
    far = RemoteFile("m", f"http://127.0.0.1:{port}/m")
    thread, box = _in_thread(lambda: download_file(far, tmp_path / "m", cancel=cancel, **FAST))
    try:
        time.sleep(0.3)
        cancel.set()
        thread.join(10)
        assert not thread.is_alive()
        assert isinstance(box.get("error"), DownloadCancelled)
    finally:
        for s in queued:
            s.close()
        listener.close()
