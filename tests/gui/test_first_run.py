"""The first five minutes: the sample list, the welcome thumbnails, Help > About, demo mode."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.core.options import EditOptions
from app.editor import Editor
from app.preferences import Preferences
from app.samples import ENV_ASSETS, load_samples
from app.ui import demo as demo_module
from app.ui.about import about_markdown, app_version
from app.ui.main_window import MainWindow
from gui.conftest import photo

H, W = 120, 160
BOX = (slice(40, 70), slice(60, 100))  # the dark block of conftest.photo


def make_assets(folder, count=2):
    """`count` samples: the gradient photo with its dark block masked (and moved per sample)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for n in range(count):
        rgb = np.roll(photo(H, W), 7 * n, axis=1)
        mask = np.zeros((H, W), np.uint8)
        mask[BOX[0], BOX[1].start + 7 * n : BOX[1].stop + 7 * n] = 255
        Image.fromarray(rgb).save(folder / f"block-{n}.png")
        Image.fromarray(mask).save(folder / f"block-{n}-mask.png")
        entries.append(
            {
                "file": f"block-{n}.png",
                "mask": f"block-{n}-mask.png",
                "title": f"Try: remove the block {n}",
                "source": "made by the test",
                "licence": "CC0-1.0",
            }
        )
    (folder / "samples.json").write_text(json.dumps({"samples": entries}))
    return folder


@pytest.fixture
def assets(tmp_path, monkeypatch):
    folder = make_assets(tmp_path / "assets")
    monkeypatch.setenv(ENV_ASSETS, str(folder))
    return folder


def make_window(qtbot, bundle_path=None):
    editor = Editor()
    win = MainWindow(editor, Preferences(), interactive=False)
    win.resize(1100, 750)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    if bundle_path is not None:
        editor.models.load(bundle_path, "cpu", wait=True)
        qtbot.waitUntil(lambda: editor.bundle is not None, timeout=10000)
    return win


def close(win):
    win.editor.jobs.cancel()
    win.editor.jobs.wait_idle(10)


# -- the sample list ------------------------------------------------------------------------


def test_load_samples_reads_the_list_and_leaves_out_broken_entries(tmp_path, caplog):
    folder = make_assets(tmp_path, count=1)
    data = json.loads((folder / "samples.json").read_text())
    data["samples"] += [
        {"file": "block-0.png", "mask": "gone.png", "title": "Try: x"},
        "not an object",
        {"title": "no files"},
    ]
    (folder / "samples.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        samples = load_samples(folder)
    assert [s.title for s in samples] == ["Try: remove the block 0"]
    assert samples[0].image == folder / "block-0.png"
    assert samples[0].mask == folder / "block-0-mask.png"
    assert (samples[0].source, samples[0].licence) == ("made by the test", "CC0-1.0")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("sample 2" in m and "gone.png is missing" in m for m in warnings)
    assert any("sample 3" in m and "not an object" in m for m in warnings)
    assert any("sample 4" in m and "needs 'file' and 'mask'" in m for m in warnings)


def test_load_samples_takes_a_bare_list_and_survives_a_broken_file(tmp_path, caplog):
    folder = make_assets(tmp_path, count=2)
    entries = json.loads((folder / "samples.json").read_text())["samples"]
    (folder / "samples.json").write_text(json.dumps(entries))
    assert len(load_samples(folder)) == 2
    (folder / "samples.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert load_samples(folder) == []
    assert any("cannot read the sample list" in r.getMessage() for r in caplog.records)
    assert load_samples(tmp_path / "nowhere") == []


def test_assets_folder_follows_the_environment(tmp_path, monkeypatch):
    folder = make_assets(tmp_path / "elsewhere", count=1)
    monkeypatch.setenv(ENV_ASSETS, str(folder))
    assert [s.image.name for s in load_samples()] == ["block-0.png"]


# -- the welcome -----------------------------------------------------------------------------


def test_clicking_a_sample_opens_it_with_its_mask_ready_to_run(qtbot, assets, tiny_bundle_path):
    win = make_window(qtbot, tiny_bundle_path)
    editor = win.editor
    editor.set_options(EditOptions(mode="generate"))
    welcome = win.welcome
    assert welcome.isVisible()
    assert welcome.geometry() == win.canvas.viewport().rect()
    assert [b.text() for b in welcome.buttons] == [
        "Try: remove the block 0",
        "Try: remove the block 1",
    ]
    assert "CC0-1.0" in welcome.buttons[1].toolTip()
    assert not welcome.buttons[1].icon().isNull()
    qtbot.mouseClick(welcome.buttons[1], Qt.MouseButton.LeftButton)
    doc = editor.document
    assert doc is not None
    assert doc.path.endswith("block-1.png")
    np.testing.assert_array_equal(doc.rgb, np.roll(photo(H, W), 7, axis=1))
    expected = np.zeros((H, W), bool)
    expected[BOX[0], BOX[1].start + 7 : BOX[1].stop + 7] = True
    np.testing.assert_array_equal(doc.mask, expected)
    assert editor.options.mode == "remove"
    assert not welcome.isVisible()
    # ready to Run: the run starts and refills the masked block
    before = doc.rgb.copy()
    qtbot.keyClick(win.canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: editor.run is not None, timeout=30000)
    changed = np.any(doc.rgb != before, axis=2)
    assert changed[expected].mean() > 0.5
    close(win)


def test_without_samples_the_welcome_shows_only_how_to_start(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_ASSETS, str(tmp_path / "no-assets"))
    win = make_window(qtbot)
    assert win.welcome.buttons == []
    assert win.welcome.isVisible()
    assert "Open, drop or paste" in win.welcome.headline.text()
    win.editor.set_image(photo())
    assert not win.welcome.isVisible()
    close(win)


# -- About -----------------------------------------------------------------------------------


def _click_menu_item(qtbot, win, menu_title, item_text):
    bar = win.menuBar()
    menu_action = next(a for a in bar.actions() if a.text().replace("&", "") == menu_title)
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.actionGeometry(menu_action).center())
    menu = menu_action.menu()
    qtbot.waitUntil(menu.isVisible, timeout=3000)
    item = next(a for a in menu.actions() if a.text() == item_text)
    qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(item).center())


def test_help_about_shows_version_model_card_explanation_and_citation(
    qtbot, assets, tiny_bundle_path
):
    win = make_window(qtbot, tiny_bundle_path)
    _click_menu_item(qtbot, win, "Help", "About MAGE Studio")
    qtbot.waitUntil(
        lambda: getattr(win, "about_dialog", None) is not None and win.about_dialog.isVisible(),
        timeout=3000,
    )
    text = win.about_dialog.browser.toPlainText()
    assert f"MAGE Studio {app_version()}" in text
    assert app_version() != "unknown"
    card = (tiny_bundle_path / "MODEL_CARD.md").read_text()
    card_line = next(line for line in card.splitlines() if line.startswith("Source:"))
    assert card_line.replace("`", "") in text.replace("`", "")  # the card, rendered
    assert "# " not in text  # markdown, not source
    assert "tiny: 64 px, 16 x 16 tokens, codebook 64, 3 classes" in text
    assert "16 x 16 grid of tokens" in text
    assert "64-word codebook" in text
    assert "most confident" in text
    assert "8 steps" in text
    assert (
        "Tianhong Li, Huiwen Chang, Shlok Kumar Mishra, Han Zhang, Dina Katabi, "
        "Dilip Krishnan" in text
    )
    assert (
        "MAGE: MAsked Generative Encoder to Unify Representation Learning and Image "
        "Synthesis" in text
    )
    assert "CVPR 2023" in text
    assert "2211.09117" in text
    qtbot.keyClick(win.about_dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not win.about_dialog.isVisible(), timeout=3000)
    close(win)


def test_about_without_a_model_says_why_and_still_explains():
    text = about_markdown(None, "model folder not found: /x")
    assert "No model loaded: model folder not found: /x." in text
    assert "16 x 16 grid of tokens" in text
    assert "arXiv:2211.09117" in text
    assert "## Model card" not in text


# -- demo mode -------------------------------------------------------------------------------


def test_demo_mode_plays_samples_to_the_result_cycles_and_leaves_on_a_key(
    qtbot, assets, tiny_bundle_path, monkeypatch
):
    monkeypatch.setattr(demo_module, "TIMING", demo_module.DemoTiming().scaled(0.01))
    win = make_window(qtbot, tiny_bundle_path)
    qtbot.keyClick(win.canvas, Qt.Key.Key_F5)  # View > Demo mode
    demo = win.demo_mode
    assert demo is not None
    assert demo.isVisible()
    assert demo.isFullScreen()
    seen, grids = [], []

    def record(phase, step):
        seen.append((phase, step, demo.index))
        if phase == "decode":
            colors = demo._grid._colors
            grids.append(
                (
                    (colors[..., :3] == (40, 40, 46)).all(axis=2).sum(),
                    int((colors[..., 3] > 0).sum()),
                )
            )

    demo.state_changed.connect(record)
    qtbot.waitUntil(
        lambda: demo.results >= 2 and demo.index == 0 and demo.phase == "intro", timeout=60000
    )
    first = [(p, s) for p, s, i in seen if i == 1]
    steps = int(win.editor.bundle.manifest.decoding["steps"])
    assert first[0] == ("intro", -1)
    assert [s for p, s in first if p == "decode"] == list(range(steps))
    assert first[-1] == ("result", -1)
    # the decode replay: fewer cells hidden each step, none at the end; heatmap on the rest
    hidden = [h for h, _ in grids[:steps]]
    assert hidden == sorted(hidden, reverse=True)
    assert hidden[0] > 0
    assert hidden[-1] == 0
    assert all(coloured > 0 for _, coloured in grids[:steps])
    # back to the first sample: it cycles
    assert seen[-1][2] == 0
    demo.hold = ("result", -1)
    qtbot.waitUntil(lambda: demo.phase == "result", timeout=30000)
    run = demo.run
    assert run is not None
    assert len(run.steps) == steps
    original = np.asarray(Image.open(assets / "block-0.png"))
    np.testing.assert_array_equal(demo.right, run.outcome.images[0])
    inside = np.zeros((H, W), bool)
    inside[BOX] = True
    assert np.any(demo.right != original, axis=2)[inside].mean() > 0.5
    far = np.ones((H, W), bool)
    x0, y0, x1, y1 = run.outcome.fill.square.clip(W, H)
    far[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(demo.right[far], original[far])
    shot = demo.grab().toImage()
    assert shot.width() == demo.width()
    # any key leaves it
    left = []
    demo.finished.connect(lambda: left.append(True))
    qtbot.keyClick(demo, Qt.Key.Key_Space)
    assert left == [True]
    qtbot.waitUntil(lambda: win.demo_mode is None, timeout=3000)
    close(win)


def test_demo_mode_without_samples_says_so_and_esc_leaves(
    qtbot, tmp_path, monkeypatch, tiny_bundle_path
):
    monkeypatch.setenv(ENV_ASSETS, str(tmp_path / "no-assets"))
    win = make_window(qtbot, tiny_bundle_path)
    demo = demo_module.start_demo(win, full_screen=False)
    assert demo.phase == "message"
    assert demo.title == "No sample photos found"
    qtbot.keyClick(demo, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: win.demo_mode is None, timeout=3000)
    close(win)


def test_demo_mode_waits_for_the_model(qtbot, assets, monkeypatch):
    monkeypatch.setattr(demo_module, "TIMING", demo_module.DemoTiming().scaled(0.01))
    win = make_window(qtbot)
    win.editor.models.load(assets / "not-a-model", "cpu", wait=True)
    demo = demo_module.start_demo(win, full_screen=False)
    assert demo.phase == "message"
    assert demo.title == "No model loaded"
    assert "not-a-model" in demo.caption
    demo.leave()
    assert not demo.isVisible()
    close(win)


# -- the scripted screenshots (the README's pictures) --------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "title"),
    [
        (["--about"], "about"),
        (["--demo"], "demo decode"),
        (["--demo", "--demo-shot", "result"], "demo result"),
    ],
)
def test_screenshots_of_about_and_demo_mode(tmp_path, monkeypatch, tiny_bundle_path, extra, title):
    from gui.test_screenshot import _run_under_xvfb

    monkeypatch.setenv(ENV_ASSETS, str(make_assets(tmp_path / "assets", count=1)))
    out = tmp_path / "shot.png"
    result = _run_under_xvfb(
        [*extra, "--screenshot", str(out), "--model", str(tiny_bundle_path), "--device", "cpu"]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shot = np.asarray(Image.open(out).convert("RGB"))
    if title == "about":
        assert shot.shape[1] == 900
        assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 20  # text, not a blank dialog
        return
    assert shot.shape[:2] == (900, 1440)
    phase = "decode 4" if title == "demo decode" else "result -1"
    assert f"demo mode: {phase}:" in result.stderr
    # the sample photo is on screen: its gradient gives many colours
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 1000


def test_saving_a_sample_suggests_the_pictures_folder_not_the_samples(
    qtbot, assets, tiny_bundle_path, monkeypatch, tmp_path
):
    """The shipped samples' folder is read-only in an installed app: Save suggests the
    user's Pictures folder for a sample, and the photo's own folder for any other image."""
    pictures = Path.home() / "Pictures"
    pictures.mkdir(parents=True)
    win = make_window(qtbot, tiny_bundle_path)
    asked = []

    def choose_file(title, name, *a, **k) -> str:
        asked.append(name)
        return ""

    monkeypatch.setattr(win, "choose_file", choose_file)
    qtbot.mouseClick(win.welcome.buttons[0], Qt.MouseButton.LeftButton)
    assert win.editor.document.path.startswith(str(assets))
    qtbot.keyClick(win, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert asked
    assert Path(asked[-1]).parent == pictures
    assert Path(asked[-1]).name == "block-0-edited.png"
    own = tmp_path / "mine"
    own.mkdir()
    Image.fromarray(photo(H, W)).save(own / "photo.png")
    assert win.open_path(str(own / "photo.png"))
    qtbot.keyClick(win, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert Path(asked[-1]).parent == own
    close(win)
