"""Extend from the editor and from the command line: the same image, side, size and seed give
the same PNG pixels, alpha included (the new strip continues the edge's transparency)."""

from dataclasses import replace

import numpy as np
from PIL import Image

from engine.cli import main
from gui.conftest import photo


def test_editor_and_cli_extend_write_the_same_file(
    window, tiny_bundle, tiny_bundle_path, tmp_path, qtbot
):
    rgb = photo(96, 128)
    alpha = np.tile(np.linspace(40, 255, 96).astype(np.uint8)[:, None], (1, 128))
    alpha[:, -1] = np.arange(96, dtype=np.uint8)  # the edge the strip continues
    source = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(source)

    cli_out = tmp_path / "cli.png"
    argv = ["extend", source, "--side", "left", "--tokens", 2, "--seed", 5, "-o", cli_out]
    assert main([str(a) for a in [*argv, "--model", tiny_bundle_path]]) == 0

    editor = window.editor
    editor.models.use(tiny_bundle)
    assert editor.open_file(str(source))
    options = replace(editor.options, mode="extend", extend_side="left", extend_cells=2)
    editor.set_options(replace(options, fixed_seed=True, seed=5, texture="photo"))
    with qtbot.waitSignal(editor.run_changed, timeout=60000):
        assert editor.start_run()
    gui_out = tmp_path / "gui.png"
    assert editor.save(str(gui_out))

    cli, gui = Image.open(cli_out), Image.open(gui_out)
    assert cli.mode == gui.mode == "RGBA"
    assert cli.size == gui.size
    assert cli.width > 128
    np.testing.assert_array_equal(np.asarray(cli), np.asarray(gui))
    grown = np.asarray(gui)[..., 3]
    strip = grown.shape[1] - 128
    np.testing.assert_array_equal(grown[:, strip:], alpha)  # the original where it sits
    assert (grown[:, :strip] == alpha[:, :1]).all()  # the left edge, repeated
