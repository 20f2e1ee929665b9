"""Installing MAGE Studio as an app: the wheel, the entry point, the desktop entry, the assets,
and top-5 recognition with the default model out of the box."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from PIL import Image

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as pip vendors it
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
FREE_LICENCES = ("CC0", "public domain", "CC-BY")
WHEEL_SOURCES = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "app",
    "engine",
    "mage_studio",
    "assets",
    "exported_models",
)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


# -- packaging metadata -------------------------------------------------------------------------


def test_pyproject_lists_every_package_and_ships_the_data_folders():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setup = config["tool"]["setuptools"]
    code = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("app", "engine", "mage_studio")
        for p in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert set(setup["packages"]) == code | {"mage_studio.assets", "mage_studio.exported_models"}
    assert setup["package-dir"] == {
        "mage_studio.assets": "assets",
        "mage_studio.exported_models": "exported_models",
    }
    project = config["project"]
    assert project["license"] == "MIT"
    assert (REPO / "LICENSE").is_file()
    assert project["scripts"]["mage-studio"] == "mage_studio.entry:main"
    assert project["gui-scripts"]["mage-studio-gui"] == "mage_studio.entry:gui_main"


def test_entry_knows_every_cli_command():
    from engine.cli import build_parser
    from mage_studio.entry import CLI_COMMANDS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == CLI_COMMANDS


# -- dispatch -------------------------------------------------------------------------------------


@pytest.fixture
def editor_calls(monkeypatch):
    """Replaces the editor's start-up: records the arguments it would have been given."""
    import app.launch

    calls = []

    def main(argv) -> int:
        calls.append(argv)
        return 0

    monkeypatch.setattr(app.launch, "main", main)
    return calls


def test_no_command_opens_the_editor_and_a_photo_is_opened(editor_calls, tmp_path):
    from mage_studio.entry import gui_main, main

    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(photo)
    assert main([]) == 0
    assert main([str(photo)]) == 0
    assert main(["--screenshot", "s.png", "--no-run"]) == 0
    assert gui_main([str(photo), "--mask", "m.png"]) == 0
    assert editor_calls == [
        [],
        ["--open", str(photo)],
        ["--screenshot", "s.png", "--no-run"],
        ["--open", str(photo), "--mask", "m.png"],
    ]


def test_sub_commands_run_the_cli_and_unknown_words_are_refused(editor_calls, capsys):
    from mage_studio.entry import main

    assert main(["generate", "--candidates", "0", "-o", "x.png"]) == 2
    err = capsys.readouterr().err  # the CLI's own one-line refusal
    assert err.startswith("error: ")
    assert "--candidates" in err
    assert len(err.splitlines()) == 1
    assert main(["-v", "generate", "--candidates", "0", "-o", "x.png"]) == 2
    assert "--candidates" in capsys.readouterr().err
    assert main(["gnerate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'gnerate' is neither a command" in err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mage-studio ")
    assert editor_calls == []


def test_python_dash_m_and_main_py_share_the_entry(tmp_path):
    """`python -m mage_studio` and `python main.py` both reach the same dispatch."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for cmd in (
        [sys.executable, "-m", "mage_studio", "gnerate"],
        [sys.executable, REPO / "main.py", "gnerate"],
    ):
        done = _run(cmd, cwd=tmp_path, env=env, timeout=120)
        assert done.returncode == 2, cmd
        assert "neither a command" in done.stderr, cmd


# -- desktop entry ------------------------------------------------------------------------------


def _desktop_keys(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(ln.split("=", 1) for ln in lines[1:] if ln and not ln.startswith("#"))


def test_install_desktop_writes_entry_and_icons_and_uninstall_removes_them(tmp_path):
    data_home = tmp_path / "share"
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    done = _run(
        [sys.executable, REPO / "main.py", "--install-desktop"], cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    entry = data_home / "applications" / "mage-studio.desktop"
    keys = _desktop_keys(entry)
    assert keys["Type"] == "Application"
    assert keys["Name"] == "MAGE Studio"
    assert keys["Icon"] == "mage-studio"
    assert "Graphics" in keys["Categories"].split(";")
    command = keys["Exec"].split(" ")
    assert command[-1] == "%f"
    assert Path(command[0]).is_file(), keys["Exec"]
    assert os.access(command[0], os.X_OK), keys["Exec"]
    hicolor = data_home / "icons" / "hicolor"
    for size in ICON_SIZES:
        with Image.open(hicolor / f"{size}x{size}" / "apps" / "mage-studio.png") as im:
            assert im.size == (size, size)
    assert (hicolor / "scalable" / "apps" / "mage-studio.svg").read_bytes() == (
        ASSETS / "icons" / "mage-studio.svg"
    ).read_bytes()
    assert f"wrote {entry}" in done.stdout

    done = _run(
        [sys.executable, REPO / "main.py", "--uninstall-desktop"],
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0
    assert not entry.exists()
    assert not any(p.is_file() for p in data_home.rglob("*"))


def test_desktop_exec_quotes_paths_with_spaces():
    from mage_studio.desktop import entry_text

    text = entry_text("[Desktop Entry]\nExec=x %f\nName=M", ["/opt/My Apps/bin/mage-studio-gui"])
    assert 'Exec="/opt/My Apps/bin/mage-studio-gui" %f' in text.splitlines()


def test_install_desktop_reports_an_unwritable_folder_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = {**os.environ, "XDG_DATA_HOME": str(blocker)}
    done = _run(
        [sys.executable, REPO / "main.py", "--install-desktop"], cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot write the desktop entry")
    assert len(done.stderr.strip().splitlines()) == 1


def _desktop_files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file() or p.is_symlink())


def test_install_desktop_never_writes_through_a_planted_link(tmp_path):
    from mage_studio import desktop

    home = tmp_path / "share"
    apps = home / "applications"
    apps.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    other = tmp_path / "other.txt"
    other.write_text("also precious")
    # the fixed temp name an earlier version used, and the destination itself
    (apps / "mage-studio.desktop.tmp").symlink_to(victim)
    (apps / "mage-studio.desktop").symlink_to(other)
    outcome = desktop.install(home=home)
    assert victim.read_text() == "precious"
    assert other.read_text() == "also precious"
    assert (apps / "mage-studio.desktop").is_symlink()  # a link is not ours: left alone
    assert any("mage-studio.desktop alone: it is not a regular file" in n for n in outcome.notices)
    assert len(outcome.done) == len(ICON_SIZES) + 1  # every icon still went in
    assert not any(p.name.endswith(".tmp") and not p.is_symlink() for p in home.rglob("*"))


def test_a_failed_desktop_install_leaves_no_temp_file(tmp_path, monkeypatch):
    from mage_studio import desktop

    home = tmp_path / "share"

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(desktop.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        desktop.install(home=home)
    assert not [p for p in home.rglob("*") if p.is_file()]


def test_desktop_install_keeps_a_users_own_files_and_uninstall_removes_only_ours(tmp_path):
    from mage_studio import desktop

    home = tmp_path / "share"
    entry = home / "applications" / "mage-studio.desktop"
    icon = home / "icons" / "hicolor" / "48x48" / "apps" / "mage-studio.png"
    entry.parent.mkdir(parents=True)
    entry.write_text("[Desktop Entry]\nName=My own launcher\nExec=my-script %f\n")
    outcome = desktop.install(home=home)
    assert "My own launcher" in entry.read_text()
    assert [n for n in outcome.notices if str(entry) in n] == [
        f"left {entry} alone: MAGE Studio did not write it (or it was changed since); "
        "move it away to install ours"
    ]
    assert icon.read_bytes() == (ASSETS / "icons" / "mage-studio-48.png").read_bytes()
    icon.write_bytes(b"the user's own drawing")  # replaced by the user after the install

    outcome = desktop.uninstall(home=home)
    assert entry.read_text().startswith("[Desktop Entry]\nName=My own launcher")
    assert icon.read_bytes() == b"the user's own drawing"
    assert entry not in outcome.done
    assert icon not in outcome.done
    assert len(outcome.done) == len(ICON_SIZES)  # the other icons and the SVG
    assert len(outcome.notices) == 2
    assert all(n.startswith("left ") for n in outcome.notices)
    assert _desktop_files(home) == sorted([entry, icon])


def test_desktop_install_replaces_an_earlier_installs_entry(tmp_path):
    from mage_studio import desktop

    home = tmp_path / "share"
    entry = home / "applications" / "mage-studio.desktop"
    entry.parent.mkdir(parents=True)
    template = (ASSETS / "mage-studio.desktop").read_text(encoding="utf-8")
    entry.write_text(desktop.entry_text(template, ["/old/venv/bin/mage-studio-gui"]))
    outcome = desktop.install(home=home)
    assert entry in outcome.done
    assert not outcome.notices
    assert "/old/venv" not in entry.read_text()
    assert entry in desktop.uninstall(home=home).done
    assert not entry.exists()


def test_a_relative_xdg_data_home_is_ignored(tmp_path, monkeypatch):
    from engine.runtime.locations import user_data_dir
    from engine.runtime.speed import user_cache_dir
    from mage_studio import desktop

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert desktop.data_home() == tmp_path / ".local" / "share"
    if sys.platform.startswith("linux"):  # the app's own folders follow the same rule
        assert user_data_dir() == tmp_path / ".local" / "share" / "MAGE Studio"
        assert user_cache_dir() == tmp_path / ".cache" / "mage-studio"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "abs"))
    assert desktop.data_home() == tmp_path / "abs"


# -- assets ---------------------------------------------------------------------------------------


def test_icon_pngs_are_renderings_of_every_size():
    for size in ICON_SIZES:
        with Image.open(ASSETS / "icons" / f"mage-studio-{size}.png") as im:
            assert im.size == (size, size)
            assert im.mode == "RGBA"
            alpha = im.getchannel("A")
            assert alpha.getpixel((0, 0)) == 0
            assert alpha.getpixel((size // 2, size // 2)) == 255


def test_window_icon_has_every_size(qapp):
    from app.ui.icon import app_icon

    icon = app_icon()
    sizes = {s.width() for s in icon.availableSizes()}
    assert set(ICON_SIZES) <= sizes
    assert not icon.pixmap(32, 32).isNull()


def test_samples_have_masks_sources_and_free_licences():
    samples = json.loads((ASSETS / "samples.json").read_text(encoding="utf-8"))["samples"]
    credits = (ASSETS / "CREDITS.md").read_text(encoding="utf-8")
    assert 3 <= len(samples) <= 4
    for s in samples:
        assert s["title"].startswith("Try: remove the ")
        assert s["source"], s
        assert s["licence"].startswith(FREE_LICENCES), s
        image_path, mask_path = ASSETS / s["file"], ASSETS / s["mask"]
        assert image_path.stat().st_size < 400_000
        assert s["file"] in credits
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            assert max(image.size) <= 640
            assert image.mode == "RGB"
            assert mask.size == image.size
            counts = mask.convert("L").histogram()  # pixels at each grey level
            values = {level for level, n in enumerate(counts) if n}
            assert values == {0, 255}  # ready to use: white = remove, black = keep
            white = counts[255]
            assert 0.005 < white / (image.size[0] * image.size[1]) < 0.3


# -- top-5 out of the box -----------------------------------------------------------------------


@pytest.mark.slow
def test_classify_a_sample_photo_with_the_default_model(capsys):
    """A photo the model never saw (a shipped sample) gets the top 5 of its classes, with no
    --head: the default bundle carries a head made on its training photos."""
    from engine.cli import main
    from engine.runtime.locations import default_bundle_path
    from engine.runtime.manifest import read_manifest

    manifest = read_manifest(default_bundle_path(), verify_hashes=True)  # head listed + hashed
    assert manifest.heads, "the default bundle ships no classifier head"
    photo = ASSETS / "samples" / "coffee.jpg"
    assert main(["classify", str(photo), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{photo}: ")
    top = [item.rsplit(" ", 1) for item in out[0].split(": ", 1)[1].split(" | ")]
    assert len(top) == 5
    assert manifest.class_names is not None
    assert {name for name, _ in top} <= set(manifest.class_names)
    percents = [float(p.rstrip("%")) for _, p in top]
    assert percents == sorted(percents, reverse=True)
    assert 0 < sum(percents) <= 100.1


def test_default_bundle_card_reports_the_head_accuracy():
    from engine.runtime.locations import default_bundle_path
    from engine.runtime.manifest import read_manifest

    path = default_bundle_path()
    manifest = read_manifest(path, verify_hashes=False)
    card = (path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Classifier head" in card
    assert "held-out accuracy" in card
    for name, rel in manifest.heads.items():
        assert f"`{rel}`" in card
        assert f"--into-bundle {name}" in card


# -- the wheel ------------------------------------------------------------------------------------


def _copy_sources(dest: Path) -> None:
    """The files a wheel is built from, without caches (the checkout is never written to)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp")
    for name in WHEEL_SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=skip)
        else:
            shutil.copy2(src, dest / name)


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_from_another_folder(tmp_path):
    """Build the wheel, install it (no dependencies: a .pth file reaches the ones this test
    runs with) into a fresh venv outside the checkout, then run the CLI and the editor from an
    unrelated folder."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    src, wheels, venv, elsewhere = (tmp_path / n for n in ("src", "wheels", "venv", "elsewhere"))
    for folder in (src, elsewhere):
        folder.mkdir()
    _copy_sources(src)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            wheels,
            src,
        ],
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr
    assert "deprecated" not in done.stderr.lower(), done.stderr
    (wheel,) = wheels.glob("mage_studio-*.whl")

    done = _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=300)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], timeout=60
        ).stdout.strip()
    )
    # the dependencies of this test's own environment, after the venv's own packages
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            wheel,
        ],
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    where = _run(
        [
            python,
            "-c",
            "import app, engine, mage_studio\n"
            "from engine.runtime import locations\n"
            "print(app.__file__, engine.__file__, mage_studio.__file__, "
            "locations.default_bundle_path(), locations.shipped_dir('assets'), sep='\\n')",
        ],
        cwd=elsewhere,
        env=env,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    for line in where.stdout.strip().splitlines():
        assert Path(line).resolve().is_relative_to(site.resolve()), line  # not the checkout
    bundle = Path(where.stdout.strip().splitlines()[3])
    size = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["image_size"]

    bin_dir = venv / "bin"
    assert (bin_dir / "mage-studio-gui").is_file()
    done = _run(
        [bin_dir / "mage-studio", "generate", "-o", "g.png", "--seed", "1", "--device", "cpu"],
        cwd=elsewhere,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with Image.open(elsewhere / "g.png") as im:
        assert im.size == (size, size)

    done = _run([python, "-m", "mage_studio", "--version"], cwd=elsewhere, env=env, timeout=120)
    assert done.returncode == 0
    assert done.stdout.startswith("mage-studio ")

    gui_env = {**env, "QT_QPA_PLATFORM": "offscreen"}
    sample = json.loads((bundle.parents[1] / "assets" / "samples.json").read_text())["samples"][0]
    done = _run(
        [
            bin_dir / "mage-studio",
            "--open",
            bundle.parents[1] / "assets" / sample["file"],
            "--screenshot",
            "window.png",
            "--device",
            "cpu",
        ],
        cwd=elsewhere,
        env=gui_env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (elsewhere / "window.png").stat().st_size > 10_000
    with Image.open(elsewhere / "window.png") as im:
        assert im.size[0] > 600
        assert im.size[1] > 400
