"""Issue: never crash on what users throw at it. The CLI over the whole corpus: exit code 2 and
one line for what cannot be used, a result for what can; inputs never change."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from corpus import make_corpus
from engine.cli import main
from engine.runtime.imageio import file_digest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def centre_mask(tmp_path_factory):
    path = tmp_path_factory.mktemp("mask") / "mask.png"
    m = np.zeros((64, 64), np.uint8)
    m[20:44, 24:40] = 255
    Image.fromarray(m).save(path)
    return path


def test_cli_on_every_corpus_file(corpus, centre_mask, tiny_bundle_path, tmp_path, capsys):
    for case in corpus:
        before = file_digest(case.path)
        out = tmp_path / f"{case.name}-out.png"
        code = main(
            [
                "edit",
                str(case.path),
                "--mask",
                str(centre_mask),
                "--scale-mask",
                "-o",
                str(out),
                "--model",
                str(tiny_bundle_path),
                "--seed",
                "1",
            ]
        )
        _, err = capsys.readouterr()
        lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
        assert file_digest(case.path) == before, case.name
        if case.ok:
            assert code == 0, (case.name, err)
            assert out.exists(), case.name
            with Image.open(out) as result:
                assert result.size[0] >= 1
                assert result.format == "PNG"
            if case.expect:
                assert any(case.expect in ln for ln in lines if ln.startswith("notice:")), err
        else:
            assert code == 2, (case.name, err)
            errors = [ln for ln in lines if ln.startswith("error: ")]
            assert len(errors) == 1, (case.name, err)
            assert case.expect in errors[0], (case.name, err)
            assert "Traceback" not in err
            assert not out.exists()


def test_exif_rotation_is_honoured(corpus, centre_mask, tiny_bundle_path, tmp_path, capsys):
    case = next(c for c in corpus if c.name == "exif-rotated.jpg")
    out = tmp_path / "rotated-out.png"
    assert (
        main(
            [
                "edit",
                str(case.path),
                "--mask",
                str(centre_mask),
                "--scale-mask",
                "-o",
                str(out),
                "--model",
                str(tiny_bundle_path),
            ]
        )
        == 0
    )
    assert Image.open(out).size == (64, 96)  # stored 96x64, displayed rotated


def test_mask_cases(tiny_bundle_path, tmp_path, capsys):
    image = tmp_path / "img.png"
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(image)

    def edit(mask_array, *extra):
        path = tmp_path / "m.png"
        Image.fromarray(mask_array).save(path)
        code = main(
            [
                "edit",
                str(image),
                "--mask",
                str(path),
                "-o",
                str(tmp_path / "o.png"),
                "--model",
                str(tiny_bundle_path),
                "--overwrite",
                *extra,
            ]
        )
        return code, capsys.readouterr()[1]

    grey = np.zeros((48, 64), np.uint8)
    grey[10:30, 10:30] = 200  # not binary: thresholded at 50%
    grey[30:40, 40:60] = 60  # below the threshold: not part of the mask
    assert edit(grey)[0] == 0
    code, err = edit(np.zeros((48, 64), np.uint8))
    assert code == 2
    assert "mask is empty" in err
    code, err = edit(np.full((48, 64), 255, np.uint8))
    assert code == 0
    assert "whole image is masked" in err
    code, err = edit(np.full((10, 10), 255, np.uint8))
    assert code == 2
    assert "turn on mask scaling" in err


@pytest.mark.slow
def test_huge_image_stays_within_memory(huge_png, tiny_bundle_path, tmp_path):
    """12000x9000 (108 MP) works through the crop path in bounded memory."""
    image, mask = huge_png, tmp_path / "huge-mask.png"
    # a small hole: the memory at stake is the image's; the fill's time grows with the hole
    hole = np.zeros((9000, 12000), np.uint8)
    hole[4000:4160, 6000:6240] = 255
    Image.fromarray(hole).save(mask, compress_level=1)
    del hole
    before = file_digest(image)
    out = tmp_path / "huge-out.png"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (the test runner,
    # which may be large) across fork and exec; VmHWM belongs to the new address space.
    probe = (
        "import sys; sys.argv = ['main.py'] + sys.argv[1:]\n"
        f"sys.path.insert(0, {str(REPO)!r}); from engine.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
        "print('peak_mb', int(hwm.split()[1]) // 1024)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "edit",
            str(image),
            "--mask",
            str(mask),
            "-o",
            str(out),
            "--model",
            str(tiny_bundle_path),
            "--seed",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stdout.split("peak_mb")[1].split()[0])
    assert peak < 3000, f"peak RSS {peak} MB for a 324 MB image"
    assert file_digest(image) == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own 108 MP output
        with Image.open(out) as result:
            assert result.size == (12000, 9000)
