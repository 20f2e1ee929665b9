"""`extend` with several candidates: the engine runs every seed in one run (one progress bar
that counts them all), and each file is that seed's extension with the grown alpha."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pngtext import read_png_text

from engine.cli import main


def test_extend_candidates_are_one_run_with_every_seed(tiny_bundle_path, tmp_path, capsys):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    alpha = np.tile(np.arange(64, dtype=np.uint8)[:, None] * 3, (1, 96))
    source = tmp_path / "in.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(source)
    out = tmp_path / "wide.png"
    argv = ["extend", source, "--side", "bottom", "--tokens", 2, "--seed", 7, "--candidates", 2]
    code = main([str(a) for a in [*argv, "-o", out, "--model", tiny_bundle_path]])
    _, err = capsys.readouterr()
    assert code == 0, err
    files = sorted(tmp_path.glob("wide*.png"))
    assert len(files) == 2
    images = [np.asarray(Image.open(f)) for f in files]
    assert {read_png_text(f)["mage:seed"] for f in files} == {"7", "8"}
    for image in images:
        assert image.shape[1] == 96
        assert image.shape[0] > 64
        assert image.shape[2] == 4
        np.testing.assert_array_equal(image[:64, :, 3], alpha)
        assert (image[64:, :, 3] == alpha[-1:]).all()  # the bottom edge, repeated
    assert not np.array_equal(images[0][64:, :, :3], images[1][64:, :, :3])
    assert "1/2" not in err
    assert "2/2" not in err
