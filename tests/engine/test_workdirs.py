"""Work folders of imports and installs: removed on error, Ctrl+C, SIGTERM and SIGHUP; after
a kill -9, swept at the next start; nothing of anyone else's is ever swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from engine.runtime.workdirs import sweep, work_dir

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from engine.runtime.workdirs import work_dir
    with work_dir(Path(sys.argv[1]) / "bundle") as tmp:
        (tmp / "transformer.onnx").write_bytes(bytes(1000))
        print(tmp, flush=True)
        time.sleep(60)
    """
)


def _terminal_signals() -> None:
    """The child's signals as a terminal gives them: a background job inherits SIGINT ignored,
    and a pytest-xdist worker SIGHUP (an ignored signal is left alone, as nohup expects)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _start(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_terminal_signals,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, line


def _ours(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".bundle."))


def test_a_work_folder_is_removed_after_the_block_and_on_error(tmp_path):
    with work_dir(tmp_path / "bundle") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.is_dir()
        (tmp / "a.onnx").write_bytes(b"x")
    assert _ours(tmp_path) == []
    with pytest.raises(RuntimeError), work_dir(tmp_path / "bundle") as tmp:
        raise RuntimeError("boom")
    assert _ours(tmp_path) == []
    with work_dir(tmp_path / "bundle") as tmp:  # moved into place: the bundle stays
        os.replace(tmp, tmp_path / "bundle")
    assert (tmp_path / "bundle").is_dir()
    assert _ours(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_sigterm_sighup_and_ctrl_c_remove_the_work_folder(tmp_path, sig):
    proc, tmp = _start(tmp_path)
    assert os.path.isdir(tmp)
    assert _ours(tmp_path)
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert _ours(tmp_path) == []


def test_after_kill_9_the_next_start_sweeps_only_stale_folders_of_ours(tmp_path):
    running, live = _start(tmp_path)
    killed, stale = _start(tmp_path)
    killed.kill()
    killed.communicate(timeout=30)
    assert os.path.isdir(stale)  # nothing can catch SIGKILL
    # look-alikes that are not ours: no lock file, or a link
    (tmp_path / ".bundle.abcdefgh.work").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (tmp_path / ".bundle.linked00.work").symlink_to(elsewhere)
    (tmp_path / ".bundle.linked00.work.lock").write_text("")
    try:
        removed = sweep(tmp_path)
        assert [str(p) for p in removed] == [stale]
        assert not os.path.exists(stale)
        assert not os.path.exists(stale + ".lock")
        assert os.path.isdir(live)  # its import still runs
        assert (tmp_path / ".bundle.abcdefgh.work").is_dir()
        assert (elsewhere / "keep.txt").read_text() == "keep"
    finally:
        running.kill()
        running.communicate(timeout=30)
    sweep(tmp_path)
    assert not os.path.exists(live)


IMPORT_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import engine.importing.bundle as bundle
    from engine.runtime.manifest import Manifest

    def slow_graphs(template, state, folder, weights):  # the minute of writing, shortened
        (folder / weights).write_bytes(bytes(100_000))
        print(folder, flush=True)
        time.sleep(60)
        return [weights]

    bundle.write_graphs = slow_graphs
    manifest = Manifest(name="m", image_size=256, grid=[16, 16], codebook_size=1024,
                        mask_token_id=1024)
    bundle.write_bundle(Path(sys.argv[1]) / "bundle", overwrite=False, inputs=[],
                        tokenizer=(None, {}), transformer=(None, {}), manifest=manifest,
                        card=lambda r: "", steps=bundle.Steps(lambda t: None, ["a", "b"]))
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_stopped_import_leaves_no_work_folder(tmp_path, sig):
    """The importers' bundle writer in a real process, stopped while it writes: SIGTERM and
    SIGHUP clean up at once; after SIGKILL the next import's start sweeps the folder."""
    proc = subprocess.Popen(
        [sys.executable, "-c", IMPORT_CHILD, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_terminal_signals,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    work = proc.stdout.readline().strip()
    assert work, proc.stderr.read()
    assert os.path.isdir(work), proc.stderr.read()
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    if sig == signal.SIGKILL:
        assert os.path.isdir(work)
        sweep(tmp_path)  # what the next import, download or Get official models does first
    assert _ours(tmp_path) == []
    assert not (tmp_path / "bundle").exists()
