"""The real window under Xvfb: `main.py --open IMG --mask M --screenshot OUT` end to end.

CI installs xvfb (setup.sh --dev); without xvfb-run this test fails rather than skips, so a
machine that cannot prove the window works never reports green.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.launch import SCREENSHOT_SIZE
from gui.conftest import photo

REPO = Path(__file__).resolve().parents[2]
MAGENTA = (255, 0, 255)


def _inputs(tmp_path):
    rgb = photo(300, 400)
    rgb[200:260, 40:120] = MAGENTA  # a marker far from the mask
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    mask = np.zeros((300, 400), np.uint8)
    mask[80:150, 220:320] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path / "photo.png", tmp_path / "mask.png"


def _run_under_xvfb(args, timeout=180):
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        pytest.fail("xvfb-run is missing: install xvfb (setup.sh --dev does) to prove the window")
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    return subprocess.run(
        [xvfb, "-a", sys.executable, str(REPO / "main.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_screenshot_shows_the_real_window_after_an_edit(tmp_path, tiny_bundle_path):
    image, mask = _inputs(tmp_path)
    out = tmp_path / "shot.png"
    result = _run_under_xvfb(
        [
            "--open",
            str(image),
            "--mask",
            str(mask),
            "--screenshot",
            str(out),
            "--model",
            str(tiny_bundle_path),
            "--device",
            "cpu",
            "--seed",
            "3",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert shot.shape[:2] == (SCREENSHOT_SIZE[1], SCREENSHOT_SIZE[0])  # the window, sized
    colours = np.unique(shot.reshape(-1, 3), axis=0)
    assert len(colours) > 2000, "the window looks blank"
    marker = (shot == MAGENTA).all(axis=2)
    assert marker.sum() > 500, "the image is not on the canvas"
    assert "edit done in" in result.stderr  # the edit really ran before the grab


def test_window_opens_and_says_why_without_a_model(tmp_path):
    image, _ = _inputs(tmp_path)
    out = tmp_path / "shot.png"
    result = _run_under_xvfb(
        ["--open", str(image), "--screenshot", str(out), "--model", str(tmp_path / "missing-model")]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no model: model folder not found" in result.stderr
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert (shot == MAGENTA).all(axis=2).sum() > 500
