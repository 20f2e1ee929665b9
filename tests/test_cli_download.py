"""`main.py download` end to end against a loopback server (never the internet): download,
resume, verify, import into the models folder, one-line refusals, Ctrl+C leaves a .part."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from loopback import LoopbackServer, bundle_entry

from conftest import REPO
from engine.cli import download as cli_download
from engine.cli import main
from engine.runtime import official_models as om
from engine.runtime.downloads import ENV_BASE, part_path
from engine.runtime.manifest import read_manifest
from no_torch import run_main_without_torch


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def server(monkeypatch):
    with LoopbackServer() as s:
        monkeypatch.setenv(ENV_BASE, s.url)
        yield s


@pytest.fixture
def tiny_catalog(tiny_bundle_path, server, monkeypatch):
    entry = bundle_entry(tiny_bundle_path, server)
    monkeypatch.setattr(cli_download, "CATALOG", (entry,))
    return entry


def test_download_imports_into_the_models_folder(tiny_catalog, server, tmp_path, capsys):
    models = tmp_path / "models"
    server.drop_after["/tiny/transformer.onnx"] = 5000  # a dropped connection on the way
    code, out, err = run(["download", "tiny-official", "--yes", "--models-dir", models], capsys)
    assert code == 0, err
    target = models / "tiny-official"
    assert out.strip().splitlines()[-1] == str(target)
    assert "licence: no licence stated" in out
    assert "retrying" in out
    assert ("/tiny/transformer.onnx", "bytes=5000-") in server.requests
    manifest = read_manifest(target, verify_hashes=True)
    assert manifest.class_names == ["cat", "dog", "boat"]
    assert not (models / ".downloads").joinpath("tiny-official").exists()
    # a second call finds it installed and fetches nothing
    n = len(server.requests)
    code, out, _ = run(["download", "tiny-official", "--models-dir", models], capsys)
    assert code == 0
    assert "already installed" in out
    assert len(server.requests) == n


def test_keep_files_and_resume_of_a_partial_download(tiny_catalog, server, tmp_path, capsys):
    models = tmp_path / "models"
    raw = om.downloads_dir(models, tiny_catalog)
    raw.mkdir(parents=True)
    data = server.files["/tiny/transformer.onnx"]
    part_path(raw / "transformer.onnx").write_bytes(data[:1234])
    code, out, err = run(
        ["download", "tiny-official", "--yes", "--keep-files", "--models-dir", models], capsys
    )
    assert code == 0, err
    assert "resuming: 1.2 KB already here" in out
    assert ("/tiny/transformer.onnx", "bytes=1234-") in server.requests
    assert (raw / "transformer.onnx").read_bytes() == data
    assert not part_path(raw / "transformer.onnx").exists()


def test_without_yes_and_no_terminal_it_asks_for_yes(tiny_catalog, server, tmp_path, capsys):
    code, _, err = run(["download", "tiny-official", "--models-dir", tmp_path], capsys)
    assert code == 2
    assert err.strip().startswith("error: tiny-official needs")
    assert "add --yes" in err
    assert server.requests == []


def test_a_missing_file_is_one_line_and_nothing_is_imported(tiny_catalog, server, tmp_path, capsys):
    server.missing.add("/tiny/manifest.json")
    code, _, err = run(["download", "tiny-official", "--yes", "--models-dir", tmp_path], capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: manifest.json: not found (HTTP 404)")
    assert not (tmp_path / "tiny-official").exists()


def test_list_shows_sizes_licences_and_abilities(capsys):
    code, out, _ = run(["download", "--list"], capsys)
    assert code == 0
    for model in om.OFFICIAL:
        assert model.name in out
    assert "no licence stated" in out
    assert "about 907.9 MB" in out  # MaskGIT 256: tokenizer + transformer
    assert "class generation (1000 ImageNet classes)" in out


def test_unknown_name_and_missing_name(capsys):
    code, _, err = run(["download", "stable-diffusion"], capsys)
    assert code == 2
    assert "no official model named 'stable-diffusion'" in err
    code, _, err = run(["download"], capsys)
    assert code == 2
    assert "name a model" in err


def test_without_torch_the_download_runs_and_the_import_judges_the_files(server, tmp_path):
    """A plain install (PyTorch unimportable in the child): nothing asks for it; the files are
    fetched and the torch-free importer refuses these fake ones in one line."""
    for model in om.OFFICIAL:
        for remote in model.files.values():
            if not remote.drive:
                server.files["/" + remote.url.split("/", 3)[3]] = b"not msgpack " * 20_000
    models = tmp_path / "models"
    run_ = run_main_without_torch(
        "download", "maskgit-imagenet-256", "--yes", "--models-dir", models, timeout=120
    )
    assert run_.returncode == 2, run_.stderr
    assert "PyTorch" not in run_.stderr
    assert "Traceback" not in run_.stderr
    line = run_.stderr.strip().splitlines()[-1]
    assert line.startswith("error: import failed: ")
    assert "not a Flax checkpoint" in line
    assert len(server.requests) >= 2
    assert not (models / "maskgit-imagenet-256").exists()


def test_missing_gdown_is_one_line_for_drive_models(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_download, "gdown_available", lambda: False)
    code, _, err = run(["download", "mage-vit-b", "--yes", "--models-dir", tmp_path], capsys)
    assert code == 2
    assert "needs the gdown package" in err
    assert len(err.strip().splitlines()) == 1
    assert server.requests == []


def _serve_fake_mage(server) -> None:
    for model in om.OFFICIAL:
        for remote in model.files.values():
            file_id = remote.url.rsplit("id=", 1)[-1]
            if remote.drive:
                server.drive[file_id] = b"not a checkpoint " * 20_000
            else:
                server.files["/" + remote.url.split("/", 3)[3]] = b"not msgpack " * 20_000


def test_ctrl_c_leaves_a_part_that_the_same_command_resumes(server, tmp_path, capsys):
    """The official MAGE entry end to end against the loopback server: Drive's confirmation
    page, Ctrl+C in a real process, resume, then the real importer refuses the fake files in
    one line and sends them back to be fetched again."""
    _serve_fake_mage(server)
    server.delay = 0.3
    models = tmp_path / "models"
    env = dict(os.environ, **{ENV_BASE: server.url})
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "download", "mage-vit-b", "--yes"]
        + ["--models-dir", str(models)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job inherits SIGINT ignored, and Python then keeps it ignored:
        # give the child the disposition a terminal's foreground command has
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    part = part_path(om.downloads_dir(models, om.find_model("mage-vit-b")) / "mage-vitb-1600.pth")
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with the same command" in err
    assert "Traceback" not in err
    kept = part.stat().st_size
    assert 0 < kept < 340_000
    assert not part.with_suffix("").with_name("mage-vitb-1600.pth").exists()

    server.delay = 0.0
    code, _out, err = run(["download", "mage-vit-b", "--yes", "--models-dir", models], capsys)
    assert ("/download", f"bytes={kept}-") in server.requests
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: import failed: ")
    # no published size: only the import could judge the files, and it refused them
    assert "mage-vitb-1600.pth, vqgan_jax_strongaug.ckpt will be downloaded again" in line
    assert not (part.parent / "mage-vitb-1600.pth").exists()
    assert not (models / "mage-vit-b" / "manifest.json").exists()


@pytest.mark.slow
def test_the_synthetic_maskgit_pair_downloads_resumes_and_imports(
    maskgit_pair, server, tmp_path, capsys
):
    """The official MaskGIT entry end to end with files of the real sizes and format (the
    synthetic pair of the vectors test), one connection dropped mid-file, the real importer."""
    made = {path.name: path for path in maskgit_pair}
    model = om.find_model("maskgit-imagenet-256")
    for remote in model.files.values():
        server.files["/" + remote.url.split("/", 3)[3]] = made[remote.name]
    dropped = "/maskgit-public/checkpoints/maskgit_imagenet256_checkpoint"
    server.drop_after[dropped] = 300_000_000
    models = tmp_path / "models"
    code, out, err = run(["download", model.name, "--yes", "--models-dir", models], capsys)
    assert code == 0, err
    assert (dropped, "bytes=300000000-") in server.requests
    target = models / model.name
    assert out.strip().splitlines()[-1] == str(target)
    manifest = read_manifest(target, verify_hashes=True)
    assert manifest.class_names is not None
    assert len(manifest.class_names) == 1000
    assert manifest.null_class_id is None
    assert manifest.grid == [16, 16]
    assert manifest.codebook_size == 1024
    assert not om.downloads_dir(models, model).exists()


def test_a_failed_import_sends_unverifiable_files_back(
    tiny_bundle_path, server, tmp_path, capsys, monkeypatch
):
    """No published sizes: a reply cut short looks complete, the import's check refuses it,
    and the next run fetches that file again and installs."""
    entry = bundle_entry(tiny_bundle_path, server, sizes=False)
    monkeypatch.setattr(cli_download, "CATALOG", (entry,))
    server.no_length.add("/tiny/transformer.onnx")
    server.drop_after["/tiny/transformer.onnx"] = 3000  # ends early, without a length to tell
    models = tmp_path / "models"
    argv = ["download", "tiny-official", "--yes", "--models-dir", models]
    code, _, err = run(argv, capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: import failed: ")
    assert "will be downloaded again on the next try" in line
    raw = om.downloads_dir(models, entry)
    assert not (raw / "transformer.onnx").exists()
    assert sorted(p.name for p in models.iterdir()) == [".downloads"]  # no work folder left
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(models / "tiny-official")
    read_manifest(models / "tiny-official", verify_hashes=True)


def test_an_unreachable_host_is_one_line_at_once(tiny_catalog, tmp_path, capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv(ENV_BASE, f"http://127.0.0.1:{port}")
    code, out, err = run(["download", "tiny-official", "--yes", "--models-dir", tmp_path], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "cannot reach 127.0.0.1 (no connection?)" in lines[0]
    assert "retrying" not in out


def test_a_planted_link_in_the_download_folder_is_refused(tiny_catalog, server, tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    models = tmp_path / "models"
    raw = om.downloads_dir(models, tiny_catalog)
    raw.mkdir(parents=True)
    part_path(raw / "transformer.onnx").symlink_to(precious)
    code, _, err = run(["download", "tiny-official", "--yes", "--models-dir", models], capsys)
    assert code == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert "is a symbolic link" in err
    assert precious.read_text() == "mine"
    # a linked download folder: nothing is written or deleted through it
    shutil.rmtree(raw)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    raw.symlink_to(elsewhere)
    code, _, err = run(["download", "tiny-official", "--yes", "--models-dir", models], capsys)
    assert code == 2
    assert "not a plain folder" in err
    assert list(elsewhere.iterdir()) == []
