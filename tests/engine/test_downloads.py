"""The downloader against a loopback server: ranges, resume, faults, checks. Never the internet."""

from __future__ import annotations

import hashlib
import shutil
import sys
import threading
from collections import namedtuple

import pytest
from loopback import LoopbackServer

from engine.runtime import downloads
from engine.runtime.downloads import (
    DownloadCancelled,
    DownloadError,
    RemoteFile,
    download_file,
    part_path,
    resolve_url,
)

DATA = bytes(range(256)) * 1200  # 307,200 bytes: several blocks of the server and the reader
FAST = {"backoff": 0.01, "timeout": 5.0}


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
    assert out == target and target.read_bytes() == DATA
    assert not part_path(target).exists()
    assert seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 3
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
    lines = []
    download_file(remote(server, size=len(DATA)), target, say=lines.append, **FAST)
    assert target.read_bytes() == DATA
    assert server.requests == [("/f/model.bin", "bytes=5000-")]
    assert "starting over" in lines[0]


def test_a_complete_part_is_finished_without_downloading_again(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(DATA)
    download_file(remote(server), target, **FAST)  # size unknown: the server says 416 */N
    assert target.read_bytes() == DATA and not part_path(target).exists()


def test_404_is_one_line_and_leaves_nothing(server, tmp_path):
    server.missing.add("/f/model.bin")
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        download_file(remote(server), target, **FAST)
    assert "not found (HTTP 404)" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_from_the_server_is_refused(server, tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match=r"wrong size: the server has 307200 bytes, expected"):
        download_file(remote(server, size=len(DATA) + 1), target, **FAST)
    assert not target.exists() and not part_path(target).exists()


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


def test_slow_server_times_out_after_the_retries(server, tmp_path):
    server.delay = 0.5
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as err:
        download_file(remote(server), target, retries=1, backoff=0.01, timeout=0.1)
    message = str(err.value)
    assert "timed out" in message and "gave up after 1 retries" in message
    assert not target.exists()
    assert len(server.requests) == 2


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
    assert "needs the gdown package" in str(err.value) and "pip install" in str(err.value)
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
