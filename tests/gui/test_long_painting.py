"""Hundreds of brush strokes in the real window under Xvfb, token grid on, undo/redo between.

Short tests hid a binding bug (PySide6 6.12.0 on Python 3.11) that aborted the interpreter
after a few dozen strokes, so this one paints long enough to hit it. The painting runs in a
child process (tests/gui/long_paint.py): a crash there is a failed test, not a dead test run.
Like test_screenshot.py it fails rather than skips without xvfb-run.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STROKES = 300


@pytest.mark.slow
def test_long_painting_keeps_the_editor_alive_and_the_mask_exact(tmp_path):
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        pytest.fail("xvfb-run is missing: install xvfb (setup.sh --dev does)")
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run(
        [
            xvfb,
            "-a",
            "-s",
            "-screen 0 1600x1000x24",
            sys.executable,
            str(REPO / "tests" / "gui" / "long_paint.py"),
            "--strokes",
            str(STROKES),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert "Fatal Python error" not in output, output[-3000:]
    assert result.returncode == 0, f"the editor died (exit {result.returncode}):\n{output[-3000:]}"
    line = re.search(
        r"ALIVE strokes=(\d+) grid_paints=(\d+) mask_ok=(\w+) overlay_ok=(\w+) "
        r"undo_ok=(\w+) painted=(\d+)",
        output,
    )
    assert line, output[-3000:]
    strokes, grid_paints, mask_ok, overlay_ok, undo_ok, painted = line.groups()
    assert int(strokes) == STROKES
    assert int(grid_paints) >= STROKES, "the token grid overlay was not repainted as painting went"
    assert mask_ok == "True", "the mask is not what the strokes painted"
    assert overlay_ok == "True", "the pink overlay does not show the mask"
    assert undo_ok == "True", "undo/redo did not step through the strokes"
    assert int(painted) > 1000
