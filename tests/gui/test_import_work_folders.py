"""An import the editor runs in a child process leaves no work folder: when the child ends,
however it ended (Cancel kills it), the folder beside the bundle is swept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from app.checkpoint_import import CheckpointImporter
from conftest import REPO

KILLED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from engine.runtime.workdirs import work_dir
    with work_dir(Path(sys.argv[1]) / "mage-vitb") as tmp:
        print(tmp, flush=True)
        time.sleep(60)
    """
)


def test_the_work_folder_of_a_killed_import_is_swept_when_the_next_one_ends(qtbot, tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    stale = child.stdout.readline().strip()
    child.kill()  # what Cancel does to an import
    child.communicate(timeout=30)
    assert os.path.isdir(stale)
    importer = CheckpointImporter()
    with qtbot.waitSignal(importer.finished, timeout=120_000) as done:
        importer.start_command(
            ["import-mage", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "mage-vitb")],
            tmp_path / "mage-vitb",
        )
    ok, message = done.args
    assert not ok
    assert message.startswith("Import failed: ")
    assert not os.path.exists(stale)
    assert not os.path.exists(stale + ".lock")
